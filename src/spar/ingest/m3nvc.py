"""M3N-VC scene folders -> the vehicle tensor store.

Each run is cut into non-overlapping windows of ``window_s`` seconds that are
aligned across nodes (they start at the run's ``start_time``). Per window and
node, each modality becomes a log-mel spectrogram. A node whose samples cover
less than ``min_coverage`` of a window is marked absent, with zeros and
presence False. Node and vehicle coordinates go to a per-scene ENU frame in meters
whose origin is the mean node position. The single-vehicle target is the GPS
track interpolated to the window centre; every vehicle of the window is also
listed in ``objects`` (class, east, north).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spar.features.spectrogram import frame_count, log_mel_spectrogram
from spar.features.store import build_dataset, hash_files, signal_normalization, write_store
from spar.io.geodesy import EnuFrame
from spar.io.m3nvc import (
    BACKGROUND,
    CLASS_NAMES,
    LayoutError,
    Scene,
    find_scenes,
    read_gps,
    read_scene,
    read_signal_on_grid,
)

log = logging.getLogger(__name__)

MODALITIES = ("geophone", "microphone")
MAX_OBJECTS = 2  # the two-vehicle scene has two vehicles at once
MAX_GPS_GAP_S = 3.0  # a window centre further than this from any GPS fix gets no target


def _interpolate_track(track, frame: EnuFrame, times_s: np.ndarray) -> np.ndarray:
    """Interpolate a GPS track to ``times_s``; returns (len(times_s), 2) east/north in meters, NaN where uncovered."""
    enu = frame.to_enu(track["latitude"].to_numpy(), track["longitude"].to_numpy())
    t = track["time_s"].to_numpy()
    out = np.full((len(times_s), 2), np.nan, dtype=np.float64)
    if len(t) < 2:
        return out
    for axis in range(2):
        out[:, axis] = np.interp(times_s, t, enu[:, axis])
    # distance from each centre to the nearest fix: no extrapolation across long gaps or beyond the track
    nearest = np.abs(t[np.clip(np.searchsorted(t, times_s), 0, len(t) - 1)] - times_s)
    nearest = np.minimum(nearest, np.abs(t[np.clip(np.searchsorted(t, times_s) - 1, 0, len(t) - 1)] - times_s))
    out[nearest > MAX_GPS_GAP_S] = np.nan
    return out


def _windows_of_modality(grid: np.ndarray, n_windows: int, window_n: int, min_coverage: float, spec: dict):
    """Cut one node's gridded signal into windows and compute log-mel spectrograms.

    Args:
        grid: (channel, n_samples) with NaN where no sample was recorded.

    Returns:
        spectrograms (n_windows, channel, n_mels, n_frames) and presence (n_windows,).
    """
    n_channels = grid.shape[0]
    windows = grid[:, : n_windows * window_n].reshape(n_channels, n_windows, window_n).transpose(1, 0, 2)
    finite = np.isfinite(windows)
    coverage = finite.mean(axis=(1, 2))
    present = coverage >= min_coverage

    # remove each window's mean and fill the few missing samples of a present window with zero
    mean = np.where(finite, windows, 0.0).sum(axis=-1, keepdims=True) / np.maximum(finite.sum(axis=-1, keepdims=True), 1)
    filled = np.where(finite, windows - mean, 0.0).astype(np.float32)
    spec_args = {k: spec[k] for k in ("n_fft", "hop", "n_mels", "fmin_hz", "fmax_hz")}
    spectrogram = log_mel_spectrogram(filled, sample_rate_hz=spec["rate_hz"], **spec_args)
    spectrogram[~present] = 0.0
    return spectrogram, present


def _ingest_scene(scene: Scene, cfg: dict, node_offset: int, max_nodes: int, counters: dict) -> dict:
    """Window every run of one scene; returns per-window arrays for this scene."""
    window_s = float(cfg["window_s"])
    frame = EnuFrame.centered_on(scene.sensors["latitude"], scene.sensors["longitude"])
    node_enu = frame.to_enu(scene.sensors["latitude"], scene.sensors["longitude"])[:, :2]
    n_nodes = len(scene.sensors)
    if n_nodes > max_nodes:
        raise LayoutError(f"{scene.folder}: {n_nodes} nodes exceed the {max_nodes} node slots")

    parts: dict[str, list] = {key: [] for key in ("signals", "present", "label", "target", "objects", "count", "time", "split")}
    for run in scene.runs.itertuples(index=False):
        n_windows = int(np.floor((run.end_s - run.start_s) / window_s + 1e-9))
        if n_windows == 0:
            log.warning("%s run %d is shorter than one %.1f s window; skipped", scene.name, run.run_id, window_s)
            continue
        starts = run.start_s + window_s * np.arange(n_windows)

        # signals of every node and modality
        run_signals, run_present = {}, {}
        for modality in MODALITIES:
            spec = cfg[modality]
            window_n = int(round(window_s * spec["rate_hz"]))
            n_frames = frame_count(window_n, spec["n_fft"], spec["hop"])
            channels = list(spec.get("channels", ["SH3"])) if modality == "geophone" else None
            n_channels = len(channels) if channels else 1
            sig = np.zeros((n_windows, max_nodes, n_channels, spec["n_mels"], n_frames), dtype=np.float32)
            pres = np.zeros((n_windows, max_nodes), dtype=bool)
            for slot, sensor_id in enumerate(scene.sensors["sensor_id"]):
                path = scene.signal_path(run.run_id, sensor_id, modality)
                if not path.exists():
                    counters["missing_files"] += 1
                    log.warning("%s is missing; node %s marked absent for run %d", path, sensor_id, run.run_id)
                grid = read_signal_on_grid(path, modality, run.start_s, n_windows * window_n, spec["rate_hz"], channels)
                sig[:, slot], pres[:, slot] = _windows_of_modality(grid, n_windows, window_n, cfg["min_coverage"], spec)
            counters[f"absent_{modality}"] += int((~pres[:, :n_nodes]).sum())
            run_signals[modality], run_present[modality] = sig, pres

        # targets: every vehicle of the run, interpolated to the window centres
        vehicles = [v for v in run.label.split("+") if v != BACKGROUND]
        objects = np.full((n_windows, MAX_OBJECTS, 3), np.nan, dtype=np.float32)
        count = np.zeros(n_windows, dtype=np.int16)
        if vehicles:
            track = read_gps(scene.gps_path(run.run_id))
            for k, vehicle in enumerate(vehicles):
                rows = track if len(vehicles) == 1 else track[track["label"] == vehicle]
                if len(vehicles) > 1 and rows.empty:
                    raise LayoutError(f"{scene.gps_path(run.run_id)} has no rows with label {vehicle!r}")
                xy = _interpolate_track(rows, frame, starts + window_s / 2)
                valid = np.isfinite(xy).all(axis=1)
                objects[valid, count[valid], 0] = CLASS_NAMES.index(vehicle)
                objects[valid, count[valid], 1:] = xy[valid]
                count[valid] += 1
                counters["windows_without_gps"] += int((~valid).sum())
        # a class label and a single-object target only where the run has at most one vehicle
        if len(vehicles) == 1:
            label_index = CLASS_NAMES.index(vehicles[0])
            target = objects[:, 0, 1:].copy()
        else:
            label_index = CLASS_NAMES.index(BACKGROUND) if not vehicles else -1
            target = np.full((n_windows, 2), np.nan, dtype=np.float32)
        label = np.full(n_windows, label_index)

        parts["signals"].append(run_signals)
        parts["present"].append(run_present)
        parts["label"].append(label)
        parts["target"].append(target)
        parts["objects"].append(objects)
        parts["count"].append(count)
        parts["time"].append((starts * 1e9).astype("int64").astype("datetime64[ns]"))
        parts["split"].append(np.full(n_windows, run.set, dtype=object))

    n_total = sum(len(x) for x in parts["label"])
    position = np.full((n_total, max_nodes, 2), np.nan, dtype=np.float32)
    position[:, :n_nodes] = node_enu
    node_id = np.full((n_total, max_nodes), -1, dtype=np.int32)
    node_id[:, :n_nodes] = node_offset + np.arange(n_nodes)
    return {
        "signals": {m: np.concatenate([s[m] for s in parts["signals"]]) for m in MODALITIES},
        "present": {m: np.concatenate([p[m] for p in parts["present"]]) for m in MODALITIES},
        "label": np.concatenate(parts["label"]),
        "target": np.concatenate(parts["target"]),
        "objects": np.concatenate(parts["objects"]),
        "object_count": np.concatenate(parts["count"]),
        "time": np.concatenate(parts["time"]),
        "split": np.concatenate(parts["split"]),
        "group": np.full(n_total, scene.name, dtype=object),
        "position": position,
        "node_id": node_id,
        "enu_origin": frame.as_dict(),
    }


def ingest(raw_dir: Path, out: Path, cfg: dict) -> None:
    """Read every scene folder under ``raw_dir`` and write the tensor store ``out``.

    Args:
        raw_dir: folder with one subfolder per scene in the M3N-VC release layout.
        out: Zarr store path (written atomically).
        cfg: ``ingest.m3nvc`` of params.yaml: window_s, min_coverage and, per
            modality, rate_hz, n_fft, hop, n_mels, fmin_hz, fmax_hz.
    """
    scene_folders = find_scenes(raw_dir)
    scenes = [read_scene(folder) for folder in scene_folders]
    max_nodes = max(len(s.sensors) for s in scenes)
    counters = {"missing_files": 0, "absent_geophone": 0, "absent_microphone": 0, "windows_without_gps": 0}

    per_scene, node_names, origins = [], [], {}
    for scene in tqdm(scenes, desc="ingest m3nvc", unit="scene", disable=None):
        per_scene.append(_ingest_scene(scene, cfg, len(node_names), max_nodes, counters))
        node_names += [f"{scene.name}/{sid}" for sid in scene.sensors["sensor_id"]]
        origins[scene.name] = per_scene[-1]["enu_origin"]

    def cat(key):
        return np.concatenate([p[key] for p in per_scene])

    ds = build_dataset(
        signals={m: np.concatenate([p["signals"][m] for p in per_scene]) for m in MODALITIES},
        present={m: np.concatenate([p["present"][m] for p in per_scene]) for m in MODALITIES},
        position=cat("position"),
        node_id=cat("node_id"),
        node_name=node_names,
        time=cat("time"),
        group=cat("group"),
        split=cat("split"),
        axis_names=("east", "north"),
        label=cat("label"),
        class_name=CLASS_NAMES,
        target=cat("target"),
        objects=cat("objects"),
        object_count=cat("object_count"),
        attrs={
            "dataset": "m3nvc",
            "position_unit": "m",
            "group_kind": "scene",
            "window_s": float(cfg["window_s"]),
            "min_coverage": float(cfg["min_coverage"]),
            "spectrogram": {m: dict(cfg[m]) for m in MODALITIES},
            "object_fields": ["class", "east", "north"],
            "target_axis_names": ["east", "north"],
            "enu_origin": origins,
            "raw_hash": hash_files(p for f in scene_folders for p in f.glob("*.parquet")),
        },
    )
    ds.attrs["normalization"] = signal_normalization(ds)
    write_store(ds, out)

    n_windows = ds.sizes["sample"]
    n_slots = int((ds["node_id"].values >= 0).sum())
    log.info(
        "ingested %d scenes, %d windows (%d train, %d test); absent node-windows: geophone %d, microphone %d of %d; "
        "missing files %d; windows without GPS %d",
        len(scenes),
        n_windows,
        int((ds["split"].values == "train").sum()),
        int((ds["split"].values == "test").sum()),
        counters["absent_geophone"],
        counters["absent_microphone"],
        n_slots,
        counters["missing_files"],
        counters["windows_without_gps"],
    )
