"""Frame -> tensor: letterbox/stretch geometry, colour order, normalisation, layouts and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.models.package import InputSpec
from coral_inference.models.preprocess import (
    letterbox,
    letterbox_geometry,
    preprocess_image,
    stretch,
)


def test_letterbox_centres_the_frame_and_pads_with_the_pad_value():
    frame = np.full((720, 1280, 3), 200, np.uint8)
    fitted, geometry = letterbox(frame, (640, 640), pad_value=114)
    assert fitted.shape == (640, 640, 3)
    assert (geometry.new_w, geometry.new_h, geometry.pad_left, geometry.pad_top) == (
        640,
        360,
        0,
        140,
    )
    assert (
        (fitted[:140] == 114).all()
        and (fitted[500:] == 114).all()
        and (fitted[140:500] == 200).all()
    )


def test_stretch_fills_the_input():
    fitted, geometry = stretch(np.zeros((100, 50, 3), np.uint8), (64, 32))
    assert fitted.shape == (32, 64, 3) and (geometry.pad_left, geometry.pad_top) == (0, 0)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ((720, 1280), (640, 640)),
        ((480, 640), (320, 320)),
        ((1080, 607), (640, 384)),
        ((10, 10), (640, 640)),
    ],
)
def test_geometry_maps_input_corners_back_to_frame_corners(src, dst):
    geometry = letterbox_geometry(src, dst)
    corners = np.array(
        [
            [
                geometry.pad_left,
                geometry.pad_top,
                geometry.pad_left + geometry.new_w,
                geometry.pad_top + geometry.new_h,
            ]
        ],
        np.float32,
    )
    np.testing.assert_allclose(geometry.to_source(corners), [[0, 0, src[1], src[0]]], atol=1e-3)


def test_boxes_are_clipped_to_the_frame():
    geometry = letterbox_geometry((720, 1280), (640, 640))
    assert geometry.to_source(np.array([[-50, 0, 700, 700]], np.float32)).tolist() == [
        [0, 0, 1280, 720]
    ]


def test_nchw_float_rgb_normalised_tensor():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # B, G, R
    spec = InputSpec(width=4, height=4, scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    tensor, _ = preprocess_image(frame, spec)
    assert tensor.shape == (1, 3, 4, 4) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    expected_rgb = [(30 / 255 - 0.5) / 0.25, (20 / 255 - 0.5) / 0.5, (10 / 255 - 0.5) / 1.0]
    np.testing.assert_allclose(tensor[0, :, 0, 0], expected_rgb, rtol=1e-5)


def test_nhwc_uint8_bgr_is_fed_raw():
    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    tensor, _ = preprocess_image(
        frame, InputSpec(width=8, height=8, layout="NHWC", dtype="uint8", color="BGR")
    )
    assert tensor.dtype == np.uint8 and tensor.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(tensor[0], frame)


def test_float16_tensor():
    tensor, _ = preprocess_image(
        np.zeros((8, 8, 3), np.uint8), InputSpec(width=8, height=8, dtype="float16")
    )
    assert tensor.dtype == np.float16


def test_grey_and_bgra_frames_are_accepted():
    spec = InputSpec(width=8, height=8)
    assert preprocess_image(np.zeros((8, 8), np.uint8), spec)[0].shape == (1, 3, 8, 8)
    assert preprocess_image(np.zeros((8, 8, 4), np.uint8), spec)[0].shape == (1, 3, 8, 8)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            np.zeros((8, 8, 2), np.uint8),
            r"expected an H x W x 3 BGR image, got an array of shape \(8, 8, 2\)",
        ),
        (np.zeros((8, 8, 3), np.float32), r"expected a uint8 image, got dtype float32"),
        (np.zeros((0, 8, 3), np.uint8), r"empty image of shape \(0, 8, 3\)"),
    ],
)
def test_bad_frames_are_explained(frame, message):
    with pytest.raises(ValueError, match=message):
        preprocess_image(frame, InputSpec(width=8, height=8))
