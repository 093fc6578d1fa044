"""Self-supervised pretraining of one method on one tensor store, with resumable checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from spar.config import get
from spar.data.windows import WindowData
from spar.features.store import open_store
from spar.files import write_json
from spar.models.objectives import build_objective
from spar.models.registry import DEFAULT_OBJECTIVE, METHODS, model_config_for
from spar.models.spar import SparModel
from spar.train import checkpoint
from spar.train.device import claim_device
from spar.train.schedule import warmup_cosine

log = logging.getLogger(__name__)


def pretrain_settings(tree: dict, dataset: str, method: str) -> dict:
    """Merge the ``pretrain`` section with ``datasets.<dataset>.pretrain`` and the method's fixed settings."""
    settings = dict(get(tree, "pretrain"))
    settings.update(get(tree, f"datasets.{dataset}.pretrain", {}) or {})
    settings.update(METHODS[method].pretrain_overrides if method in METHODS else {})
    return settings


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a torch generator for shuffling, masking and augmentation."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def training_windows(store: Path, exclude_groups=()) -> WindowData:
    """Load the training windows of ``store`` without those of the groups in ``exclude_groups``.

    Raises ValueError for a group name that the store does not contain, or
    when no training window is left.
    """
    exclude = sorted(set(exclude_groups))
    data = WindowData.from_store(store, split="train")
    if not exclude:
        return data

    store_groups = sorted(set(open_store(store)["group"].values.tolist()))
    unknown = [g for g in exclude if g not in store_groups]
    if unknown:
        raise ValueError(f"{store}: cannot exclude groups {unknown}, the store has no windows of them; "
                         f"groups in the store: {store_groups}")

    excluded = np.isin(data.group, exclude)
    counts = ", ".join(f"{g} ({int((data.group == g).sum())} windows)" for g in exclude)
    if excluded.all():
        raise ValueError(f"{store}: excluding {counts} leaves no training windows; exclude fewer groups")
    keep = ~excluded
    index = torch.from_numpy(np.flatnonzero(keep))
    log.info("left out of the training windows: %s; %d of %d windows remain", counts, int(keep.sum()), len(data))
    return dataclasses.replace(
        data,
        tensors={k: v[index] for k, v in data.tensors.items()},
        split=data.split[keep],
        group=data.group[keep],
        time=data.time[keep],
    )


def _autocast(device: str):
    """bf16 autocast on CUDA; full precision on CPU."""
    if device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(model: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only; biases, norms and structural positions are not decayed.

    ``model`` may be a container of the backbone and the objective's heads.
    """
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "structural_position" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "structural_position" in n]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(settings["weight_decay"])}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(settings["lr"]),
        betas=tuple(settings["betas"]),
    )


def _train_epoch(model, data, optimizer, settings, mask_ratio, generator, device, epoch, total_steps, objective=None) -> dict:
    """Run one epoch of pretraining; returns the epoch's mean of every loss term.

    ``objective`` is the method's :class:`~spar.models.objectives.Objective`;
    None means the backbone's own masked reconstruction loss.
    """
    batch_size = int(settings["batch_size"])
    steps_per_epoch = -(-len(data) // batch_size)
    warmup_steps = int(settings["warmup_epochs"]) * steps_per_epoch
    model.train()
    if objective is not None:
        objective.train()
    # the backbone's parameters first, in module order, so the clipped norm sums as it did before objectives had heads
    parameters = list(model.parameters()) + (list(objective.parameters()) if objective is not None else [])
    sums: dict[str, float] = {}
    n_batches = 0
    for i, batch in enumerate(data.batches(batch_size, shuffle=True, generator=generator, device=device)):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(epoch * steps_per_epoch + i, total_steps, warmup_steps, float(settings["lr"]))
        with _autocast(device):
            step_generator = generator if device == "cpu" else None
            if objective is None:
                losses = model(batch, mask_ratio, generator=step_generator)
            else:
                losses = objective(model, batch, mask_ratio, generator=step_generator)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"pretraining loss became {losses['loss'].item()} at epoch {epoch}, step {i}; lower pretrain.lr")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        n_batches += 1
    return {k: v / n_batches for k, v in sums.items()}


def _train(model, objective, data, settings, mask_ratio, generator, device, resume_path: Path, run_hash: str, label: str) -> list[dict]:
    """Pretrain ``model`` with ``objective`` for ``settings['epochs']`` epochs, resuming from ``resume_path`` when it matches ``run_hash``."""
    trained = nn.ModuleDict({"model": model, "objective": objective})
    optimizer = _optimizer(trained, settings)
    epochs = int(settings["epochs"])
    total_steps = epochs * -(-len(data) // int(settings["batch_size"]))

    history: list[dict] = []
    start_epoch = 0
    if resume_path.exists():
        state = torch.load(resume_path, map_location=device, weights_only=False)
        if state.get("run_hash") == run_hash:
            model.load_state_dict(state["state_dict"])
            objective.load_state_dict(state.get("objective_state_dict", {}))
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            history, start_epoch = state["history"], state["epoch"]
            log.info("resuming from epoch %d of %d (%s)", start_epoch, epochs, resume_path)
        else:
            log.warning("%s was written with other settings; starting from scratch", resume_path)

    # the bar shows on a terminal; job logs get one line per tenth of the run instead
    progress = tqdm(range(start_epoch, epochs), desc=f"pretrain {label}", unit="epoch", initial=start_epoch, total=epochs, disable=None)
    log_every = max(1, epochs // 10)
    for epoch in progress:
        losses = _train_epoch(model, data, optimizer, settings, mask_ratio, generator, device, epoch, total_steps, objective)
        history.append({"epoch": epoch + 1, **losses})
        progress.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        if (epoch + 1) % log_every == 0:
            log.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, history[-1]["loss"])
        if (epoch + 1) % int(settings["checkpoint_every"]) == 0 and epoch + 1 < epochs:
            checkpoint.save(resume_path, {
                "run_hash": run_hash, "state_dict": model.state_dict(), "objective_state_dict": objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "history": history, "epoch": epoch + 1,
            })
    return history


def pretrain(store: Path, out: Path, method: str, seed: int, tree: dict, dataset: str, exclude_groups=()) -> None:
    """Pretrain ``method`` on the training windows of ``store``; write ``out`` (model.pt) and history.json beside it.

    The windows of the groups in ``exclude_groups`` (such as scenes h08 and
    h24) are left out, so their nodes' structural positions keep their
    initial values. The checkpoint records the excluded groups.

    A resume checkpoint (``resume.pt`` beside ``out``) is written every
    ``checkpoint_every`` epochs, and a rerun with the same settings continues
    from it. A method with 0 epochs saves its randomly initialised weights and
    reads no optimisation setting.
    """
    out = Path(out)
    model_cfg = model_config_for(method, get(tree, "model"))
    settings = pretrain_settings(tree, dataset, method)
    epochs = int(settings.get("epochs", 0))
    mask_ratio = float(get(tree, "mask_ratio")) if epochs else None
    patch = get(tree, f"datasets.{dataset}.patch")
    exclude_groups = sorted(set(exclude_groups))
    objective_name = METHODS[method].objective
    objective_settings = get(tree, f"objectives.{method}", {}) or {}
    identity = {"method": method, "seed": seed, "mask_ratio": mask_ratio, "model": model_cfg.__dict__,
                "settings": settings, "patch": patch, "store": str(store)}
    if objective_name != DEFAULT_OBJECTIVE or objective_settings:
        identity["objective"] = [objective_name, objective_settings]
    if exclude_groups:
        # added only when set, so runs on every group keep the hash of their resume checkpoints
        identity["exclude_groups"] = exclude_groups
    identity = json.dumps(identity, sort_keys=True, default=str)
    run_hash = hashlib.sha256(identity.encode()).hexdigest()[:16]
    resume_path = out.with_name("resume.pt")

    torch.set_num_threads(int(settings.get("threads", 1)))
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        device = claim.device
        generator = seed_everything(seed)
        data = training_windows(store, exclude_groups)
        model = SparModel(model_cfg, data.data_shape(patch)).to(device)
        objective = build_objective(objective_name, model, objective_settings).to(device)
        log.info("pretraining %s seed %d (objective %s) on %d windows for %d epochs, mask ratio %s, device %s",
                 method, seed, objective_name, len(data), epochs, mask_ratio, device)
        started = time.perf_counter()
        history = []
        if epochs:
            history = _train(model, objective, data, settings, mask_ratio, generator, device, resume_path, run_hash, f"{method} seed {seed}")
        elapsed = time.perf_counter() - started

        checkpoint.save(out, {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "config": model.config_dict(),
            "method": method,
            "seed": seed,
            "dataset": dataset,
            "mask_ratio": mask_ratio,
            "objective": objective_name,
            "objective_settings": objective_settings,
            "pretrain": settings,
            "history": history,
            "store": str(store),
            "store_raw_hash": data.attrs.get("raw_hash"),
            "exclude_groups": exclude_groups,
            "device": device,
        })
        write_json(out.with_name("history.json"), {"method": method, "seed": seed, "device": device, "exclude_groups": exclude_groups,
                                                   "seconds": round(elapsed, 2), "epochs": history})
        resume_path.unlink(missing_ok=True)
        final = f"final loss {history[-1]['loss']:.4f}" if history else "no pretraining epochs (random weights)"
        log.info("pretrained %s seed %d: %s in %.1f s; wrote %s", method, seed, final, elapsed, out)
