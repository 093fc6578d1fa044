"""Ingest throughput of the Ridgecrest archive against a plain ``obspy.read`` of the same files.

Both are measured in the same run on the same files:
- reference: ``obspy.read`` of every miniSEED day file of the archive, one after the other;
- spar: ``spar.ingest.ridgecrest.ingest`` (catalog, region selection, windows of
  two modalities at every station, filtering, spectrograms and the Zarr store).

Usage (after ``snakemake --cores 2 data/raw/ridgecrest``):

    python bench/ingest_seismic.py --raw data/raw/ridgecrest --params params.yaml

The ratio is spar's wall time over the reference's; the target is at most 3.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import obspy
import yaml

from spar.ingest.ridgecrest import ingest
from spar.io.seismic import ScedcArchive

log = logging.getLogger("bench.ingest_seismic")


def time_obspy_read(paths: list[Path]) -> tuple[float, int]:
    """Read every file with obspy; return (seconds, samples decoded)."""
    started = time.perf_counter()
    samples = 0
    for path in paths:
        samples += sum(tr.stats.npts for tr in obspy.read(str(path)))
    return time.perf_counter() - started, samples


def time_ingest(raw: Path, cfg: dict) -> float:
    """Run the Ridgecrest ingest into a temporary store; return seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ingest(raw, Path(tmp) / "ridgecrest.zarr", cfg)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("data/raw/ridgecrest"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = yaml.safe_load(args.params.read_text())["ingest"]["ridgecrest"]

    paths = [Path(p) for p in ScedcArchive(args.raw).files["path"]]
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    reference, samples = min(time_obspy_read(paths) for _ in range(args.repeat))
    spar_s = min(time_ingest(args.raw, cfg) for _ in range(args.repeat))

    lines = [
        f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}, obspy {obspy.__version__}",
        f"archive: {len(paths)} day files, {megabytes:.1f} MB, {samples / 1e6:.1f} M samples",
        f"obspy.read of every file: {reference:.2f} s ({megabytes / reference:.1f} MB/s)",
        f"spar ingest ridgecrest:   {spar_s:.2f} s ({megabytes / spar_s:.1f} MB/s)",
        f"ratio spar / obspy.read:  {spar_s / reference:.2f} (target <= 3)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
