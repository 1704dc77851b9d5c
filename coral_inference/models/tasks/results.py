"""Result types of the non-box tasks (the box tasks return ``supervision.Detections``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# supervision's key for oriented boxes in ``Detections.data`` (sv.config.ORIENTED_BOX_COORDINATES).
ORIENTED_BOX_COORDINATES = "xyxyxyxy"
KEYPOINTS_XY = "keypoints_xy"
KEYPOINTS_CONFIDENCE = "keypoints_confidence"


@dataclass(frozen=True)
class ClassificationResult:
    """One image's class scores.

    ``confidences[i]`` is the probability of ``class_names[i]``: a softmax over the
    classes for single-label models, an independent sigmoid per class for
    multi-label ones.

    >>> r = ClassificationResult(["cat", "dog"], np.array([0.2, 0.8], np.float32))
    >>> r.top(1), r.top_class
    ([('dog', 0.800000011920929)], 'dog')
    """

    class_names: list[str]
    confidences: np.ndarray  # (nc,) float32
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.confidences.shape != (len(self.class_names),):
            raise ValueError(
                f"confidences has shape {self.confidences.shape} "
                f"for {len(self.class_names)} class names"
            )

    @property
    def order(self) -> np.ndarray:
        """Class ids by decreasing confidence (ties keep the lower id first)."""
        return np.argsort(-self.confidences, kind="stable")

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most confident (name, confidence) pairs, most confident first."""
        return [(self.class_names[i], float(self.confidences[i])) for i in self.order[: max(0, k)]]

    def top_ids(self, k: int = 5) -> np.ndarray:
        return self.order[: max(0, k)]

    @property
    def top_class(self) -> str:
        return self.class_names[int(self.order[0])]

    @property
    def top_class_id(self) -> int:
        return int(self.order[0])

    @property
    def top_confidence(self) -> float:
        return float(self.confidences[self.order[0]])

    def predicted_classes(self, threshold: float = 0.5) -> list[str]:
        """Multi-label: the classes at or above ``threshold``; single-label: the top one, if so."""
        if not self.multi_label:
            return [self.top_class] if self.top_confidence >= threshold else []
        return [self.class_names[i] for i in self.order if self.confidences[i] >= threshold]
