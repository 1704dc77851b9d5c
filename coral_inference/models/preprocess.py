"""Frame -> input tensor (letterbox or stretch, colour order, normalisation, layout, dtype) and back.

All work is whole-array numpy/OpenCV. ``ResizeGeometry`` remembers how a frame
was fitted into the network input so boxes found in input pixels map back to
the original frame exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from coral_inference.models.package import InputSpec


@dataclass(frozen=True)
class ResizeGeometry:
    """How a ``src_w`` x ``src_h`` frame sits inside the network input."""

    src_w: int
    src_h: int
    new_w: int  # size of the resized frame inside the input
    new_h: int
    pad_left: int
    pad_top: int

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Map ``[N, 4]`` boxes from input pixels back to frame pixels, clipped to the frame.

        >>> g = letterbox_geometry((720, 1280), (640, 640))
        >>> g.to_source(np.array([[0, 140, 640, 500]], dtype=np.float32)).round().tolist()
        [[0.0, 0.0, 1280.0, 720.0]]
        """
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], dtype=np.float32)
        gain = np.array(
            [self.src_w / self.new_w, self.src_h / self.new_h] * 2, dtype=np.float32
        )
        out = (boxes - offset) * gain
        np.clip(out[:, 0::2], 0, self.src_w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.src_h, out=out[:, 1::2])
        return out


def letterbox_geometry(src_hw: tuple[int, int], dst_wh: tuple[int, int]) -> ResizeGeometry:
    """Largest aspect-preserving fit of ``src_hw`` inside ``dst_wh``, centred."""
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    dst_w, dst_h = dst_wh
    ratio = min(dst_w / src_w, dst_h / src_h)
    new_w = min(dst_w, max(1, round(src_w * ratio)))
    new_h = min(dst_h, max(1, round(src_h * ratio)))
    return ResizeGeometry(src_w, src_h, new_w, new_h, (dst_w - new_w) // 2, (dst_h - new_h) // 2)


def stretch_geometry(src_hw: tuple[int, int], dst_wh: tuple[int, int]) -> ResizeGeometry:
    return ResizeGeometry(int(src_hw[1]), int(src_hw[0]), dst_wh[0], dst_wh[1], 0, 0)


def resize_geometry(src_hw: tuple[int, int], spec: InputSpec) -> ResizeGeometry:
    fit = letterbox_geometry if spec.resize == "letterbox" else stretch_geometry
    return fit(src_hw, (spec.width, spec.height))


def fit_image(image: np.ndarray, geometry: ResizeGeometry, dst_wh: tuple[int, int], pad_value: int) -> np.ndarray:
    """Resize ``image`` (HWC uint8) as ``geometry`` says, padding the rest with ``pad_value``."""
    dst_w, dst_h = dst_wh
    if (geometry.new_w, geometry.new_h) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (geometry.new_w, geometry.new_h), interpolation=cv2.INTER_LINEAR)
    if (geometry.new_w, geometry.new_h) == (dst_w, dst_h):
        return image
    canvas = np.full((dst_h, dst_w, image.shape[2]), pad_value, dtype=np.uint8)
    canvas[geometry.pad_top:geometry.pad_top + geometry.new_h, geometry.pad_left:geometry.pad_left + geometry.new_w] = image
    return canvas


def letterbox(image: np.ndarray, dst_wh: tuple[int, int], pad_value: int = 114) -> tuple[np.ndarray, ResizeGeometry]:
    """Aspect-preserving resize into ``dst_wh`` with centred padding."""
    geometry = letterbox_geometry(image.shape[:2], dst_wh)
    return fit_image(image, geometry, dst_wh, pad_value), geometry


def stretch(image: np.ndarray, dst_wh: tuple[int, int]) -> tuple[np.ndarray, ResizeGeometry]:
    geometry = stretch_geometry(image.shape[:2], dst_wh)
    return fit_image(image, geometry, dst_wh, 0), geometry


def to_tensor(fitted_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An ``H x W x 3`` BGR uint8 image (already at input size) -> the model's batch-of-one tensor."""
    image = cv2.cvtColor(fitted_bgr, cv2.COLOR_BGR2RGB) if spec.color == "RGB" else fitted_bgr
    if spec.dtype == "uint8":
        tensor = np.ascontiguousarray(image)
    else:
        # (x * scale - mean) / std == x * (scale / std) - mean / std: one multiply, one subtract.
        std = np.asarray(spec.std, dtype=np.float32)
        gain = np.float32(spec.scale) / std
        tensor = image.astype(np.float32)
        tensor *= gain
        if any(spec.mean):
            tensor -= np.asarray(spec.mean, dtype=np.float32) / std
        if spec.dtype == "float16":
            tensor = tensor.astype(np.float16)
    if spec.layout == "NCHW":
        tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1))
    return tensor[None]


def preprocess_image(frame_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ResizeGeometry]:
    """Frame (HWC BGR uint8, or HW grey) -> (input tensor, geometry to map boxes back)."""
    frame = _as_bgr(frame_bgr)
    geometry = resize_geometry(frame.shape[:2], spec)
    fitted = fit_image(frame, geometry, (spec.width, spec.height), spec.pad_value)
    return to_tensor(fitted, spec), geometry


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"expected a numpy image (H x W x 3 BGR uint8), got {type(frame).__name__}")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 BGR image, got an array of shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {frame.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty image of shape {frame.shape}")
    return frame
