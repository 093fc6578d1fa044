"""Readers for the M3N-VC public release layout (one folder per scene).

Per scene folder::

    run_ids.parquet            run_id, label, set, start_time, end_time, length
    sensor_location.parquet    sensor_id (rs1, rs2, rs5, ...), latitude, longitude, terrain
    run<n>_rs<m>_geo.parquet   timestamp (epoch s), channel, samples; geophone, 200 Hz
    run<n>_rs<m>_mic.parquet   timestamp (epoch s), samples; microphone, 1.6 kHz in the release
    run<n>_gps.parquet         time (UTC, no time zone), latitude, longitude, elevation; 1 Hz

Vehicle labels are ``cx30``, ``gle350``, ``mustang`` and ``miata``; runs
without a vehicle are labeled ``background``. Runs with two vehicles at once
join their labels with ``+`` and their GPS file carries a ``label`` column
naming the vehicle of each row (spar's convention for the two-vehicle scene).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

VEHICLE_CLASSES = ("cx30", "gle350", "mustang", "miata")
BACKGROUND = "background"
CLASS_NAMES = VEHICLE_CLASSES + (BACKGROUND,)
MODALITY_FILES = {"microphone": "mic", "geophone": "geo"}

RUN_COLUMNS = ("run_id", "label", "set", "start_time", "end_time")
SENSOR_COLUMNS = ("sensor_id", "latitude", "longitude")
SIGNAL_COLUMNS = {"microphone": ("timestamp", "samples"), "geophone": ("timestamp", "channel", "samples")}
GPS_COLUMNS = ("time", "latitude", "longitude")


class LayoutError(ValueError):
    """Raw files that do not follow the M3N-VC release layout."""


def read_parquet(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read the named columns of a parquet file; raise LayoutError naming the file and any missing column."""
    if not path.exists():
        raise LayoutError(f"{path} is missing")
    try:
        schema_names = pq.read_schema(path).names
    except Exception as err:  # pyarrow raises several types for damaged files
        raise LayoutError(f"{path} is not a readable parquet file: {err}") from err
    missing = [c for c in columns if c not in schema_names]
    if missing:
        raise LayoutError(f"{path} lacks column(s) {missing}; found {schema_names}")
    return pq.read_table(path, columns=list(columns)).to_pandas()


def _epoch_seconds(values) -> np.ndarray:
    """Convert timestamps to float epoch seconds; values without a time zone are taken as UTC."""
    stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    return stamps.asi8 / 1e9


def sensor_number(sensor_id: str) -> int:
    """Return the number of a sensor id such as ``rs12``; raise LayoutError for other ids."""
    match = re.fullmatch(r"rs(\d+)", str(sensor_id))
    if not match:
        raise LayoutError(f"sensor id {sensor_id!r} does not look like rs<number>")
    return int(match.group(1))


@dataclass
class Scene:
    """The tables of one scene folder."""

    name: str
    folder: Path
    runs: pd.DataFrame  # run_id, label, set, start_s, end_s (epoch seconds)
    sensors: pd.DataFrame  # sensor_id, latitude, longitude, terrain; sorted by sensor number

    def signal_path(self, run_id: int, sensor_id: str, modality: str) -> Path:
        return self.folder / f"run{run_id}_{sensor_id}_{MODALITY_FILES[modality]}.parquet"

    def gps_path(self, run_id: int) -> Path:
        return self.folder / f"run{run_id}_gps.parquet"


def find_scenes(raw_dir: Path) -> list[Path]:
    """Return the scene folders under ``raw_dir`` (those holding ``run_ids.parquet``), sorted by name.

    Raises LayoutError when ``raw_dir`` is not an M3N-VC release folder.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise LayoutError(f"{raw_dir} is not a folder; pass the folder that holds one subfolder per scene")
    scenes = sorted(p.parent for p in raw_dir.glob("*/run_ids.parquet"))
    if not scenes and (raw_dir / "run_ids.parquet").exists():
        raise LayoutError(f"{raw_dir} is one scene folder; pass its parent folder, {raw_dir.parent}, which holds one subfolder per scene")
    if not scenes:
        raise LayoutError(
            f"{raw_dir} does not follow the M3N-VC layout: expected <scene>/run_ids.parquet, "
            "<scene>/sensor_location.parquet and run<n>_rs<m>_{geo,mic}.parquet files in each scene folder"
        )
    return scenes


def read_scene(folder: Path) -> Scene:
    """Read a scene's run table and sensor table, with checks that name the offending file."""
    folder = Path(folder)
    runs = read_parquet(folder / "run_ids.parquet", RUN_COLUMNS)
    runs = pd.DataFrame(
        {
            "run_id": runs["run_id"].astype(int),
            "label": runs["label"].astype(str),
            "set": runs["set"].astype(str),
            "start_s": _epoch_seconds(runs["start_time"]),
            "end_s": _epoch_seconds(runs["end_time"]),
        }
    )
    bad_sets = sorted(set(runs["set"]) - {"train", "test"})
    if bad_sets:
        raise LayoutError(f"{folder / 'run_ids.parquet'}: column 'set' has values {bad_sets}; expected train or test")
    for label in runs["label"]:
        unknown = [part for part in label.split("+") if part not in CLASS_NAMES]
        if unknown:
            raise LayoutError(f"{folder / 'run_ids.parquet'}: unknown label {label!r}; known classes are {CLASS_NAMES}")

    sensor_path = folder / "sensor_location.parquet"
    if not sensor_path.exists():
        raise LayoutError(f"{sensor_path} is missing; every scene needs its node coordinates")
    sensors = read_parquet(sensor_path, SENSOR_COLUMNS)
    if "terrain" in pq.read_schema(sensor_path).names:
        sensors["terrain"] = pq.read_table(sensor_path, columns=["terrain"]).to_pandas()["terrain"].astype(str)
    else:
        sensors["terrain"] = "unknown"
    sensors["sensor_id"] = sensors["sensor_id"].astype(str)
    if sensors[["latitude", "longitude"]].isna().any().any():
        raise LayoutError(f"{sensor_path} has missing coordinates for {sensors.loc[sensors.latitude.isna(), 'sensor_id'].tolist()}")
    sensors["number"] = [sensor_number(s) for s in sensors["sensor_id"]]
    sensors = sensors.sort_values("number").reset_index(drop=True)
    return Scene(name=folder.name, folder=folder, runs=runs, sensors=sensors)


def read_signal_on_grid(path: Path, modality: str, start_s: float, n_samples: int, rate_hz: float, channels: list[str] | None = None) -> np.ndarray:
    """Place a node's samples onto the regular time grid of a run.

    Sample i of the grid is at ``start_s + i / rate_hz``. Each recorded sample
    goes to the nearest grid index, and of duplicates the last one wins.
    Samples outside the run are dropped, and grid points with no sample are NaN.

    Returns:
        float32 array, shape (channel, n_samples): one row per entry of
        ``channels`` for the geophone (the release has one, ``SH3``), one row
        for the microphone. A missing file gives an all-NaN array.
    """
    n_channels = len(channels) if modality == "geophone" and channels else 1
    grid = np.full((n_channels, n_samples), np.nan, dtype=np.float32)
    if not path.exists():
        return grid
    table = read_parquet(path, SIGNAL_COLUMNS[modality])
    index = np.rint((table["timestamp"].to_numpy(dtype=float) - start_s) * rate_hz).astype(np.int64)
    inside = (index >= 0) & (index < n_samples)
    values = table["samples"].to_numpy(dtype=np.float32)
    if modality == "geophone" and channels:
        channel_of_row = table["channel"].astype(str).to_numpy()
        for c, name in enumerate(channels):
            rows = inside & (channel_of_row == name)
            grid[c, index[rows]] = values[rows]
    else:
        grid[0, index[inside]] = values[inside]
    return grid


def read_gps(path: Path) -> pd.DataFrame:
    """Read a vehicle GPS track: columns time_s (epoch s), latitude, longitude, elevation, label.

    ``label`` is the vehicle of each row for two-vehicle runs and empty otherwise.
    """
    schema = pq.read_schema(path).names if path.exists() else []
    table = read_parquet(path, GPS_COLUMNS)
    out = pd.DataFrame(
        {
            "time_s": _epoch_seconds(table["time"]),
            "latitude": table["latitude"].to_numpy(float),
            "longitude": table["longitude"].to_numpy(float),
        }
    )
    out["elevation"] = pq.read_table(path, columns=["elevation"]).to_pandas()["elevation"].to_numpy(float) if "elevation" in schema else 0.0
    out["label"] = pq.read_table(path, columns=["label"]).to_pandas()["label"].astype(str).to_numpy() if "label" in schema else ""
    return out.dropna(subset=["latitude", "longitude"]).sort_values("time_s").reset_index(drop=True)
