"""mAP against hand-worked cases: the accuracy test relies on this arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from coral_inference.demo.evaluation import average_precision, box_iou, mean_average_precision

GT = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)


def test_box_iou_of_known_pairs():
    iou = box_iou(
        np.array([[0, 0, 10, 10], [5, 0, 15, 10]]), np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    )
    assert iou == pytest.approx(np.array([[1.0, 0.0], [50 / 150, 0.0]]))
    assert box_iou(np.zeros((0, 4)), GT).shape == (0, 2)


def test_perfect_predictions_score_one_and_none_score_zero():
    truths = [(GT, np.array([0, 1]))]
    perfect = mean_average_precision(
        [(GT, np.array([0.9, 0.8]), np.array([0, 1]))], truths, num_classes=2
    )
    assert perfect["map"] == 1.0 and perfect["per_class"] == [1.0, 1.0]
    empty = mean_average_precision(
        [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], truths, num_classes=2
    )
    assert empty["map"] == 0.0


def test_ranked_hits_and_misses_give_the_hand_computed_area():
    # class 0, two ground-truth boxes; ranked: hit (0.9), miss (0.8), hit (0.7)
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 0.5 * 1 + 0.5 * 2/3
    predictions = [
        (
            np.array([[0, 0, 10, 10], [50, 50, 60, 60], [21, 20, 30, 30]]),
            np.array([0.9, 0.8, 0.7]),
            np.zeros(3),
        ),
    ]
    result = mean_average_precision(predictions, [(GT, np.zeros(2))], num_classes=1)
    assert result["map"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(
        np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    ) == pytest.approx(5 / 6)


def test_duplicates_wrong_classes_and_low_overlap_are_false_positives():
    predictions = [
        (
            np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 4]]),
            np.array([0.9, 0.8, 0.95, 0.99]),
            np.array([0, 0, 1, 0]),
        )
    ]
    result = mean_average_precision(predictions, [(GT, np.array([0, 0]))], num_classes=2)
    # class 0 ranked: low-overlap miss (0.99), hit (0.9), duplicate (0.8); one GT never found
    # precision 0, 1/2, 1/3 at recall 0, 1/2, 1/2 -> AP = 0.5 * 0.5
    assert result["per_class"][0] == pytest.approx(0.25)
    assert result["per_class"][1] is None  # no ground truth of class 1: not averaged
    assert result["map"] == pytest.approx(0.25)


def test_matching_is_per_image():
    box = np.array([[0, 0, 10, 10]], dtype=float)
    predictions = [
        (box, np.array([0.9]), np.array([0])),
        (np.zeros((0, 4)), np.zeros(0), np.zeros(0)),
    ]
    truths = [(np.zeros((0, 4)), np.zeros(0)), (box, np.array([0]))]
    assert mean_average_precision(predictions, truths, num_classes=1)["map"] == 0.0
