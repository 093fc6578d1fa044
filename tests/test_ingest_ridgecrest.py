"""The Ridgecrest importer on a small SCEDC-layout archive, station file and catalog written by the tests."""

import logging

import numpy as np
import obspy
import pytest

from spar.features.store import open_store
from spar.ingest.ridgecrest import ingest
from spar.io.seismic import scedc_day_path

RATE = 100.0
CFG = {
    "catalog": "catalog/events.stp",
    "stations": "stations/stations.txt",
    "network": "CI",
    "station_list": ["CLC", "WRC2", "TOW2"],  # TOW2 is not in the station file
    "center_lat": 35.9,
    "center_lon": -117.6,
    "radius_km": 80.0,
    "min_magnitude": -0.5,
    "rate_hz": RATE,
    "pre_origin_s": 2.0,
    "window_s": 10.24,
    "bandpass_hz": [2.0, 35.0],
    "n_fft": 128,
    "hop": 128,
    "max_freq_bins": 48,
    "min_coverage": 0.9,
    "taper_fraction": 0.05,
    "archive_cache_files": 50,
    "train_years": [2021],
    "val_years": [2022],
}
STATIONS = {"CLC": (35.81574, -117.59751, 775.0), "WRC2": (35.94790, -117.65038, 943.0)}
# evid, origin, lat, lon, depth km, magnitude
EVENTS = [
    ("1001", "2021-03-04T05:06:07.500", 35.90, -117.60, 8.0, 2.1),
    ("1002", "2021-03-04T18:00:00.000", 35.70, -117.50, 4.0, 1.2),
    ("1003", "2022-07-01T01:02:03.000", 36.00, -117.70, 12.0, 0.8),
    ("1004", "2021-05-05T00:00:00.000", 37.50, -117.60, 5.0, 3.0),  # about 178 km north: outside the region
]


def write_archive(root):
    """Write 20 s of data around each event: CLC HH/HN at 100 Hz, WRC2 HH at 100 Hz and HN at 200 Hz,
    plus an ORPH station that the station file does not list. WRC2 has no HN data for event 1002."""
    rng = np.random.default_rng(0)
    streams = {}
    for evid, origin, *_ in EVENTS:
        t0 = obspy.UTCDateTime(origin) - 5.0
        for station, band, rate in (("CLC", "HH", 100.0), ("CLC", "HN", 100.0), ("WRC2", "HH", 100.0),
                                    ("WRC2", "HN", 200.0), ("ORPH", "HH", 100.0)):
            if station == "WRC2" and band == "HN" and evid == "1002":
                continue
            for component in "ENZ":
                t = np.arange(int(20 * rate)) / rate
                burst = 2000 * np.exp(-((t - 7.0) ** 2)) * np.sin(2 * np.pi * 8.0 * t)
                data = (burst + 50 * rng.standard_normal(t.size)).astype(np.int32)
                tr = obspy.Trace(data, header={"network": "CI", "station": station, "location": "", "channel": band + component,
                                               "sampling_rate": rate, "starttime": t0})
                day = t0.datetime.date()
                streams.setdefault((station, band + component, day), obspy.Stream()).append(tr)
    for (station, channel, day), stream in streams.items():
        path = scedc_day_path(root, "CI", station, channel, "", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        stream.write(str(path), format="MSEED")


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    write_archive(root)
    (root / "stations").mkdir()
    lines = ["#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime"]
    lines += [f"CI|{s}|{lat}|{lon}|{elev}|site {s}|2000-01-01T00:00:00|" for s, (lat, lon, elev) in STATIONS.items()]
    (root / "stations" / "stations.txt").write_text("\n".join(lines) + "\n")
    (root / "catalog").mkdir()
    rows = [f"{evid} eq l {o[:10].replace('-', '/')},{o[11:]} {lat} {lon} {dep} {mag} l 1.0" for evid, o, lat, lon, dep, mag in EVENTS]
    rows.insert(2, "1005 eq l 2021/03/05,not-a-time 35.9 -117.6 5.0 1.0 l 1.0")  # malformed row
    (root / "catalog" / "events.stp").write_text("\n".join(rows) + "\n")
    return root


def test_ingest_small_archive(raw, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        ingest(raw, tmp_path / "ridgecrest.zarr", CFG)
    ds = open_store(tmp_path / "ridgecrest.zarr")

    # three events in the region, the one 178 km away dropped; split by year
    assert ds["group"].values.tolist() == ["1001", "1002", "1003"]
    assert ds["split"].values.tolist() == ["train", "train", "val"]
    assert ds["node_name"].values.tolist() == ["CI.CLC", "CI.WRC2"]

    # 1024 samples -> 8 frames of 128; three components E, N, Z
    assert ds["signal_broadband"].shape == (3, 2, 3, 48, 8)
    assert ds["present_broadband"].values.all()
    # WRC2 HN (resampled from 200 Hz) is present except for event 1002, where it has no data
    assert ds["present_accelerometer"].values.tolist() == [[True, True], [True, False], [True, True]]
    assert (ds["signal_accelerometer"].values[1, 1] == 0).all()

    # targets: ENU km from the region centre; event 1001 is at the centre, 8 km deep
    target = ds["target"].values
    np.testing.assert_allclose(target[0], [0.0, 0.0, -8.0], atol=0.01)
    assert ds.attrs["position_unit"] == "km"
    # CLC is about 9.4 km south of the centre, at 0.775 km elevation
    np.testing.assert_allclose(ds["position"].values[0, 0, 1:], [-9.35, 0.775], atol=0.05)

    # the 8 Hz burst dominates the band: the strongest frequency bin is near 8 Hz (0.78 Hz per bin)
    spectrum = ds["signal_broadband"].values[0, 0, 2].mean(axis=-1)
    assert abs(int(spectrum.argmax()) * 100 / 128 - 8.0) < 1.6

    assert "stations ['TOW2'] are not in" in caplog.text
    assert "ORPH" in caplog.text  # waveforms of a station the station file does not list
    assert "row skipped" in caplog.text  # the malformed catalog row
    assert "events outside the radius 1, below the magnitude 0" in caplog.text


def test_ingest_no_event_in_region(raw, tmp_path):
    cfg = dict(CFG, radius_km=1.0, center_lat=40.0)
    with pytest.raises(ValueError, match="no event of .* is inside the region"):
        ingest(raw, tmp_path / "x.zarr", cfg)


def test_enu_distance_of_real_stations_matches_geodesic():
    # CI.WBM and CI.DAW, about 80 km apart, in the frame of the region centre at sea level
    from pyproj import Geod

    from spar.io.geodesy import EnuFrame

    (lat1, lon1), (lat2, lon2) = (35.60839, -117.89049), (36.27148, -117.59214)
    frame = EnuFrame(35.9, -117.6, 0.0)
    enu = frame.to_enu([lat1, lat2], [lon1, lon2])
    _, _, geodesic_m = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    # the straight chord between two points on the ellipsoid is shorter than the geodesic by
    # about d^3 / (24 R^2), 0.5 m at 80 km, so the two agree within 1 m
    assert abs(np.linalg.norm(enu[0] - enu[1]) - geodesic_m) < 1.0
    assert 78_000 < geodesic_m < 82_000
