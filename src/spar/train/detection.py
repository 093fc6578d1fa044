"""Joint classification and localization of several objects per window with a set-prediction head.

The head emits a fixed number of (class, position) predictions per window.
Training matches them one-to-one to the window's ground-truth objects with
the Hungarian algorithm, as DETR (Carion et al., 2020) does. Matched
predictions learn their object's class and position, and every other
prediction learns the extra "no object" class. Testing scores every
prediction with mAP at several distance radii (``spar.eval.detection``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from spar.config import get
from spar.eval.detection import Detections, mean_average_precision
from spar.files import atomic_path, write_json
from spar.models.heads import SetPredictionHead
from spar.train import checkpoint as checkpoint_io
from spar.train.device import claim_device
from spar.train.finetune import _run_record, _split_indices, load_embeddings, pool_token_groups, resume_settings, train_head
from spar.train.pretrain import seed_everything

log = logging.getLogger(__name__)

BACKGROUND = "background"  # class name of windows without a vehicle, which is not an object class


# --- matching and loss ------------------------------------------------------------------------------


def match_queries(class_prob: np.ndarray, position: np.ndarray, truth_class: np.ndarray, truth_position: np.ndarray,
                  class_weight: float, position_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Assign each ground-truth object of one window to its own query at the lowest total cost.

    The cost of giving object k to query q is
    ``-class_weight * class_prob[q, truth_class[k]] + position_weight * |position[q] - truth_position[k]|_1``.
    ``scipy.optimize.linear_sum_assignment`` finds the assignment with the
    lowest summed cost, which can differ from taking the cheapest pairs one
    after another.

    Args:
        class_prob: (Q, C + 1) softmax probabilities of each query.
        position: (Q, P) predicted positions, normalised units.
        truth_class: (K,) class index of each object, K <= Q.
        truth_position: (K, P) object positions, normalised units.

    Returns:
        (query indices, object indices), each (K,), sorted by query index.
    """
    n_queries, n_objects = class_prob.shape[0], truth_class.shape[0]
    if n_objects > n_queries:
        raise ValueError(f"a window has {n_objects} objects but the head has only {n_queries} queries; raise finetune.detection.queries")
    distance = np.abs(position[:, None, :] - truth_position[None, :, :]).sum(axis=-1)  # (Q, K)
    cost = -class_weight * class_prob[:, truth_class] + position_weight * distance
    queries, objects = linear_sum_assignment(cost)
    return queries, objects


class SetPredictionLoss:
    """Hungarian-matched set loss of a :class:`SetPredictionHead`.

    ``loss = class_weight * CE + position_weight * L1``, where CE is the
    cross-entropy over every query of the batch (matched queries to their
    object's class, the others to "no object"), averaged with per-query
    weights 1 for object classes and ``no_object_weight`` for "no object".
    L1 is the absolute position error summed over the axes and averaged
    over the matched queries of the batch, or 0 when the batch has no object.
    The same two weights set the matching cost (:func:`match_queries`).

    Called as ``loss((logits, positions), target)`` with logits (B, Q, C + 1),
    positions (B, Q, P) and target (B, O, 1 + P): the class index (0 .. C-1)
    and normalised position of up to O objects per window, NaN rows where a
    window has fewer objects.
    """

    def __init__(self, n_classes: int, class_weight: float = 1.0, position_weight: float = 5.0, no_object_weight: float = 0.1):
        if not 0.0 < no_object_weight <= 1.0:
            raise ValueError(f"no_object_weight must be in (0, 1]; got {no_object_weight}")
        self.n_classes = n_classes
        self.class_weight = float(class_weight)
        self.position_weight = float(position_weight)
        self.class_weights = torch.ones(n_classes + 1)
        self.class_weights[n_classes] = float(no_object_weight)

    def match(self, logits: torch.Tensor, positions: torch.Tensor, target: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return the (query indices, object rows) of each window of the batch, matched without gradients."""
        class_prob = logits.detach().float().softmax(dim=-1).cpu().numpy()
        predicted = positions.detach().float().cpu().numpy()
        target = target.detach().float().cpu().numpy()
        matches = []
        for b in range(target.shape[0]):
            rows = np.flatnonzero(np.isfinite(target[b, :, 0]))
            queries, objects = match_queries(class_prob[b], predicted[b], target[b, rows, 0].astype(np.int64),
                                             target[b, rows, 1:], self.class_weight, self.position_weight)
            matches.append((queries, rows[objects]))
        return matches

    def terms(self, output: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> dict:
        """Return the loss terms: ``class`` (CE), ``position`` (L1), ``total`` (weighted sum) and ``matches``."""
        logits, positions = output
        batch, n_queries, n_logits = logits.shape
        if n_logits != self.n_classes + 1:
            raise ValueError(f"the head emits {n_logits} class logits; the loss expects {self.n_classes} classes + no object")
        matches = self.match(logits, positions, target)
        object_class = target[..., 0].detach().cpu().nan_to_num(nan=-1.0).long()  # (B, O), -1 where no object

        # class targets: "no object" unless matched
        target_class = torch.full((batch, n_queries), self.n_classes, dtype=torch.long)
        window_index, query_index, object_index = [], [], []
        for b, (queries, objects) in enumerate(matches):
            target_class[b, queries] = object_class[b, objects]
            window_index += [b] * len(queries)
            query_index += queries.tolist()
            object_index += objects.tolist()
        target_class = target_class.to(logits.device)
        class_loss = F.cross_entropy(logits.reshape(-1, n_logits), target_class.reshape(-1),
                                     weight=self.class_weights.to(logits.device, logits.dtype))

        # position targets: matched pairs only
        if window_index:
            predicted = positions[window_index, query_index]
            true = target[window_index, object_index, 1:].to(positions.dtype)
            position_loss = (predicted - true).abs().sum(dim=-1).mean()
        else:
            position_loss = positions.sum() * 0.0
        total = self.class_weight * class_loss + self.position_weight * position_loss
        return {"class": class_loss, "position": position_loss, "total": total, "matches": matches}

    def __call__(self, output: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return self.terms(output, target)["total"]


# --- inputs -------------------------------------------------------------------------------------------


def object_targets(arrays: dict, source: Path) -> tuple[np.ndarray, list[int]]:
    """Check the ``objects`` of an embeddings file and map their classes to head classes.

    Returns:
        objects (S, O, 3) float with the class as a head class index (0 ..
        C-1, the order of the object classes in ``meta["class_name"]``),
        east and north; NaN rows where a window has fewer objects. Also the
        store class index of each head class.
    """
    for key in ("objects", "object_count"):
        if key not in arrays:
            raise ValueError(
                f"embeddings {source} have no {key!r} array; embed a store with per-window object lists "
                "(the M3N-VC store written by `spar ingest m3nvc`)"
            )
    objects = np.asarray(arrays["objects"], dtype=np.float64)
    count = np.asarray(arrays["object_count"], dtype=np.int64)
    if objects.ndim != 3 or objects.shape[2] != 3:
        raise ValueError(f"embeddings {source}: objects have shape {objects.shape}; expected (sample, object, 3) for class, east, north")

    present = np.isfinite(objects).all(axis=2)
    mismatch = present.sum(axis=1) != count
    if mismatch.any():
        first = int(np.flatnonzero(mismatch)[0])
        raise ValueError(
            f"embeddings {source}: window {first} has {int(present[first].sum())} object rows with finite values "
            f"but object_count {int(count[first])} ({int(mismatch.sum())} such windows); re-ingest the store"
        )

    class_names = list(arrays["meta"]["class_name"])
    object_classes = [i for i, name in enumerate(class_names) if name != BACKGROUND]
    head_class = np.full(len(class_names), -1, dtype=np.int64)
    head_class[object_classes] = np.arange(len(object_classes))
    store_class = objects[..., 0][present].astype(np.int64)
    in_range = (store_class >= 0) & (store_class < len(class_names))
    invalid = ~in_range
    invalid[in_range] = head_class[store_class[in_range]] < 0
    if invalid.any():
        bad = int(store_class[invalid][0])
        raise ValueError(
            f"embeddings {source}: an object has class index {bad}, which is not an object class of {class_names}; "
            f"objects must name a vehicle class, not {BACKGROUND!r}, so re-ingest the store"
        )

    mapped = objects.copy()
    mapped[..., 0][present] = head_class[store_class]
    return mapped, object_classes


def _format_time(arrays: dict, index: np.ndarray) -> pd.Index:
    return pd.to_datetime(arrays["time"][index]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- fine-tuning --------------------------------------------------------------------------------------


def finetune_detection(embeddings: Path, out_dir: Path, label_ratio: float, seed: int, tree: dict,
                       task: str = "detection", tags: dict | None = None) -> None:
    """Train a set-prediction head on the labeled training windows and score it with mAP@r on the test windows.

    Settings come from ``finetune.<task>``: queries, head_layers, epochs,
    batch_size, lr, weight_decay, class_weight, position_weight,
    no_object_weight, radii_m, and optionally train_split and test_split.
    Positions are standardised with the mean and std over the objects of the
    labeled training windows. Windows without objects are kept, and all their
    queries learn "no object".

    Writes into ``out_dir``:
        ``metrics.json``: the fields every run shares, ``map@<r>`` (fraction)
        for each radius, ``ap@<r>`` (class name -> AP fraction, null for a
        class without test objects), ``radii_m`` and object counts.
        ``predictions.csv``: one row per query and test window, with sample,
        time, query, class_index (index into the store's class names), class,
        confidence (the highest object-class probability), no_object_prob,
        east and north (m). Every query is listed, including those whose
        most likely class is "no object".
        ``ground_truth.csv``: one row per object of a test window, with
        sample, time, object, class_index, class, east and north (m). A test
        window without objects has no row.
        ``head.pt``: the trained head and its normalisation.
    """
    settings = get(tree, f"finetune.{task}")
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    arrays = load_embeddings(embeddings)
    meta = arrays["meta"]
    unit = meta.get("position_unit") or "m"
    if unit != "m":
        raise ValueError(f"embeddings {embeddings} have positions in {unit!r}, but finetune.{task}.radii_m are metres; use a store in metres")
    class_names = list(meta["class_name"])
    objects, object_classes = object_targets(arrays, embeddings)
    count = np.isfinite(objects[..., 0]).sum(axis=1)
    n_queries = int(settings["queries"])
    if count.max(initial=0) > n_queries:
        raise ValueError(
            f"embeddings {embeddings} have windows with {int(count.max())} objects, more than "
            f"finetune.{task}.queries = {n_queries}; raise queries to at least {int(count.max())}"
        )
    train, test = _split_indices(arrays, settings, np.ones(count.size, dtype=bool), label_ratio, seed, embeddings)

    # standardise positions with the objects of the labeled training windows
    train_positions = objects[train][np.isfinite(objects[train, :, 0])][:, 1:]
    if train_positions.shape[0] == 0:
        raise ValueError(f"embeddings {embeddings}: the {train.size} labeled training windows have no object; raise the label ratio")
    mean = train_positions.mean(axis=0)
    std = train_positions.std(axis=0) + 1e-6
    target = objects.copy()
    target[..., 1:] = (objects[..., 1:] - mean) / std

    resume = resume_settings(tree, out_dir)
    generator = seed_everything(seed)
    tokens, valid = pool_token_groups(arrays["tokens"], arrays["valid"], arrays["token_group"])
    target_tensor = torch.from_numpy(target.astype(np.float32))
    loss_fn = SetPredictionLoss(len(object_classes), class_weight=float(settings["class_weight"]),
                                position_weight=float(settings["position_weight"]),
                                no_object_weight=float(settings["no_object_weight"]))
    head_config = {
        "dim": int(tokens.shape[-1]), "n_classes": len(object_classes), "queries": n_queries,
        "layers": int(settings["head_layers"]), "heads": int(get(tree, "model.heads")),
        "mlp_ratio": float(get(tree, "model.mlp_ratio")),
    }

    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        head = SetPredictionHead(**head_config).to(claim.device)
        tokens, valid, target_tensor = tokens.to(claim.device), valid.to(claim.device), target_tensor.to(claim.device)
        losses = train_head(head, tokens[train], valid[train], target_tensor[train], loss_fn, settings, generator, **resume)
        with torch.no_grad():
            logits, positions = head(tokens[test], valid[test])
            prob = logits.float().softmax(dim=-1).cpu().numpy()  # (T, Q, C + 1)
            predicted = positions.float().cpu().numpy() * std + mean  # (T, Q, 2), m

    # every query is a detection of its most likely object class
    object_prob = prob[..., : len(object_classes)]
    head_label = object_prob.argmax(axis=-1)  # (T, Q)
    confidence = object_prob.max(axis=-1)
    store_label = np.asarray(object_classes)[head_label]
    window = np.repeat(np.arange(test.size), n_queries)
    detections = Detections.build(window, store_label.reshape(-1), predicted.reshape(-1, 2), confidence.reshape(-1),
                                  name=f"detections of {embeddings}")

    truth_window, truth_slot = np.nonzero(np.isfinite(objects[test, :, 0]))
    truth_label = np.asarray(object_classes)[objects[test[truth_window], truth_slot, 0].astype(np.int64)]
    truth_position = objects[test[truth_window], truth_slot, 1:]
    truth = Detections.build(truth_window, truth_label, truth_position, name=f"test objects of {embeddings}")

    radii = [float(r) for r in settings["radii_m"]]
    scores = mean_average_precision(detections, truth, radii, object_classes)

    metrics = _run_record(task, arrays, seed, label_ratio, train, test, losses, tags)
    metrics.update({
        "radii_m": radii,
        "queries": n_queries,
        "object_class_name": [class_names[c] for c in object_classes],
        "n_test_objects": int(truth_window.size),
        "n_test_objects_per_class": {class_names[c]: n for c, n in scores[0].n_truth.items()},
        "unit": unit,
    })
    for result in scores:
        metrics[f"map@{result.radius:g}"] = result.mean_ap
        metrics[f"ap@{result.radius:g}"] = {class_names[c]: ap for c, ap in result.ap.items()}

    predictions = pd.DataFrame({
        "sample": np.repeat(arrays["sample"][test], n_queries),
        "time": np.repeat(np.asarray(_format_time(arrays, test)), n_queries),
        "query": np.tile(np.arange(n_queries), test.size),
        "class_index": store_label.reshape(-1),
        "class": [class_names[c] for c in store_label.reshape(-1)],
        "confidence": confidence.reshape(-1),
        "no_object_prob": prob[..., -1].reshape(-1),
        "east": predicted[..., 0].reshape(-1),
        "north": predicted[..., 1].reshape(-1),
    })
    ground_truth = pd.DataFrame({
        "sample": arrays["sample"][test[truth_window]],
        "time": np.asarray(_format_time(arrays, test[truth_window])),
        "object": truth_slot,
        "class_index": truth_label,
        "class": [class_names[c] for c in truth_label],
        "east": truth_position[:, 0],
        "north": truth_position[:, 1],
    })

    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    for name, table in (("predictions.csv", predictions), ("ground_truth.csv", ground_truth)):
        with atomic_path(out_dir / name, suffix=".csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
    checkpoint_io.save(out_dir / "head.pt", {
        "state_dict": {k: v.cpu() for k, v in head.state_dict().items()},
        **head_config,
        "object_class_name": [class_names[c] for c in object_classes],
        "object_class_index": list(object_classes),
        "position_mean": mean.tolist(), "position_std": std.tolist(), "unit": unit,
        "embeddings": str(embeddings),
    })
    resume["resume_path"].unlink(missing_ok=True)
    summary = ", ".join(f"mAP@{r.radius:g} {100 * r.mean_ap:.1f}%" for r in scores)
    log.info("%s seed %d, %.0f%% labels (%d windows): %s on %d test windows with %d objects",
             meta["method"], seed, 100 * label_ratio, train.size, summary, test.size, truth_window.size)
