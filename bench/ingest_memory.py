"""Peak memory of ``spar ingest m3nvc`` on 1x and 4x the raw data.

The simulator (``spar.synth.m3nvc``) writes raw data of two sizes into a
temporary folder. With ``--grow scenes`` (the default), 1x is one scene and 4x
is four scenes, all with runs of --run-s seconds, so the files keep their size
and there are four times as many. With ``--grow runs``, 1x and 4x are the same
scene with runs of --run-s and 4 x --run-s seconds, so every file is four
times as large. Each ingest runs in a fresh Python process, which reports its
peak resident set size (``resource.getrusage`` max RSS). A third process only
imports the ingest module, so the peak of the imports alone is shown too. A
second ingest of each size runs under ``tracemalloc``, whose peak counts the
memory that Python and numpy allocate, but not that of native libraries.

    python bench/ingest_memory.py

The ratio is the peak RSS of the 4x ingest over that of the 1x ingest. The
target is at most 1.3, which an ingest that streams windows to the store meets.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHILD_SCRIPT = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
import yaml
from spar.ingest.m3nvc import ingest
raw, out, params, trace = sys.argv[1:5]
if trace == "1":
    tracemalloc.start()
started = time.perf_counter()
if raw != "-":
    ingest(Path(raw), Path(out), yaml.safe_load(Path(params).read_text())["ingest"]["m3nvc"])
seconds = time.perf_counter() - started
traced_peak = tracemalloc.get_traced_memory()[1] if trace == "1" else None
print(json.dumps({"max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "seconds": seconds, "traced_peak_bytes": traced_peak}))
"""


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_child(raw: str, out: str, params: Path, trace: bool = False) -> dict:
    """Run the ingest (or only the imports, for ``raw`` "-") in a fresh interpreter.

    Returns its peak RSS, its seconds and, with ``trace``, the peak of the
    memory that tracemalloc traced during the ingest. Tracing costs memory of
    its own, so the RSS of a traced run is not used.
    """
    command = [sys.executable, "-c", CHILD_SCRIPT, raw, out, str(params), "1" if trace else "0"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ingest of {raw} failed with exit status {result.returncode}:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with synth.m3nvc and ingest.m3nvc")
    parser.add_argument("--grow", choices=["scenes", "runs"], default="scenes",
                        help="how 4x is made: four scenes instead of one, or runs four times as long")
    parser.add_argument("--scenes", nargs=4, default=["h24", "h08", "s31", "a06"],
                        help="simulated scenes: the first is 1x, and all four are 4x with --grow scenes")
    parser.add_argument("--run-s", type=int, default=30, help="seconds of each training and test run at 1x")
    args = parser.parse_args()
    tree = yaml.safe_load(args.params.read_text())

    from spar.synth.m3nvc import synthesize

    lines = [f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}"]
    peaks, raw_bytes, traced = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = run_child("-", "-", args.params)
        lines.append(f"imports only: peak RSS {baseline['max_rss_kib'] / 1024:.0f} MiB")
        for factor in (1, 4):
            cfg = copy.deepcopy(tree["synth"]["m3nvc"])
            if args.grow == "scenes":
                scenes, run_s = args.scenes[:factor], args.run_s
            else:
                scenes, run_s = args.scenes[:1], args.run_s * factor
            cfg.update({"scenes": scenes, "train_run_s": run_s, "test_run_s": run_s})
            raw = Path(tmp) / f"raw{factor}x"
            out = Path(tmp) / f"store{factor}x.zarr"
            started = time.perf_counter()
            synthesize(raw, cfg)
            synth_s = time.perf_counter() - started
            child = run_child(str(raw), str(out), args.params)
            peaks[factor] = child["max_rss_kib"]
            raw_bytes[factor] = folder_bytes(raw)
            traced[factor] = run_child(str(raw), str(Path(tmp) / f"traced{factor}x.zarr"), args.params, trace=True)["traced_peak_bytes"]
            lines.append(
                f"{factor}x: scenes {','.join(scenes)}, runs of {run_s} s, raw {raw_bytes[factor] / 1e6:.1f} MB "
                f"(simulated in {synth_s:.0f} s), store {folder_bytes(out) / 1e6:.1f} MB; "
                f"ingest {child['seconds']:.1f} s, peak RSS {child['max_rss_kib'] / 1024:.0f} MiB "
                f"({(child['max_rss_kib'] - baseline['max_rss_kib']) / 1024:.0f} MiB above the imports), "
                f"tracemalloc peak {traced[factor] / 2**20:.0f} MiB"
            )

    lines.append(f"raw data 4x / 1x: {raw_bytes[4] / raw_bytes[1]:.2f}")
    above = {f: peaks[f] - baseline["max_rss_kib"] for f in peaks}
    lines.append(f"ratio of peak RSS 4x / 1x: {peaks[4] / peaks[1]:.2f} (target <= 1.3)")
    if above[1] > 0:
        lines.append(f"ratio of peak RSS above the imports 4x / 1x: {above[4] / above[1]:.2f}")
    lines.append(f"ratio of tracemalloc peaks 4x / 1x: {traced[4] / traced[1]:.2f}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
