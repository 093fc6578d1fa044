"""Pretraining in several processes (DDP over gloo on loopback), the encoder's visible tokens, and the SLURM profile.

The multi-process tests start two CPU processes with ``torch.multiprocessing``
and let them meet on 127.0.0.1 at a free port, as torchrun does on one node.
"""

import json
import math
import os
import socket
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import spar.train.pretrain as pretrain_module
from spar.data.windows import WindowData
from spar.models.blocks import ensure_one_key
from spar.models.spar import ModelConfig, SparModel
from spar.train.pretrain import PretrainStep, Processes, _optimizer, _train_epoch, _wrap_step, start_processes
from test_placement import store, tiny_tree  # noqa: F401  (the tiny three-scene store: 24 training windows)
from test_workflow import copy_workflow, run_snakemake, tiny_params

# Relative tolerance of the two-process losses against the single-process losses of the same global batches.
# The gradients differ only in float32 summation order (two half-batch sums averaged by all-reduce).
DDP_RTOL = 1e-5

TINY_MODEL = {"dim": 16, "heads": 2, "mlp_ratio": 2.0, "modality_layers": 1, "joint_layers": 1,
              "decoder_dim": 8, "decoder_layers": 1, "structural_dim": 4}
PATCH = {"microphone": [4, 5], "geophone": [2, 5]}
SETTINGS = {"lr": 3e-3, "weight_decay": 0.05, "betas": [0.9, 0.95], "warmup_epochs": 0}
EPOCHS = 3


class PooledPositionRegression(nn.Module):
    """A deterministic objective: regress each window's mean node position from the mean of its encoded tokens.

    It draws no random numbers, and its loss is a mean over windows, so the
    DDP average of share-weighted per-process losses equals the global batch's
    loss. SPAR's masked reconstruction draws its masks per process in a
    multi-process run, so it cannot match the single-process run number for
    number. This objective tests what DDP must get right: batch slicing,
    gradient averaging, loss reduction and the optimizer step.
    """

    def __init__(self, dim: int, n_axes: int):
        super().__init__()
        self.head = nn.Linear(dim, n_axes)

    def forward(self, model, batch, mask_ratio, generator=None):
        tokens = model.prepare(batch, augment=False)
        latent = model.forward_encoder(tokens, keep=None)
        pooled = torch.cat([latent[m]["latent"] for m in model.modalities], dim=1).mean(dim=1)
        target = batch["position"].mean(dim=1) / 10.0
        per_window = ((self.head(pooled) - target) ** 2).mean(dim=1)
        loss = per_window.mean()
        return {"position": loss, "loss": loss}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_in_processes(task, *args, world_size: int = 2) -> None:
    """Run ``task(*args)`` in ``world_size`` fresh processes that form one gloo group on loopback."""
    mp.start_processes(_process_main, args=(world_size, free_port(), task, args), nprocs=world_size, join=True, start_method="spawn")


def _process_main(rank, world_size, port, task, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo0" if sys.platform == "darwin" else "lo")
    torch.set_num_threads(1)
    task(*args)


def train_regression(store_path, batch_sizes, out_path, processes: Processes):
    """Train the tiny model with :class:`PooledPositionRegression` for ``EPOCHS`` epochs per batch size; return the losses."""
    data = WindowData.from_store(store_path, split="train")
    losses = {}
    for batch_size in batch_sizes:
        torch.manual_seed(0)
        model = SparModel(ModelConfig.from_dict(TINY_MODEL), data.data_shape(PATCH))
        objective = PooledPositionRegression(TINY_MODEL["dim"], 2)
        step = PretrainStep(model, objective)
        settings = dict(SETTINGS, batch_size=batch_size)
        optimizer = _optimizer(step, settings)
        runner = _wrap_step(step, "cpu", processes, compile_step=False)
        generator = torch.Generator().manual_seed(0)
        total_steps = EPOCHS * math.ceil(len(data) / batch_size)
        losses[batch_size] = [
            _train_epoch(model, data, optimizer, settings, 0.75, generator, "cpu", epoch, total_steps, objective,
                         step=runner, processes=processes)["loss"]
            for epoch in range(EPOCHS)
        ]
    if processes.is_main and out_path is not None:
        out_path.write_text(json.dumps(losses))
    return losses


def _train_regression_distributed(store_path, batch_sizes, out_path):
    processes = start_processes("cpu")
    try:
        train_regression(store_path, batch_sizes, out_path, processes)
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_match_single_process(store, tmp_path):  # noqa: F811
    # 24 windows: batches of 7 split 4 + 3 and end with 3 windows (2 + 1);
    # batches of 23 end with one window, so process 1 gets an empty slice
    batch_sizes = [7, 23]
    single = train_regression(store, batch_sizes, None, Processes())

    out = tmp_path / "losses.json"
    run_in_processes(_train_regression_distributed, store, batch_sizes, out)
    distributed = {int(k): v for k, v in json.loads(out.read_text()).items()}

    for batch_size in batch_sizes:
        assert distributed[batch_size] == pytest.approx(single[batch_size], rel=DDP_RTOL)
    # the comparison means something only if training moved the loss
    assert single[7][-1] < single[7][0]


def _pretrain_distributed(store_path, out, tree, fail_at_epoch):
    """Run :func:`pretrain` in this process of the group, raising when epoch index ``fail_at_epoch`` (0-based) starts."""
    if fail_at_epoch is not None:
        train_epoch = pretrain_module._train_epoch

        def epoch_then_fail(*args, **kwargs):
            if args[7] == fail_at_epoch:
                raise RuntimeError("interrupted for the test")
            return train_epoch(*args, **kwargs)

        pretrain_module._train_epoch = epoch_then_fail
    pretrain_module.pretrain(store_path, out, "spar", 0, tree, "tiny")


def test_two_processes_pretrain_and_resume(store, tmp_path):  # noqa: F811
    tree = tiny_tree(tmp_path, epochs=3)
    tree["pretrain"]["checkpoint_every"] = 1

    uninterrupted = tmp_path / "full" / "model.pt"
    run_in_processes(_pretrain_distributed, store, uninterrupted, tree, None)
    history = json.loads(uninterrupted.with_name("history.json").read_text())
    assert history["processes"] == 2
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    assert all(math.isfinite(e["loss"]) for e in history["epochs"])
    assert torch.load(uninterrupted, weights_only=False)["processes"] == 2
    assert not uninterrupted.with_name("resume.pt").exists()

    # stop during the third epoch: the resume checkpoint of epoch 2 stays behind
    resumed = tmp_path / "resumed" / "model.pt"
    with pytest.raises(Exception, match="interrupted for the test"):
        run_in_processes(_pretrain_distributed, store, resumed, tree, 2)
    assert torch.load(resumed.with_name("resume.pt"), weights_only=False)["epoch"] == 2
    assert not resumed.exists()

    run_in_processes(_pretrain_distributed, store, resumed, tree, None)
    resumed_history = json.loads(resumed.with_name("history.json").read_text())
    assert resumed_history["epochs"] == history["epochs"]
    assert not resumed.with_name("resume.pt").exists()


def test_compile_switch_compiles_step(store, tmp_path, monkeypatch):  # noqa: F811
    compiled = []

    def record_compile(module, **kwargs):
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(pretrain_module.torch, "compile", record_compile)
    tree = tiny_tree(tmp_path, epochs=1)
    pretrain_module.pretrain(store, tmp_path / "plain" / "model.pt", "spar", 0, tree, "tiny")
    assert compiled == []

    tree["gpu"]["compile"] = True
    pretrain_module.pretrain(store, tmp_path / "compiled" / "model.pt", "spar", 0, tree, "tiny")
    assert compiled == ["PretrainStep"]


def test_single_process_has_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert start_processes("cpu") == Processes(rank=0, world_size=1)
    assert not torch.distributed.is_initialized()


# --- the encoder gets only the visible tokens -------------------------------------------------------


def _tiny_model(store_path):
    data = WindowData.from_store(store_path, split="train")
    torch.manual_seed(0)
    model = SparModel(ModelConfig.from_dict(TINY_MODEL), data.data_shape(PATCH))
    return model, next(data.batches(4, shuffle=False))


def test_encoder_sees_quarter_of_tokens(store):  # noqa: F811
    model, batch = _tiny_model(store)
    lengths = {}
    for m in model.modalities:
        model.encoders[m].blocks[0].register_forward_hook(
            lambda module, inputs, output, m=m: lengths.setdefault(m, []).append(inputs[0].shape[1]))

    model(batch, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    model.encode(batch)

    # 3 node slots x 4 tokens per node in each modality: 12 tokens, of which 3 stay visible at mask ratio 0.75
    assert lengths == {"geophone": [3, 12], "microphone": [3, 12]}


def test_encoder_flops_scale_with_visible_tokens(store):  # noqa: F811
    model, batch = _tiny_model(store)
    inputs = {}
    hooks = [
        model.encoders[m].register_forward_hook(lambda module, args, output, m=m: inputs.setdefault(m, []).append(args))
        for m in model.modalities
    ]
    model(batch, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    model.encode(batch)
    for hook in hooks:
        hook.remove()

    for m in model.modalities:
        counts = []
        for args in inputs[m]:
            with FlopCounterMode(display=False) as counter:
                model.encoders[m](*args)
            counts.append(counter.get_total_flops())
        masked, full = counts
        # linear layers scale with the token count (1/4), attention with its square (1/16)
        assert masked <= full / 4
        assert masked > full / 16


# --- SLURM profile ----------------------------------------------------------------------------------


def slurm_params(gpus_per_job: int) -> dict:
    params = tiny_params()
    params["seeds"] = [0]
    params["gpu"]["gpus_per_job"] = gpus_per_job
    return params


class JobResources(dict):
    """A job's resources with attribute access, as the SLURM plugin reads them."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def planned_jobs(output: str) -> dict:
    """Return the threads and resources of the first planned job of every rule in a dry run's output."""
    jobs, rule = {}, None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[len("rule "):-1]
            jobs.setdefault(rule, {"threads": 1, "resources": JobResources()})
        elif rule and line.startswith("threads:"):
            jobs[rule]["threads"] = int(line.split(":", 1)[1])
        elif rule and line.startswith("resources:") and not jobs[rule]["resources"]:
            for item in line.split(":", 1)[1].split(","):
                key, value = item.strip().split("=", 1)
                if value.isdigit():
                    jobs[rule]["resources"][key] = int(value)
    return jobs


def sbatch_command(job: dict) -> str:
    """Return the sbatch command line that the SLURM plugin (2.8.0) builds for a planned job."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    fake_job = SimpleNamespace(resources=job["resources"], threads=job["threads"], is_group=lambda: False)
    params = {"run_uuid": "run", "slurm_logfile": "slurm.log", "comment_str": "rule", "account": "-A account",
              "partition": "-p partition", "workdir": "/work"}
    return get_submit_command(fake_job, params) + set_gres_string(fake_job)


def test_slurm_profile_dry_run(tmp_path):
    workdir = copy_workflow(tmp_path, slurm_params(2))
    result = run_snakemake(workdir, "--profile", "workflow/profiles/slurm", "-n", "-p", "results/table1.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "torchrun --standalone --nproc-per-node 2 -m spar pretrain" in output

    jobs = planned_jobs(output)
    assert jobs["pretrain"]["resources"]["gpu"] == 2
    assert jobs["pretrain"]["threads"] == 2  # pretrain.threads (1) per process
    assert jobs["pretrain"]["resources"]["runtime"] == 240  # set-resources of the profile
    assert "gpu" not in jobs["table1"]["resources"]

    pretrain_sbatch = sbatch_command(jobs["pretrain"])
    assert "--gpus=2" in pretrain_sbatch
    assert "--cpus-per-task=2" in pretrain_sbatch
    assert "--mem 16000" in pretrain_sbatch
    assert "--gpus" not in sbatch_command(jobs["table1"])
    assert "--gpus=1" in sbatch_command(jobs["finetune_localization"])


def test_gpus_per_job_zero_rejected(tmp_path):
    workdir = copy_workflow(tmp_path, slurm_params(0))
    result = run_snakemake(workdir, "-n", "results/table1.csv")
    assert result.returncode != 0
    assert "gpus_per_job" in result.stdout + result.stderr


def test_one_gpu_per_job_runs_plain_spar(tmp_path):
    workdir = copy_workflow(tmp_path, slurm_params(1))
    result = run_snakemake(workdir, "-n", "-p", "results/table1.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "torchrun" not in output
    assert "spar pretrain --store" in output


def test_ensure_one_key_fills_empty_rows():
    key_valid = torch.tensor([[False, False, False], [True, False, True], [False, False, True]])
    filled = ensure_one_key(key_valid)
    # only the row without a valid key changes: its first token becomes attendable
    assert filled.tolist() == [[True, False, False], [True, False, True], [False, False, True]]
    assert key_valid[0].tolist() == [False, False, False]
