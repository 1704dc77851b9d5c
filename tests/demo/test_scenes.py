"""The synthetic scenes: seeded, boxes that match the drawn pixels, exact line counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coral_inference.demo.evaluation import box_iou
from coral_inference.demo.scenes import (
    MIN_VISIBLE_FRACTION,
    SHAPE_CLASSES,
    Frame,
    cluttered_scene,
    line_crossings,
    random_still,
    traffic_scene,
    write_demo_video,
)


def test_same_seed_gives_identical_frames_and_different_seeds_differ():
    a, b, c = (
        traffic_scene(11, 320, 240, 60),
        traffic_scene(11, 320, 240, 60),
        traffic_scene(12, 320, 240, 60),
    )
    for index in (0, 31):
        fa, fb = a.render(index), b.render(index)
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.xyxy, fb.xyxy) and np.array_equal(fa.track_ids, fb.track_ids)
    assert not np.array_equal(a.render(0).image, c.render(0).image)
    s1, s2 = random_still(5, 256, 192), random_still(5, 256, 192)
    assert np.array_equal(s1.image, s2.image) and np.array_equal(s1.xyxy, s2.xyxy)


@pytest.mark.parametrize("seed", range(8))
def test_still_boxes_lie_in_the_frame_and_cover_the_drawn_shape(seed):
    width, height = 320, 240
    scene = (
        cluttered_scene(seed, width, height) if seed % 2 else traffic_scene(seed, width, height, 40)
    )
    scene = type(scene)(
        **{**scene.__dict__, "noise_sigma": 0.0}
    )  # exact pixels for the check below
    frame = scene.render(3)
    assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
    assert frame.xyxy.dtype == np.float32 and frame.xyxy.shape == (len(frame.class_ids), 4)
    assert (
        np.all(frame.xyxy >= 0)
        and np.all(frame.xyxy[:, [0, 2]] <= width)
        and np.all(frame.xyxy[:, [1, 3]] <= height)
    )
    assert np.all(frame.xyxy[:, 2:] - frame.xyxy[:, :2] >= 2)
    assert set(frame.class_ids.tolist()) <= set(range(len(SHAPE_CLASSES)))
    assert len(set(frame.track_ids.tolist())) == len(frame.track_ids)
    # every pixel (the span [i, i+1)) that differs from the background touches some
    # shape's box grown by 2 px (anti-aliasing overshoots at sharp triangle tips)
    changed = np.any(frame.image != scene.background, axis=2)
    ys, xs = np.nonzero(changed)
    inside_any = np.zeros(len(xs), dtype=bool)
    for x1, y1, x2, y2 in scene.full_boxes(3):
        inside_any |= (xs + 1 > x1 - 2) & (xs < x2 + 2) & (ys + 1 > y1 - 2) & (ys < y2 + 2)
    assert inside_any.all()
    # and every visible box has drawn pixels along both axes' full extent (the box is tight)
    for x1, y1, x2, y2 in frame.xyxy:
        region = changed[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
        assert region.any(axis=0).mean() > 0.8 and region.any(axis=1).mean() > 0.8


def _alone(scene, k, pad):
    """Shape ``k`` alone on a flat background, on a canvas grown by ``pad`` on every side."""
    per_shape = (
        "class_ids",
        "track_ids",
        "half_sizes",
        "colours",
        "start",
        "velocity",
        "angle",
        "spin",
    )
    fields = {name: getattr(scene, name)[[k]] for name in per_shape}
    fields["start"] = fields["start"] + pad
    canvas = (scene.height + 2 * pad, scene.width + 2 * pad, 3)
    return dataclasses.replace(
        scene,
        width=canvas[1],
        height=canvas[0],
        background=np.zeros(canvas, np.uint8),
        noise_sigma=0.0,
        **fields,
    )


def test_shapes_at_the_frame_edge_get_the_box_of_their_visible_part():
    scene = traffic_scene(3, 320, 240, 200)
    pad, checked, dropped = 80, 0, 0
    for index in range(0, 200, 3):
        full = scene.full_boxes(index)
        boxes, visible = scene.boxes(index)
        touches_frame = np.all((full[:, :2] < [320, 240]) & (full[:, 2:] > 0), axis=1)
        at_edge = np.any((full[:, :2] < 0) | (full[:, 2:] > [320, 240]), axis=1)
        for k in np.flatnonzero(at_edge & touches_frame):
            # pixels at least half covered (anti-aliasing smears sharp tips by a pixel or two)
            mask = (
                _alone(scene, k, pad).render(index).image.max(axis=2) >= scene.colours[k].max() / 2
            )
            in_frame = mask[pad : pad + 240, pad : pad + 320]
            fraction = in_frame.sum() / mask.sum()
            if (
                abs(fraction - MIN_VISIBLE_FRACTION) > 0.05
            ):  # away from the threshold it is unambiguous
                assert visible[k] == (fraction > MIN_VISIBLE_FRACTION), (index, k, fraction)
            if visible[k]:
                ys, xs = np.nonzero(in_frame)
                drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                assert np.abs(drawn - boxes[k]).max() <= 1.5, (
                    index,
                    k,
                    drawn,
                    boxes[k],
                )  # pixel quantisation
                checked += 1
            else:
                dropped += 1
    assert checked > 10 and dropped > 10


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_traffic_shapes_never_overlap_and_stay_clear_of_the_line_at_both_ends(seed):
    frame_count, width = 150, 480
    scene = traffic_scene(seed, width, 360, frame_count)
    for index in range(frame_count):
        xyxy, visible = scene.boxes(index)
        iou = box_iou(xyxy[visible], xyxy[visible])
        np.fill_diagonal(iou, 0)
        assert iou.max(initial=0) == 0, f"seed {seed} frame {index}: shapes overlap"
    for index in (0, frame_count - 1):
        boxes = scene.full_boxes(index)
        assert np.all((boxes[:, 2] < width / 2) | (boxes[:, 0] > width / 2)), (
            "a shape straddles the line"
        )


def _crossings_from_boxes(frames, line_x):
    """Count side changes of each track's visible box centre between its appearances."""
    last_side: dict[int, bool] = {}
    counts = {
        "left_to_right": {c: 0 for c in SHAPE_CLASSES},
        "right_to_left": {c: 0 for c in SHAPE_CLASSES},
    }
    for frame in frames:
        centres = (frame.xyxy[:, 0] + frame.xyxy[:, 2]) / 2
        for track, cls, cx in zip(frame.track_ids.tolist(), frame.class_ids.tolist(), centres):
            side = bool(cx >= line_x)
            if track in last_side and last_side[track] != side:
                counts["left_to_right" if side else "right_to_left"][SHAPE_CLASSES[cls]] += 1
            last_side[track] = side
    return counts


def test_demo_video_decodes_to_the_rendered_frames_and_its_counts_match_the_tracks(tmp_path):
    import av

    path = tmp_path / "demo.mp4"
    truth = write_demo_video(path, seconds=6, fps=10, seed=4, width=320, height=240)
    assert truth.frame_count == 60 and len(truth.frames) == 60
    assert truth.line == ((160.0, 0.0), (160.0, 240.0))
    assert sum(truth.crossings.values()) > 0
    assert _crossings_from_boxes(truth.frames, truth.line_x) == truth.crossings_by_class
    assert truth.crossings == {k: sum(v.values()) for k, v in truth.crossings_by_class.items()}

    scene = traffic_scene(4, 320, 240, 60)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(10)
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(decoded) == 60
    for index in (0, 30, 59):
        expected = scene.render(index).image.astype(np.float64)
        mse = np.mean((decoded[index].astype(np.float64) - expected) ** 2)
        assert 10 * np.log10(255**2 / mse) > 30, f"frame {index} does not match its ground truth"
        assert np.array_equal(scene.render(index).xyxy, truth.frames[index].xyxy)
    saved = truth.save(tmp_path / "truth.json")
    assert '"crossings"' in saved.read_text()


def test_longer_default_video_counts_match_the_tracks():
    scene = traffic_scene(0, 640, 480, 300)
    totals, by_class = line_crossings(scene, 300, 320.0)
    assert sum(totals.values()) >= 5
    frames = []
    for index in range(300):
        xyxy, visible = scene.boxes(index)
        frames.append(
            Frame(None, xyxy[visible], scene.class_ids[visible], scene.track_ids[visible])
        )
    assert _crossings_from_boxes(frames, 320.0) == by_class


def test_odd_video_size_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="must be even.*321x240"):
        write_demo_video(tmp_path / "x.mp4", seconds=1, fps=5, width=321, height=240)
