"""Segmentation, keypoint and classification labels of the synthetic scenes, and their metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coral_inference.demo.evaluation import keypoint_pck, mask_iou, mask_mean_average_precision
from coral_inference.demo.scenes import (
    CIRCLE,
    SHAPE_CLASSES,
    SQUARE,
    TRIANGLE,
    cluttered_scene,
    traffic_scene,
)
from coral_inference.demo.tasks import (
    KEYPOINT_NAMES,
    POSE_MAX_TURN,
    Transform,
    classification_still,
    pose_still,
    shape_keypoints,
    shape_masks,
    task_still,
)


@pytest.mark.parametrize("seed", range(6))
def test_masks_fill_the_reported_boxes_and_match_the_drawn_pixels(seed):
    scene, index = task_still(seed, 320, 240)
    scene = dataclasses.replace(scene, noise_sigma=0.0)
    frame = scene.render(index)
    masks = shape_masks(scene, index)
    assert masks.shape == (len(frame.xyxy), 240, 320) and masks.dtype == bool
    background = scene.background
    differs = np.any(frame.image.astype(int) - background.astype(int) != 0, axis=2)
    for mask, box in zip(masks, frame.xyxy):
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue  # fully covered by a later shape
        # every mask pixel lies in its box (cv2 fills pixels whose centre is on the edge)
        assert xs.min() >= box[0] - 1.5 and xs.max() + 1 <= box[2] + 1.5
        assert ys.min() >= box[1] - 1.5 and ys.max() + 1 <= box[3] + 1.5
        # and was drawn over the background (anti-aliased edges aside)
        assert differs[mask].mean() > 0.9
    # masks of different shapes never share a pixel (later shapes cover earlier ones)
    assert masks.sum(axis=0).max(initial=0) <= 1


def test_masks_follow_a_letterbox_transform():
    scene = dataclasses.replace(cluttered_scene(3, 640, 480, max_objects=6), noise_sigma=0.0)
    full = shape_masks(scene, 0)
    small = shape_masks(scene, 0, 160, 160, Transform(0.25, 0.0, 20.0), supersample=4)
    assert small.shape == (len(full), 160, 160)
    # downsample the full-resolution masks by area and shift them by the pad: same masks
    import cv2

    for big, little in zip(full, small):
        expected = (
            cv2.resize(big.astype(np.float32), (160, 120), interpolation=cv2.INTER_AREA) > 0.5
        )
        shifted = np.zeros((160, 160), dtype=bool)
        shifted[20:140] = expected
        if shifted.sum() > 20:
            assert mask_iou(shifted[None], little[None])[0, 0] > 0.85


def test_keypoints_are_centres_and_vertices_in_canonical_order():
    scene = traffic_scene(5, 640, 480, frame_count=40)
    scene = dataclasses.replace(
        scene, angle=np.zeros(len(scene.class_ids)), spin=np.zeros(len(scene.class_ids))
    )
    frame = scene.render(0)
    kps = shape_keypoints(scene, 0)
    assert kps.shape == (len(frame.xyxy), len(KEYPOINT_NAMES), 3)
    centres = (frame.xyxy[:, :2] + frame.xyxy[:, 2:]) / 2
    inside = np.all((frame.xyxy[:, :2] > 0) & (frame.xyxy[:, 2:] < [640, 480]), axis=1)
    for kp, cls, box, centre, whole in zip(kps, frame.class_ids, frame.xyxy, centres, inside):
        assert kp[0, 2] == 1.0  # the centre is always a keypoint of a present shape
        if not whole:
            continue
        if cls == SQUARE:  # upright square: corners clockwise from the top-left
            np.testing.assert_allclose(
                kp[1:, :2], [box[[0, 1]], box[[2, 1]], box[[2, 3]], box[[0, 3]]], atol=1e-3
            )
            np.testing.assert_allclose(kp[0, :2], centre, atol=1e-3)
        elif cls == TRIANGLE:  # upright triangle: the top vertex first, no fourth vertex
            assert kp[1, 1] == pytest.approx(box[1], abs=1e-3) and kp[4, 2] == 0.0
            assert kp[2, 0] > kp[3, 0]  # then clockwise: lower right, lower left
        else:
            assert cls == CIRCLE and not kp[1:, 2].any()


def test_keypoint_order_does_not_change_when_a_polygon_turns_by_its_symmetry():
    scene = cluttered_scene(8, 640, 480, max_objects=8)
    base = shape_keypoints(scene, 0)
    period = np.select(
        [scene.class_ids == SQUARE, scene.class_ids == TRIANGLE], [np.pi / 2, 2 * np.pi / 3], 0.0
    )
    turned = shape_keypoints(dataclasses.replace(scene, angle=scene.angle + period), 0)
    np.testing.assert_allclose(base, turned, atol=1e-3)


def test_pose_stills_keep_turns_inside_the_unambiguous_range():
    for seed in range(10):
        scene, _ = pose_still(seed, 480, 360)
        assert not scene.spin.any()
        for cls, limit in POSE_MAX_TURN.items():
            assert np.all(np.abs(scene.angle[scene.class_ids == cls]) <= limit)


def test_classification_stills_have_one_dominant_shape():
    classes = []
    for seed in range(30):
        still = classification_still(seed, 320, 240)
        assert still.image.shape == (240, 320, 3)
        assert still.present[still.class_id] and still.present.dtype == bool
        classes.append(still.class_id)
    assert set(classes) == set(range(len(SHAPE_CLASSES)))
    a, b = classification_still(77, 320, 240), classification_still(77, 320, 240)
    assert np.array_equal(a.image, b.image) and a.class_id == b.class_id


def test_mask_map_and_pck_score_perfect_and_poor_predictions():
    scene = dataclasses.replace(cluttered_scene(2, 320, 240, max_objects=5), noise_sigma=0.0)
    frame, masks, kps = scene.render(0), shape_masks(scene, 0), shape_keypoints(scene, 0)
    scores = np.linspace(0.9, 0.5, len(masks))
    perfect = mask_mean_average_precision(
        [(masks, scores, frame.class_ids)], [(masks, frame.class_ids)], 3
    )
    assert perfect["map"] == pytest.approx(1.0)
    none = masks[:0]  # an image without ground truth, or without predictions
    assert mask_iou(masks, none).shape == (len(masks), 0) and mask_iou(none, masks).shape == (
        0,
        len(masks),
    )
    shifted = np.roll(masks, 40, axis=2)
    assert (
        mask_mean_average_precision(
            [(shifted, scores, frame.class_ids)], [(masks, frame.class_ids)], 3
        )["map"]
        < 0.5
    )
    truth = [(frame.xyxy, frame.class_ids, kps)]
    exact = keypoint_pck([(frame.xyxy, scores, frame.class_ids, kps[..., :2])], truth)
    assert exact["pck"] == 1.0 and exact["visible"] == int(kps[..., 2].sum())
    size = (frame.xyxy[:, 2:] - frame.xyxy[:, :2]).max(axis=1)
    off = kps[..., :2] + (0.08 * size)[:, None, None]  # 0.08 * sqrt(2) > 0.05 of the box size
    assert keypoint_pck([(frame.xyxy, scores, frame.class_ids, off)], truth)["pck"] == 0.0
    missing = keypoint_pck(
        [(frame.xyxy[:0], scores[:0], frame.class_ids[:0], kps[:0, :, :2])], truth
    )
    assert missing["pck"] == 0.0 and missing["unmatched_objects"] == len(frame.xyxy)
