"""Post-fusion embeddings of a frozen encoder, computed once per checkpoint and group of windows.

Every head of every label ratio and seed reads the same embeddings, since the
encoder does not change during fine-tuning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from spar.config import get
from spar.data.windows import WindowData
from spar.files import atomic_path
from spar.train import checkpoint as checkpoint_io
from spar.train.device import claim_device

log = logging.getLogger(__name__)

EMBED_BATCH = 64
ALL_GROUPS = "all"  # group name that selects every window of the store


def drop_messages(data: WindowData, drop_prob: float, seed: int) -> int:
    """Mark each (window, node) message missing with probability ``drop_prob``, independently; return the count dropped.

    A node sends one message per window with all its modalities, so a drop
    removes the node from every modality of that window: its ``present_<m>``
    flags become False and its signals zero, as for a node without data. The
    draw depends only on ``seed`` and the window order of ``data``, so the
    same windows lose the same nodes in every method's embeddings.
    """
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"message drop probability must be in [0, 1); got {drop_prob}")
    if drop_prob == 0.0:
        return 0
    n_windows, n_slots = data.tensors["node_id"].shape
    generator = torch.Generator().manual_seed(seed)
    dropped = torch.rand(n_windows, n_slots, generator=generator) < drop_prob
    dropped &= data.tensors["node_id"] >= 0
    for m in data.modalities:
        data.tensors[f"present_{m}"] = data.tensors[f"present_{m}"] & ~dropped
        data.tensors[f"signal_{m}"] = data.tensors[f"signal_{m}"] * (~dropped)[:, :, None, None, None]
    return int(dropped.sum())


def embed(checkpoint: Path, store: Path, out: Path, group: str, tree: dict, drop_prob: float = 0.0, drop_seed: int = 0) -> None:
    """Write ``out`` (.npz) with the embeddings of every window of ``group`` in ``store`` (``all``: every window).

    Arrays: ``tokens`` (S, L, D) float16, ``valid`` (S, L) bool, ``token_group``
    (L,) the (modality, node) group of each token, ``target``,
    ``label``, ``split``, ``time``, ``sample``, plus ``objects`` and
    ``object_count`` when the store has them, and ``meta`` (JSON string).
    With ``drop_prob`` > 0 each node's message of each window is dropped
    with that probability before encoding (see :func:`drop_messages`).
    """
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        model, ckpt = checkpoint_io.load_model(checkpoint, device=claim.device)
        data = WindowData.from_store(store, group=None if group == ALL_GROUPS else group)
        n_dropped = drop_messages(data, drop_prob, drop_seed)
        if drop_prob:
            n_messages = int((data.tensors["node_id"] >= 0).sum())
            log.info("dropped %d of %d node messages (probability %g, seed %d)", n_dropped, n_messages, drop_prob, drop_seed)
        tokens, valid = [], []
        for batch in data.batches(EMBED_BATCH, shuffle=False, device=claim.device):
            z, v = model.encode(batch)
            tokens.append(z.float().cpu().numpy().astype(np.float16))
            valid.append(v.cpu().numpy())

    arrays = {
        "tokens": np.concatenate(tokens),
        "valid": np.concatenate(valid),
        "token_group": model.token_groups().numpy(),
        "split": data.split.astype(str),
        "time": data.time.astype("datetime64[ns]").astype(np.int64),
        "sample": data.tensors["sample"].numpy(),
        "label": data.tensors["label"].numpy(),
    }
    for key in ("target", "objects", "object_count"):
        if key in data.tensors:
            arrays[key] = data.tensors[key].numpy()
    meta = {"method": ckpt["method"], "seed": ckpt["seed"], "dataset": ckpt["dataset"], "group": group,
            "checkpoint": str(checkpoint), "store": str(store), "position_unit": data.attrs.get("position_unit"),
            "class_name": data.class_name,
            "target_axis_names": data.attrs.get("target_axis_names"),
            "drop_prob": float(drop_prob), "drop_seed": int(drop_seed) if drop_prob else None,
            "placement": ckpt.get("placement")}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    log.info("embedded %d windows of %s with %s seed %d: tokens %s -> %s", len(data), group, ckpt["method"], ckpt["seed"],
             arrays["tokens"].shape, out)

