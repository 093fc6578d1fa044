"""Loader throughput of WindowData against what a SPAR pretraining step consumes, at demo sizes.

Both are measured in the same run:
- loader: a demo-shaped tensor store of --windows windows is written with
  ``write_store`` into a temporary folder, loaded with
  ``WindowData.from_store`` and iterated as shuffled batches moved to --device
  (the host-to-device copy on CUDA, nothing to copy on CPU). Throughput is
  given for one epoch of batches alone and with the one-time load added to it;
- reference: windows per second of SPAR pretraining steps on the same batches.

    python bench/loader.py

The ratio is the loader's windows per second (load included) over the model's;
the target is at least 5.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_batch import DEMO_AXES, DEMO_GLOBAL_NODES, DEMO_MODALITIES, build_pretrain_step, demo_arrays, load_params  # noqa: E402

from spar.data.windows import WindowData  # noqa: E402
from spar.features.store import build_dataset, signal_normalization, write_store  # noqa: E402


def write_demo_store(path: Path, n_windows: int) -> Path:
    """Write ``n_windows`` random demo-shaped windows as a tensor store, a quarter of them test windows."""
    arrays = demo_arrays(n_windows)
    split = np.where(np.arange(n_windows) % 4 == 3, "test", "train")
    ds = build_dataset(
        signals={m: arrays[f"signal_{m}"] for m in DEMO_MODALITIES},
        present={m: arrays[f"present_{m}"] for m in DEMO_MODALITIES},
        position=arrays["position"],
        node_id=arrays["node_id"],
        node_name=[f"bench/n{i}" for i in range(DEMO_GLOBAL_NODES)],
        time=np.datetime64("2023-06-12T15:00:00", "ns") + np.arange(n_windows) * np.timedelta64(2, "s"),
        group=["bench"] * n_windows,
        split=split,
        axis_names=("east", "north")[:DEMO_AXES],
        label=arrays["label"],
        class_name=[f"class{i}" for i in range(5)],
        target=arrays["target"],
        objects=arrays["objects"],
        object_count=arrays["object_count"],
        attrs={"position_unit": "m"},
    )
    ds.attrs["normalization"] = signal_normalization(ds)
    write_store(ds, path)
    return path


def time_loader(path: Path, batch_size: int, device: str) -> tuple[float, float, int]:
    """Load the training windows of ``path`` and run one shuffled epoch of batches on ``device``.

    Returns (load seconds, epoch seconds, windows).
    """
    started = time.perf_counter()
    data = WindowData.from_store(path, split="train")
    loaded = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    for batch in data.batches(batch_size, shuffle=True, generator=generator, device=device):
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return loaded - started, time.perf_counter() - loaded, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with the model and pretrain settings")
    parser.add_argument("--windows", type=int, default=1120, help="windows in the store (the demo's M3N-VC store has 1120, 840 of them training)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: pretrain.batch_size of params.yaml)")
    parser.add_argument("--steps", type=int, default=20, help="timed SPAR pretraining steps")
    parser.add_argument("--repeat", type=int, default=3, help="loader runs; the fastest counts")
    parser.add_argument("--device", default="cpu", help="device the batches are copied to and the model runs on (cpu or cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (pretrain.threads is 1 in params.yaml)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tree = load_params(args.params)
    batch_size = args.batch_size or int(tree["pretrain"]["batch_size"])

    with tempfile.TemporaryDirectory() as tmp:
        store = write_demo_store(Path(tmp) / "demo.zarr", args.windows)
        files = sum(1 for p in store.rglob("*") if p.is_file())
        runs = [time_loader(store, batch_size, args.device) for _ in range(args.repeat)]
        load_s, epoch_s, n = min(runs, key=lambda run: run[0] + run[1])
        data = WindowData.from_store(store, split="train")

    runner = build_pretrain_step("spar", data, tree, device=args.device)
    batches = [b for _, b in zip(range(4), data.batches(batch_size, shuffle=False, device=args.device))]
    runner.step(batches[0])
    step_times = []
    for i in range(args.steps):
        started = time.perf_counter()
        runner.step(batches[i % len(batches)])
        step_times.append(time.perf_counter() - started)
    model_rate = batch_size / statistics.median(step_times)

    batches_rate = n / epoch_s
    loader_rate = n / (load_s + epoch_s)
    lines = [
        f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}",
        f"store: {args.windows} demo-shaped windows in {files} files; {n} training windows, batches of {batch_size}",
        f"loader: from_store {load_s:.3f} s, one epoch of batches {epoch_s:.3f} s",
        f"loader batches alone: {batches_rate:,.0f} windows/s",
        f"loader with the load: {loader_rate:,.0f} windows/s",
        f"spar pretraining step: {statistics.median(step_times) * 1e3:.1f} ms median, {model_rate:,.0f} windows/s",
        f"ratio loader (with load) / model: {loader_rate / model_rate:.1f} (target >= 5)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
