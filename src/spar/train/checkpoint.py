"""Checkpoints: written atomically, loaded with the model they describe."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from spar.files import atomic_path
from spar.models.spar import ModelConfig, SparModel
from spar.models.tokens import DataShape

log = logging.getLogger(__name__)


def save(path: str | Path, payload: dict) -> None:
    """Write ``payload`` with torch.save to ``path`` atomically.

    Given a path, torch.save names the zip archive's root folder after the
    file, which here is a random temporary name. Given an open file, it uses
    "archive", so the same payload always gives the same bytes.
    """
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def load_model(path: str | Path, device: str = "cpu") -> tuple[SparModel, dict]:
    """Rebuild the model stored in a final checkpoint; returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found; run `spar pretrain` first")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    for key in ("state_dict", "config"):
        if key not in ckpt:
            raise ValueError(f"{path} is not a spar checkpoint (no {key!r}); it may be a resume checkpoint or another file")
    model = SparModel(ModelConfig.from_dict(ckpt["config"]["model"]), DataShape.from_dict(ckpt["config"]["shape"]))
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return model, ckpt
