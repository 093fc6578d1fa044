"""Tests of spar.eval.metrics on examples small enough to check by hand."""

import numpy as np
import pytest

from spar.eval.metrics import accuracy, confusion_matrix, localization_errors, macro_f1


def test_localization_errors_three_points():
    true = np.array([[0.0, 0.0], [1.0, 1.0], [-2.0, 5.0]])
    # errors (3, 4), (0, 0), (6, 8): distances 5, 0, 10 and squared distances 25, 0, 100
    pred = true + np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])

    errors = localization_errors(pred, true)

    assert errors["distance"] == pytest.approx(5.0)
    assert errors["mse"] == pytest.approx(125.0 / 3.0)


def test_localization_errors_sum_over_axes():
    # the squared error is summed over the three axes, not averaged: (1 + 4 + 4) = 9, distance 3
    errors = localization_errors([[1.0, 2.0, 2.0]], [[0.0, 0.0, 0.0]])

    assert errors["mse"] == pytest.approx(9.0)
    assert errors["distance"] == pytest.approx(3.0)


def test_localization_errors_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3, 2\)"):
        localization_errors(np.zeros((2, 2)), np.zeros((3, 2)))


def test_localization_errors_nan_in_true():
    true = np.array([[0.0, 0.0], [np.nan, 1.0]])
    with pytest.raises(ValueError, match="true has NaN.*sample 1"):
        localization_errors(np.zeros((2, 2)), true)


def test_localization_errors_nan_in_pred():
    pred = np.array([[0.0, np.inf], [0.0, 0.0]])
    with pytest.raises(ValueError, match="pred has NaN.*sample 0"):
        localization_errors(pred, np.zeros((2, 2)))


def test_localization_errors_empty_and_1d():
    with pytest.raises(ValueError, match="no samples"):
        localization_errors(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="expected \\(sample, axis\\)"):
        localization_errors(np.zeros(2), np.zeros(2))


# true classes and predictions used by the classification tests:
# class 0: samples 0, 1 -> predicted 0, 1
# class 1: samples 2, 3 -> predicted 1, 1
# class 2: samples 4, 5 -> predicted 2, 0
TRUE = [0, 0, 1, 1, 2, 2]
PRED = [0, 1, 1, 1, 2, 0]


def test_accuracy_hand_example():
    assert accuracy(TRUE, PRED) == pytest.approx(4 / 6)


def test_confusion_matrix_hand_example():
    matrix = confusion_matrix(TRUE, PRED, n_classes=3)

    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == len(TRUE)


def test_confusion_matrix_unused_class():
    matrix = confusion_matrix([0, 1], [0, 0], n_classes=4)

    assert matrix.shape == (4, 4)
    assert matrix[0, 0] == 1
    assert matrix[1, 0] == 1
    assert matrix.sum() == 2


def test_macro_f1_hand_example():
    # class 0: TP 1, FP 1, FN 1 -> 2/4 = 0.5
    # class 1: TP 2, FP 1, FN 0 -> 4/5 = 0.8
    # class 2: TP 1, FP 0, FN 1 -> 2/3
    expected = (0.5 + 0.8 + 2 / 3) / 3

    assert macro_f1(TRUE, PRED) == pytest.approx(expected)
    assert macro_f1(TRUE, PRED, n_classes=5) == pytest.approx(expected)


def test_macro_f1_perfect_and_missed_class():
    assert macro_f1([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    # class 1 is never predicted: F1 0 for it, 2/3 for class 0 (TP 1, FP 1), so the mean is 1/3
    assert macro_f1([0, 1], [0, 0]) == pytest.approx(1 / 3)


def test_classification_rejects_bad_labels():
    with pytest.raises(ValueError, match="negative class index -1"):
        accuracy([0, -1], [0, 0])
    with pytest.raises(ValueError, match="class index 3, but n_classes is 3"):
        confusion_matrix([0, 3], [0, 0], n_classes=3)
    with pytest.raises(ValueError, match="2 labels but pred has 3"):
        macro_f1([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="integer class indices"):
        accuracy([0.5, 1.0], [0, 1])
