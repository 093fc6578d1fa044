"""Demo-shaped windows built in memory and one pretraining step, shared by the benchmarks in bench/.

The shapes are those of the demo's M3N-VC store (``spar ingest m3nvc`` with the
default params.yaml): 8 node slots, 40 physical nodes, 2 position axes,
microphone log-mel spectrograms of (1 channel, 32 bands, 24 frames) and
geophone ones of (1, 16, 25). Nothing is read from data/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from torch import nn

from spar.config import get
from spar.data.windows import WindowData
from spar.models.objectives import build_objective
from spar.models.registry import METHODS, model_config_for
from spar.models.spar import SparModel
from spar.train.pretrain import _autocast, _optimizer, pretrain_settings

DEMO_MODALITIES = {"microphone": (1, 32, 24), "geophone": (1, 16, 25)}  # (channel, freq, frame)
DEMO_NODES = 8
DEMO_GLOBAL_NODES = 40
DEMO_AXES = 2
DEMO_OBJECTS = 2
DEMO_CLASSES = 5


def load_params(path: Path) -> dict:
    """Read params.yaml as a dict."""
    return yaml.safe_load(Path(path).read_text())


def demo_arrays(n_samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Build random numpy arrays with the demo store's shapes and dtypes, one row per window.

    Every slot is a real node except slot 7 of every fourth window, and node 3
    has no geophone data in every third window, so masking of absent nodes runs.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for m, (channels, freqs, frames) in DEMO_MODALITIES.items():
        arrays[f"signal_{m}"] = rng.normal(size=(n_samples, DEMO_NODES, channels, freqs, frames)).astype(np.float32)
        arrays[f"present_{m}"] = np.ones((n_samples, DEMO_NODES), dtype=bool)
        arrays[f"present_{m}"][::4, 7] = False
    arrays["present_geophone"][::3, 3] = False

    node_id = np.stack([rng.permutation(DEMO_GLOBAL_NODES)[:DEMO_NODES] for _ in range(n_samples)]).astype(np.int32)
    node_id[::4, 7] = -1
    arrays["node_id"] = node_id
    arrays["position"] = rng.uniform(-60.0, 60.0, size=(n_samples, DEMO_NODES, DEMO_AXES)).astype(np.float32)
    arrays["position"][::4, 7] = np.nan
    arrays["label"] = rng.integers(0, DEMO_CLASSES, size=n_samples).astype(np.int16)
    arrays["target"] = rng.uniform(-40.0, 40.0, size=(n_samples, DEMO_AXES)).astype(np.float32)
    arrays["objects"] = rng.uniform(0.0, 4.0, size=(n_samples, DEMO_OBJECTS, 3)).astype(np.float32)
    arrays["object_count"] = rng.integers(0, DEMO_OBJECTS + 1, size=n_samples).astype(np.int16)
    return arrays


def demo_windows(n_samples: int, seed: int = 0) -> WindowData:
    """Build a WindowData of ``n_samples`` random demo-shaped windows, as WindowData.from_store returns them."""
    arrays = demo_arrays(n_samples, seed)
    tensors: dict[str, torch.Tensor] = {"sample": torch.arange(n_samples, dtype=torch.int64)}
    tensors["time_s"] = torch.arange(n_samples, dtype=torch.float64) * 2.0
    tensors["group_index"] = torch.zeros(n_samples, dtype=torch.int64)
    for m in DEMO_MODALITIES:
        present = arrays[f"present_{m}"]
        tensors[f"signal_{m}"] = torch.from_numpy(arrays[f"signal_{m}"] * present[:, :, None, None, None])
        tensors[f"present_{m}"] = torch.from_numpy(present)
    tensors["position"] = torch.from_numpy(np.nan_to_num(arrays["position"], nan=0.0))
    for name in ("node_id", "label", "object_count"):
        tensors[name] = torch.from_numpy(arrays[name].astype(np.int64))
    tensors["target"] = torch.from_numpy(arrays["target"])
    tensors["objects"] = torch.from_numpy(arrays["objects"])
    return WindowData(
        tensors=tensors,
        modalities=sorted(DEMO_MODALITIES),
        attrs={},
        split=np.full(n_samples, "train"),
        group=np.full(n_samples, "bench"),
        time=np.datetime64("2023-06-12T15:00:00", "ns") + np.arange(n_samples) * np.timedelta64(2, "s"),
        n_global_nodes=DEMO_GLOBAL_NODES,
        node_name=np.array([f"bench/n{i}" for i in range(DEMO_GLOBAL_NODES)]),
        class_name=[f"class{i}" for i in range(DEMO_CLASSES)],
    )


@dataclass
class BenchStep:
    """A model with its objective and optimizer, and a callable that runs one optimisation step on a batch."""

    model: SparModel
    trained: nn.Module
    step: Callable[[dict], float]


def build_pretrain_step(method: str, data: WindowData, tree: dict, device: str = "cpu",
                        model_overrides: dict | None = None, seed: int = 0) -> BenchStep:
    """Build ``method``'s model and objective as spar.train.pretrain does, for the m3nvc patch sizes of ``tree``.

    The step runs what one iteration of pretraining runs: the forward pass
    under bf16 autocast on CUDA, the backward pass, gradient clipping to norm 1
    and an AdamW step. It returns the loss as a float, which waits for the
    device to finish.
    """
    torch.manual_seed(seed)
    model_params = dict(get(tree, "model"))
    model_params.update(model_overrides or {})
    cfg = model_config_for(method, model_params)
    settings = pretrain_settings(tree, "m3nvc", method)
    mask_ratio = float(get(tree, "mask_ratio"))
    model = SparModel(cfg, data.data_shape(get(tree, "datasets.m3nvc.patch"))).to(device)
    objective = build_objective(METHODS[method].objective, model, get(tree, f"objectives.{method}", {}) or {}).to(device)
    trained = nn.ModuleDict({"model": model, "objective": objective})
    optimizer = _optimizer(trained, settings)
    parameters = list(trained.parameters())
    generator = torch.Generator().manual_seed(seed) if device == "cpu" else None
    model.train()
    objective.train()

    def step(batch: dict) -> float:
        with _autocast(device):
            losses = objective(model, batch, mask_ratio, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        return float(losses["loss"].detach())

    return BenchStep(model=model, trained=trained, step=step)
