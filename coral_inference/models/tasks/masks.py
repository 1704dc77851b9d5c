"""Instance masks from prototype logits, computed only inside each kept box.

A mask's logits live on a coarse grid (YOLO prototypes: input / 4; RF-DETR: its
mask resolution) that covers the network input. The source-resolution mask is the
bilinear resampling of that grid through the letterbox (or stretch) geometry,
thresholded at 0 and cropped to the box — the semantics of Ultralytics'
``retina_masks`` path (``process_mask_native``: upsample, crop the padding, resize
to the frame, threshold, crop to the box).

Only pixels inside the boxes matter. The resampling is separable, so one box's mask
is ``Y @ L @ X.T``: the rows of the (frame x grid) vertical operator for the box's
rows, the grid window its taps reach, the horizontal operator's rows for the box's
columns (prototype logits are formed for that window alone). Boxes are grouped by
size class (sides rounded up to a few fixed sizes) and each group runs as one
batched matrix product written into the frame-sized stack through a sliding-window
view: no Python loop over instances (the loop is over size classes and bounded
memory chunks), and the cost follows the boxes' area, not ``instances x frame``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from coral_inference.models.preprocess import ResizeGeometry

# (instances, first grid row, first grid column, window rows, window columns) -> logits
# ``(k, rows, columns)`` of those instances over that grid window.
WindowLogits = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]


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
def _axis_operator(
    src_size: int, grid: int, input_size: int, pad: int, new: int, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dense ``(src, grid)`` operator, its zero-padded transpose, first grid index, one past
    the last).

    The mapping is Ultralytics' ``process_mask_native``: upsample the grid by ``factor``
    (bilinear), cut the letterbox content out, resize that to the frame (bilinear). The
    reach is widened to a suffix minimum / prefix maximum, so the grid span of the source
    range ``[a, b)`` is ``[first[a], stop[b - 1])``.
    """
    up = grid * factor
    first = pad * up // input_size
    last = max(first + 1, (pad + new) * up // input_size)
    operator = _bilinear(src_size, last - first) @ (
        _bilinear(up, grid)[first:last] if factor > 1 else np.eye(grid)[first:last]
    )
    nonzero = operator != 0
    reached = nonzero.any(axis=1)
    low = np.where(reached, nonzero.argmax(axis=1), 0)
    high = np.where(reached, grid - nonzero[:, ::-1].argmax(axis=1), 1)
    low = np.minimum.accumulate(low[::-1])[::-1].copy()
    high = np.maximum.accumulate(high)
    dense = operator.astype(np.float32)
    # transposed, with _BAND zero columns past the frame: a band may start at the last pixel
    dense_t = np.zeros((grid, src_size + _BAND), np.float32)
    dense_t[:, :src_size] = dense.T
    for array in (dense, dense_t, low, high):
        array.flags.writeable = False  # cached: shared by every call with this geometry
    return dense, dense_t, low, high


# Box sides are rounded up to these sizes (ratio ~1.41): each size pair is one batched product.
_SIZES = np.unique(np.ceil(8 * 2 ** (np.arange(0, 24) / 2)).astype(np.int64))
# Window pixels per batched product: bounds the temporaries (~12 B per pixel).
_PIXELS_PER_CHUNK = 1 << 22


def _size_class(sides: np.ndarray, limit: int) -> np.ndarray:
    return np.minimum(_SIZES[np.minimum(np.searchsorted(_SIZES, sides), _SIZES.size - 1)], limit)


def _box_ranges(
    boxes: np.ndarray, n: int, src_w: int, src_h: int, crop: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel ranges ``[x_start, x_stop) x [y_start, y_stop)`` of each box (Ultralytics' crop)."""
    if not crop:
        zeros = np.zeros(n, np.int64)
        return zeros, np.full(n, src_w, np.int64), zeros, np.full(n, src_h, np.int64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x_start = np.clip(np.ceil(b[:, 0]), 0, src_w).astype(np.int64)
    x_stop = np.clip(np.ceil(b[:, 2]), 0, src_w).astype(np.int64)
    y_start = np.clip(np.ceil(b[:, 1]), 0, src_h).astype(np.int64)
    y_stop = np.clip(np.ceil(b[:, 3]), 0, src_h).astype(np.int64)
    return x_start, x_stop, y_start, y_stop


def _plane_windows(
    stack: np.ndarray, rows: int, columns: int, *, writeable: bool = False
) -> np.ndarray:
    """``(n, H - rows + 1, W - columns + 1, rows, columns)`` view of every window of a stack."""
    view = np.lib.stride_tricks.sliding_window_view(stack, (1, rows, columns), writeable=writeable)
    return view[..., 0, :, :]


def _row_operator(
    dense: np.ndarray,
    pixel_start: np.ndarray,
    size: int,
    box_start: np.ndarray,
    box_stop: np.ndarray,
    grid_start: np.ndarray,
    grid_size: int,
) -> np.ndarray:
    """``(k, size, grid_size)`` windows of a ``(src, grid)`` operator, zero outside the box
    (copied as whole blocks of a strided view)."""
    pixels = pixel_start[:, None] + np.arange(size)[None, :]
    inside = (pixels >= box_start[:, None]) & (pixels < box_stop[:, None])
    blocks = np.lib.stride_tricks.sliding_window_view(dense, (size, grid_size))
    return blocks[pixel_start, grid_start] * inside[:, :, None].astype(np.float32)


# Output pixels per band of the last product: each band needs only the few grid cells its
# pixels reach (2-4 taps each), not the whole window, so the product is ~band-width
# multiply-adds per pixel instead of window-width / stride.
_BAND = 32


def _band_operator(
    dense_t: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    pixel_start: np.ndarray,
    size: int,
    box_start: np.ndarray,
    box_stop: np.ndarray,
    grid_start: np.ndarray,
    grid_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(``(k, bands, cells, _BAND)`` operator bands, ``(k, bands)`` first cell in the window).

    Band ``j`` of instance ``i`` covers window pixels ``[j*_BAND, (j+1)*_BAND)``; its cells
    are the ones its in-box pixels reach (zero weights elsewhere).
    """
    src = dense_t.shape[1] - _BAND
    bands = -(-size // _BAND)
    first = pixel_start[:, None] + _BAND * np.arange(bands)[None, :]  # (k, bands)
    inside_first = np.maximum(first, box_start[:, None])
    inside_last = np.minimum(first + _BAND, np.minimum(box_stop, pixel_start + size)[:, None]) - 1
    reached = inside_last >= inside_first
    cell_low = low[np.minimum(inside_first, src - 1)]
    cell_high = high[np.clip(inside_last, 0, src - 1)]
    cells = max(1, int(np.where(reached, cell_high - cell_low, 0).max()))
    offset = np.clip(cell_low - grid_start[:, None], 0, grid_size - cells)  # (k, bands)
    blocks = np.lib.stride_tricks.sliding_window_view(dense_t, (cells, _BAND))
    weights = blocks[grid_start[:, None] + offset, first]  # (k, bands, cells, _BAND)
    pixels = first[:, :, None] + np.arange(_BAND)
    inside = (
        (pixels >= box_start[:, None, None])
        & (pixels < box_stop[:, None, None])
        & (pixels < (pixel_start + size)[:, None, None])
    )
    weights *= inside[:, :, None, :]
    return weights, offset


# OpenBLAS spreads a product over threads above ~2^18 multiply-adds; these products are small
# and, next to a model using every core, the threads' hand-off costs more than it saves
# (measured: 100x slower under load). Products are split into row blocks below this size.
_MACS_PER_PRODUCT = 1 << 17


def _blocked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (batched, broadcast), with ``a``'s rows split so each product stays small."""
    rows, inner = a.shape[-2:]
    block = max(1, min(rows, _MACS_PER_PRODUCT // max(inner * b.shape[-1], 1)))
    blocks = -(-rows // block)
    if blocks == 1:
        return a @ b
    if blocks * block != rows:
        pad = np.zeros((*a.shape[:-2], blocks * block - rows, inner), a.dtype)
        a = np.concatenate([a, pad], axis=-2)
    product = a.reshape(*a.shape[:-2], blocks, block, inner) @ b[..., None, :, :]
    return product.reshape(*product.shape[:-3], blocks * block, -1)[..., :rows, :]


def _banded_product(
    rows: np.ndarray, middle: np.ndarray, bands: np.ndarray, offset: np.ndarray, size: int
) -> np.ndarray:
    """``(k, R, a) @ (k, a, b)``, then each band of the ``(k, R, b)`` result's columns
    ``offset[:, j]``.. times ``bands[:, j]`` -> ``(k, R, size)``."""
    k = rows.shape[0]
    partial = _blocked_matmul(rows, middle)  # (k, R, b)
    cells = bands.shape[2]
    windows = np.lib.stride_tricks.sliding_window_view(partial, cells, axis=2)
    gathered = windows[np.arange(k)[:, None], :, offset]  # (k, bands, R, cells)
    product = _blocked_matmul(gathered, bands)  # (k, bands, R, _BAND)
    count = product.shape[2]
    return product.transpose(0, 2, 1, 3).reshape(k, count, -1)[:, :, :size]


def _instance_masks(
    window_logits: WindowLogits,
    n: int,
    grid_hw: tuple[int, int],
    boxes: np.ndarray,
    geometry: ResizeGeometry,
    input_wh: tuple[int, int],
    *,
    crop: bool,
    drop_empty: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masks, each instance's pixel count, indices of the instances in ``masks``)."""
    grid_h, grid_w = grid_hw
    src_h, src_w = geometry.src_h, geometry.src_w
    areas = np.zeros(n, dtype=np.int64)
    if n == 0:
        return np.zeros((0, src_h, src_w), dtype=bool), areas, np.zeros(0, dtype=np.int64)
    input_w, input_h = input_wh
    factor = _upsample_factor((grid_w, grid_h), input_wh, geometry)
    y_dense, y_dense_t, y_low, y_high = _axis_operator(
        src_h, grid_h, input_h, geometry.pad_top, geometry.new_h, factor
    )
    x_dense, x_dense_t, x_low, x_high = _axis_operator(
        src_w, grid_w, input_w, geometry.pad_left, geometry.new_w, factor
    )
    x_start, x_stop, y_start, y_stop = _box_ranges(boxes, n, src_w, src_h, crop)
    active = np.flatnonzero((x_stop > x_start) & (y_stop > y_start))
    # Each instance's pixel window (its box, sides rounded up to a size class, moved inside
    # the frame) and the grid cells the box's own pixels reach.
    height_class = _size_class(y_stop - y_start, src_h)
    width_class = _size_class(x_stop - x_start, src_w)
    y_origin = np.minimum(y_start, src_h - height_class)
    x_origin = np.minimum(x_start, src_w - width_class)
    last_row = np.maximum(y_stop - 1, 0)
    last_column = np.maximum(x_stop - 1, 0)
    grid_rows = y_high[last_row] - y_low[y_start.clip(max=src_h - 1)]
    grid_columns = x_high[last_column] - x_low[x_start.clip(max=src_w - 1)]

    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (instances, window masks)
    size_pairs = height_class[active] * (src_w + 1) + width_class[active]
    for pair in np.unique(size_pairs):  # size classes (a handful), not instances
        members = active[size_pairs == pair]
        height, width = int(height_class[members[0]]), int(width_class[members[0]])
        rows_in_grid = int(grid_rows[members].max())
        columns_in_grid = int(grid_columns[members].max())
        per_chunk = max(1, _PIXELS_PER_CHUNK // (height * width))
        for start in range(0, members.size, per_chunk):  # bounded memory, not instances
            chunk = members[start : start + per_chunk]
            grid_top = np.minimum(y_low[y_start[chunk]], grid_h - rows_in_grid)
            grid_left = np.minimum(x_low[x_start[chunk]], grid_w - columns_in_grid)
            logits = window_logits(chunk, grid_top, grid_left, rows_in_grid, columns_in_grid)
            # Y @ L @ X.T with X in bands; the short side is the banded one
            if width <= height:
                vertical = _row_operator(
                    y_dense,
                    y_origin[chunk],
                    height,
                    y_start[chunk],
                    y_stop[chunk],
                    grid_top,
                    rows_in_grid,
                )
                bands, offset = _band_operator(
                    x_dense_t,
                    x_low,
                    x_high,
                    x_origin[chunk],
                    width,
                    x_start[chunk],
                    x_stop[chunk],
                    grid_left,
                    columns_in_grid,
                )
                values = _banded_product(vertical, logits, bands, offset, width)
            else:  # the transposed problem: rows of the result are the window's columns
                horizontal = _row_operator(
                    x_dense,
                    x_origin[chunk],
                    width,
                    x_start[chunk],
                    x_stop[chunk],
                    grid_left,
                    columns_in_grid,
                )
                bands, offset = _band_operator(
                    y_dense_t,
                    y_low,
                    y_high,
                    y_origin[chunk],
                    height,
                    y_start[chunk],
                    y_stop[chunk],
                    grid_top,
                    rows_in_grid,
                )
                flipped = np.ascontiguousarray(logits.transpose(0, 2, 1))
                values = _banded_product(horizontal, flipped, bands, offset, height).transpose(
                    0, 2, 1
                )
            on = values > 0
            areas[chunk] = np.count_nonzero(on, axis=(1, 2))
            pieces.append((chunk, on))

    kept = np.flatnonzero(areas > 0) if drop_empty else np.arange(n)
    slot = np.full(n, -1, dtype=np.int64)
    slot[kept] = np.arange(kept.size)
    masks = np.zeros((kept.size, src_h, src_w), dtype=bool)
    for chunk, on in pieces:  # as many as above
        height, width = on.shape[1:]
        windows = _plane_windows(masks, height, width, writeable=True)
        wanted = slot[chunk] >= 0
        windows[slot[chunk][wanted], y_origin[chunk][wanted], x_origin[chunk][wanted]] = on[wanted]
    return masks, areas, kept


def _logits_windows(logits: np.ndarray) -> WindowLogits:
    grids = np.asarray(logits, dtype=np.float32)

    def window(
        instances: np.ndarray, top: np.ndarray, left: np.ndarray, rows: int, columns: int
    ) -> np.ndarray:
        blocks = _plane_windows(grids, rows, columns)
        return blocks[instances, top, left]

    return window


def _prototype_windows(prototypes: np.ndarray, coefficients: np.ndarray) -> WindowLogits:
    protos = np.asarray(prototypes, dtype=np.float32)
    coef = np.asarray(coefficients, dtype=np.float32)

    def window(
        instances: np.ndarray, top: np.ndarray, left: np.ndarray, rows: int, columns: int
    ) -> np.ndarray:
        blocks = _plane_windows(protos, rows, columns)
        cells = blocks[:, top, left].reshape(protos.shape[0], instances.size, rows * columns)
        # (k, 1, nm) @ (k, nm, cells): only the window's cells, not the whole grid
        products = coef[instances][:, None, :] @ cells.transpose(1, 0, 2)
        return products.reshape(instances.size, rows, columns)

    return window


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
    n, grid_h, grid_w = np.shape(logits)
    return _instance_masks(
        _logits_windows(logits),
        n,
        (grid_h, grid_w),
        boxes,
        geometry,
        input_wh,
        crop=crop,
        drop_empty=False,
    )[0]


def prototype_masks(
    prototypes: np.ndarray,
    coefficients: np.ndarray,
    boxes: np.ndarray,
    geometry: ResizeGeometry,
    input_wh: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(masks of the instances whose cropped mask has pixels, their indices).

    ``prototypes`` ``(nm, gh, gw)``, ``coefficients`` ``(n, nm)``: an instance's logits are
    ``coefficients[i] @ prototypes``, formed only over the grid window its box reaches.
    Ultralytics drops instances whose cropped mask is empty; so does this.
    """
    _, grid_h, grid_w = np.shape(prototypes)
    masks, _, kept = _instance_masks(
        _prototype_windows(prototypes, coefficients),
        len(coefficients),
        (grid_h, grid_w),
        boxes,
        geometry,
        input_wh,
        crop=True,
        drop_empty=True,
    )
    return masks, kept
