"""Paper-size SPAR pretraining on one CUDA GPU in bf16: windows per second and model FLOP utilization.

The model FLOPs of one pretraining step (forward and backward pass) are counted
with ``torch.utils.flop_counter.FlopCounterMode``. Model FLOP utilization (MFU)
is those FLOPs divided by the median step time and by the GPU's peak dense
bf16 rate, which --peak-tflops sets or the table below gives for known GPUs.
The batches are demo-shaped M3N-VC windows built in memory (bench/demo_batch.py),
and the forward pass runs under bf16 autocast with float32 weights, as
``spar pretrain`` runs on CUDA.

Model size: README.md lists the model's width and depth among the settings
that the paper leaves open, so "paper size" here is an assumption. Each
modality encoder has the size of ViT-Base (width 768, 12 heads, MLP ratio 4,
12 layers), followed by one joint layer. The decoders have the depth of the
MAE decoder (8 layers; He et al., "Masked Autoencoders Are Scalable Vision
Learners", 2022) but width 384 instead of its 512, because SparModel gives
its decoders half the encoder's heads (6) and 512 is not divisible by 6.
Every value can be changed on the command line.

The reference measured in the same run is the GPU's peak rate, so the ratio
printed is MFU itself.

    python bench/gpu_pretrain.py                  # on a machine with a CUDA GPU
    python bench/gpu_pretrain.py --cpu-smoke      # build the model and run one small step on CPU

Without a CUDA GPU and without --cpu-smoke, the script prints that no GPU is available and exits with status 0.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_batch import build_pretrain_step, demo_windows, load_params  # noqa: E402

# NOTE: an assumption, see the module docstring: ViT-Base encoders and MAE-deep decoders.
PAPER_SIZE = {
    "dim": 768,
    "heads": 12,
    "mlp_ratio": 4.0,
    "modality_layers": 12,
    "joint_layers": 1,
    "decoder_dim": 384,
    "decoder_layers": 8,
}

# Peak dense (no sparsity) bf16 tensor-core rate in TFLOP/s, from NVIDIA's data sheets.
# The first name that is a substring of torch.cuda.get_device_name() counts.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}


def peak_tflops(device_name: str) -> float | None:
    """Return the peak dense bf16 TFLOP/s of the first table entry whose name is in ``device_name``."""
    for name, tflops in PEAK_BF16_TFLOPS.items():
        if name in device_name:
            return tflops
    return None


def count_step_flops(step, batch: dict) -> int:
    """Count the FLOPs of one pretraining step (forward and backward) with FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    return int(counter.get_total_flops())


def time_steps(step, batches: list[dict], n_steps: int, warmup: int, device: str) -> list[float]:
    """Run ``warmup`` untimed and ``n_steps`` timed steps and return the seconds of each timed one."""
    for i in range(warmup):
        step(batches[i % len(batches)])
    times = []
    for i in range(n_steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        step(batches[i % len(batches)])  # returns the loss as a float, which waits for the GPU
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with the pretrain settings and patch sizes")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per batch on the GPU")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s of the GPU (default: from the table of known GPUs)")
    for key, value in PAPER_SIZE.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value, help=f"model {key} (default {value})")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="without a GPU, build the paper-size model and run one step of params.yaml's model on CPU to check the code path; measures no MFU")
    args = parser.parse_args()
    tree = load_params(args.params)
    overrides = {key: getattr(args, key) for key in PAPER_SIZE}

    if not torch.cuda.is_available():
        sys.stdout.write("no CUDA GPU is available; nothing measured\n")
        if not args.cpu_smoke:
            return
        data = demo_windows(2)
        paper = build_pretrain_step("spar", data, tree, device="cpu", model_overrides=overrides)
        paper_parameters = sum(p.numel() for p in paper.trained.parameters())
        del paper

        # one step of the paper-size model takes minutes on a busy CPU, so the smoke step uses params.yaml's model
        runner = build_pretrain_step("spar", data, tree, device="cpu")
        batch = next(data.batches(2, shuffle=False))
        parameters = sum(p.numel() for p in runner.trained.parameters())
        started = time.perf_counter()
        flops = count_step_flops(runner.step, batch)
        seconds = time.perf_counter() - started
        sys.stdout.write(
            f"cpu smoke: paper-size model {overrides} built, {paper_parameters / 1e6:.1f} M parameters\n"
            f"cpu smoke: one step of params.yaml's model ({parameters / 1e6:.2f} M parameters), batch 2: "
            f"{flops / 1e6:.1f} MFLOP counted in {seconds:.2f} s (float32 on CPU; no MFU)\n"
        )
        return

    # NOTE: not yet run on a CUDA GPU; --cpu-smoke covers the model build and FLOP counting, not bf16 or timing.
    device = "cuda"
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops(name)
    data = demo_windows(args.batch_size * 2)
    batches = list(data.batches(args.batch_size, shuffle=False, device=device))
    runner = build_pretrain_step("spar", data, tree, device=device, model_overrides=overrides)
    parameters = sum(p.numel() for p in runner.trained.parameters())

    flops = count_step_flops(runner.step, batches[0])
    step_s = statistics.median(time_steps(runner.step, batches, args.steps, args.warmup, device))
    achieved = flops / step_s

    lines = [
        f"machine: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}",
        f"model: {overrides}, {parameters / 1e6:.1f} M parameters; batch {args.batch_size} demo-shaped windows, bf16 autocast",
        f"step: {step_s * 1e3:.1f} ms median of {args.steps}; {args.batch_size / step_s:,.0f} windows/s",
        f"model FLOPs per step (forward and backward): {flops / 1e12:.2f} TFLOP; achieved {achieved / 1e12:.1f} TFLOP/s",
    ]
    if peak is None:
        lines.append(f"peak bf16 rate of {name!r} unknown; pass --peak-tflops to get MFU")
    else:
        lines.append(f"MFU (achieved / peak {peak:.0f} TFLOP/s): {achieved / (peak * 1e12):.3f}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
