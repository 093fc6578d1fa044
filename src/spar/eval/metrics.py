"""Evaluation metrics of the downstream tasks, in plain numpy.

Localization: mean squared Euclidean error and mean Euclidean distance error.
Classification: accuracy, macro F1 and the confusion matrix.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


# --- localization ---------------------------------------------------------------------------


def _as_points(values, name: str) -> np.ndarray:
    points = np.asarray(values, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"{name} has shape {points.shape}; expected (sample, axis), for example (n, 2) for east and north")
    return points


def _require_finite(points: np.ndarray, name: str, hint: str) -> None:
    """Raise ValueError naming how many samples of ``points`` (sample, axis) are NaN or infinite."""
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} has NaN or infinite values in {int(bad.sum())} of {points.shape[0]} samples (first: sample {first}); {hint}"
        )


def localization_errors(pred, true) -> dict[str, float]:
    """Compute the localization errors of point predictions.

    Args:
        pred: predicted positions, shape (sample, axis), in the dataset's unit (m or km).
        true: ground-truth positions, same shape and unit.

    Returns:
        ``mse``: mean over samples of the squared Euclidean error, summed over
        axes (unit^2). ``distance``: mean Euclidean error (unit).

    Raises:
        ValueError: on a shape mismatch, no samples, NaN or infinity in ``true``
        (samples without a location target must be dropped before scoring),
        or a non-finite prediction (a diverged model).
    """
    pred = _as_points(pred, "pred")
    true = _as_points(true, "true")
    if pred.shape != true.shape:
        raise ValueError(f"pred has shape {pred.shape} but true has shape {true.shape}; pass one prediction per target")
    if pred.shape[0] == 0:
        raise ValueError("no samples to score: pred and true are empty")

    _require_finite(true, "true", "drop samples without a location target before scoring")
    _require_finite(pred, "pred", "the model diverged, so check the learning rate and the input normalisation")

    squared = ((pred - true) ** 2).sum(axis=1)
    return {"mse": float(squared.mean()), "distance": float(np.sqrt(squared).mean())}


# --- classification -------------------------------------------------------------------------


def _as_labels(true, pred, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(f"labels must be 1-D class indices; got true {true.shape} and pred {pred.shape}")
    if true.shape != pred.shape:
        raise ValueError(f"true has {true.shape[0]} labels but pred has {pred.shape[0]}; pass one prediction per sample")
    if true.size == 0:
        raise ValueError("no samples to score: true and pred are empty")

    for name, labels in (("true", true), ("pred", pred)):
        if labels.dtype.kind not in "iu":
            if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                raise ValueError(f"{name} must contain integer class indices; got dtype {labels.dtype}")
        if labels.min() < 0:
            raise ValueError(f"{name} contains the negative class index {int(labels.min())}; drop unlabeled samples (-1) first")
        if n_classes is not None and labels.max() >= n_classes:
            raise ValueError(f"{name} contains class index {int(labels.max())}, but n_classes is {n_classes}")
    return true.astype(np.int64), pred.astype(np.int64)


def accuracy(true, pred) -> float:
    """Return the fraction of samples whose predicted class index equals the true one.

    Args:
        true, pred: class indices, shape (sample,).
    """
    true, pred = _as_labels(true, pred)
    return float((true == pred).mean())


def confusion_matrix(true, pred, n_classes: int) -> np.ndarray:
    """Count samples by true class (rows) and predicted class (columns).

    Args:
        true, pred: class indices in ``[0, n_classes)``, shape (sample,).
        n_classes: number of classes.

    Returns:
        int64 array of shape (n_classes, n_classes); entry ``[i, j]`` is the
        number of samples of true class i predicted as class j.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes is {n_classes}; expected at least 1")
    true, pred = _as_labels(true, pred, n_classes)
    counts = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def macro_f1(true, pred, n_classes: int | None = None) -> float:
    """Return the unweighted mean of the per-class F1 scores.

    The mean runs over the classes that occur in ``true`` or ``pred``, as
    scikit-learn does without an explicit label list, so a class absent from
    the test set and never predicted does not count as a zero. A class that
    occurs but is never predicted correctly has F1 0. Per class,
    F1 = 2 TP / (2 TP + FP + FN).

    Args:
        true, pred: class indices, shape (sample,).
        n_classes: number of classes, used only to check the indices; None
            accepts any non-negative index.
    """
    true, pred = _as_labels(true, pred, n_classes)
    size = int(max(true.max(), pred.max())) + 1
    matrix = confusion_matrix(true, pred, size)

    tp = np.diag(matrix).astype(float)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    occurring = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0

    # 2 TP + FP + FN is positive for every occurring class, so there is no division by zero.
    f1 = 2 * tp[occurring] / (2 * tp[occurring] + fp[occurring] + fn[occurring])
    return float(f1.mean())
