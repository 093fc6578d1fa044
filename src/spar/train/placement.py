"""Structural positions for nodes that pretraining never saw (the unseen-placement experiment).

Each physical node has a learnable structural position, one row per modality
table ``model.embed[m].structural_position`` (an ``nn.Embedding`` over global
node ids). A node whose windows were left out of pretraining keeps its random
initial rows, which the encoder has never been trained on. Two modes give such
nodes a structural position before the frozen encoder is fine-tuned:

``random``
    Each new node gets a copy of the rows of one node drawn at random (seeded)
    among the nodes learned in pretraining. A node is one physical device, so
    one draw per node serves every modality table.
``fitted``
    Start from the ``random`` draw of the same seed. Then, with the encoder,
    both decoders and every other parameter frozen, optimise only the new
    nodes' rows by minimising the pretraining loss (same masking, mask ratio
    and geometric augmentation as pretraining) on the group's unlabeled
    training windows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from spar.config import get
from spar.data.windows import WindowData
from spar.features.store import open_store
from spar.files import write_json
from spar.models.spar import SparModel
from spar.train import checkpoint as checkpoint_io
from spar.train.device import claim_device
from spar.train.pretrain import _autocast, _train_epoch, training_windows

log = logging.getLogger(__name__)

MODES = ("random", "fitted")
EVAL_SEED = 0  # seed of the fixed masks and augmentations that score the fit before and after


# --- which nodes pretraining saw ---------------------------------------------------------


def nodes_with_data(data: WindowData, modality: str) -> np.ndarray:
    """Return the sorted global node ids that have data of ``modality`` in at least one window of ``data``."""
    node_id = data.tensors["node_id"]
    present = data.tensors[f"present_{modality}"] & (node_id >= 0)
    return np.unique(node_id[present].numpy())


def learned_nodes(data: WindowData) -> np.ndarray:
    """Return the sorted global node ids whose structural position was trained in every modality table.

    A row of a modality's table receives gradient only from tokens with data,
    so a node counts as learned when it has data of every modality in at
    least one window of ``data`` (the pretraining windows).
    """
    learned = None
    for m in data.modalities:
        seen = nodes_with_data(data, m)
        learned = seen if learned is None else np.intersect1d(learned, seen)
    return learned


def nodes_seen_in_any_modality(data: WindowData) -> np.ndarray:
    """Return the sorted global node ids that have data of at least one modality in some window of ``data``."""
    return np.unique(np.concatenate([nodes_with_data(data, m) for m in data.modalities]))


def group_nodes(store: Path, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (sorted global node ids of every window of ``group`` in any split, names of all global nodes).

    Raises ValueError naming the groups of the store when ``group`` is not one of them.
    """
    ds = open_store(store)
    groups = ds["group"].values
    store_groups = sorted(set(groups.tolist()))
    if group not in store_groups:
        raise ValueError(f"{store}: group {group!r} not found; groups in the store: {store_groups}")
    node_id = ds["node_id"].values[groups == group]
    names = np.array([str(n) for n in ds["node_name"].values.tolist()])
    return np.unique(node_id[node_id >= 0]).astype(np.int64), names


# --- random assignment ---------------------------------------------------------------------


def structural_tables(model: SparModel) -> dict[str, nn.Embedding]:
    """Return the structural-position table of each modality; empty for a model without structural embedding."""
    return {m: model.embed[m].structural_position for m in model.modalities if model.embed[m].structural_position is not None}


def assign_random_structural_positions(
    model: SparModel, new_node_ids, learned_node_ids, generator: torch.Generator
) -> dict[int, int]:
    """Copy to each new node the structural position of a learned node drawn at random, in every modality table.

    One draw per node is shared by all modality tables, since a node is one
    physical device. Nodes are drawn without replacement while there are at
    least as many learned nodes as new ones, so no two new nodes share a
    structural position. Otherwise they are drawn with replacement, with a
    warning.

    Args:
        model: the model to change in place.
        new_node_ids: (K,) global ids of the nodes that receive a position.
        learned_node_ids: (P,) global ids of the nodes to draw from.
        generator: CPU generator of the draw.

    Returns:
        new node id -> the learned node id whose rows it received.
    """
    new_node_ids = [int(n) for n in new_node_ids]
    learned_node_ids = [int(n) for n in learned_node_ids]
    if not new_node_ids:
        return {}
    if not learned_node_ids:
        raise ValueError("no learned node to draw structural positions from; was the checkpoint pretrained on any window?")
    overlap = sorted(set(new_node_ids) & set(learned_node_ids))
    if overlap:
        raise ValueError(f"nodes {overlap} are both new and learned; a node cannot receive a position drawn from itself")

    if len(learned_node_ids) >= len(new_node_ids):
        draw = torch.randperm(len(learned_node_ids), generator=generator)[: len(new_node_ids)]
    else:
        log.warning("only %d learned nodes for %d new ones: drawing with replacement, so some new nodes share a structural position",
                    len(learned_node_ids), len(new_node_ids))
        draw = torch.randint(len(learned_node_ids), (len(new_node_ids),), generator=generator)
    source = {new: learned_node_ids[int(k)] for new, k in zip(new_node_ids, draw)}

    with torch.no_grad():
        for table in structural_tables(model).values():
            new_index = torch.tensor(list(source), device=table.weight.device)
            source_index = torch.tensor(list(source.values()), device=table.weight.device)
            table.weight[new_index] = table.weight[source_index]
    return source


# --- fitting ---------------------------------------------------------------------------------


class _RowOverride(nn.Module):
    """An embedding lookup whose rows ``node_ids`` come from a separate parameter.

    Stands in for a frozen ``nn.Embedding`` during fitting, so the optimiser
    holds only the new rows and cannot change any other row of the table.
    """

    def __init__(self, table: nn.Embedding, node_ids: torch.Tensor):
        super().__init__()
        self.table = table
        self.register_buffer("node_ids", node_ids)
        self.rows = nn.Parameter(table.weight.detach()[node_ids].clone())

    def forward(self, node: torch.Tensor) -> torch.Tensor:
        weight = self.table.weight.detach().index_put((self.node_ids,), self.rows)
        return F.embedding(node, weight)


@contextlib.contextmanager
def _rows_as_parameters(model: SparModel, node_ids: torch.Tensor):
    """Freeze every parameter of ``model`` and swap each structural table for a :class:`_RowOverride` of ``node_ids``.

    Yields the list of trainable row parameters, one (K, d_R) per modality.
    On exit the tables are put back and every ``requires_grad`` flag is
    restored. The fitted rows are written into the tables only when the
    block succeeds, so a failed fit leaves the model as it was.
    """
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    tables = structural_tables(model)
    overrides = {m: _RowOverride(table, node_ids.to(table.weight.device)) for m, table in tables.items()}
    for p in model.parameters():
        p.requires_grad_(False)
    for m, override in overrides.items():
        model.embed[m].structural_position = override
    try:
        yield [override.rows for override in overrides.values()]
        with torch.no_grad():
            for m, table in tables.items():
                table.weight[overrides[m].node_ids] = overrides[m].rows.detach()
    finally:
        for m, table in tables.items():
            model.embed[m].structural_position = table
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad[name])


def pretraining_loss(model: SparModel, data: WindowData, mask_ratio: float, batch_size: int, device: str, seed: int = EVAL_SEED) -> float:
    """Return the window-weighted mean pretraining loss of ``data`` under fixed masks and augmentations.

    The model runs in training mode, so positions are augmented as in
    pretraining. Masks, augmentations and dropout come from generators seeded
    with ``seed``, so two calls on the same model return the same number and
    calls before and after a change of the model score the same draws.
    """
    was_training = model.training
    model.train()
    # NOTE: the CUDA branch (device generator, forked CUDA RNG, bf16 autocast) has not been run; the tests run on CPU
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    total, count = 0.0, 0
    fork_devices = [torch.device(device)] if device.startswith("cuda") else []
    with torch.no_grad(), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        for batch in data.batches(batch_size, shuffle=False, device=device):
            with _autocast(device):
                loss = model(batch, mask_ratio, generator=generator)["loss"]
            n = int(batch["node_id"].shape[0])
            total += float(loss) * n
            count += n
    model.train(was_training)
    return total / count


def fit_structural_positions(
    model: SparModel, data: WindowData, new_node_ids, settings: dict, mask_ratio: float,
    generator: torch.Generator, device: str,
) -> dict:
    """Optimise only the structural positions of ``new_node_ids`` by minimising the pretraining loss on ``data``.

    Every other parameter, the other rows of the structural tables included,
    keeps its exact value: the optimiser (Adam, no weight decay) holds only a
    separate copy of the new rows, which is written back at the end. The loop
    is the pretraining epoch (same masking, mask ratio, augmentation,
    gradient clipping, warm-up and cosine learning-rate schedule).

    Args:
        model: the model to change in place, on ``device``.
        data: windows to fit on, such as the training windows of the new group.
        new_node_ids: (K,) global node ids whose rows are fitted.
        settings: ``epochs``, ``batch_size``, ``lr`` (peak learning rate) and
            optionally ``warmup_epochs`` (default 0).
        mask_ratio: fraction of tokens hidden from the encoder.
        generator: CPU generator for shuffling (and masking on CPU).
        device: torch device string.

    Returns:
        ``loss_before`` and ``loss_after`` (:func:`pretraining_loss` with fixed
        draws), and ``epochs``: per epoch, the mean of every loss term.
    """
    if not structural_tables(model):
        raise ValueError("the model has no structural embedding; there are no structural positions to fit")
    epochs = int(settings["epochs"])
    batch_size = int(settings["batch_size"])
    loop_settings = {"batch_size": batch_size, "lr": float(settings["lr"]), "warmup_epochs": int(settings.get("warmup_epochs", 0))}
    node_ids = torch.as_tensor([int(n) for n in new_node_ids], dtype=torch.long)
    loss_before = pretraining_loss(model, data, mask_ratio, batch_size, device)

    history: list[dict] = []
    with _rows_as_parameters(model, node_ids) as rows:
        optimizer = torch.optim.Adam(rows, lr=loop_settings["lr"])
        total_steps = epochs * -(-len(data) // batch_size)
        log_every = max(1, epochs // 10)
        # the bar shows on a terminal; job logs get one line per tenth of the fit instead
        progress = tqdm(range(epochs), desc="fit structural positions", unit="epoch", disable=None)
        for epoch in progress:
            history.append({"epoch": epoch + 1, **_train_epoch(model, data, optimizer, loop_settings, mask_ratio,
                                                               generator, device, epoch, total_steps)})
            progress.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            if (epoch + 1) % log_every == 0:
                log.info("fit epoch %d/%d: loss %.4f", epoch + 1, epochs, history[-1]["loss"])

    loss_after = pretraining_loss(model, data, mask_ratio, batch_size, device)
    log.info("fitted the structural positions of %d nodes over %d windows: pretraining loss %.4f -> %.4f",
             len(node_ids), len(data), loss_before, loss_after)
    return {"loss_before": loss_before, "loss_after": loss_after, "epochs": history}


# --- the command ------------------------------------------------------------------------------


def _check_store(ckpt: dict, checkpoint: Path, store: Path, model: SparModel) -> None:
    """Raise ValueError when ``store`` cannot be the store that ``checkpoint`` was pretrained on."""
    ds = open_store(store)
    n_global = ds.sizes["global_node"]
    if n_global != model.shape.n_global_nodes:
        raise ValueError(f"{store} has {n_global} global nodes but {checkpoint} was built for {model.shape.n_global_nodes}; "
                         "pass the store the checkpoint was pretrained on")
    store_hash, ckpt_hash = ds.attrs.get("raw_hash"), ckpt.get("store_raw_hash")
    if store_hash and ckpt_hash and store_hash != ckpt_hash:
        raise ValueError(f"{store} was built from other raw files than the store {checkpoint} was pretrained on "
                         f"(raw_hash {store_hash[:12]} vs {ckpt_hash[:12]}); pass that store or pretrain again")


def place(checkpoint: Path, store: Path, group: str, mode: str, out: Path, seed: int, tree: dict) -> None:
    """Give the nodes of ``group`` that pretraining never saw a structural position; write a new checkpoint.

    Writes ``out``, a checkpoint in the format of :func:`spar.train.pretrain.pretrain`
    with a ``placement`` entry added, which ``checkpoint.load_model`` reads.
    Beside it, ``<out stem>.placement.json`` lists the mode and every assigned
    node with the node its rows were copied from. For ``fitted`` it also has
    the pretraining loss before and after fitting and per epoch.

    Nothing changes, and the checkpoint is written as it was, when the method
    has no structural embedding or when every node of ``group`` was learned
    in pretraining, because replacing a learned position would discard what
    was learned.

    Args:
        checkpoint: pretraining checkpoint (model.pt).
        store: the tensor store the checkpoint was pretrained on.
        group: group whose nodes get positions, such as scene h24.
        mode: ``random`` or ``fitted``.
        out: checkpoint path to write.
        seed: seed of the draw of source nodes and of the fitting.
        tree: parameters; reads ``placement.fit`` (for ``fitted``),
            ``gpu.lock_dir`` and ``pretrain.threads`` (default 1), and
            ``mask_ratio`` when the checkpoint records none.
    """
    if mode not in MODES:
        raise ValueError(f"unknown placement mode {mode!r}; use one of {list(MODES)}")
    checkpoint, store, out = Path(checkpoint), Path(store), Path(out)
    if mode == "fitted":
        get(tree, "placement.fit")  # fail before loading anything when the settings are missing
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))

    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        device = claim.device
        model, ckpt = checkpoint_io.load_model(checkpoint, device=device)
        _check_store(ckpt, checkpoint, store, model)
        summary = {"mode": mode, "group": group, "seed": seed, "method": ckpt["method"], "checkpoint": str(checkpoint),
                   "store": str(store), "pretraining_excluded_groups": list(ckpt.get("exclude_groups", [])),
                   "device": device, "assigned": [], "fit": None}
        group_nodes(store, group)  # an unknown group is an error for every method
        started = time.perf_counter()

        if structural_tables(model):
            summary.update(_place_nodes(model, ckpt, store, group, mode, seed, tree, device))
        else:
            summary["note"] = "the method has no structural embedding; the checkpoint is unchanged"
            log.info("%s has no structural embedding: nothing to place, writing the checkpoint unchanged", ckpt["method"])
        summary["seconds"] = round(time.perf_counter() - started, 2)

        placed = dict(ckpt)
        placed["state_dict"] = {k: v.cpu() for k, v in model.state_dict().items()}
        # the checkpoint keeps the summary without the per-epoch history, which the JSON has
        fit = summary["fit"]
        placed["placement"] = dict(summary, fit=None if fit is None else {k: v for k, v in fit.items() if k != "epochs"})
        checkpoint_io.save(out, placed)

    write_json(out.with_name(f"{out.stem}.placement.json"), summary)
    log.info("placement %s of %s for %s seed %d: %d nodes assigned in %.1f s; wrote %s",
             mode, group, ckpt["method"], ckpt["seed"], len(summary["assigned"]), summary["seconds"], out)


def _place_nodes(model: SparModel, ckpt: dict, store: Path, group: str, mode: str, seed: int, tree: dict, device: str) -> dict:
    """Find the nodes of ``group`` unseen in pretraining and apply ``mode`` to them; returns entries of the summary."""
    nodes, names = group_nodes(store, group)
    exclude_groups = list(ckpt.get("exclude_groups", []))
    pretraining_data = training_windows(store, exclude_groups)
    learned = learned_nodes(pretraining_data)
    seen = nodes_seen_in_any_modality(pretraining_data)
    new = np.setdiff1d(nodes, seen)
    partly = np.setdiff1d(np.intersect1d(nodes, seen), learned)
    if partly.size:
        # such a node has a trained row in some modality table, so it is not unseen and keeps all its rows
        log.warning("nodes %s of %s had data of only some modalities in pretraining; their structural positions are left as they are",
                    names[partly].tolist(), group)
    if new.size == 0:
        log.warning("every node of %s was learned in pretraining (excluded groups: %s): leaving their structural positions",
                    group, exclude_groups or "none")
        return {"note": f"every node of {group} was learned in pretraining; the checkpoint is unchanged"}
    log.info("%d nodes of %s were not seen in pretraining: %s; drawing from %d learned nodes",
             new.size, group, names[new].tolist(), learned.size)

    # the draw comes first from a fresh generator, so both modes of one seed start from the same positions
    generator = torch.Generator()
    generator.manual_seed(seed)
    source = assign_random_structural_positions(model, new, learned, generator)
    assigned = [{"node_id": n, "node_name": str(names[n]), "source_node_id": s, "source_node_name": str(names[s])}
                for n, s in source.items()]
    for row in assigned:
        log.info("%s <- structural position of %s", row["node_name"], row["source_node_name"])
    result = {"assigned": assigned, "learned_nodes": int(learned.size)}
    if mode == "random":
        return result

    mask_ratio = ckpt.get("mask_ratio")
    if mask_ratio is None:
        mask_ratio = float(get(tree, "mask_ratio"))
        log.warning("%s records no mask ratio (not pretrained); fitting with mask_ratio %s from the parameters", ckpt["method"], mask_ratio)
    fit_settings = get(tree, "placement.fit")
    data = WindowData.from_store(store, split="train", group=group)
    fit = fit_structural_positions(model, data, new, fit_settings, float(mask_ratio), generator, device)
    result["fit"] = {"settings": dict(fit_settings), "mask_ratio": float(mask_ratio), "windows": len(data), **fit}
    return result
