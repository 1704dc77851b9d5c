"""Instance masks from prototype logits, computed only inside each kept box.

A mask's logits live on a coarse grid (YOLO prototypes: input / 4; RF-DETR: its
mask resolution) that covers the network input. The source-resolution mask is the
bilinear resampling of that grid through the letterbox (or stretch) geometry,
thresholded at 0 and cropped to the box — the semantics of Ultralytics'
``retina_masks`` path (``process_mask_native``: upsample, crop the padding, resize
to the frame, threshold, crop to the box).

Only pixels inside the boxes matter, so the work is done on them alone, for all
instances at once: one flat, ragged enumeration of (instance, row) pairs for the
vertical pass and of (instance, row, column) triples for the horizontal pass. No
Python loop runs over instances, and the cost follows the boxes' area, not
``instances x frame``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from coral_inference.models.preprocess import ResizeGeometry


def _bilinear(out_size: int, in_size: int) -> np.ndarray:
    """Dense ``(out, in)`` operator of a half-pixel bilinear resize (``align_corners=False``)."""
    position = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    weight = position - low
    operator = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(operator, (rows, low), 1 - weight)
    np.add.at(operator, (rows, high), weight)
    return operator


def _upsample_factor(
    grid_wh: tuple[int, int], input_wh: tuple[int, int], geometry: ResizeGeometry
) -> int:
    """Smallest grid upsampling (1, 2, 4, ...) that puts the content edges on whole grid cells."""
    edges = [
        (geometry.pad_left, grid_wh[0], input_wh[0]),
        (geometry.pad_left + geometry.new_w, grid_wh[0], input_wh[0]),
        (geometry.pad_top, grid_wh[1], input_wh[1]),
        (geometry.pad_top + geometry.new_h, grid_wh[1], input_wh[1]),
    ]
    factor = 1
    while factor < 64 and any((edge * grid * factor) % size for edge, grid, size in edges):
        factor *= 2
    return factor


@lru_cache(maxsize=64)  # per camera geometry: computed once, read-only afterwards
def _axis_taps(
    src_size: int, grid: int, input_size: int, pad: int, new: int, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per source pixel along one axis: grid indices and weights (``(src, T)`` each).

    The mapping is Ultralytics' ``process_mask_native``: upsample the grid by ``factor``
    (bilinear), cut the letterbox content out, resize that to the frame (bilinear).
    """
    up = grid * factor
    first = pad * up // input_size
    last = max(first + 1, (pad + new) * up // input_size)
    operator = _bilinear(src_size, last - first) @ (
        _bilinear(up, grid)[first:last] if factor > 1 else np.eye(grid)[first:last]
    )
    nonzero = operator != 0
    start = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
    taps = max(1, int((nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1) - start).max()))
    index = np.minimum(start[:, None] + np.arange(taps)[None, :], grid - 1)
    weights = np.take_along_axis(operator, index, axis=1)
    weights[start[:, None] + np.arange(taps)[None, :] > grid - 1] = 0.0
    weights = weights.astype(np.float32)
    index.flags.writeable = False  # cached: shared by every call with this geometry
    weights.flags.writeable = False
    return index, weights


def masks_in_boxes(
    logits: np.ndarray,
    boxes: np.ndarray,
    geometry: ResizeGeometry,
    input_wh: tuple[int, int],
    *,
    crop: bool = True,
) -> np.ndarray:
    """Boolean masks ``(n, src_h, src_w)`` from grid logits ``(n, gh, gw)`` covering the input.

    ``boxes`` are ``(n, 4)`` xyxy in source pixels; a pixel (column u, row v) belongs to
    box i when ``x1 <= u < x2`` and ``y1 <= v < y2`` (Ultralytics' ``crop_mask``). With
    ``crop=False`` the whole frame is computed for every instance (RF-DETR masks).
    """
    return masks_and_areas(logits, boxes, geometry, input_wh, crop=crop)[0]


def nonempty_masks(
    logits: np.ndarray, boxes: np.ndarray, geometry: ResizeGeometry, input_wh: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(masks of the instances whose cropped mask has pixels, their indices) — Ultralytics drops
    the others. The stack is allocated for the kept instances only: no copy of a full stack."""
    masks, _, kept = masks_and_areas(logits, boxes, geometry, input_wh, drop_empty=True)
    return masks, kept


# Pixels handled per pass of the horizontal interpolation: bounds the temporaries (~40 B/pixel).
_PIXELS_PER_CHUNK = 1 << 21


def masks_and_areas(
    logits: np.ndarray,
    boxes: np.ndarray,
    geometry: ResizeGeometry,
    input_wh: tuple[int, int],
    *,
    crop: bool = True,
    drop_empty: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masks, each instance's pixel count, indices of the instances in ``masks``).

    With ``drop_empty`` the stack holds only instances with pixels; the on-pixels are
    gathered first and scattered once into a stack of the kept instances.
    """
    n, grid_h, grid_w = logits.shape
    src_h, src_w = geometry.src_h, geometry.src_w
    areas = np.zeros(n, dtype=np.int64)
    if n == 0:
        return np.zeros((0, src_h, src_w), dtype=bool), areas, np.zeros(0, dtype=np.int64)
    input_w, input_h = input_wh
    factor = _upsample_factor((grid_w, grid_h), input_wh, geometry)
    y_index, y_weight = _axis_taps(src_h, grid_h, input_h, geometry.pad_top, geometry.new_h, factor)
    x_index, x_weight = _axis_taps(
        src_w, grid_w, input_w, geometry.pad_left, geometry.new_w, factor
    )
    x_index = x_index.astype(np.int32)

    if crop:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        x_start = np.clip(np.ceil(b[:, 0]), 0, src_w).astype(np.int64)
        x_stop = np.clip(np.ceil(b[:, 2]), 0, src_w).astype(np.int64)
        y_start = np.clip(np.ceil(b[:, 1]), 0, src_h).astype(np.int64)
        y_stop = np.clip(np.ceil(b[:, 3]), 0, src_h).astype(np.int64)
    else:
        x_start = np.zeros(n, np.int64)
        y_start = np.zeros(n, np.int64)
        x_stop = np.full(n, src_w, np.int64)
        y_stop = np.full(n, src_h, np.int64)
    widths = np.maximum(x_stop - x_start, 0)
    heights = np.where(widths > 0, np.maximum(y_stop - y_start, 0), 0)

    # Vertical pass: one interpolated grid row per (instance, source row) inside its box.
    row_instance = np.repeat(np.arange(n), heights)
    row_first = np.repeat(np.cumsum(heights) - heights, heights)
    rows = y_start[row_instance] + (np.arange(row_instance.size) - row_first)
    flat = logits.reshape(n * grid_h, grid_w).astype(np.float32, copy=False)
    row_base = row_instance * grid_h
    row_values = flat[row_base + y_index[rows, 0]] * y_weight[rows, :1]  # (R, gw)
    for tap in range(1, y_index.shape[1]):  # 2-4 taps, not instances
        row_values += flat[row_base + y_index[rows, tap]] * y_weight[rows, tap : tap + 1]
    row_flat = row_values.reshape(-1)
    row_width = widths[row_instance]
    row_start = x_start[row_instance]
    # Where each row's pixels land in its instance's plane: flat index of its first column.
    row_target = rows * src_w + row_start
    found_pixels: list[np.ndarray] = []
    found_instances: list[np.ndarray] = []

    # Horizontal pass: every pixel of every box, in chunks of whole rows (bounded memory).
    ends = np.cumsum(row_width)
    first_row = 0
    while first_row < row_width.size:
        last_row = int(
            np.searchsorted(ends, ends[first_row] - row_width[first_row] + _PIXELS_PER_CHUNK)
        )
        last_row = max(last_row, first_row + 1)
        chunk = slice(first_row, last_row)
        width = row_width[chunk]
        total = int(width.sum())
        if total:
            local_row = np.repeat(np.arange(last_row - first_row, dtype=np.int32), width)
            offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(width) - width, width)
            columns = row_start[chunk][local_row] + offset
            base = (local_row + first_row).astype(np.int64) * grid_w
            values = row_flat[base + x_index[columns, 0]] * x_weight[columns, 0]
            for tap in range(1, x_index.shape[1]):
                values += row_flat[base + x_index[columns, tap]] * x_weight[columns, tap]
            on = values > 0
            on_rows = local_row[on]
            found_pixels.append(row_target[chunk][on_rows] + offset[on])
            found_instances.append(row_instance[chunk][on_rows])
            areas += np.bincount(found_instances[-1], minlength=n)
        first_row = last_row
    kept = np.flatnonzero(areas > 0) if drop_empty else np.arange(n)
    slot = np.full(n, -1, dtype=np.int64)
    slot[kept] = np.arange(kept.size)
    masks = np.zeros((kept.size, src_h, src_w), dtype=bool)
    plane = src_h * src_w
    mask_flat = masks.reshape(-1)
    for pixels, instances in zip(found_pixels, found_instances):  # chunks, not instances
        mask_flat[slot[instances] * plane + pixels] = True
    return masks, areas, kept


def prototype_logits(prototypes: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``(n, nm) @ (nm, h, w)`` -> ``(n, h, w)`` mask logits."""
    nm, grid_h, grid_w = prototypes.shape
    return (
        coefficients.astype(np.float32) @ prototypes.reshape(nm, -1).astype(np.float32)
    ).reshape(-1, grid_h, grid_w)
