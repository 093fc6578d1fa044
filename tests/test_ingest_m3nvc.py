"""The M3N-VC importer on small scene folders that the tests write in the release layout."""

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyproj import Geod

from spar.features.spectrogram import hz_to_mel, mel_to_hz
from spar.features.store import open_store
from spar.ingest.m3nvc import ingest
from spar.io.geodesy import EnuFrame
from spar.io.m3nvc import LayoutError

START = pd.Timestamp("2023-06-12T15:00:00Z")
CFG = {
    "window_s": 2.0,
    "min_coverage": 0.9,
    "microphone": {"rate_hz": 1600, "n_fft": 256, "hop": 128, "n_mels": 32, "fmin_hz": 20.0, "fmax_hz": 800.0},
    "geophone": {"rate_hz": 200, "n_fft": 64, "hop": 16, "n_mels": 16, "fmin_hz": 2.0, "fmax_hz": 100.0},
}
# three nodes of the real s31 layout
NODES = {"rs1": (40.096379, -88.224714), "rs2": (40.096373, -88.225168), "rs5": (40.096089, -88.224689)}
TONE_HZ = 200.0


def write_scene(folder, end_early=None, drop_sensor_file=False, drop_column=None):
    """Write a scene with a 6 s cx30 train run and a 4 s background test run; the vehicle moves east at 5 m/s."""
    folder.mkdir(parents=True)
    runs = [(1, "cx30", "train", 6.0), (2, "background", "test", 4.0)]
    t0 = START
    rows = []
    for run_id, label, split, length in runs:
        rows.append((run_id, label, split, t0, t0 + pd.Timedelta(seconds=length)))
        t0 = t0 + pd.Timedelta(seconds=length + 5)
    table = pa.table({
        "run_id": pa.array([r[0] for r in rows], pa.int64()),
        "label": [r[1] for r in rows],
        "set": [r[2] for r in rows],
        "start_time": pa.array([r[3] for r in rows], pa.timestamp("us", tz="UTC")),
        "end_time": pa.array([r[4] for r in rows], pa.timestamp("us", tz="UTC")),
        "length": pa.array([r[4] - r[3] for r in rows], pa.duration("us")),
    })
    pq.write_table(table, folder / "run_ids.parquet")
    if not drop_sensor_file:
        pq.write_table(pa.table({
            "sensor_id": list(NODES), "latitude": [v[0] for v in NODES.values()],
            "longitude": [v[1] for v in NODES.values()], "terrain": ["asphalt_road"] * 3,
        }), folder / "sensor_location.parquet")

    frame = EnuFrame.centered_on([v[0] for v in NODES.values()], [v[1] for v in NODES.values()])
    for run_id, label, split, start, end in rows:
        length = (end - start).total_seconds()
        for sensor in NODES:
            stop = length - end_early if (end_early and sensor == "rs2" and run_id == 1) else length
            t_mic = start.timestamp() + np.arange(int(stop * 1600)) / 1600
            mic = {"timestamp": t_mic, "samples": (3000 * np.sin(2 * np.pi * TONE_HZ * (t_mic - t_mic[0]))).astype(np.int64)}
            if drop_column:
                mic.pop(drop_column)
            pq.write_table(pa.table(mic), folder / f"run{run_id}_{sensor}_mic.parquet")
            t_geo = start.timestamp() + np.arange(int(stop * 200)) / 200
            geo = {"timestamp": t_geo, "channel": ["SH3"] * len(t_geo),
                   "samples": (500 * np.sin(2 * np.pi * 20 * (t_geo - t_geo[0]))).astype(np.int64)}
            pq.write_table(pa.table(geo), folder / f"run{run_id}_{sensor}_geo.parquet")
        if label != "background":
            seconds = np.arange(int(length) + 1)
            lat_lon = frame.to_geodetic(-10.0 + 5.0 * seconds, np.full(seconds.shape, 3.0))
            pq.write_table(pa.table({
                "time": pa.array((start + pd.to_timedelta(seconds, unit="s")).tz_localize(None), pa.timestamp("us")),
                "latitude": lat_lon[:, 0], "longitude": lat_lon[:, 1], "elevation": np.full(seconds.shape, 220.0),
            }), folder / f"run{run_id}_gps.parquet")
    return frame


def test_ingest_known_scene(tmp_path):
    write_scene(tmp_path / "raw" / "s31")
    ingest(tmp_path / "raw", tmp_path / "m3nvc.zarr", CFG)
    ds = open_store(tmp_path / "m3nvc.zarr")

    # 6 s train run -> 3 windows, 4 s test run -> 2 windows
    assert ds.sizes["sample"] == 5
    assert ds["split"].values.tolist() == ["train"] * 3 + ["test"] * 2
    assert ds["signal_microphone"].shape == (5, 3, 1, 32, 24)  # 1 + (3200 - 256) // 128 frames
    assert ds["signal_geophone"].shape == (5, 3, 1, 16, 22)  # 1 + (400 - 64) // 16 frames
    assert ds["present_microphone"].values.all()

    # labels: cx30 is class 0, background class 4
    assert ds["label"].values.tolist() == [0, 0, 0, 4, 4]
    assert ds["class_name"].values.tolist()[:5] == ["cx30", "gle350", "mustang", "miata", "background"]

    # the vehicle moves east at 5 m/s from x = -10 m: window centres at 1, 3, 5 s -> x = -5, 5, 15 m, y = 3 m
    target = ds["target"].values
    assert np.allclose(target[:3, 0], [-5.0, 5.0, 15.0], atol=0.05)
    assert np.allclose(target[:3, 1], 3.0, atol=0.05)
    assert np.isnan(target[3:]).all()
    assert ds["object_count"].values.tolist() == [1, 1, 1, 0, 0]

    # positions are ENU meters around the node centroid
    position = ds["position"].values[0]
    assert np.allclose(position.mean(axis=0), 0.0, atol=0.01)
    assert ds["node_name"].values.tolist() == ["s31/rs1", "s31/rs2", "s31/rs5"]
    assert ds.attrs["position_unit"] == "m"

    # the 200 Hz tone puts the microphone's strongest mel band around 200 Hz
    mel_edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(800.0), 34))
    peak_band = int(ds["signal_microphone"].values[0, 0, 0].mean(axis=-1).argmax())
    assert mel_edges[peak_band] <= TONE_HZ <= mel_edges[peak_band + 2]


def test_enu_distance_matches_geodesic():
    frame = EnuFrame.centered_on([v[0] for v in NODES.values()], [v[1] for v in NODES.values()])
    (lat1, lon1), (lat2, lon2) = NODES["rs1"], NODES["rs2"]
    enu = frame.to_enu([lat1, lat2], [lon1, lon2])
    _, _, geodesic_m = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    assert abs(np.linalg.norm(enu[0] - enu[1]) - geodesic_m) < 0.1
    assert 38.0 < geodesic_m < 39.0  # rs1 and rs2 of s31 are about 38.7 m apart


def test_node_ending_early_gets_presence_false(tmp_path, caplog):
    write_scene(tmp_path / "raw" / "s31", end_early=2.5)
    with caplog.at_level(logging.INFO, logger="spar.ingest.m3nvc"):
        ingest(tmp_path / "raw", tmp_path / "m3nvc.zarr", CFG)
    ds = open_store(tmp_path / "m3nvc.zarr")
    present = ds["present_geophone"].values
    # rs2 (slot 1) stops 2.5 s before the end of the 6 s run: windows 0-2 s present, 2-4 s (covers 1.5 of 2 s) and 4-6 s absent
    assert present[:3, 1].tolist() == [True, False, False]
    assert present[:3, [0, 2]].all()
    assert (ds["signal_geophone"].values[1:3, 1] == 0).all()
    assert "absent node-windows: geophone 2, microphone 2" in caplog.text


def test_missing_column_names_file_and_column(tmp_path):
    write_scene(tmp_path / "raw" / "s31", drop_column="samples")
    with pytest.raises(LayoutError, match=r"run1_rs1_mic\.parquet lacks column\(s\) \['samples'\]"):
        ingest(tmp_path / "raw", tmp_path / "m3nvc.zarr", CFG)
    assert not (tmp_path / "m3nvc.zarr").exists()


def test_scene_without_sensor_location(tmp_path):
    write_scene(tmp_path / "raw" / "s31", drop_sensor_file=True)
    with pytest.raises(LayoutError, match=r"s31/sensor_location\.parquet is missing"):
        ingest(tmp_path / "raw", tmp_path / "m3nvc.zarr", CFG)


def test_other_layout_rejected(tmp_path):
    (tmp_path / "raw" / "proband1" / "data").mkdir(parents=True)
    with pytest.raises(LayoutError, match="does not follow the M3N-VC layout"):
        ingest(tmp_path / "raw", tmp_path / "m3nvc.zarr", CFG)
