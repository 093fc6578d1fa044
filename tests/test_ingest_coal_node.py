"""coal_node ingest on the files shipped by opsdata-coal-node and on fixtures derived from them."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest
from scipy.signal import resample_poly

from spar import cli
from spar import config as config_mod
from spar.features.spectrogram import frame_count
from spar.features.store import open_store
from spar.ingest import coal_node
from spar.io import seismic

REPO = Path(__file__).resolve().parents[1]
# The same settings as params.yaml, fixed here so the expected shapes are plain numbers.
# test_params_match_patch_grid checks params.yaml itself.
CFG = {"rate_hz": 500, "pre_origin_s": 1.0, "window_s": 8.448, "n_fft": 256, "hop": 128, "max_freq_bins": 64}
STATION_NAMES = [f"1.{i}" for i in range(1, 13)]


@pytest.fixture(scope="module")
def raw_dir() -> Path:
    return coal_node.find_dataset_dir()


@pytest.fixture(scope="module")
def real_store(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("coal") / "coal_node.zarr"
    coal_node.ingest(None, out, CFG)
    return open_store(out)


def test_find_dataset_dir_layout(raw_dir):
    assert (raw_dir / "stations" / "inv.xml").is_file()
    assert len(list((raw_dir / "waveforms").glob("*.mseed"))) == 5


def test_find_dataset_dir_missing_package(monkeypatch):
    monkeypatch.setattr(coal_node.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="opsdata-coal-node.*pip install"):
        coal_node.find_dataset_dir()


def test_real_store_shapes(real_store):
    assert real_store.sizes["sample"] == 5
    assert real_store.sizes["node"] == 12
    assert real_store["signal_geophone"].shape == (5, 12, 3, 64, 32)
    assert real_store["target"].shape == (5, 3)
    assert list(real_store["node_name"].values) == STATION_NAMES
    assert (real_store["node_id"].values == np.arange(12)).all()


def test_real_store_presence_and_signal(real_store):
    present = real_store["present_geophone"].values
    signal = real_store["signal_geophone"].values
    # every station recorded every event in full; verified on the released files
    assert present.all()
    assert np.isfinite(signal).all()
    assert signal.std() > 1.0


def test_real_windows_contain_events(real_store):
    # mean log power over nodes, channels and bins above DC, per event and frame
    power = real_store["signal_geophone"].values[:, :, :, 1:, :].mean(axis=(1, 2, 3))
    pre_origin = power[:, 1]  # frame 1 spans 0.256-0.768 s of the window, before the origin at 1 s
    after_origin = power[:, 3:11].max(axis=1)
    assert (after_origin - pre_origin > 1.0).all()


def test_real_positions_km(real_store):
    position = real_store["position"].values
    assert real_store.attrs["position_unit"] == "km"
    assert (position == position[0]).all()
    horizontal = np.linalg.norm(position[0, :, :2], axis=1)
    # station 1 sits about 3 km south-west of the other eleven, which lie within 0.6 km of the centre
    assert horizontal[0] == pytest.approx(3.0, abs=0.1)
    assert horizontal[1:].max() < 0.6
    assert np.abs(position[0, :, 2]).max() < 0.1
    assert np.abs(position[0].mean(axis=0)).max() < 0.01


def test_real_targets_from_depth(real_store, raw_dir):
    catalog = seismic.read_catalog(raw_dir / "events")
    target = real_store["target"].values
    h0_km = real_store.attrs["enu_origin"]["h0_m"] / 1000.0
    assert h0_km == pytest.approx(0.587, abs=0.001)  # mean station elevation
    # QuakeML depths are negative: every event lies above sea level
    assert (catalog["depth_km"] < 0).all()
    assert (target[:, 2] + h0_km > 0).all()
    # up = -depth - h0, up to curvature below 1 m over the 1 km horizontal offsets
    np.testing.assert_allclose(target[:, 2], -catalog["depth_km"].to_numpy() - h0_km, atol=0.001)
    # relative to the network's mean elevation, four events lie below and one above
    assert int((target[:, 2] < 0).sum()) == 4
    assert np.linalg.norm(target[:, :2], axis=1).max() < 1.0


def test_real_sample_coordinates(real_store, raw_dir):
    catalog = seismic.read_catalog(raw_dir / "events")
    assert list(real_store["group"].values) == list(catalog["event_id"])
    assert set(real_store["split"].values) == {"train"}
    assert (real_store["label"].values == -1).all()
    expected = (catalog["time"] - pd.Timedelta(seconds=1.0)).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    assert (real_store["time"].values == expected).all()


def test_real_attrs(real_store):
    attrs = real_store.attrs
    json.dumps(attrs)
    assert attrs["dataset"] == "coal_node"
    assert attrs["window_samples"] == 4224
    assert attrs["channel_names"] == {"geophone": ["E", "N", "Z"]}
    freq = np.asarray(attrs["freq_hz"]["geophone"])
    assert len(freq) == 64
    assert freq[1] == pytest.approx(500 / 256)
    assert "250.0" in attrs["sample_rate_note"]
    assert "500.0" in attrs["sample_rate_note"]
    assert set(attrs["normalization"]["geophone"]) == {"mean", "std"}
    assert len(attrs["raw_hash"]) == 64
    assert len(attrs["source_files"]) == 11


def test_rate_mismatch_logged(raw_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="spar.ingest.coal_node"):
        coal_node.ingest(raw_dir, tmp_path / "store.zarr", CFG)
    assert any("250.0" in r.getMessage() and "500.0" in r.getMessage() for r in caplog.records)


def test_params_match_patch_grid():
    tree = config_mod.load(REPO / "params.yaml")
    cfg = tree["ingest"]["coal_node"]
    n_samples = round(cfg["window_s"] * cfg["rate_hz"])
    bins_per_patch, frames_per_patch = tree["datasets"]["coal_node"]["patch"]["geophone"]
    assert cfg["max_freq_bins"] % bins_per_patch == 0
    assert frame_count(n_samples, cfg["n_fft"], cfg["hop"]) % frames_per_patch == 0


# --- fixtures with missing and resampled data --------------------------------------------


def _event_file_for(raw_dir: Path, path: Path) -> Path:
    """Return the QuakeML file of the event whose origin lies inside the traces of ``path``."""
    stream = obspy.read(str(path))
    for event_file in seismic.quakeml_files(raw_dir / "events"):
        origin = seismic.read_catalog([event_file])["time"][0]
        if stream[0].stats.starttime <= obspy.UTCDateTime(ns=origin.value) <= stream[0].stats.endtime:
            return event_file
    raise AssertionError(f"no event inside {path}")


@pytest.fixture
def damaged_dir(raw_dir, tmp_path):
    """Write a dataset folder with two events, derived from the released files, with these defects:

    - station 5 has no data;
    - station 7 lacks DPN in the first event;
    - station 9 has a 50 ms gap 3 s after each origin;
    - station 11 starts 4 s after the first origin;
    - station 3 is decimated to 250 Hz.
    """
    folder = tmp_path / "coal_node"
    (folder / "stations").mkdir(parents=True)
    (folder / "waveforms").mkdir()
    shutil.copy(raw_dir / "stations" / "inv.xml", folder / "stations" / "inv.xml")
    sources = sorted((raw_dir / "waveforms").glob("*.mseed"))[:2]
    for n, source in enumerate(sources):
        event_file = _event_file_for(raw_dir, source)
        target = folder / "events" / event_file.relative_to(raw_dir / "events")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(event_file, target)
        origin = obspy.UTCDateTime(ns=seismic.read_catalog([event_file])["time"][0].value)

        written = obspy.Stream()
        for tr in obspy.read(str(source)):
            station, channel = tr.stats.station, tr.stats.channel
            if station == "5" or (n == 0 and station == "7" and channel == "DPN"):
                continue
            if station == "9":
                gap = slice(int((origin + 3.0 - tr.stats.starttime) * 500), int((origin + 3.05 - tr.stats.starttime) * 500))
                data = np.ma.masked_array(tr.data, mask=np.zeros(len(tr.data), dtype=bool))
                data.mask[gap] = True
                tr.data = data
                written += tr.split()
                continue
            if n == 0 and station == "11":
                tr.trim(starttime=origin + 4.0)
            if station == "3":
                tr.data = resample_poly(tr.data.astype(np.float64), 1, 2).astype(np.float32)
                tr.stats.sampling_rate = 250.0
            written += tr
        written.write(str(folder / "waveforms" / source.name), format="MSEED")
    return folder


@pytest.fixture
def damaged_store(damaged_dir, tmp_path):
    out = tmp_path / "damaged.zarr"
    code = cli.main(["ingest", "coal-node", "--raw", str(damaged_dir), "--out", str(out), "--config", json.dumps({"ingest": {"coal_node": CFG}})])
    assert code == 0
    return open_store(out)


def test_missing_station_absent_with_zeros(damaged_store):
    present = damaged_store["present_geophone"].values
    signal = damaged_store["signal_geophone"].values
    station5 = STATION_NAMES.index("1.5")
    assert damaged_store.sizes["sample"] == 2
    assert not present[:, station5].any()
    assert (signal[:, station5] == 0).all()


def test_missing_component_makes_station_absent(damaged_store):
    present = damaged_store["present_geophone"].values
    signal = damaged_store["signal_geophone"].values
    station7 = STATION_NAMES.index("1.7")
    assert not present[0, station7]
    assert (signal[0, station7] == 0).all()
    assert present[1, station7]


def test_low_coverage_station_absent(damaged_store):
    present = damaged_store["present_geophone"].values
    station11 = STATION_NAMES.index("1.11")
    assert not present[0, station11]
    assert present[1, station11]


def test_short_gap_interpolated(damaged_store, real_store):
    station9 = STATION_NAMES.index("1.9")
    assert damaged_store["present_geophone"].values[:, station9].all()
    rows = [list(real_store["group"].values).index(g) for g in damaged_store["group"].values]
    difference = np.abs(damaged_store["signal_geophone"].values[:, station9] - real_store["signal_geophone"].values[rows, station9])
    # the 50 ms gap changes the frames around it a little and leaves the rest of the window as it was
    assert difference.max() > 0
    assert difference.mean() < 0.2


def test_resampled_station_matches_original(damaged_store, real_store):
    station3 = STATION_NAMES.index("1.3")
    present = damaged_store["present_geophone"].values
    assert present[:, station3].all()
    rows = [list(real_store["group"].values).index(g) for g in damaged_store["group"].values]
    original = real_store["signal_geophone"].values[rows, station3, :, 1:41]
    resampled = damaged_store["signal_geophone"].values[:, station3, :, 1:41]
    # bins 1-40 (2-78 Hz) lie well below the 125 Hz Nyquist frequency of the decimated copy
    assert np.abs(resampled - original).mean() < 0.05


def test_other_stations_unchanged(damaged_store, real_store):
    rows = [list(real_store["group"].values).index(g) for g in damaged_store["group"].values]
    untouched = [STATION_NAMES.index(name) for name in ("1.1", "1.2", "1.12")]
    np.testing.assert_array_equal(
        damaged_store["signal_geophone"].values[:, untouched], real_store["signal_geophone"].values[rows][:, untouched]
    )


def test_missing_layout_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="inv.xml"):
        coal_node.ingest(tmp_path, tmp_path / "out.zarr", CFG)


def test_window_shorter_than_fft_rejected(raw_dir, tmp_path):
    with pytest.raises(config_mod.ConfigError, match="n_fft"):
        coal_node.ingest(raw_dir, tmp_path / "out.zarr", {**CFG, "window_s": 0.1})
