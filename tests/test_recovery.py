"""Killed and rerun steps: resume checkpoints, atomic stores, same-seed reruns and params validation."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from spar.features.store import open_store, write_store
from spar.train import finetune as finetune_module
from spar.train.finetune import finetune_localization
from spar.train.pretrain import pretrain
from test_placement import store, tiny_tree  # noqa: F401  (the tiny three-scene store)
from test_workflow import copy_workflow, run_snakemake

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_EPOCHS = 12
FINETUNE_EPOCHS = 120


def spar_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spar", *args]


def kill_at_first_resume_checkpoint(command: list[str], resume: Path, timeout_s: float = 120.0) -> int:
    """Start ``command``, SIGKILL it as soon as ``resume`` exists, and return the epoch stored in ``resume``."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while not resume.exists():
        if process.poll() is not None:
            raise AssertionError(f"{command[3]} ended (exit {process.returncode}) before its first resume checkpoint; "
                                 f"stderr: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {resume} within {timeout_s} s")
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    return torch.load(resume, weights_only=False)["epoch"]


def assert_same_state_dict(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- pretraining --------------------------------------------------------------------------------------


def test_killed_pretraining_resumes_bitwise(store, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="spar")
    tree = tiny_tree(tmp_path, epochs=PRETRAIN_EPOCHS)
    tree["pretrain"]["checkpoint_every"] = 1
    killed_out = tmp_path / "killed" / "model.pt"
    command = spar_command("pretrain", "--store", str(store), "--dataset", "tiny", "--method", "spar", "--seed", "3",
                           "--out", str(killed_out), "--config", json.dumps(tree))

    epoch = kill_at_first_resume_checkpoint(command, killed_out.with_name("resume.pt"))
    assert 1 <= epoch < PRETRAIN_EPOCHS
    assert not killed_out.exists()
    assert not killed_out.with_name("history.json").exists()

    # the rerun continues from the resume checkpoint and removes it at the end
    pretrain(store, killed_out, "spar", seed=3, tree=tree, dataset="tiny")
    assert f"resuming from epoch {epoch} of {PRETRAIN_EPOCHS}" in caplog.text
    assert not killed_out.with_name("resume.pt").exists()

    reference_out = tmp_path / "reference" / "model.pt"
    pretrain(store, reference_out, "spar", seed=3, tree=tree, dataset="tiny")

    resumed = torch.load(killed_out, weights_only=False)
    reference = torch.load(reference_out, weights_only=False)
    assert_same_state_dict(resumed["state_dict"], reference["state_dict"])
    assert resumed["history"] == reference["history"]
    assert len(resumed["history"]) == PRETRAIN_EPOCHS
    resumed_history = json.loads(killed_out.with_name("history.json").read_text())
    reference_history = json.loads(reference_out.with_name("history.json").read_text())
    assert resumed_history["epochs"] == reference_history["epochs"]


def test_pretraining_ignores_resume_of_other_settings(store, tmp_path):  # noqa: F811
    tree = tiny_tree(tmp_path, epochs=2)
    tree["pretrain"]["checkpoint_every"] = 1
    out = tmp_path / "run" / "model.pt"
    pretrain(store, out, "spar", seed=0, tree=tree, dataset="tiny")
    first = torch.load(out, weights_only=False)
    first_bytes = out.read_bytes()

    # a resume checkpoint of another run must not leak into this one
    torch.save({"run_hash": "0123456789abcdef", "epoch": 1}, out.with_name("resume.pt"))
    pretrain(store, out, "spar", seed=0, tree=tree, dataset="tiny")
    assert_same_state_dict(torch.load(out, weights_only=False)["state_dict"], first["state_dict"])
    assert not out.with_name("resume.pt").exists()
    # two uninterrupted runs of one seed write the same bytes
    assert out.read_bytes() == first_bytes


# --- fine-tuning --------------------------------------------------------------------------------------


def write_localization_embeddings(path: Path, n_train: int = 24, n_test: int = 8) -> Path:
    """Write an embeddings .npz in the layout of `spar embed`: 4 node groups of 2 tokens, targets linear in the tokens."""
    rng = np.random.default_rng(7)
    n = n_train + n_test
    tokens = rng.normal(size=(n, 8, 8)).astype(np.float16)
    target = np.stack([tokens[:, :, 0].sum(axis=1), tokens[:, :, 1].sum(axis=1)], axis=1).astype(np.float32) * 5.0
    meta = {"method": "spar", "seed": 0, "dataset": "m3nvc", "group": "h24", "position_unit": "m",
            "target_axis_names": ["east", "north"], "class_name": []}
    np.savez(
        path,
        tokens=tokens,
        valid=np.ones((n, 8), dtype=bool),
        token_group=np.repeat(np.arange(4), 2),
        split=np.array(["train"] * n_train + ["test"] * n_test),
        time=(np.datetime64("2023-06-12T15:00:00", "ns") + np.arange(n) * np.timedelta64(2, "s")).astype(np.int64),
        sample=np.arange(n),
        label=np.full(n, -1),
        target=target,
        meta=np.array(json.dumps(meta)),
    )
    return path


def finetune_tree(tmp_path: Path, checkpoint_every: int) -> dict:
    localization = {"head_layers": 1, "epochs": FINETUNE_EPOCHS, "batch_size": 8, "lr": 3e-3, "weight_decay": 0.01}
    return {"finetune": {"checkpoint_every": checkpoint_every, "localization": localization},
            "model": {"heads": 2, "mlp_ratio": 2.0}, "pretrain": {"threads": 1}, "gpu": {"lock_dir": str(tmp_path / "locks")}}


RUN_FILES = ("metrics.json", "predictions.csv", "head.pt")


def test_killed_finetuning_resumes_bitwise(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="spar")
    embeddings = write_localization_embeddings(tmp_path / "h24.npz")
    tree = finetune_tree(tmp_path, checkpoint_every=1)
    killed = tmp_path / "killed"
    command = spar_command("finetune", "localization", "--embeddings", str(embeddings), "--label-ratio", "0.5",
                           "--seed", "2", "--out-dir", str(killed), "--config", json.dumps(tree))

    epoch = kill_at_first_resume_checkpoint(command, killed / "resume.pt")
    assert 1 <= epoch < FINETUNE_EPOCHS
    assert not (killed / "metrics.json").exists()

    finetune_localization(embeddings, killed, label_ratio=0.5, seed=2, tree=tree)
    assert f"resuming head training from epoch {epoch}" in caplog.text
    assert not (killed / "resume.pt").exists()
    reference = tmp_path / "reference"
    finetune_localization(embeddings, reference, label_ratio=0.5, seed=2, tree=finetune_tree(tmp_path, checkpoint_every=0))

    for name in RUN_FILES:
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name
    assert json.loads((killed / "metrics.json").read_text())["n_train"] == 12


def test_finetuning_same_seed_same_bytes(tmp_path):
    embeddings = write_localization_embeddings(tmp_path / "h24.npz")
    tree = finetune_tree(tmp_path, checkpoint_every=0)
    tree["finetune"]["localization"]["epochs"] = 10
    for run in ("a", "b", "other_seed"):
        finetune_localization(embeddings, tmp_path / run, label_ratio=1.0, seed=1 if run == "other_seed" else 0, tree=tree)

    for name in RUN_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # the comparison can fail: another seed gives other predictions
    assert (tmp_path / "a" / "predictions.csv").read_bytes() != (tmp_path / "other_seed" / "predictions.csv").read_bytes()


def test_finetuning_ignores_resume_of_other_seed(tmp_path, monkeypatch):
    embeddings = write_localization_embeddings(tmp_path / "h24.npz")
    tree = finetune_tree(tmp_path, checkpoint_every=1)
    tree["finetune"]["localization"]["epochs"] = 4
    finetune_localization(embeddings, tmp_path / "seed0", label_ratio=1.0, seed=0, tree=tree)

    # stop a seed-1 run right after its first resume checkpoint, then run seed 0 in its folder
    original_save = finetune_module.checkpoint_io.save

    def save_then_stop(path, payload):
        original_save(path, payload)
        if Path(path).name == "resume.pt":
            raise KeyboardInterrupt

    other = tmp_path / "other"
    with monkeypatch.context() as patch:
        patch.setattr(finetune_module.checkpoint_io, "save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            finetune_localization(embeddings, other, label_ratio=1.0, seed=1, tree=tree)
    assert (other / "resume.pt").exists()

    finetune_localization(embeddings, other, label_ratio=1.0, seed=0, tree=tree)
    assert not (other / "resume.pt").exists()
    for name in RUN_FILES:
        assert (other / name).read_bytes() == (tmp_path / "seed0" / name).read_bytes(), name


# --- tensor stores ------------------------------------------------------------------------------------


KILL_MID_WRITE = """
import os, signal, sys
import xarray as xr
from spar.features.store import open_store, write_store

original = xr.Dataset.to_zarr

def to_zarr_then_die(self, path, *args, **kwargs):
    original(self, path, *args, **kwargs)  # every chunk is on disk, under the temporary name
    os.kill(os.getpid(), signal.SIGKILL)

ds = open_store(sys.argv[1]).load()
ds.attrs["raw_hash"] = "version 2"
xr.Dataset.to_zarr = to_zarr_then_die
write_store(ds, sys.argv[2])
"""


def test_killed_store_write_keeps_previous_store(store, tmp_path):  # noqa: F811
    path = tmp_path / "tiny.zarr"
    first = open_store(store).load()
    first.attrs["raw_hash"] = "version 1"
    write_store(first, path)

    result = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(store), str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]

    previous = open_store(path).load()
    assert previous.attrs["raw_hash"] == "version 1"
    xr.testing.assert_identical(previous["signal_microphone"], first["signal_microphone"])
    # the killed write left only a hidden temporary folder beside the store
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "tiny.zarr")
    assert len(leftovers) == 1
    assert leftovers[0].startswith(".tiny.zarr.")
    assert leftovers[0].endswith(".partial")


def test_failed_store_write_leaves_no_store(store, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "tiny.zarr"
    original = xr.Dataset.to_zarr

    def to_zarr_half(self, target, *args, **kwargs):
        original(self.isel(sample=slice(0, 3)), target, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", to_zarr_half)
    with pytest.raises(OSError, match="disk full"):
        write_store(open_store(store).load(), path)

    assert list(tmp_path.iterdir()) == []


# --- params validation --------------------------------------------------------------------------------


def plan_with(tmp_path: Path, change) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    change(params)
    workdir = copy_workflow(tmp_path, params)
    result = run_snakemake(workdir, "-n", "demo")
    assert result.returncode != 0
    assert "Job stats" not in result.stdout + result.stderr
    return result.stdout + result.stderr


def test_params_unknown_key_named(tmp_path):
    output = plan_with(tmp_path, lambda p: p["finetune"]["localization"].update(epoch=3))
    assert "finetune.localization.epoch = 3: unknown key" in output
    assert "allowed keys here: batch_size, epochs," in output


def test_params_mask_ratio_range_named(tmp_path):
    output = plan_with(tmp_path, lambda p: p.update(mask_ratio=1.5))
    assert "mask_ratio = 1.5:" in output
    assert "allowed: number, >= 0, < 1" in output


def test_params_empty_methods_named(tmp_path):
    output = plan_with(tmp_path, lambda p: p.update(methods=[]))
    assert "methods = []: [] should be non-empty" in output
    assert "registered methods: audiomae," in output
