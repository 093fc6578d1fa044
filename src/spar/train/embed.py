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


def embed(checkpoint: Path, store: Path, out: Path, group: str, tree: dict) -> None:
    """Write ``out`` (.npz) with the embeddings of every window of ``group`` in ``store`` (``all``: every window).

    Arrays: ``tokens`` (S, L, D) float16, ``valid`` (S, L) bool, ``token_group``
    (L,) the (modality, node) group of each token, ``target``,
    ``label``, ``split``, ``time``, ``sample``, plus ``objects`` and
    ``object_count`` when the store has them, and ``meta`` (JSON string).
    """
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        model, ckpt = checkpoint_io.load_model(checkpoint, device=claim.device)
        data = WindowData.from_store(store, group=None if group == ALL_GROUPS else group)
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
            "target_axis_names": data.attrs.get("target_axis_names")}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    log.info("embedded %d windows of %s with %s seed %d: tokens %s -> %s", len(data), group, ckpt["method"], ckpt["seed"],
             arrays["tokens"].shape, out)

