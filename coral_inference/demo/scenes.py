"""Seeded synthetic shape scenes: the demo detector's training data and the demo videos.

A ``Scene`` is a textured background plus a few filled shapes (``SHAPE_CLASSES``) in
linear motion. Everything is derived from a seed: the same seed gives the same boxes
and counts everywhere, and the same pixels with the same OpenCV build. Two kinds of
scene:

* ``traffic_scene`` — shapes travel horizontally in lanes across the whole frame, one
  speed per lane, spaced so they never overlap; no shape sits near the counting line at
  the first or last frame, so every crossing is seen on both sides of the line. This is
  what ``write_demo_video`` records, with a ``GroundTruth`` a line-counter test can
  compare against exactly.
* ``random_still`` — one frame of either a traffic scene or a cluttered scene (shapes
  anywhere, partly outside the frame, occasionally overlapping): the training and
  evaluation samples of the demo detector.

Ground-truth boxes are the axis-aligned boxes of the drawn geometry, clipped to the
frame: a shape crossing the edge is clipped to the frame as a polygon, and counts as
present when at least ``MIN_VISIBLE_FRACTION`` of its area is inside the frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, cast

import cv2
import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
CIRCLE, SQUARE, TRIANGLE = range(len(SHAPE_CLASSES))
MIN_VISIBLE_FRACTION = 0.4

# Unit outlines, 4 vertices per shape so all shapes share one vectorised box
# computation. The circle's "vertices" are its bounding square, never rotated.
# The triangle's circumradius is larger so its area is close to the square's.
_TRIANGLE_RADIUS = 1.25
_triangle_angles = np.deg2rad([-90.0, 30.0, 150.0, 150.0])
_UNIT_OUTLINES = np.stack(
    [
        [[-1, -1], [1, -1], [1, 1], [-1, 1]],
        [[-1, -1], [1, -1], [1, 1], [-1, 1]],
        _TRIANGLE_RADIUS * np.stack([np.cos(_triangle_angles), np.sin(_triangle_angles)], axis=1),
    ]
).astype(np.float64)
_VERTEX_COUNT = np.array([0, 4, 3])  # polygon vertices drawn per class (circle: none)
# Largest half-extent of a shape of half-size 1 under any rotation.
_MAX_EXTENT = np.sqrt(2.0)
# A circle as a 96-gon, for clipping at the frame edge (area error < 0.1 %).
_circle_angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
_UNIT_CIRCLE = np.stack([np.cos(_circle_angles), np.sin(_circle_angles)], axis=1)
_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16 px precision keeps motion smooth


class Frame(NamedTuple):
    """One rendered frame and its ground truth (unpacks as a 4-tuple)."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    xyxy: np.ndarray  # (n, 4) float32, pixels, clipped to the frame
    class_ids: np.ndarray  # (n,) int64 indices into SHAPE_CLASSES
    track_ids: np.ndarray  # (n,) int64, stable across the frames of one scene


@dataclass(frozen=True)
class Scene:
    """A background and shapes in linear motion; ``render(i)`` draws frame ``i``.

    Per-shape arrays are aligned; shapes are drawn in array order (later on top).
    """

    width: int
    height: int
    background: np.ndarray  # (H, W, 3) uint8 BGR
    class_ids: np.ndarray  # (n,) int64
    track_ids: np.ndarray  # (n,) int64
    half_sizes: np.ndarray  # (n,) float, pixels (circle radius, square half-side)
    colours: np.ndarray  # (n, 3) uint8 BGR
    start: np.ndarray  # (n, 2) float, centre at frame 0
    velocity: np.ndarray  # (n, 2) float, pixels per frame
    angle: np.ndarray  # (n,) float, radians at frame 0
    spin: np.ndarray  # (n,) float, radians per frame
    noise_sigma: float = 3.0  # per-frame sensor noise, grey levels
    seed: int = 0  # seeds the per-frame noise

    def centres(self, frame_index: int | np.ndarray) -> np.ndarray:
        """Shape centres at one frame ``(n, 2)`` or at many frames ``(len(frames), n, 2)``."""
        f = np.asarray(frame_index, dtype=np.float64)[..., None, None]
        return self.start + self.velocity * f

    def outlines(self, frame_index: int) -> np.ndarray:
        """Vertices ``(n, 4, 2)`` of every shape at one frame (see ``_UNIT_OUTLINES``)."""
        theta = np.where(self.class_ids == CIRCLE, 0.0, self.angle + self.spin * frame_index)
        cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
        unit = _UNIT_OUTLINES[self.class_ids] * self.half_sizes[:, None, None]
        rotated = np.stack(
            [unit[..., 0] * cos - unit[..., 1] * sin, unit[..., 0] * sin + unit[..., 1] * cos],
            axis=-1,
        )
        return rotated + self.centres(frame_index)[:, None, :]

    def full_boxes(self, frame_index: int) -> np.ndarray:
        """Unclipped boxes ``(n, 4)`` of all shapes, inside the frame or not."""
        vertices = self.outlines(frame_index)
        return np.concatenate([vertices.min(axis=1), vertices.max(axis=1)], axis=1)

    def boxes(self, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(n, 4)`` of the part of each shape inside the frame, and the present mask.

        A shape crossing the frame edge is clipped to the frame as a polygon, so its box
        is tight around what is visible, and it is present when at least
        ``MIN_VISIBLE_FRACTION`` of its area is visible.
        """
        full = self.full_boxes(frame_index)
        frame = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        boxes = np.clip(full, 0.0, frame)
        fraction = np.ones(len(full))
        crossing_edge = np.any((full[:, :2] < 0) | (full[:, 2:] > frame[:2]), axis=1)
        if crossing_edge.any():
            vertices = self.outlines(frame_index)
            centres = self.centres(frame_index)
            for k in np.flatnonzero(crossing_edge):  # only the few shapes at the edges
                if self.class_ids[k] == CIRCLE:
                    polygon = centres[k] + self.half_sizes[k] * _UNIT_CIRCLE
                else:
                    polygon = vertices[k, : _VERTEX_COUNT[self.class_ids[k]]]
                inside = _clip_to_frame(polygon, self.width, self.height)
                if len(inside) < 3:
                    fraction[k] = 0.0
                    continue
                boxes[k] = np.concatenate([inside.min(axis=0), inside.max(axis=0)])
                fraction[k] = _polygon_area(inside) / _polygon_area(polygon)
        visible = (fraction >= MIN_VISIBLE_FRACTION) & np.all(
            boxes[:, 2:] - boxes[:, :2] >= 2.0, axis=1
        )
        return boxes, visible

    def render(self, frame_index: int) -> Frame:
        """Draw frame ``frame_index``: shapes over the background, then sensor noise."""
        image = self.background.copy()
        # Boxes treat pixel i as the span [i, i+1); cv2 puts pixel i's centre at i.
        vertices = self.outlines(frame_index) - 0.5
        centres = self.centres(frame_index) - 0.5
        scale = 1 << _SUBPIXEL_BITS
        for i, class_id in enumerate(self.class_ids):
            colour = tuple(int(c) for c in self.colours[i])
            if class_id == CIRCLE:
                centre = tuple(round(c * scale) for c in centres[i])
                radius = round(self.half_sizes[i] * scale)
                cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
            else:
                polygon = np.round(vertices[i, : _VERTEX_COUNT[class_id]] * scale).astype(np.int32)
                cv2.fillPoly(image, [polygon], colour, cv2.LINE_AA, _SUBPIXEL_BITS)
        if self.noise_sigma > 0:
            rng = np.random.default_rng((self.seed, frame_index))
            noise = rng.standard_normal(image.shape, dtype=np.float32) * self.noise_sigma
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
        xyxy, visible = self.boxes(frame_index)
        return Frame(
            image,
            xyxy[visible].astype(np.float32),
            self.class_ids[visible].astype(np.int64),
            self.track_ids[visible].astype(np.int64),
        )


def _clip_to_frame(polygon: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of a convex polygon ``(k, 2)`` inside [0, w] x [0, h]."""
    for axis, limit, keep_below in (
        (0, 0.0, False),
        (0, width, True),
        (1, 0.0, False),
        (1, height, True),
    ):
        if len(polygon) == 0:
            break
        offset = polygon[:, axis] - limit
        inside = offset <= 0 if keep_below else offset >= 0
        following, offset_next = np.roll(polygon, -1, axis=0), np.roll(offset, -1)
        denominator = offset - offset_next
        t = offset / np.where(denominator == 0, 1.0, denominator)
        crossing = polygon + (following - polygon) * t[:, None]
        # per edge, in order: its start vertex if kept, then the crossing if it leaves/enters
        candidates = np.stack([polygon, crossing], axis=1)
        polygon = candidates[np.stack([inside, inside != np.roll(inside, -1)], axis=1)]
    return polygon


def _polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _rng(seed_or_rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A gradient with low-frequency blobs and a few thin clutter lines (no filled shapes)."""
    base = rng.uniform(30, 225, size=3).astype(np.float32)
    other = np.clip(base + rng.uniform(-60, 60, size=3), 0, 255).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.arange(height, dtype=np.float32) * np.float32(np.sin(direction)))[:, None] + (
        np.arange(width, dtype=np.float32) * np.float32(np.cos(direction))
    )[None, :]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    image = base + (other - base) * ramp[..., None]
    cell = int(rng.integers(12, 48))
    blobs = rng.normal(0, rng.uniform(4, 18), size=(height // cell + 2, width // cell + 2, 3))
    image += cv2.resize(blobs.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 7))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        shade = np.clip(base + rng.uniform(-45, 45, size=3), 0, 255)
        cv2.line(
            image, p1, p2, tuple(float(c) for c in shade), int(rng.integers(1, 4)), cv2.LINE_AA
        )
    return image


def _contrasting_colours(rng: np.random.Generator, background: np.ndarray, n: int) -> np.ndarray:
    """``n`` saturated BGR colours, each far from the background's mean colour."""
    mean = background.reshape(-1, 3).mean(axis=0)
    colours = np.empty((n, 3), dtype=np.uint8)
    for i in range(n):
        hsv = np.stack(
            [rng.integers(0, 180, 64), rng.integers(90, 256, 64), rng.integers(70, 256, 64)], axis=1
        ).astype(np.uint8)
        candidates = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0].astype(np.float64)
        distance = np.linalg.norm(candidates - mean, axis=1)
        colours[i] = candidates[
            int(np.argmax(distance >= 110)) if np.any(distance >= 110) else int(np.argmax(distance))
        ]
    return colours


def _shape_params(rng: np.random.Generator, class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Initial angles and spins: squares stay near upright, triangles turn freely."""
    n = len(class_ids)
    angle = np.where(class_ids == SQUARE, rng.uniform(-0.4, 0.4, n), rng.uniform(0, 2 * np.pi, n))
    spin = rng.uniform(-0.03, 0.03, n) * (class_ids != CIRCLE)
    return angle, spin


def traffic_scene(
    seed: int | np.random.Generator,
    width: int = 640,
    height: int = 480,
    frame_count: int = 300,
    line_x: float | None = None,
    *,
    size_range: tuple[float, float] = (0.03, 0.075),
) -> Scene:
    """Shapes crossing the frame horizontally in lanes, for ``frame_count`` frames.

    Sizes are half-sizes as a fraction of ``min(width, height)``. Each lane has one
    direction, one speed and a constant spacing, so shapes of a lane never touch and
    lanes never overlap. The lane phase is chosen so no centre is within one shape
    extent (plus two frames of motion) of ``line_x`` at the first and last frame.

    >>> scene = traffic_scene(7, 320, 240, frame_count=50)
    >>> image, xyxy, class_ids, track_ids = scene.render(0)
    """
    rng = _rng(seed)
    seed_value = int(rng.integers(0, 2**31))
    line_x = width / 2 if line_x is None else float(line_x)
    short = min(width, height)
    max_half = size_range[1] * short
    extent = _MAX_EXTENT * max_half
    lane_height = 2 * extent + 0.03 * short
    lane_count = max(1, int(height // lane_height))
    lane_centres = (np.arange(lane_count) + 0.5) * height / lane_count
    slack = max(0.0, (height / lane_count - 2 * extent) / 2)
    background = _background(rng, width, height)

    rows: list[tuple[float, float, float, float]] = []  # (half size, x0, y, vx) per shape
    for y in lane_centres:
        if rng.random() < 0.15:
            continue  # an empty lane now and then
        direction = float(rng.choice([-1.0, 1.0]))
        # Lay the lane out moving right, then mirror it when it moves left.
        line_in_lane = line_x if direction > 0 else width - line_x
        for _ in range(100):
            speed = rng.uniform(0.004, 0.012) * width
            spacing = rng.uniform(2.4, 5.0) * extent
            margin = extent + 2 * speed
            phase = rng.uniform(0, spacing)
            # distance of the nearest centre to the line at the first and last frame
            gaps = (line_in_lane - phase - np.array([0.0, speed * (frame_count - 1)])) % spacing
            if np.all(np.minimum(gaps, spacing - gaps) >= margin):
                break
        else:  # pragma: no cover - 100 draws of a constraint that holds about half the time
            continue
        # every grid position whose trajectory meets the visible strip [-extent, width+extent]
        first = int(np.floor((-extent - speed * (frame_count - 1) - phase) / spacing))
        last = int(np.ceil((width + extent - phase) / spacing))
        x_moving_right = phase + spacing * np.arange(first, last + 1)
        x0 = x_moving_right if direction > 0 else width - x_moving_right
        for x in x0:
            half = rng.uniform(*size_range) * short
            rows.append(
                (half, float(x), float(y + rng.uniform(-0.5, 0.5) * slack), direction * speed)
            )
    n = len(rows)
    class_ids = rng.integers(0, len(SHAPE_CLASSES), n)
    angle, spin = _shape_params(rng, class_ids)
    table = np.array(rows, dtype=np.float64).reshape(n, 4)
    return Scene(
        width=width,
        height=height,
        background=background,
        class_ids=class_ids.astype(np.int64),
        track_ids=np.arange(1, n + 1, dtype=np.int64),
        half_sizes=table[:, 0],
        colours=_contrasting_colours(rng, background, n),
        start=table[:, 1:3],
        velocity=np.stack([table[:, 3], np.zeros(n)], axis=1),
        angle=angle,
        spin=spin,
        noise_sigma=float(rng.uniform(1.0, 5.0)),
        seed=seed_value,
    )


def cluttered_scene(
    seed: int | np.random.Generator,
    width: int,
    height: int,
    *,
    max_objects: int = 10,
    size_range: tuple[float, float] = (0.03, 0.13),
    max_overlap: float = 0.3,
) -> Scene:
    """Shapes anywhere (some partly outside), overlapping at most ``max_overlap`` at frame 0.

    Overlap is the intersection over the smaller of two boxes; shapes move in random
    directions, so later frames may overlap more.
    """
    rng = _rng(seed)
    seed_value = int(rng.integers(0, 2**31))
    background = _background(rng, width, height)
    short = min(width, height)
    wanted = int(rng.integers(1, max_objects + 1))
    halves = rng.uniform(*size_range, size=wanted * 4) * short
    centres = rng.uniform(-0.05, 1.05, size=(wanted * 4, 2)) * [width, height]
    boxes = np.concatenate(
        [centres - _MAX_EXTENT * halves[:, None], centres + _MAX_EXTENT * halves[:, None]], axis=1
    )
    keep: list[int] = []
    for i in range(len(halves)):
        if len(keep) == wanted:
            break
        if keep:
            others = boxes[keep]
            inter_wh = np.clip(
                np.minimum(others[:, 2:], boxes[i, 2:]) - np.maximum(others[:, :2], boxes[i, :2]),
                0,
                None,
            )
            inter = inter_wh.prod(axis=1)
            smaller = np.minimum(
                (others[:, 2:] - others[:, :2]).prod(axis=1), (boxes[i, 2:] - boxes[i, :2]).prod()
            )
            if np.any(inter > max_overlap * smaller):
                continue
        keep.append(i)
    n = len(keep)
    class_ids = rng.integers(0, len(SHAPE_CLASSES), n).astype(np.int64)
    angle, spin = _shape_params(rng, class_ids)
    heading = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(0.0, 0.01, n) * width
    return Scene(
        width=width,
        height=height,
        background=background,
        class_ids=class_ids,
        track_ids=np.arange(1, n + 1, dtype=np.int64),
        half_sizes=halves[keep],
        colours=_contrasting_colours(rng, background, n),
        start=centres[keep],
        velocity=np.stack([np.cos(heading) * speed, np.sin(heading) * speed], axis=1),
        angle=angle,
        spin=spin,
        noise_sigma=float(rng.uniform(0.0, 8.0)),
        seed=seed_value,
    )


def random_still(seed: int | np.random.Generator, width: int, height: int) -> Frame:
    """One training/evaluation sample: a random frame of a traffic or a cluttered scene."""
    rng = _rng(seed)
    if rng.random() < 0.5:
        frame_count = int(rng.integers(30, 400))
        scene = traffic_scene(rng, width, height, frame_count=frame_count)
        return scene.render(int(rng.integers(0, frame_count)))
    return cluttered_scene(rng, width, height).render(0)


@dataclass
class GroundTruth:
    """What a demo video shows: per-frame boxes and the line crossings per direction/class.

    The counting line is vertical at ``line_x`` (``line`` gives its end points, top to
    bottom); a crossing is a shape's box centre passing from one side to the other
    between two consecutive frames (what a line counter with a centre anchor counts).
    """

    width: int
    height: int
    fps: float
    frame_count: int
    seed: int
    line_x: float
    class_names: tuple[str, ...] = SHAPE_CLASSES
    frames: list[Frame] = field(default_factory=list, repr=False)  # images dropped (None)
    crossings: dict[str, int] = field(default_factory=dict)  # left_to_right, right_to_left
    crossings_by_class: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def line(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.line_x, 0.0), (self.line_x, float(self.height))

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "seed": self.seed,
            "line": [list(p) for p in self.line],
            "class_names": list(self.class_names),
            "crossings": self.crossings,
            "crossings_by_class": self.crossings_by_class,
            "frames": [
                {
                    "xyxy": f.xyxy.round(2).tolist(),
                    "class_ids": f.class_ids.tolist(),
                    "track_ids": f.track_ids.tolist(),
                }
                for f in self.frames
            ],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.as_dict()))
        return path


def line_crossings(
    scene: Scene, frame_count: int, line_x: float
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Count box-centre crossings of the vertical line ``x = line_x`` over frames ``0..frame_count-1``.

    The box centre (not the shape's own centre) is what a line counter with a centre
    anchor sees; for a turning triangle the two differ by a few pixels.
    """
    box_centre_x = np.stack(
        [scene.full_boxes(i)[:, [0, 2]].mean(axis=1) for i in range(frame_count)]
    )
    right_of_line = box_centre_x >= line_x  # (frames, n)
    changed = right_of_line[1:] != right_of_line[:-1]
    to_right = changed & right_of_line[1:]
    to_left = changed & ~right_of_line[1:]
    by_class: dict[str, dict[str, int]] = {}
    for name, mask in (("left_to_right", to_right), ("right_to_left", to_left)):
        per_shape = mask.sum(axis=0)
        by_class[name] = {
            cls: int(per_shape[scene.class_ids == k].sum()) for k, cls in enumerate(SHAPE_CLASSES)
        }
    totals = {name: sum(counts.values()) for name, counts in by_class.items()}
    return totals, by_class


def write_demo_video(
    path: str | Path,
    seconds: float = 20.0,
    fps: float = 15.0,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    *,
    line_x: float | None = None,
    crf: int = 18,
) -> GroundTruth:
    """Render a ``traffic_scene`` to an H.264 MP4 (PyAV/libx264) and return its ground truth.

    ``width`` and ``height`` must be even (yuv420p). The file is an ordinary
    (non-fragmented) MP4, complete once this returns.
    """
    if width % 2 or height % 2:
        raise ValueError(
            f"write_demo_video: width and height must be even for H.264 yuv420p, got {width}x{height}"
        )
    import av  # the encoder is only needed here

    frame_count = max(2, round(seconds * fps))
    line_x = width / 2 if line_x is None else float(line_x)
    scene = traffic_scene(seed, width, height, frame_count=frame_count, line_x=line_x)
    crossings, by_class = line_crossings(scene, frame_count, line_x)
    truth = GroundTruth(
        width=width,
        height=height,
        fps=float(fps),
        frame_count=frame_count,
        seed=seed,
        line_x=line_x,
        crossings=crossings,
        crossings_by_class=by_class,
    )
    with av.open(str(path), "w", format="mp4") as container:
        stream = cast(
            av.VideoStream,
            container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001)),
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # what Stream.__setattr__ does for ``stream.options`` (absent from the stubs)
        stream.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
        for index in range(frame_count):
            frame = scene.render(index)
            truth.frames.append(frame._replace(image=None))
            video_frame = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return truth
