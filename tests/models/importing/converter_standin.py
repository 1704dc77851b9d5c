"""A converter stand-in for the accuracy gate: "builds" an .rknn and answers for the simulator by
running the ONNX model itself on the NHWC uint8 inputs the NPU would get (normalisation applied
as rknn.config bakes it in), optionally degrading the outputs on purpose.

Selected with ``CORAL_RKNN_CONVERTER=tests.models.importing.converter_standin:faithful`` (or
``:degraded``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime

from coral_inference.models.convert import BuildResult

Damage = Callable[[list[np.ndarray], np.random.Generator], list[np.ndarray]]


class StandInConverter:
    def __init__(self, degrade: float = 0.0, seed: int = 0, damage: Damage | None = None):
        self.degrade = degrade
        self.seed = seed
        self.damage = damage
        self.name = f"stand-in (degrade {degrade})" if damage is None else "stand-in (damaged)"
        self.plans = []

    def build(self, plan, eval_inputs, *, verbose: bool = False) -> BuildResult:
        self.plans.append(plan)
        plan.output.parent.mkdir(parents=True, exist_ok=True)
        plan.output.write_bytes(b"RKNN stand-in for " + plan.onnx.name.encode())
        session = onnxruntime.InferenceSession(str(plan.onnx), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        mean = np.asarray(plan.mean_values[0], np.float32)
        std = np.asarray(plan.std_values[0], np.float32)
        rng = np.random.default_rng(self.seed)
        outputs = []
        for tensor in eval_inputs:  # [1, H, W, 3] uint8 RGB, as the NPU is fed
            x = ((tensor.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)
            raw = session.run(None, {name: x})
            if self.damage is not None:
                raw = self.damage([np.asarray(r) for r in raw], rng)
            elif self.degrade:
                raw = [self._damage(r, rng) for r in raw]
            outputs.append(raw)
        return BuildResult(plan.output, outputs)

    def _damage(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A bad int8 scale on a [1, 4+nc, N] output: boxes jitter, class scores collapse."""
        out = raw.copy()
        if out.ndim == 3 and out.shape[1] < out.shape[2]:
            out[0, :4] += rng.normal(0, 40 * self.degrade, out[0, :4].shape).astype(out.dtype)
            scores = out[0, 4:]
            out[0, 4:] = np.roll(scores, 1, axis=0) * (1 - 0.5 * self.degrade)
        return out


def faithful() -> StandInConverter:
    return StandInConverter(0.0)


def degraded() -> StandInConverter:
    return StandInConverter(1.0)


# Task-specific damage: each hurts what one task metric measures and leaves the rest alone, so a
# refusal proves that metric is gated (the boxes of a segmentation or pose model stay right).


def blur_prototypes(outputs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Segmentation: the mask prototypes (the last output) shifted by a quarter of the grid."""
    *rest, prototypes = outputs
    shift = prototypes.shape[-1] // 4
    return [*rest, np.roll(prototypes, (shift, shift), axis=(-2, -1))]


def move_keypoints(outputs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Keypoints (split layout ``[1, K, dims, N]``, the last output): x and y moved 12 px."""
    *rest, points = outputs
    moved = points.copy()
    moved[:, :, :2] += rng.choice([-12.0, 12.0], moved[:, :, :2].shape).astype(moved.dtype)
    return [*rest, moved]


def swap_classes(outputs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Classification ``[1, nc]``: scores rolled by one class, so the top-1 changes."""
    return [np.roll(outputs[0], 1, axis=-1), *outputs[1:]]
