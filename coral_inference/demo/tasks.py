"""Segmentation, keypoint and classification ground truth for the synthetic shape scenes.

The scenes of ``coral_inference.demo.scenes`` know their exact geometry, so the other
Roboflow tasks get exact labels from the same seeds:

* **masks** — the visible pixels of each shape (later shapes cover earlier ones), drawn
  from the geometry at any resolution and under any scale/offset (the letterbox);
* **keypoints** — ``KEYPOINT_NAMES``: the centre and up to four polygon vertices in a
  canonical order (square: 4 corners, triangle: 3 vertices, circle: centre only). The
  order is canonical when a square is turned less than 45° and a triangle less than 60°
  from upright; ``pose_scene`` keeps them upright (``POSE_MAX_TURN``);
* **classification** — ``classification_still``: one dominant shape (its class is the
  single label) among a few small distractors (all classes present are the multi-label
  target).

Used by ``scripts/train_demo_tasks.py`` (training and its evaluation) and by the tests of
the bundled ``coral-demo-seg``/``-pose``/``-cls`` packages. Numpy/OpenCV only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, cast

import cv2
import numpy as np

from coral_inference.demo.scenes import (
    _MAX_EXTENT,
    _UNIT_CIRCLE,
    _UNIT_OUTLINES,
    _VERTEX_COUNT,
    CIRCLE,
    SHAPE_CLASSES,
    SQUARE,
    TRIANGLE,
    Scene,
    _background,
    _contrasting_colours,
    _rng,
    cluttered_scene,
    traffic_scene,
)

KEYPOINT_NAMES: tuple[str, ...] = ("centre", "vertex_1", "vertex_2", "vertex_3", "vertex_4")
# centre to every vertex: drawn edges never depend on which vertices a class has
KEYPOINT_SKELETON: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (0, 4))
# Largest turn from upright ``pose_scene`` draws (radians). Any turn below the symmetry
# limits (square 45°, triangle 60°) keeps the vertex order unambiguous; the demo keeps
# shapes upright, so keypoints follow from an object's box and class and a small model
# learns them in minutes of CPU time (the demo exercises the keypoint path: decoding,
# letterbox mapping, names, skeleton; not rotation estimation).
POSE_MAX_TURN = {SQUARE: 0.0, TRIANGLE: 0.0}
_SYMMETRY = {SQUARE: np.pi / 2, TRIANGLE: 2 * np.pi / 3}
_SUBPIXEL_BITS = 4


class Transform(NamedTuple):
    """Source pixels -> target pixels: ``target = source * scale + (offset_x, offset_y)``."""

    scale: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0


def _turn(scene: Scene, frame_index: int) -> np.ndarray:
    return np.where(scene.class_ids == CIRCLE, 0.0, scene.angle + scene.spin * frame_index)


def label_image(
    scene: Scene, frame_index: int, width: int, height: int, transform: Transform | None = None
) -> np.ndarray:
    """``(height, width)`` int32: 0 background, ``k + 1`` where shape ``k`` is visible on top.

    Drawn like ``Scene.render`` (later shapes on top, pixel ``i`` spans ``[i, i+1)``) but
    without anti-aliasing, so a pixel belongs to one shape; pixels outside the transformed
    frame (a letterbox's padding) stay 0.
    """
    transform = transform or Transform()
    labels = np.zeros((height, width), dtype=np.int32)
    scale = 1 << _SUBPIXEL_BITS
    vertices = (
        scene.outlines(frame_index) * transform.scale
        + [transform.offset_x, transform.offset_y]
        - 0.5
    )
    centres = (
        scene.centres(frame_index) * transform.scale
        + [transform.offset_x, transform.offset_y]
        - 0.5
    )
    for k, class_id in enumerate(scene.class_ids):
        if class_id == CIRCLE:
            polygon = centres[k] + scene.half_sizes[k] * transform.scale * _UNIT_CIRCLE
        else:
            polygon = vertices[k, : _VERTEX_COUNT[class_id]]
        # OpenCV takes a plain number as a Scalar; the stubs only allow a sequence
        color = cast("cv2.typing.Scalar", k + 1)
        cv2.fillPoly(
            labels, [np.round(polygon * scale).astype(np.int32)], color, cv2.LINE_8, _SUBPIXEL_BITS
        )
    # nothing outside the frame itself (a letterbox's padding shows no shape)
    x0, y0 = transform.offset_x, transform.offset_y
    x1, y1 = x0 + scene.width * transform.scale, y0 + scene.height * transform.scale
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    labels[(ys < y0) | (ys > y1)] = 0
    labels[:, (xs < x0) | (xs > x1)] = 0
    return labels


def shape_masks(
    scene: Scene,
    frame_index: int,
    width: int | None = None,
    height: int | None = None,
    transform: Transform | None = None,
    supersample: int = 1,
) -> np.ndarray:
    """Masks ``(n_visible, height, width)`` bool of the shapes ``Scene.render`` reports, in order.

    ``supersample`` > 1 draws at that many times the resolution and keeps the pixels more
    than half covered: without it a pixel whose centre lies on an edge belongs to the
    shape, which makes masks of small shapes (low resolutions) half a pixel too fat.
    """
    width = scene.width if width is None else width
    height = scene.height if height is None else height
    t = transform or Transform()
    _, visible = scene.boxes(frame_index)
    ids = np.flatnonzero(visible) + 1
    if len(ids) == 0:
        return np.zeros((0, height, width), dtype=bool)
    if supersample <= 1:
        labels = label_image(scene, frame_index, width, height, t)
        return labels[None] == ids[:, None, None]
    s = supersample
    fine = Transform(t.scale * s, t.offset_x * s, t.offset_y * s)
    labels = label_image(scene, frame_index, width * s, height * s, fine).reshape(
        height, s, width, s
    )
    return np.stack([(labels == i).mean(axis=(1, 3)) > 0.5 for i in ids]).reshape(
        len(ids), height, width
    )


def shape_keypoints(
    scene: Scene, frame_index: int, transform: Transform | None = None
) -> np.ndarray:
    """Keypoints ``(n_visible, len(KEYPOINT_NAMES), 3)`` float32: x, y, visible (0/1).

    A keypoint is visible when the shape has it and it lies inside the frame. Vertices
    are listed from the canonical first one (top-left corner, top vertex) clockwise.
    """
    transform = transform or Transform()
    _, visible = scene.boxes(frame_index)
    turn = _turn(scene, frame_index)
    # a regular polygon turned by its symmetry angle is itself: label from the reduced turn
    for class_id, period in _SYMMETRY.items():
        mine = scene.class_ids == class_id
        turn[mine] = (turn[mine] + period / 2) % period - period / 2
    cos, sin = np.cos(turn)[:, None], np.sin(turn)[:, None]
    unit = _UNIT_OUTLINES[scene.class_ids] * scene.half_sizes[:, None, None]
    rotated = np.stack(
        [unit[..., 0] * cos - unit[..., 1] * sin, unit[..., 0] * sin + unit[..., 1] * cos], axis=-1
    )
    centres = scene.centres(frame_index)
    points = np.concatenate([centres[:, None], rotated + centres[:, None]], axis=1)  # (n, 5, 2)
    has = np.arange(4)[None] < _VERTEX_COUNT[scene.class_ids][:, None]
    present = np.concatenate([np.ones((len(points), 1), dtype=bool), has], axis=1)
    inside = (
        (points >= 0).all(axis=2) & (points[..., 0] < scene.width) & (points[..., 1] < scene.height)
    )
    xy = points * transform.scale + [transform.offset_x, transform.offset_y]
    out = np.concatenate([xy, (present & inside)[..., None].astype(np.float64)], axis=2)
    return out[visible].astype(np.float32)


def pose_scene(scene: Scene) -> Scene:
    """``scene`` with squares and triangles turned at most ``POSE_MAX_TURN`` and not spinning."""
    rng = np.random.default_rng(scene.seed)
    limit = np.select(
        [scene.class_ids == SQUARE, scene.class_ids == TRIANGLE],
        [POSE_MAX_TURN[SQUARE], POSE_MAX_TURN[TRIANGLE]],
        0.0,
    )
    angle = rng.uniform(-1.0, 1.0, len(scene.class_ids)) * limit
    return dataclasses.replace(scene, angle=angle, spin=np.zeros_like(scene.spin))


def pose_still(seed: int | np.random.Generator, width: int, height: int) -> tuple[Scene, int]:
    """A keypoint training/evaluation sample: a scene (pose-safe turns) and the frame to render."""
    rng = _rng(seed)
    if rng.random() < 0.5:
        frame_count = int(rng.integers(30, 400))
        scene = traffic_scene(rng, width, height, frame_count=frame_count, size_range=(0.05, 0.09))
        return pose_scene(scene), int(rng.integers(0, frame_count))
    return pose_scene(
        cluttered_scene(
            rng, width, height, max_objects=8, size_range=(0.05, 0.13), max_overlap=0.05
        )
    ), 0


def task_still(seed: int | np.random.Generator, width: int, height: int) -> tuple[Scene, int]:
    """A segmentation sample like ``random_still`` (traffic or cluttered): scene and frame index."""
    rng = _rng(seed)
    if rng.random() < 0.5:
        frame_count = int(rng.integers(30, 400))
        return traffic_scene(rng, width, height, frame_count=frame_count), int(
            rng.integers(0, frame_count)
        )
    return cluttered_scene(rng, width, height), 0


class ClassificationStill(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 BGR
    class_id: int  # the dominant shape's class
    present: np.ndarray  # (len(SHAPE_CLASSES),) bool: classes of all visible shapes


def classification_still(
    seed: int | np.random.Generator, width: int, height: int
) -> ClassificationStill:
    """One dominant shape (half-size 15-28% of the short side, wholly inside the frame) and
    0-4 small distractors (4-7%) that do not touch its box; later shapes are drawn on top."""
    rng = _rng(seed)
    short = min(width, height)
    background = _background(rng, width, height)
    big_half = rng.uniform(0.15, 0.28) * short
    big_extent = _MAX_EXTENT * big_half
    big_centre = rng.uniform([big_extent, big_extent], [width - big_extent, height - big_extent])
    big_box = np.concatenate([big_centre - big_extent, big_centre + big_extent])
    halves, centres = [], []
    wanted = int(rng.integers(0, 5))
    for _ in range(24):  # rejection sampling, bounded
        if len(halves) == wanted:
            break
        half = rng.uniform(0.04, 0.07) * short
        centre = rng.uniform([0, 0], [width, height])
        extent = _MAX_EXTENT * half
        if np.all(centre + extent > big_box[:2]) and np.all(centre - extent < big_box[2:]):
            continue  # touches the dominant shape's box
        halves.append(half)
        centres.append(centre)
    n = len(halves) + 1
    class_ids = rng.integers(0, len(SHAPE_CLASSES), n).astype(np.int64)
    angle = np.where(class_ids == SQUARE, rng.uniform(-0.4, 0.4, n), rng.uniform(0, 2 * np.pi, n))
    scene = Scene(
        width=width,
        height=height,
        background=background,
        class_ids=class_ids,
        track_ids=np.arange(1, n + 1, dtype=np.int64),
        half_sizes=np.array([*halves, big_half], dtype=np.float64),
        colours=_contrasting_colours(rng, background, n),
        start=np.array([*centres, big_centre], dtype=np.float64).reshape(n, 2),
        velocity=np.zeros((n, 2)),
        angle=angle,
        spin=np.zeros(n),
        noise_sigma=float(rng.uniform(0.0, 6.0)),
        seed=int(rng.integers(0, 2**31)),
    )
    frame = scene.render(0)
    present = np.zeros(len(SHAPE_CLASSES), dtype=bool)
    present[frame.class_ids] = True
    present[class_ids[-1]] = True
    return ClassificationStill(frame.image, int(class_ids[-1]), present)


def write_video(
    path: str | Path, images: Iterable[np.ndarray], fps: float = 15.0, *, crf: int = 18
) -> int:
    """Encode BGR frames (one even size) to an H.264 MP4 (PyAV/libx264); returns the frame count."""
    import av  # the encoder is only needed here

    count = 0
    with av.open(str(path), "w", format="mp4") as container:
        stream: av.VideoStream | None = None
        for image in images:
            if stream is None:
                height, width = image.shape[:2]
                if width % 2 or height % 2:
                    raise ValueError(
                        f"write_video: frames need an even size for yuv420p, got {width}x{height}"
                    )
                stream = cast(
                    av.VideoStream,
                    container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001)),
                )
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                # what Stream.__setattr__ does for ``stream.options`` (absent from the stubs)
                stream.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return count


def classification_video(
    path: str | Path,
    seed: int,
    stills: int = 12,
    hold: int = 5,
    width: int = 640,
    height: int = 480,
    fps: float = 15.0,
) -> list[int]:
    """``stills`` classification stills, each held ``hold`` frames; the class id per frame."""
    rng = np.random.default_rng(seed)
    shown = [classification_still(rng, width, height) for _ in range(stills)]
    write_video(path, (still.image for still in shown for _ in range(hold)), fps)
    return [still.class_id for still in shown for _ in range(hold)]
