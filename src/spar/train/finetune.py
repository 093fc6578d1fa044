"""Task heads on frozen embeddings: training, testing and per-run outputs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spar.config import get
from spar.eval.metrics import accuracy, confusion_matrix, localization_errors, macro_f1
from spar.files import atomic_path, write_json
from spar.models.heads import LinearHead, TransformerHead
from spar.train import checkpoint as checkpoint_io
from spar.train.device import claim_device
from spar.train.pretrain import seed_everything
from spar.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

ENU_AXES = ("east", "north", "up")  # target axes of a store that does not name them
RESUME_FILE = "resume.pt"  # resume checkpoint of a head's training, in the run's output folder


def load_embeddings(path: Path) -> dict:
    """Read an embeddings .npz written by ``spar embed``; ``meta`` comes back as a dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embeddings {path} not found; run `spar embed` first")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def pool_token_groups(tokens: np.ndarray, valid: np.ndarray, group: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the valid tokens of each (modality, node) group.

    The encoder is frozen, so this runs once before head training and the head
    attends over node tokens instead of every spectrogram patch.

    Args:
        tokens: (S, L, D); valid: (S, L) bool; group: (L,) group index of each token.

    Returns:
        (S, G, D) float32 group tokens and (S, G) bool, False for groups without valid tokens.
    """
    n_groups = int(group.max()) + 1
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(group).long(), n_groups).float()  # (L, G)
    weight = torch.from_numpy(valid).float()  # (S, L)
    counts = weight @ one_hot  # (S, G)
    sums = torch.einsum("sl,lg,sld->sgd", weight, one_hot, torch.from_numpy(tokens.astype(np.float32)))
    return sums / counts.clamp(min=1.0).unsqueeze(-1), counts > 0


def labeled_subset(candidates: np.ndarray, label_ratio: float, seed: int) -> np.ndarray:
    """Pick ``round(label_ratio * len(candidates))`` of the candidate indices (at least 1), reproducibly per seed."""
    if not 0.0 < label_ratio <= 1.0:
        raise ValueError(f"label ratio must be in (0, 1]; got {label_ratio}")
    count = max(1, int(round(label_ratio * len(candidates))))
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(candidates)[:count])


def _head_run_hash(head: torch.nn.Module, tokens: torch.Tensor, valid: torch.Tensor, target: torch.Tensor,
                   loss_fn, settings: dict, generator: torch.Generator) -> str:
    """Hash everything that decides a head's training: settings, loss, data, initial weights and generator state.

    A resume checkpoint is used only when its hash matches, so a rerun with
    other labels, another seed or changed settings starts from scratch.
    """
    digest = hashlib.sha256()
    loss_name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    digest.update(json.dumps({"settings": settings, "loss": loss_name}, sort_keys=True, default=str).encode())
    for tensor in (tokens, valid, target, *head.state_dict().values()):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(generator.get_state().numpy().tobytes())
    return digest.hexdigest()[:16]


def _load_head_resume(path: Path, run_hash: str, head, optimizer, generator, device: torch.device) -> tuple[list[float], int]:
    """Restore a head's training state from ``path`` and return (losses so far, next epoch).

    Returns ([], 0) when there is no checkpoint or it belongs to another run.
    """
    if not path.exists():
        return [], 0
    # generator states must stay CPU tensors, and load_state_dict moves the weights and optimizer state to the head's device
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("run_hash") != run_hash:
        log.warning("%s was written with other settings, data or seed; training the head from scratch", path)
        return [], 0
    head.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    log.info("resuming head training from epoch %d (%s)", state["epoch"], path)
    return list(state["losses"]), int(state["epoch"])


def train_head(head: torch.nn.Module, tokens: torch.Tensor, valid: torch.Tensor, target: torch.Tensor,
               loss_fn, settings: dict, generator: torch.Generator, resume_path: Path | None = None,
               checkpoint_every: int = 0) -> list[float]:
    """Train ``head`` with AdamW and a warm-up cosine schedule; returns the mean loss of each epoch.

    With ``resume_path`` and ``checkpoint_every`` > 0, the head, optimizer,
    generator and RNG states, epoch and losses are saved there every
    ``checkpoint_every`` epochs (not after the last one), and a call with the
    same settings, data, initial weights and generator state continues from
    that file. On CPU the result is then bitwise the one of an uninterrupted
    run. The caller removes the file once its outputs are written.
    """
    epochs, batch_size, lr = int(settings["epochs"]), int(settings["batch_size"]), float(settings["lr"])
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=float(settings["weight_decay"]))
    n = tokens.shape[0]
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    losses, start_epoch = [], 0
    if resume_path is not None:
        run_hash = _head_run_hash(head, tokens, valid, target, loss_fn, settings, generator)
        losses, start_epoch = _load_head_resume(Path(resume_path), run_hash, head, optimizer, generator, tokens.device)
    head.train()
    for epoch in range(start_epoch, epochs):
        order = torch.randperm(n, generator=generator).to(tokens.device)
        epoch_loss = 0.0
        for i, start in enumerate(range(0, n, batch_size)):
            idx = order[start : start + batch_size]
            for group in optimizer.param_groups:
                group["lr"] = warmup_cosine(epoch * steps_per_epoch + i, total, steps_per_epoch, lr)
            loss = loss_fn(head(tokens[idx], valid[idx]), target[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += float(loss.detach()) * len(idx)
        losses.append(epoch_loss / n)

        if resume_path is not None and checkpoint_every > 0 and (epoch + 1) % checkpoint_every == 0 and epoch + 1 < epochs:
            checkpoint_io.save(resume_path, {
                "run_hash": run_hash, "state_dict": head.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler_step": (epoch + 1) * steps_per_epoch, "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(tokens.device) if tokens.device.type == "cuda" else None,
                "epoch": epoch + 1, "losses": losses,
            })
    head.eval()
    return losses


def resume_settings(tree: dict, out_dir: Path) -> dict:
    """Return the resume keyword arguments of :func:`train_head` for a run writing into ``out_dir``.

    ``finetune.checkpoint_every`` sets the epochs between resume checkpoints.
    A value of 0 or a missing key turns them off.
    """
    every = int(get(tree, "finetune.checkpoint_every", 0))
    if every < 0:
        raise ValueError(f"finetune.checkpoint_every must be >= 0 (0 turns resume checkpoints off); got {every}")
    return {"resume_path": Path(out_dir) / RESUME_FILE, "checkpoint_every": every}


def _split_indices(arrays: dict, settings: dict, usable: np.ndarray, label_ratio: float, seed: int, source: Path):
    """Return (labeled training indices, test indices) among the ``usable`` windows."""
    train_split = settings.get("train_split", "train")
    test_split = settings.get("test_split", "test")
    train_pool = np.flatnonzero((arrays["split"] == train_split) & usable)
    test = np.flatnonzero((arrays["split"] == test_split) & usable)
    if train_pool.size == 0 or test.size == 0:
        raise ValueError(
            f"{source}: {train_pool.size} {train_split!r} and {test.size} {test_split!r} windows with a label; both must be > 0"
        )
    train = labeled_subset(train_pool, label_ratio, seed)
    meta = arrays["meta"]
    log.info("fine-tuning on %s (%s seed %d): %d of %d labeled %s windows, %d %s windows",
             source, meta["method"], meta["seed"], train.size, train_pool.size, train_split, test.size, test_split)
    return train, test


def _run_record(task: str, arrays: dict, seed: int, label_ratio: float, train: np.ndarray, test: np.ndarray, losses: list,
                tags: dict | None = None) -> dict:
    """Return the fields every run's metrics.json shares, with ``tags`` (such as an ablation name) merged in.

    Raises:
        ValueError: a tag would overwrite one of the shared fields.
    """
    meta = arrays["meta"]
    record = {
        "task": task,
        "method": meta["method"],
        "seed": seed,
        "pretrain_seed": meta["seed"],
        "label_ratio": label_ratio,
        "scene": meta["group"],
        "n_train": int(train.size),
        "n_test": int(test.size),
        "final_train_loss": losses[-1],
        "drop_prob": float(meta.get("drop_prob") or 0.0),
        "placement": meta.get("placement"),
    }
    clashes = sorted(set(tags or {}) & set(record))
    if clashes:
        raise ValueError(f"run tags {clashes} clash with fields of metrics.json; choose other tag names")
    record.update(tags or {})
    return record


def _write_run(out_dir: Path, metrics: dict, predictions: pd.DataFrame, arrays: dict, test: np.ndarray) -> None:
    """Write metrics.json and predictions.csv (with the sample index and window start of each test window)."""
    out_dir = Path(out_dir)
    predictions.insert(0, "time", pd.to_datetime(arrays["time"][test]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    predictions.insert(0, "sample", arrays["sample"][test])
    write_json(out_dir / "metrics.json", metrics)
    with atomic_path(out_dir / "predictions.csv", suffix=".csv") as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.4f")


def finetune_localization(embeddings: Path, out_dir: Path, label_ratio: float, seed: int, tree: dict,
                          task: str = "localization", tags: dict | None = None) -> None:
    """Train a transformer regression head on the labeled training windows and test it.

    Settings come from ``finetune.<task>`` (head_layers, epochs, batch_size, lr,
    weight_decay, and optionally train_split and test_split). Writes
    ``metrics.json`` (MSE in unit^2 as the mean squared Euclidean error over
    all target axes, mean Euclidean distance error), ``predictions.csv``
    (``true_<axis>`` and ``pred_<axis>`` per target axis) and the trained head
    (``head.pt``) into ``out_dir``.
    """
    settings = get(tree, f"finetune.{task}")
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    arrays = load_embeddings(embeddings)
    meta = arrays["meta"]
    target = arrays["target"].astype(np.float32)
    train, test = _split_indices(arrays, settings, np.isfinite(target).all(axis=1), label_ratio, seed, embeddings)

    resume = resume_settings(tree, out_dir)
    generator = seed_everything(seed)
    tokens, valid = pool_token_groups(arrays["tokens"], arrays["valid"], arrays["token_group"])
    mean, std = target[train].mean(axis=0), target[train].std(axis=0) + 1e-6
    scaled = torch.from_numpy((target - mean) / std)

    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        head = TransformerHead(tokens.shape[-1], target.shape[1], layers=int(settings["head_layers"]),
                               heads=int(get(tree, "model.heads")), mlp_ratio=float(get(tree, "model.mlp_ratio")))
        head.to(claim.device)
        tokens, valid, scaled = tokens.to(claim.device), valid.to(claim.device), scaled.to(claim.device)
        losses = train_head(head, tokens[train], valid[train], scaled[train], torch.nn.functional.mse_loss, settings, generator,
                            **resume)
        with torch.no_grad():
            pred = head(tokens[test], valid[test]).float().cpu().numpy() * std + mean

    errors = localization_errors(pred, target[test])
    unit = meta.get("position_unit") or "m"
    axes = meta.get("target_axis_names") or list(ENU_AXES[: target.shape[1]])
    metrics = _run_record(task, arrays, seed, label_ratio, train, test, losses, tags)
    metrics.update({f"mse_{unit}2": errors["mse"], f"distance_{unit}": errors["distance"], "target_axes": list(axes), "unit": unit})
    columns = {f"true_{a}": target[test, i] for i, a in enumerate(axes)}
    columns.update({f"pred_{a}": pred[:, i] for i, a in enumerate(axes)})
    _write_run(out_dir, metrics, pd.DataFrame(columns), arrays, test)
    checkpoint_io.save(Path(out_dir) / "head.pt", {
        "state_dict": {k: v.cpu() for k, v in head.state_dict().items()},
        "dim": int(tokens.shape[-1]), "out_dim": int(target.shape[1]), "layers": int(settings["head_layers"]),
        "heads": int(get(tree, "model.heads")), "mlp_ratio": float(get(tree, "model.mlp_ratio")),
        "target_mean": mean.tolist(), "target_std": std.tolist(), "target_axes": list(axes), "unit": unit,
        "embeddings": str(embeddings),
    })
    resume["resume_path"].unlink(missing_ok=True)
    log.info("%s seed %d, %.0f%% labels (%d windows): test MSE %.2f %s^2, mean distance %.2f %s on %d windows",
             meta["method"], seed, 100 * label_ratio, train.size, errors["mse"], unit, errors["distance"], unit, test.size)


def finetune_classification(embeddings: Path, out_dir: Path, label_ratio: float, seed: int, tree: dict,
                            task: str = "activity", tags: dict | None = None) -> None:
    """Train a linear classification head (cross-entropy) on the labeled training windows and test it.

    Settings come from ``finetune.<task>``. Writes ``metrics.json`` (accuracy,
    macro F1, confusion matrix with rows = true class) and ``predictions.csv``
    (true and predicted class index and name) into ``out_dir``.
    """
    settings = get(tree, f"finetune.{task}")
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    arrays = load_embeddings(embeddings)
    meta = arrays["meta"]
    class_names = list(meta["class_name"])
    labels = arrays["label"].astype(np.int64)
    train, test = _split_indices(arrays, settings, labels >= 0, label_ratio, seed, embeddings)

    resume = resume_settings(tree, out_dir)
    generator = seed_everything(seed)
    tokens, valid = pool_token_groups(arrays["tokens"], arrays["valid"], arrays["token_group"])
    target = torch.from_numpy(labels)
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        head = LinearHead(tokens.shape[-1], len(class_names)).to(claim.device)
        tokens, valid, target = tokens.to(claim.device), valid.to(claim.device), target.to(claim.device)
        losses = train_head(head, tokens[train], valid[train], target[train], torch.nn.functional.cross_entropy, settings,
                            generator, **resume)
        with torch.no_grad():
            pred = head(tokens[test], valid[test]).argmax(dim=1).cpu().numpy()

    true = labels[test]
    matrix = confusion_matrix(true, pred, len(class_names))
    metrics = _run_record(task, arrays, seed, label_ratio, train, test, losses, tags)
    metrics.update({
        "accuracy": accuracy(true, pred),
        "macro_f1": macro_f1(true, pred, len(class_names)),
        "class_name": class_names,
        "confusion_matrix": matrix.tolist(),
    })
    predictions = pd.DataFrame({
        "true": true, "pred": pred,
        "true_name": [class_names[i] for i in true], "pred_name": [class_names[i] for i in pred],
    })
    _write_run(out_dir, metrics, predictions, arrays, test)
    resume["resume_path"].unlink(missing_ok=True)
    log.info("%s seed %d, %.0f%% labels (%d windows): test accuracy %.3f, macro F1 %.3f on %d windows",
             meta["method"], seed, 100 * label_ratio, train.size, metrics["accuracy"], metrics["macro_f1"], test.size)
