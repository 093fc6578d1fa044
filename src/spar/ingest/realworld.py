"""RealWorld-HAR subject folders -> the activity-recognition tensor store.

Each recording session (one activity, one recording number, all body
positions and sensors of a subject) is resampled to ``rate_hz`` on a common
clock and cut into non-overlapping windows of ``window_s`` seconds where the
session's recordings overlap in time. A position and sensor that covers less
than ``min_coverage`` of a window, or that the subject did not record, gets
presence False and zeros. Tokens are time segments of the raw three-axis
signals (``freq`` has size 1 and ``frame`` is the sample axis). Positions are
approximate body coordinates in meters (``spar.io.body``); the split is by
subject.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spar.features.resample import common_windows, resample_to_grid
from spar.features.store import build_dataset, hash_files, signal_normalization, write_store
from spar.io.body import AXIS_NAMES, body_positions
from spar.io.realworld import ACTIVITIES, SENSORS, find_subjects, read_subject

log = logging.getLogger(__name__)

MODALITY_OF_SENSOR = {"acc": "accelerometer", "gyr": "gyroscope", "mag": "magnetometer"}


def _split_of(subject: int, cfg: dict) -> str | None:
    if subject in cfg["train_subjects"]:
        return "train"
    if subject in cfg["val_subjects"]:
        return "val"
    return None


def _session_windows(recordings: list, positions: list[str], cfg: dict, counters: dict):
    """Cut one session into windows; returns (starts (W,), signals {modality: (W, N, 3, 1, T)}, present {modality: (W, N)})."""
    rate, window_s = float(cfg["rate_hz"]), float(cfg["window_s"])
    window_n = int(round(window_s * rate))
    starts = common_windows([rec.interval for rec in recordings], window_s)
    n_windows = starts.size
    signals = {m: np.zeros((n_windows, len(positions), 3, 1, window_n), dtype=np.float32) for m in MODALITY_OF_SENSOR.values()}
    present = {m: np.zeros((n_windows, len(positions)), dtype=bool) for m in MODALITY_OF_SENSOR.values()}
    if n_windows == 0:
        return starts, signals, present

    # one grid for the whole session, so every recording is interpolated once
    offsets = np.arange(window_n) / rate
    grid = (starts[:, None] + offsets[None, :]).ravel()
    for rec in recordings:
        modality = MODALITY_OF_SENSOR[rec.sensor]
        slot = positions.index(rec.position)
        values = resample_to_grid(rec.time_s, rec.values, grid, float(cfg["max_gap_s"])).reshape(n_windows, window_n, 3)
        finite = np.isfinite(values).all(axis=2)
        ok = finite.mean(axis=1) >= float(cfg["min_coverage"])
        counters["thin_windows"] += int((~ok).sum())

        # fill the few missing samples of a present window with the window's channel mean
        mean = np.nanmean(np.where(finite[..., None], values, np.nan), axis=1, keepdims=True) if ok.any() else 0.0
        filled = np.where(np.isfinite(values), values, np.nan_to_num(mean))
        signals[modality][ok, slot, :, 0, :] = filled[ok].transpose(0, 2, 1)
        present[modality][ok, slot] = True
    return starts, signals, present


def ingest(raw_dir: Path, out: Path, cfg: dict) -> None:
    """Read every ``proband<N>`` folder under ``raw_dir`` and write the tensor store ``out``.

    Args:
        raw_dir: folder with the release's ``proband<N>/data/*.zip`` layout.
        out: Zarr store path (written atomically).
        cfg: ``ingest.realworld`` of params.yaml: positions, rate_hz, window_s,
            max_gap_s, min_coverage, train_subjects, val_subjects.
    """
    positions = list(cfg["positions"])
    counters = defaultdict(int)
    parts = defaultdict(list)
    zips = []
    for folder in tqdm(find_subjects(raw_dir), desc="ingest realworld", unit="subject", disable=None):
        zips += sorted((folder / "data").glob("*.zip"))
        recordings = read_subject(folder, sensors=SENSORS, positions=positions)
        if not recordings:
            counters["subjects_without_data"] += 1
            continue
        subject = recordings[0].subject
        split = _split_of(subject, cfg)
        if split is None:
            counters["subjects_outside_split"] += 1
            log.info("subject %d is in neither train_subjects nor val_subjects; skipped", subject)
            continue

        sessions = defaultdict(list)
        for rec in recordings:
            sessions[(rec.activity, rec.recording)].append(rec)
        for (activity, number), session in sorted(sessions.items()):
            starts, signals, present = _session_windows(session, positions, cfg, counters)
            if starts.size == 0:
                counters["sessions_without_overlap"] += 1
                log.warning("proband%d %s recording %d: the positions share less than one %.1f s window; skipped",
                            subject, activity, number, float(cfg["window_s"]))
                continue
            parts["starts"].append(starts)
            parts["label"].append(np.full(starts.size, ACTIVITIES.index(activity)))
            parts["group"].append(np.full(starts.size, f"subject{subject}", dtype=object))
            parts["split"].append(np.full(starts.size, split, dtype=object))
            parts["signals"].append(signals)
            parts["present"].append(present)
    if not parts["starts"]:
        raise ValueError(f"{raw_dir}: no windows could be cut; check that the subjects have overlapping recordings")

    starts = np.concatenate(parts["starts"])
    n_windows, n_nodes = starts.size, len(positions)
    modalities = list(MODALITY_OF_SENSOR.values())
    ds = build_dataset(
        signals={m: np.concatenate([s[m] for s in parts["signals"]]) for m in modalities},
        present={m: np.concatenate([p[m] for p in parts["present"]]) for m in modalities},
        position=np.broadcast_to(body_positions(positions), (n_windows, n_nodes, 3)).copy(),
        node_id=np.broadcast_to(np.arange(n_nodes), (n_windows, n_nodes)).copy(),
        node_name=positions,
        time=(starts * 1e9).astype("int64").astype("datetime64[ns]"),
        group=np.concatenate(parts["group"]),
        split=np.concatenate(parts["split"]),
        axis_names=AXIS_NAMES,
        label=np.concatenate(parts["label"]),
        class_name=ACTIVITIES,
        attrs={
            "dataset": "realworld",
            "position_unit": "m",
            "group_kind": "subject",
            "rate_hz": float(cfg["rate_hz"]),
            "window_s": float(cfg["window_s"]),
            "min_coverage": float(cfg["min_coverage"]),
            "token": "time segments of the raw three-axis signals; freq has size 1",
            "units": {"accelerometer": "m/s^2", "gyroscope": "rad/s", "magnetometer": "uT"},
            "positions": positions,
            "raw_hash": hash_files(zips),
        },
    )
    ds.attrs["normalization"] = signal_normalization(ds)
    write_store(ds, out)

    absent = {m: int((~ds[f"present_{m}"].values).sum()) for m in modalities}
    log.info(
        "ingested %d windows (%d train, %d val) from %d subjects; absent position-windows %s of %d; "
        "windows below min_coverage %d; sessions without a shared window %d; subjects outside the split %d",
        n_windows, int((ds["split"].values == "train").sum()), int((ds["split"].values == "val").sum()),
        len(set(np.concatenate(parts["group"]))), absent, n_windows * n_nodes,
        counters["thin_windows"], counters["sessions_without_overlap"], counters["subjects_outside_split"],
    )
