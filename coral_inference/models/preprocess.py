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
        offset = np.array(
            [self.pad_left, self.pad_top, self.pad_left, self.pad_top], dtype=np.float32
        )
        gain = np.array([self.src_w / self.new_w, self.src_h / self.new_h] * 2, dtype=np.float32)
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


def center_crop_geometry(src_hw: tuple[int, int], dst_wh: tuple[int, int]) -> ResizeGeometry:
    """Scale so the frame covers ``dst_wh`` (the short side fits exactly), then take the centre.

    The crop shows as negative padding. Sizes round like torchvision's ``Resize(int)`` +
    ``CenterCrop`` (Ultralytics classification): the long side truncates, the offset rounds.
    """
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    dst_w, dst_h = dst_wh
    if dst_w / src_w >= dst_h / src_h:
        new_w, new_h = dst_w, max(dst_h, int(dst_w * src_h / src_w))
    else:
        new_w, new_h = max(dst_w, int(dst_h * src_w / src_h)), dst_h
    return ResizeGeometry(
        src_w,
        src_h,
        new_w,
        new_h,
        -int(round((new_w - dst_w) / 2)),
        -int(round((new_h - dst_h) / 2)),
    )


def resize_geometry(src_hw: tuple[int, int], spec: InputSpec) -> ResizeGeometry:
    if spec.resize == "center-crop":
        return center_crop_geometry(src_hw, (spec.width, spec.height))
    fit = letterbox_geometry if spec.resize == "letterbox" else stretch_geometry
    return fit(src_hw, (spec.width, spec.height))


def fit_image(
    image: np.ndarray,
    geometry: ResizeGeometry,
    dst_wh: tuple[int, int],
    pad_value: int,
    *,
    pil_resize: bool = False,
) -> np.ndarray:
    """Resize ``image`` (HWC uint8) as ``geometry`` says, padding the rest with ``pad_value`` (or cropping).

    ``pil_resize`` resamples like PIL (what torchvision's transforms run; center-crop inputs)."""
    dst_w, dst_h = dst_wh
    if (geometry.new_w, geometry.new_h) != (image.shape[1], image.shape[0]):
        if pil_resize:
            image = pil_bilinear_resize(image, (geometry.new_w, geometry.new_h))
        else:
            image = cv2.resize(
                image, (geometry.new_w, geometry.new_h), interpolation=cv2.INTER_LINEAR
            )
    if (geometry.new_w, geometry.new_h) == (dst_w, dst_h):
        return image
    if geometry.pad_left <= 0 and geometry.pad_top <= 0:  # center-crop
        top, left = -geometry.pad_top, -geometry.pad_left
        return image[top : top + dst_h, left : left + dst_w]
    canvas = np.full((dst_h, dst_w, image.shape[2]), pad_value, dtype=np.uint8)
    canvas[
        geometry.pad_top : geometry.pad_top + geometry.new_h,
        geometry.pad_left : geometry.pad_left + geometry.new_w,
    ] = image
    return canvas


_PIL_PRECISION_BITS = 22  # PIL's fixed-point resample coefficients (32 - 8 - 2 bits)


def _pil_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and fixed-point weights ``(out, T)`` of PIL's BILINEAR resample: a triangle filter
    widened by the downscale factor (antialiased), the resize torchvision's ``Resize`` runs on PIL images."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    centre = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    taps = int((last - first).max())
    index = first[:, None] + np.arange(taps)[None, :]
    weights = np.clip(1.0 - np.abs((index - centre[:, None] + 0.5) / support), 0.0, None)
    weights[index >= last[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    fixed = np.floor(weights * (1 << _PIL_PRECISION_BITS) + 0.5).astype(np.int64)
    return np.minimum(index, in_size - 1), fixed


def pil_bilinear_resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """PIL's bilinear resize of an HWC uint8 image, bit for bit: horizontal pass, 8-bit rounding, vertical pass."""
    out_w, out_h = size_wh
    result = image
    half = 1 << (_PIL_PRECISION_BITS - 1)
    if out_w != image.shape[1]:
        index, weights = _pil_taps(out_w, image.shape[1])
        columns = np.einsum("hwtc,wt->hwc", result[:, index].astype(np.int64), weights)
        result = np.clip((columns + half) >> _PIL_PRECISION_BITS, 0, 255).astype(np.uint8)
    if out_h != image.shape[0]:
        index, weights = _pil_taps(out_h, image.shape[0])
        rows = np.einsum("htwc,ht->hwc", result[index].astype(np.int64), weights)
        result = np.clip((rows + half) >> _PIL_PRECISION_BITS, 0, 255).astype(np.uint8)
    return result


def letterbox(
    image: np.ndarray, dst_wh: tuple[int, int], pad_value: int = 114
) -> tuple[np.ndarray, ResizeGeometry]:
    """Aspect-preserving resize into ``dst_wh`` with centred padding."""
    geometry = letterbox_geometry(image.shape[:2], dst_wh)
    return fit_image(image, geometry, dst_wh, pad_value), geometry


def stretch(image: np.ndarray, dst_wh: tuple[int, int]) -> tuple[np.ndarray, ResizeGeometry]:
    geometry = stretch_geometry(image.shape[:2], dst_wh)
    return fit_image(image, geometry, dst_wh, 0), geometry


def to_tensor(fitted_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An ``H x W x 3`` BGR uint8 image (already at input size) -> the model's batch-of-one tensor.

    Channel order and layout are views of the uint8 image; the one float pass reads
    them and writes the contiguous tensor (no float intermediate is transposed).
    """
    image = fitted_bgr[..., ::-1] if spec.color == "RGB" else fitted_bgr  # a view, no copy
    if spec.layout == "NCHW":
        image = image.transpose(2, 0, 1)
    if spec.dtype == "uint8":
        return np.ascontiguousarray(image)[None]
    # (x * scale - mean) / std == x * (scale / std) - mean / std: one multiply (and one subtract).
    std = np.asarray(spec.std, dtype=np.float32)
    channel_shape = (3, 1, 1) if spec.layout == "NCHW" else (1, 1, 3)
    gain = (np.float32(spec.scale) / std).reshape(channel_shape)
    tensor = np.empty((1, *image.shape), dtype=np.float32)
    if np.all(gain == gain.flat[0]):
        np.multiply(image, gain.flat[0], out=tensor[0], dtype=np.float32)
    else:
        np.multiply(image, gain, out=tensor[0], dtype=np.float32)
    if any(spec.mean):
        tensor[0] -= (np.asarray(spec.mean, dtype=np.float32) / std).reshape(channel_shape)
    return tensor.astype(np.float16) if spec.dtype == "float16" else tensor


def preprocess_image(frame_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ResizeGeometry]:
    """Frame (HWC BGR uint8, or HW grey) -> (input tensor, geometry to map boxes back)."""
    frame = _as_bgr(frame_bgr)
    geometry = resize_geometry(frame.shape[:2], spec)
    fitted = fit_image(
        frame,
        geometry,
        (spec.width, spec.height),
        spec.pad_value,
        pil_resize=spec.resize == "center-crop",
    )
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
        raise ValueError(
            f"expected a uint8 image, got dtype {frame.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty image of shape {frame.shape}")
    return frame
