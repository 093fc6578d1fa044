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

Malformed tables raise LayoutError naming the file, the value and the fix.
A few defects with a safe repair (rows out of time order, NaN timestamps) are
repaired with a logged warning. docs/data-formats.md lists every case.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
# Maximum relative difference between a signal file's median timestamp spacing and
# 1 / rate_hz. A wrong rate is off by a factor of 2 or more.
# NOTE: 5 % is a guess; the timestamp jitter of the real release was not measured.
RATE_TOLERANCE = 0.05


class LayoutError(ValueError):
    """Raw files that do not follow the M3N-VC release layout."""


def read_parquet(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read the named columns of a parquet file; raise LayoutError naming the file and any missing column."""
    if not path.exists():
        raise LayoutError(f"{path} is missing")
    try:
        schema_names = pq.read_schema(path).names
    except Exception as err:  # pyarrow raises several types for damaged files
        raise LayoutError(f"{path} is not a readable parquet file: {err}; download or copy it again") from err
    missing = [c for c in columns if c not in schema_names]
    if missing:
        raise LayoutError(f"{path} lacks column(s) {missing}; found {schema_names}")
    try:
        return pq.read_table(path, columns=list(columns)).to_pandas()
    except (pa.ArrowException, OSError) as err:  # a damaged data page surfaces only here, after the footer read
        raise LayoutError(f"{path} has unreadable data ({type(err).__name__}: {err}); replace the file with the release's copy") from err


def numeric_column(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Return ``table[column]`` after checking that its dtype is numeric (bool excluded); raise LayoutError naming the file."""
    values = table[column]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        not_numbers = pd.to_numeric(values, errors="coerce").isna() & values.notna()
        example = values[not_numbers].iloc[0] if not_numbers.any() else values.iloc[0]
        raise LayoutError(
            f"{path}: column {column!r} has dtype {values.dtype} with values such as {example!r}; "
            "the release stores it as numbers, so rewrite the column as int or float"
        )
    return values


def check_coordinates(latitude: np.ndarray, longitude: np.ndarray, names, path: Path) -> None:
    """Raise LayoutError naming the file and the rows whose coordinates are missing or outside WGS84 degree ranges."""
    missing = [str(name) for name, lat, lon in zip(names, latitude, longitude) if not (np.isfinite(lat) and np.isfinite(lon))]
    if missing:
        raise LayoutError(f"{path} has missing coordinates for {missing}; fill in latitude and longitude in degrees")
    outside = [
        f"{name} ({lat}, {lon})" for name, lat, lon in zip(names, latitude, longitude) if abs(lat) > 90.0 or abs(lon) > 180.0
    ]
    if outside:
        raise LayoutError(
            f"{path}: latitude must be in [-90, 90] and longitude in [-180, 180] degrees, but {outside[:10]} are not; "
            "check for swapped columns or coordinates in another unit"
        )


def _epoch_seconds(values, path: Path, column: str) -> np.ndarray:
    """Convert timestamps to float epoch seconds, NaN for a missing one; values without a time zone are taken as UTC.

    Raises LayoutError naming the file and the column when a value is not a date and time.
    """
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    except (ValueError, TypeError, OverflowError) as err:
        raise LayoutError(f"{path}: column {column!r} has a value that is not a date and time ({err}); store it as a parquet timestamp") from err
    seconds = stamps.asi8 / 1e9
    seconds[stamps.isna()] = np.nan
    return seconds


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
    """Read a scene's run table and sensor table, with checks that name the offending file.

    Raises:
        LayoutError: a table is missing, unreadable or lacks a column. The run
            table is empty, repeats a run id, has a run that ends before it
            starts, or has an unknown label or set. The sensor table has a
            column of the wrong dtype, missing or out-of-range coordinates, or
            lists one sensor twice with different coordinates.
    """
    folder = Path(folder)
    runs = _read_runs(folder / "run_ids.parquet")

    sensor_path = folder / "sensor_location.parquet"
    if not sensor_path.exists():
        raise LayoutError(f"{sensor_path} is missing; every scene needs its node coordinates")
    sensors = _read_sensors(sensor_path)
    return Scene(name=folder.name, folder=folder, runs=runs, sensors=sensors)


def _read_runs(path: Path) -> pd.DataFrame:
    """Read ``run_ids.parquet`` into run_id, label, set, start_s, end_s (epoch seconds)."""
    table = read_parquet(path, RUN_COLUMNS)
    if table.empty:
        raise LayoutError(f"{path} lists no runs; a scene folder needs at least one row in its run table")
    run_ids = numeric_column(table, "run_id", path)
    if run_ids.isna().any() or (run_ids != np.round(run_ids)).any():
        raise LayoutError(f"{path}: column 'run_id' has values {run_ids[run_ids.isna() | (run_ids != np.round(run_ids))].tolist()}; run ids are whole numbers")
    runs = pd.DataFrame(
        {
            "run_id": run_ids.astype(int),
            "label": table["label"].astype(str),
            "set": table["set"].astype(str),
            "start_s": _epoch_seconds(table["start_time"], path, "start_time"),
            "end_s": _epoch_seconds(table["end_time"], path, "end_time"),
        }
    )

    repeated = sorted(set(runs.loc[runs["run_id"].duplicated(), "run_id"].tolist()))
    if repeated:
        raise LayoutError(f"{path}: run ids {repeated} appear more than once; each run needs its own id")
    untimed = runs.loc[runs["start_s"].isna() | runs["end_s"].isna(), "run_id"].tolist()
    if untimed:
        raise LayoutError(f"{path}: runs {untimed} have a missing start_time or end_time; fill in both")
    reversed_runs = runs.loc[runs["end_s"] < runs["start_s"], "run_id"].tolist()
    if reversed_runs:
        raise LayoutError(f"{path}: runs {reversed_runs} end before they start; swap start_time and end_time")
    bad_sets = sorted(set(runs["set"]) - {"train", "test"})
    if bad_sets:
        raise LayoutError(f"{path}: column 'set' has values {bad_sets}; expected train or test, so rename those values in the file")
    for label in runs["label"]:
        unknown = [part for part in label.split("+") if part not in CLASS_NAMES]
        if unknown:
            raise LayoutError(f"{path}: unknown label {label!r}; known classes are {CLASS_NAMES}, so map it to one of them or drop its runs")
    return runs


def _read_sensors(path: Path) -> pd.DataFrame:
    """Read ``sensor_location.parquet`` into sensor_id, latitude, longitude, terrain and number, sorted by number.

    A sensor listed twice with the same coordinates is kept once, with a warning.
    """
    sensors = read_parquet(path, SENSOR_COLUMNS)
    if "terrain" in pq.read_schema(path).names:
        sensors["terrain"] = read_parquet(path, ("terrain",))["terrain"].astype(str)
    else:
        sensors["terrain"] = "unknown"
    sensors["sensor_id"] = sensors["sensor_id"].astype(str)
    latitude = numeric_column(sensors, "latitude", path).to_numpy(dtype=float)
    longitude = numeric_column(sensors, "longitude", path).to_numpy(dtype=float)
    check_coordinates(latitude, longitude, sensors["sensor_id"], path)

    repeated = sensors["sensor_id"].duplicated(keep=False)
    if repeated.any():
        places = sensors[repeated].groupby("sensor_id")[["latitude", "longitude"]].nunique()
        moved = places.index[(places > 1).any(axis=1)].tolist()
        if moved:
            rows = sensors[sensors["sensor_id"].isin(moved)][["sensor_id", "latitude", "longitude"]].to_dict("records")
            raise LayoutError(f"{path}: sensors {moved} are listed more than once with different coordinates {rows}; keep one row per sensor")
        log.warning("%s: sensors %s are listed more than once with the same coordinates; keeping one row each",
                    path, sorted(set(sensors.loc[repeated, "sensor_id"])))
        sensors = sensors.drop_duplicates("sensor_id", keep="first")

    sensors["number"] = [sensor_number(s) for s in sensors["sensor_id"]]
    return sensors.sort_values("number").reset_index(drop=True)


def read_signal_on_grid(path: Path, modality: str, start_s: float, n_samples: int, rate_hz: float, channels: list[str] | None = None) -> np.ndarray:
    """Place a node's samples onto the regular time grid of a run.

    Sample i of the grid is at ``start_s + i / rate_hz``. Each recorded sample
    goes to the nearest grid index, and of duplicates the last one wins, so
    the row order of the file does not matter. Samples outside the run are
    dropped, and grid points with no sample are NaN. Rows whose timestamp is
    NaN or infinite are dropped with a warning.

    Returns:
        float32 array, shape (channel, n_samples): one row per entry of
        ``channels`` for the geophone (the release has one, ``SH3``), one row
        for the microphone. A missing file gives an all-NaN array.

    Raises:
        LayoutError: the file is unreadable, lacks a column, has a non-numeric
            timestamp or samples column, or its median timestamp spacing is
            more than ``RATE_TOLERANCE`` away from ``1 / rate_hz``.
    """
    n_channels = len(channels) if modality == "geophone" and channels else 1
    grid = np.full((n_channels, n_samples), np.nan, dtype=np.float32)
    if not path.exists():
        return grid
    table = read_parquet(path, SIGNAL_COLUMNS[modality])
    timestamps = numeric_column(table, "timestamp", path).to_numpy(dtype=float)
    values = numeric_column(table, "samples", path).to_numpy(dtype=np.float32)
    timed = np.isfinite(timestamps)
    if not timed.all():
        log.warning("%s: dropped %d of %d rows whose timestamp is NaN or infinite", path, int((~timed).sum()), len(timed))
    _check_spacing(timestamps[timed], rate_hz, path)

    # compare in float before the cast, so a timestamp far outside the run cannot wrap around int64
    with np.errstate(over="ignore", invalid="ignore"):
        position = np.rint((timestamps - start_s) * rate_hz)
    inside = np.isfinite(position) & (position >= 0) & (position < n_samples)
    index = np.zeros(len(timestamps), dtype=np.int64)
    index[inside] = position[inside].astype(np.int64)
    if modality == "geophone" and channels:
        channel_of_row = table["channel"].astype(str).to_numpy()
        for c, name in enumerate(channels):
            rows = inside & (channel_of_row == name)
            grid[c, index[rows]] = values[rows]
    else:
        grid[0, index[inside]] = values[inside]
    return grid


def _check_spacing(timestamps: np.ndarray, rate_hz: float, path: Path) -> None:
    """Raise LayoutError when the median spacing of the distinct timestamps disagrees with ``rate_hz``."""
    steps = np.diff(np.unique(timestamps))
    if steps.size == 0:
        return
    spacing = float(np.median(steps))
    if abs(spacing * rate_hz - 1.0) > RATE_TOLERANCE:
        raise LayoutError(
            f"{path}: timestamps are {spacing:.4g} s apart ({1.0 / spacing:.4g} Hz) but the configured rate is {rate_hz:g} Hz; "
            "set rate_hz in params.yaml to the file's rate, or check that the timestamps are in seconds"
        )


def read_gps(path: Path) -> pd.DataFrame:
    """Read a vehicle GPS track: columns time_s (epoch s), latitude, longitude, elevation, label.

    ``label`` is the vehicle of each row for two-vehicle runs and empty otherwise.
    Rows with a missing time, latitude or longitude are dropped, and rows are
    sorted by time, so the file's row order does not matter.

    Raises:
        LayoutError: the file is missing, unreadable or lacks a column, a
            coordinate column is not numeric, or a coordinate is out of range.
    """
    schema = pq.read_schema(path).names if path.exists() else []
    table = read_parquet(path, GPS_COLUMNS)
    out = pd.DataFrame(
        {
            "time_s": _epoch_seconds(table["time"], path, "time"),
            "latitude": numeric_column(table, "latitude", path).to_numpy(float),
            "longitude": numeric_column(table, "longitude", path).to_numpy(float),
        }
    )
    out["elevation"] = numeric_column(read_parquet(path, ("elevation",)), "elevation", path).to_numpy(float) if "elevation" in schema else 0.0
    out["label"] = read_parquet(path, ("label",))["label"].astype(str).to_numpy() if "label" in schema else ""
    out = out.dropna(subset=["time_s", "latitude", "longitude"])
    check_coordinates(out["latitude"].to_numpy(), out["longitude"].to_numpy(), [f"row at {t} s" for t in out["time_s"]], path)
    return out.sort_values("time_s").reset_index(drop=True)
