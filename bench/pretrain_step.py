"""Pretraining step time of SPAR against the plain masked autoencoder at the same backbone and batch.

Both are measured in the same run on the same demo-shaped batches, built in
memory (bench/demo_batch.py), with the model and pretraining settings of
params.yaml:
- reference: the ``mae`` method (or ``audiomae`` with --baseline audiomae), which
  has no spatial or structural embedding, no spatial decoder and no geometric
  augmentation;
- spar: the ``spar`` method, which has all of them.

A step is the forward pass, the backward pass, gradient clipping and an AdamW
step. Steps of the two methods alternate, so load from other processes on the
machine affects both alike, and the median step time of each counts.

    python bench/pretrain_step.py --steps 30

The ratio is spar's median step time over the reference's; the target is at most 1.3.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_batch import build_pretrain_step, demo_windows, load_params  # noqa: E402


NO_SPATIAL_DECODER = "spar without spatial decoder"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with the model and pretrain settings")
    parser.add_argument("--baseline", choices=["mae", "audiomae"], default="mae", help="registered method used as the reference")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: pretrain.batch_size of params.yaml)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per method before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (pretrain.threads is 1 in params.yaml)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time SPAR without its spatial decoder (model.spatial_reconstruction false)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tree = load_params(args.params)
    batch_size = args.batch_size or int(tree["pretrain"]["batch_size"])

    data = demo_windows(batch_size * 4)
    batches = [b for b in data.batches(batch_size, shuffle=False)]
    runners = {name: build_pretrain_step(name, data, tree) for name in (args.baseline, "spar")}
    if args.breakdown:
        runners[NO_SPATIAL_DECODER] = build_pretrain_step("spar", data, tree, model_overrides={"spatial_reconstruction": False})
    parameters = {name: sum(p.numel() for p in r.trained.parameters()) for name, r in runners.items()}

    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(args.warmup + args.steps):
        for name, runner in runners.items():
            batch = batches[i % len(batches)]
            started = time.perf_counter()
            runner.step(batch)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - started)

    reference = statistics.median(times[args.baseline])
    spar_s = statistics.median(times["spar"])
    lines = [
        f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        f"batch: {batch_size} demo-shaped windows; {args.steps} timed steps per method after {args.warmup} warm-up steps",
        f"{args.baseline} step: {reference * 1e3:.1f} ms median ({parameters[args.baseline] / 1e6:.3f} M parameters)",
        f"spar step: {spar_s * 1e3:.1f} ms median ({parameters['spar'] / 1e6:.3f} M parameters)",
        f"ratio spar / {args.baseline}: {spar_s / reference:.2f} (target <= 1.3)",
    ]
    if args.breakdown:
        partial = statistics.median(times[NO_SPATIAL_DECODER])
        lines.insert(-1, f"{NO_SPATIAL_DECODER} step: {partial * 1e3:.1f} ms median "
                         f"({parameters[NO_SPATIAL_DECODER] / 1e6:.3f} M parameters), ratio to {args.baseline} {partial / reference:.2f}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
