"""Mean average precision of point detections at a distance radius (mAP@r).

A detection is a class, a confidence and a point position (east, north) in
one window. It is a true positive at radius r when its class is right and it
lies within r (inclusive) of a ground-truth object of that class in the same
window that no higher-confidence detection has taken yet. Each detection
takes the nearest such object. A second detection near an already taken
object is therefore a false positive, which penalises duplicates as the
detection benchmarks do.

Average precision (AP) is the area under the precision-recall curve with
all-point interpolation, as in the PASCAL VOC devkit from 2010 on. The
precision at each recall level is replaced by the highest precision at that
recall or any higher one (a monotone envelope), and the area is summed over
the recall steps of the ranked detections. COCO uses the same envelope but
samples it at 101 recall levels, so its AP can differ slightly. mAP is the mean AP over the classes that have
at least one ground-truth object. A class without ground truth has no defined
recall, so it gets AP None and stays out of the mean. Its detections are
false positives of that class only, so they lower no other class's AP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Point detections or ground-truth objects, one row each.

    Attributes:
        window: (N,) int id of the window (sample) that each row belongs to.
        label: (N,) int class index.
        position: (N, 2) float east and north, in the unit of the radius (m for M3N-VC).
        score: (N,) float confidence in [0, 1] for detections; None for ground truth.
    """

    window: np.ndarray
    label: np.ndarray
    position: np.ndarray
    score: np.ndarray | None = None

    @classmethod
    def build(cls, window, label, position, score=None, name: str = "detections") -> "Detections":
        """Convert and check the arrays; ``name`` labels them in error messages.

        Raises:
            ValueError: the arrays differ in length, a position is not (N, 2)
                or has NaN or infinite values, or a score is not finite.
        """
        window = np.asarray(window).astype(np.int64).reshape(-1)
        label = np.asarray(label).astype(np.int64).reshape(-1)
        position = np.asarray(position, dtype=float)
        if position.ndim != 2 or position.shape[1] != 2:
            raise ValueError(f"{name} positions have shape {position.shape}; expected (n, 2) for east and north")
        lengths = {"window": window.size, "label": label.size, "position": position.shape[0]}
        if score is not None:
            score = np.asarray(score, dtype=float).reshape(-1)
            lengths["score"] = score.size
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{name} arrays differ in length ({lengths}); pass one entry per row to each")

        bad = ~np.isfinite(position).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{name} have NaN or infinite positions in {int(bad.sum())} of {position.shape[0]} rows "
                f"(first: row {int(np.flatnonzero(bad)[0])}); drop absent objects, or check the model for divergence"
            )
        if score is not None and not np.all(np.isfinite(score)):
            raise ValueError(f"{name} have NaN or infinite scores; check the model for divergence")
        return cls(window=window, label=label, position=position, score=score)


def match_detections(detections: Detections, truth: Detections, radius: float) -> np.ndarray:
    """Mark each detection as a true positive or a false positive at ``radius``.

    Detections are visited in order of decreasing score, with ties in input
    order (a stable sort). Each one takes the nearest ground-truth object of
    its class in its window that lies within ``radius`` (inclusive) and that
    no earlier detection has taken. Without such an object it is a false
    positive.

    Returns:
        (N,) int64 array: for each detection, the row of ``truth`` it took,
        or -1 for a false positive.
    """
    if detections.score is None:
        raise ValueError("detections need scores to be ranked; pass score=")
    if not radius > 0:
        raise ValueError(f"radius must be positive; got {radius}")

    # ground-truth rows grouped by (window, class), so each detection checks only its candidates
    candidates: dict[tuple[int, int], np.ndarray] = {}
    for key in set(zip(truth.window.tolist(), truth.label.tolist())):
        candidates[key] = np.flatnonzero((truth.window == key[0]) & (truth.label == key[1]))

    matched_truth = np.zeros(truth.window.size, dtype=bool)
    matched = np.full(detections.window.size, -1, dtype=np.int64)
    for i in np.argsort(-detections.score, kind="stable"):
        rows = candidates.get((int(detections.window[i]), int(detections.label[i])))
        if rows is None:
            continue
        rows = rows[~matched_truth[rows]]
        if rows.size == 0:
            continue
        distance = np.linalg.norm(truth.position[rows] - detections.position[i], axis=1)
        nearest = int(np.argmin(distance))
        if distance[nearest] <= radius:
            matched[i] = rows[nearest]
            matched_truth[rows[nearest]] = True
    return matched


def average_precision(score: np.ndarray, true_positive: np.ndarray, n_truth: int) -> float:
    """Return the all-point interpolated area under the precision-recall curve.

    Args:
        score: (N,) confidence of each detection of one class.
        true_positive: (N,) bool, whether each detection is a true positive.
        n_truth: number of ground-truth objects of the class, at least 1.
    """
    if n_truth < 1:
        raise ValueError(f"average precision needs at least one ground-truth object; got {n_truth}")
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    hits = np.asarray(true_positive, dtype=bool)[order]
    if hits.size == 0:
        return 0.0

    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / n_truth
    precision = tp / (tp + fp)

    # monotone envelope: the best precision at this recall or any higher one
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_step = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(recall_step * envelope))


@dataclass(frozen=True)
class RadiusScores:
    """Scores at one radius.

    Attributes:
        radius: matching radius, in the unit of the positions.
        mean_ap: mean AP over the classes with ground truth, as a fraction.
        ap: class index -> AP as a fraction, None for a class without ground truth.
        n_truth: class index -> number of ground-truth objects.
        n_true_positive: class index -> number of true-positive detections.
    """

    radius: float
    mean_ap: float
    ap: Mapping[int, float | None]
    n_truth: Mapping[int, int]
    n_true_positive: Mapping[int, int]


def mean_average_precision(detections: Detections, truth: Detections, radii: Sequence[float],
                           classes: Sequence[int]) -> list[RadiusScores]:
    """Compute mAP@r and the AP of each class for each radius in ``radii``.

    Args:
        detections: every detection of every test window, with scores.
        truth: every ground-truth object of the test windows.
        radii: matching radii, in the unit of the positions (m for M3N-VC).
        classes: object class indices to score. Detections and ground truth
            of other classes are ignored.

    Raises:
        ValueError: no class of ``classes`` has a ground-truth object, so no
            AP is defined, or a radius is not positive.
    """
    classes = [int(c) for c in classes]
    n_truth = {c: int(np.sum(truth.label == c)) for c in classes}
    scored = [c for c in classes if n_truth[c] > 0]
    if not scored:
        raise ValueError(
            f"the test windows have no ground-truth object of the classes {classes}, so mAP is undefined; "
            "score a split that contains objects"
        )

    results = []
    for radius in radii:
        matched = match_detections(detections, truth, float(radius))
        ap: dict[int, float | None] = {}
        hits: dict[int, int] = {}
        for c in classes:
            mine = detections.label == c
            hits[c] = int(np.sum(matched[mine] >= 0))
            if n_truth[c] == 0:
                ap[c] = None
                continue
            ap[c] = average_precision(detections.score[mine], matched[mine] >= 0, n_truth[c])
        mean_ap = float(np.mean([ap[c] for c in scored]))
        results.append(RadiusScores(radius=float(radius), mean_ap=mean_ap, ap=ap, n_truth=n_truth, n_true_positive=hits))
    return results
