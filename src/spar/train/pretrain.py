"""Self-supervised pretraining of one method on one tensor store, with resumable checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from spar.config import get
from spar.data.windows import WindowData
from spar.features.store import open_store
from spar.files import write_json
from spar.models.objectives import build_objective
from spar.models.objectives.base import objective_class
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


@dataclasses.dataclass(frozen=True)
class Processes:
    """The process group of one pretraining run: rank of this process and number of processes.

    ``world_size`` is 1 for a plain ``spar pretrain`` and N for a run that
    ``torchrun --nproc-per-node N`` started.
    """

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class PretrainStep(nn.Module):
    """The backbone and the objective as one module, so that DDP and ``torch.compile`` see a single forward.

    ``objective`` None means the backbone's own masked reconstruction loss.
    Parameter names start with ``model.`` and ``objective.``, in that order.
    """

    def __init__(self, model: SparModel, objective: nn.Module | None):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        if self.objective is None:
            return self.model(batch, mask_ratio, generator=generator)
        return self.objective(self.model, batch, mask_ratio, generator=generator)


def start_processes(device: str) -> Processes:
    """Join the process group that torchrun set up through ``WORLD_SIZE``, ``RANK`` and ``MASTER_ADDR``/``MASTER_PORT``.

    Without ``WORLD_SIZE`` (or with 1) the run has one process and no group
    is created. The backend is NCCL on CUDA and gloo on the CPU.
    """
    # NOTE: only the gloo path on CPU is tested. NCCL, pinned copies and per-process CUDA generators have not run on a GPU.
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    if not torch_dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            # each process claimed its own GPU, which is cuda:0 in that process (see spar.train.device)
            torch.cuda.set_device(device)
        torch_dist.init_process_group(backend=backend)
    processes = Processes(rank=torch_dist.get_rank(), world_size=torch_dist.get_world_size())
    log.info("process %d of %d (backend %s, device %s)", processes.rank, processes.world_size, torch_dist.get_backend(), device)
    return processes


def local_batches(data: WindowData, batch_size: int, generator: torch.Generator, device: str, processes: Processes):
    """Yield this process's part of every shuffled global batch of an epoch, as ``(batch, share)``.

    Every process draws the same permutation from ``generator`` (the same call
    as ``WindowData.batches``), cuts it into global batches of ``batch_size``
    windows and takes its contiguous slice of each, so the processes together
    see exactly the single-process batches. ``share`` is the slice's size
    times the number of processes over the global batch's size. Scaling a
    per-window mean loss by it before DDP averages the gradients gives the
    gradient of the global batch's mean when slices differ in size. A process
    whose slice is empty (a last global batch with fewer windows than
    processes) gets the batch's first window with share 0, because DDP needs a
    backward pass from every process.
    """
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        share = 1.0
        if processes.distributed:
            part = torch.tensor_split(index, processes.world_size)[processes.rank]
            share = len(part) * processes.world_size / len(index)
            index = part if len(part) else index[:1]
        yield data.batch(index, device), share


def _reduce_losses(losses: dict, share: float, processes: Processes) -> dict:
    """Return the global batch's loss terms: the share-weighted mean of every process's terms, as floats."""
    values = torch.stack([v.detach().float() for v in losses.values()]) * share
    torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    values = values / processes.world_size
    return dict(zip(losses, values.tolist()))


def _step_generator(seed: int, epoch: int, processes: Processes, device: str) -> torch.Generator:
    """Return the generator of one process's masks and augmentations in one epoch of a multi-process run.

    It is seeded from (seed, epoch, rank), so the processes draw different
    masks for their different windows, and a resumed run draws the same ones
    as an uninterrupted run.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch, processes.rank]).generate_state(1)[0]))
    return generator


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


def _train_epoch(model, data, optimizer, settings, mask_ratio, generator, device, epoch, total_steps, objective=None, *,
                 step: nn.Module | None = None, processes: Processes = Processes(), seed: int = 0) -> dict:
    """Run one epoch of pretraining; returns the epoch's mean of every loss term.

    ``objective`` is the method's :class:`~spar.models.objectives.Objective`;
    None means the backbone's own masked reconstruction loss. ``step`` is the
    module that computes the losses: :class:`PretrainStep` of ``model`` and
    ``objective``, possibly compiled or wrapped in DDP. None builds a plain
    one. In a multi-process run (``processes``) each process trains on its
    slice of every global batch, and the returned terms are global-batch
    means, the same on every process.
    """
    batch_size = int(settings["batch_size"])
    steps_per_epoch = -(-len(data) // batch_size)
    warmup_steps = int(settings["warmup_epochs"]) * steps_per_epoch
    if step is None:
        step = PretrainStep(model, objective)
    model.train()
    if objective is not None:
        objective.train()
    # the backbone's parameters first, in module order, so the clipped norm sums as it did before objectives had heads
    parameters = list(model.parameters()) + (list(objective.parameters()) if objective is not None else [])

    # A single process draws masks and augmentations from the shuffling generator (on CPU) or the global CUDA
    # generator. Each of several processes draws from its own, so they do not repeat each other's masks.
    if processes.distributed:
        step_generator = _step_generator(seed, epoch, processes, device)
    else:
        step_generator = generator if device == "cpu" else None

    sums: dict[str, float] = {}
    n_batches = 0
    for i, (batch, share) in enumerate(local_batches(data, batch_size, generator, device, processes)):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(epoch * steps_per_epoch + i, total_steps, warmup_steps, float(settings["lr"]))
        with _autocast(device):
            losses = step(batch, mask_ratio, generator=step_generator)

        if processes.distributed:
            values = _reduce_losses(losses, share, processes)
        else:
            values = {k: float(v.detach()) for k, v in losses.items()}
        if not np.isfinite(values["loss"]):
            raise FloatingPointError(f"pretraining loss became {values['loss']} at epoch {epoch}, step {i}; lower pretrain.lr")

        optimizer.zero_grad(set_to_none=True)
        loss = losses["loss"] * share if processes.distributed else losses["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        n_batches += 1
    return {k: v / n_batches for k, v in sums.items()}


def _wrap_step(step: PretrainStep, device: str, processes: Processes, compile_step: bool) -> nn.Module:
    """Wrap ``step`` in DDP for a multi-process run, then compile it when ``compile_step`` is set."""
    runner: nn.Module = step
    if processes.distributed:
        # Contrastive objectives leave the decoders unused, so DDP has to look for parameters without gradients.
        # NOTE: they also see only their own process's windows as negatives, a smaller batch than in one process.
        device_ids = [torch.device(device).index or 0] if device.startswith("cuda") else None
        runner = DistributedDataParallel(step, device_ids=device_ids, find_unused_parameters=True)
    if compile_step:
        runner = torch.compile(runner)
    return runner


def _train(model, objective, data, settings, mask_ratio, generator, device, resume_path: Path, run_hash: str, label: str,
           *, processes: Processes = Processes(), seed: int = 0, compile_step: bool = False) -> list[dict]:
    """Pretrain ``model`` with ``objective`` for ``settings['epochs']`` epochs, resuming from ``resume_path`` when it matches ``run_hash``.

    Every process of a multi-process run loads the resume checkpoint, and
    only process 0 writes it.
    """
    step = PretrainStep(model, objective)
    optimizer = _optimizer(step, settings)
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
            generator.set_state(state["generator"].cpu())  # map_location moved it to the device, and a generator state must be a CPU tensor
            history, start_epoch = state["history"], state["epoch"]
            log.info("resuming from epoch %d of %d (%s)", start_epoch, epochs, resume_path)
        else:
            log.warning("%s was written with other settings; starting from scratch", resume_path)
    runner = _wrap_step(step, device, processes, compile_step)

    # the bar shows on a terminal; job logs get one line per tenth of the run instead
    progress = tqdm(range(start_epoch, epochs), desc=f"pretrain {label}", unit="epoch", initial=start_epoch, total=epochs,
                    disable=None if processes.is_main else True)
    log_every = max(1, epochs // 10)
    for epoch in progress:
        losses = _train_epoch(model, data, optimizer, settings, mask_ratio, generator, device, epoch, total_steps, objective,
                              step=runner, processes=processes, seed=seed)
        history.append({"epoch": epoch + 1, **losses})
        progress.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        if (epoch + 1) % log_every == 0 and processes.is_main:
            log.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, history[-1]["loss"])
        if (epoch + 1) % int(settings["checkpoint_every"]) == 0 and epoch + 1 < epochs and processes.is_main:
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

    Started by torchrun (``WORLD_SIZE`` above 1), every process claims its own
    device and trains its slice of each global batch in one DDP group, and
    only process 0 writes ``resume.pt``, ``out`` and history.json.
    ``gpu.compile`` runs the training step through ``torch.compile``.
    """
    out = Path(out)
    model_cfg = model_config_for(method, get(tree, "model"))
    settings = pretrain_settings(tree, dataset, method)
    epochs = int(settings.get("epochs", 0))
    objective_name = METHODS[method].objective
    # the workflow passes no mask ratio to objectives that hide no tokens, so they record None
    uses_mask = epochs and objective_class(objective_name).uses_mask_ratio
    mask_ratio = float(get(tree, "mask_ratio")) if uses_mask else None
    patch = get(tree, f"datasets.{dataset}.patch")
    exclude_groups = sorted(set(exclude_groups))
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
    compile_step = bool(get(tree, "gpu.compile", False))
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        device = claim.device
        processes = start_processes(device)
        gpus_per_job = int(get(tree, "gpu.gpus_per_job", 1))
        if gpus_per_job > 1 and not processes.distributed:
            log.warning("gpu.gpus_per_job is %d, but WORLD_SIZE is not set, so pretraining runs in one process; "
                        "start it with torchrun --nproc-per-node %d -m spar pretrain ...", gpus_per_job, gpus_per_job)
        try:
            _pretrain_in_process(store, out, method, seed, dataset, exclude_groups, model_cfg, settings, mask_ratio, patch,
                                 objective_name, objective_settings, run_hash, resume_path, device, processes, compile_step)
        finally:
            if processes.distributed:
                torch_dist.destroy_process_group()


def _pretrain_in_process(store, out, method, seed, dataset, exclude_groups, model_cfg, settings, mask_ratio, patch,
                         objective_name, objective_settings, run_hash, resume_path, device, processes, compile_step) -> None:
    """Build the model and objective on ``device``, pretrain them and, on process 0, write the outputs of :func:`pretrain`."""
    generator = seed_everything(seed)
    data = training_windows(store, exclude_groups)
    model = SparModel(model_cfg, data.data_shape(patch)).to(device)
    objective = build_objective(objective_name, model, objective_settings).to(device)
    epochs = int(settings.get("epochs", 0))
    log.info("pretraining %s seed %d (objective %s) on %d windows for %d epochs, mask ratio %s, device %s",
             method, seed, objective_name, len(data), epochs, mask_ratio, device)
    started = time.perf_counter()
    history = []
    if epochs:
        history = _train(model, objective, data, settings, mask_ratio, generator, device, resume_path, run_hash, f"{method} seed {seed}",
                         processes=processes, seed=seed, compile_step=compile_step)
    elapsed = time.perf_counter() - started
    if not processes.is_main:
        return

    record = {
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
    }
    summary = {"method": method, "seed": seed, "device": device, "exclude_groups": exclude_groups,
               "seconds": round(elapsed, 2), "epochs": history}
    if processes.distributed:
        # recorded only for several processes, so single-process checkpoints keep their bytes
        record["processes"] = summary["processes"] = processes.world_size
    checkpoint.save(out, record)
    write_json(out.with_name("history.json"), summary)
    resume_path.unlink(missing_ok=True)
    final = f"final loss {history[-1]['loss']:.4f}" if history else "no pretraining epochs (random weights)"
    log.info("pretrained %s seed %d: %s in %.1f s; wrote %s", method, seed, final, elapsed, out)
