"""``Detector``: one model package on one backend session, frame in, ``sv.Detections`` out.

The three stages (``prepare``, ``infer``, ``postprocess``) are public so the
benchmark can time each; ``detect`` chains them. A session that can run frames
in parallel (the RKNN pool: one session per NPU core) declares it with
``concurrency`` and ``detect_batch`` then spreads a batch over it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import supervision as sv

from coral_inference.backends.base import ModelSession
from coral_inference.models.decoders import decode
from coral_inference.models.nms import nms
from coral_inference.models.package import HeadSpec, InputSpec, ModelPackage
from coral_inference.models.preprocess import ResizeGeometry, preprocess_image
from coral_inference.models.tasks.postprocess import (
    TASK_HEAD_TYPES,
    check_outputs,
    classify_outputs,
    postprocess_task,
    session_output_shapes,
)
from coral_inference.models.tasks.results import ClassificationResult


@dataclass
class StageTimes:
    """Seconds spent per stage of one ``detect``."""

    preprocess: float = 0.0
    inference: float = 0.0
    decode: float = 0.0  # decoding, NMS and mapping boxes back
    candidates: int = 0  # boxes that reached NMS

    @property
    def total(self) -> float:
        return self.preprocess + self.inference + self.decode


class Detector:
    """Runs ``package`` through ``session``; input spec and head from the session when it has them."""

    def __init__(
        self,
        package: ModelPackage,
        session: ModelSession,
        input_spec: InputSpec | None = None,
        head: HeadSpec | None = None,
    ):
        self.package = package
        self.session = session
        # Adapters put the artifact's own input spec and head on their sessions.
        self.input_spec = input_spec or getattr(session, "input_spec", None) or package.input
        self.head = head or getattr(session, "head", None) or package.head
        self._class_index = {name: i for i, name in enumerate(package.classes)}
        self._class_names = np.asarray(package.classes)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        shapes = session_output_shapes(session)
        if shapes is not None:
            try:  # a package whose outputs do not fit its task head is refused at load
                check_outputs(package, self.head, self.input_spec, shapes)
            except Exception:
                session.close()
                raise

    # ------------------------------------------------------------------ stages

    def prepare(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, ResizeGeometry]:
        return preprocess_image(frame_bgr, self.input_spec)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(tensor)

    def postprocess(
        self,
        outputs: Sequence[np.ndarray],
        geometry: ResizeGeometry,
        *,
        confidence: float = 0.25,
        iou: float = 0.45,
        class_filter: Sequence[str | int] | None = None,
        max_detections: int = 300,
        agnostic: bool = False,
        max_candidates: int = 3000,
        times: StageTimes | None = None,
    ) -> sv.Detections:
        allowed = self.class_ids_for(class_filter)
        if (
            self.head.type in TASK_HEAD_TYPES
        ):  # segmentation, keypoints, OBB, RF-DETR: models/tasks/
            detections, reached = postprocess_task(
                self.package,
                self.head,
                self.input_spec,
                outputs,
                geometry,
                allowed,
                confidence=confidence,
                iou=iou,
                max_detections=max_detections,
                agnostic=agnostic,
                max_candidates=max_candidates,
            )
            if times is not None:
                times.candidates = reached
            return detections
        if allowed is not None and allowed.size == 0:
            return self._detections(
                np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
            )
        candidates = decode(
            outputs,
            self.head,
            len(self.package.classes),
            confidence,
            allowed,
            input_size=(self.input_spec.width, self.input_spec.height),
        )
        candidates = candidates.top(max_candidates)
        if times is not None:
            times.candidates = len(candidates)
        if self.head.needs_nms:
            keep = nms(
                candidates.xyxy,
                candidates.scores,
                iou,
                class_ids=None if agnostic else candidates.class_ids,
                max_detections=max_detections,
            )
        else:  # end-to-end heads: the model already chose its boxes
            keep = np.argsort(-candidates.scores, kind="stable")[:max_detections]
        xyxy = geometry.to_source(candidates.xyxy[keep])
        return self._detections(xyxy, candidates.scores[keep], candidates.class_ids[keep])

    # ------------------------------------------------------------------ public

    def detect(
        self,
        frame_bgr: np.ndarray,
        confidence: float = 0.25,
        iou: float = 0.45,
        class_filter: Sequence[str | int] | None = None,
        max_detections: int = 300,
        agnostic: bool = False,
        max_candidates: int = 3000,
    ) -> sv.Detections:
        """Detections in frame pixels with ``data["class_name"]``."""
        return self.detect_timed(
            frame_bgr,
            confidence=confidence,
            iou=iou,
            class_filter=class_filter,
            max_detections=max_detections,
            agnostic=agnostic,
            max_candidates=max_candidates,
        )[0]

    def detect_timed(self, frame_bgr: np.ndarray, **options) -> tuple[sv.Detections, StageTimes]:
        times = StageTimes()
        start = time.perf_counter()
        tensor, geometry = self.prepare(frame_bgr)
        prepared = time.perf_counter()
        outputs = self.infer(tensor)
        inferred = time.perf_counter()
        detections = self.postprocess(outputs, geometry, times=times, **options)
        done = time.perf_counter()
        times.preprocess, times.inference, times.decode = (
            prepared - start,
            inferred - prepared,
            done - inferred,
        )
        return detections, times

    def detect_batch(self, frames: Sequence[np.ndarray], **options) -> list[sv.Detections]:
        """Detect on every frame; in parallel when the session can run several at once."""
        workers = min(int(getattr(self.session, "concurrency", 1) or 1), len(frames))
        if workers <= 1:
            return [self.detect(frame, **options) for frame in frames]
        # concurrency is optional on ModelSession; workers > 1 means this session declares it
        pool = self._executor(int(cast(Any, self.session).concurrency))
        return list(pool.map(lambda frame: self.detect(frame, **options), frames))

    def classify(self, frame_bgr: np.ndarray) -> ClassificationResult:
        """Class probabilities of a classification package (task classification)."""
        tensor, _ = self.prepare(frame_bgr)
        return classify_outputs(self.package, self.head, self.input_spec, self.infer(tensor))

    def classify_batch(self, frames: Sequence[np.ndarray]) -> list[ClassificationResult]:
        workers = min(int(getattr(self.session, "concurrency", 1) or 1), len(frames))
        if workers <= 1:
            return [self.classify(frame) for frame in frames]
        return list(self._executor(workers).map(self.classify, frames))

    @property
    def task(self) -> str:
        return self.package.manifest.task

    def class_ids_for(self, class_filter: Sequence[str | int] | None) -> np.ndarray | None:
        """Class ids for names (or ids); an unknown name is an error that lists the known ones."""
        if class_filter is None:
            return None
        ids = []
        for item in class_filter:
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not 0 <= int(item) < len(self.package.classes):
                    raise ValueError(
                        f"class_filter: class id {item} is out of range for model {self.package.name!r} "
                        f"({len(self.package.classes)} classes)"
                    )
                ids.append(int(item))
            elif item in self._class_index:
                ids.append(self._class_index[item])
            else:
                raise ValueError(
                    f"class_filter: {item!r} is not a class of model {self.package.name!r}; "
                    f"its classes are: {', '.join(self.package.classes)}"
                )
        return np.unique(np.asarray(ids, dtype=np.int64))

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.session.close()

    # ------------------------------------------------------------------ helpers

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=workers, thread_name_prefix=f"coral-{self.package.name}"
                )
            return self._pool

    def _detections(
        self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
    ) -> sv.Detections:
        return sv.Detections(
            xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
            confidence=np.asarray(scores, dtype=np.float32),
            class_id=np.asarray(class_ids, dtype=np.int64),
            data={
                "class_name": self._class_names[class_ids]
                if len(class_ids)
                else np.zeros(0, dtype=self._class_names.dtype)
            },
        )
