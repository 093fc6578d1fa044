"""Seismic readers on small miniSEED, StationXML and QuakeML files written by obspy."""

from __future__ import annotations

import numpy as np
import obspy
import pandas as pd
import pytest
from obspy.core.event import Catalog, Event, Magnitude, Origin, ResourceIdentifier
from obspy.core.inventory import Channel, Inventory, Network, Station
from pyproj import Geod

from spar.io import seismic

T0 = obspy.UTCDateTime("2021-03-04T05:06:07Z")
RATE = 100.0


def make_trace(station: str, start: obspy.UTCDateTime, data, rate: float = RATE, channel: str = "HHZ") -> obspy.Trace:
    header = {"network": "XX", "station": station, "location": "", "channel": channel, "sampling_rate": rate, "starttime": start}
    return obspy.Trace(data if np.ma.isMaskedArray(data) else np.asarray(data), header=header)


@pytest.fixture
def waveform_dir(tmp_path):
    """Station A: 100 samples, a 50-sample gap, 100 samples, then a trace overlapping the second by 20 samples.

    Station B: one clean trace in a second file. The folder also contains a text file and a hidden file.
    """
    folder = tmp_path / "waveforms"
    folder.mkdir()
    first = make_trace("A", T0, np.arange(100, dtype=np.int32))
    second = make_trace("A", T0 + 1.5, np.arange(100, dtype=np.int32) + 1000)
    third = make_trace("A", T0 + 2.3, np.arange(100, dtype=np.int32) + 5000)
    obspy.Stream([first, second, third]).write(str(folder / "a.mseed"), format="MSEED")
    obspy.Stream([make_trace("B", T0, np.ones(300, dtype=np.int32))]).write(str(folder / "b.ms"), format="MSEED")
    (folder / "notes.txt").write_text("not a waveform")
    (folder / ".index.mseed").write_text("hidden")
    return folder


def test_read_waveforms_masks_gap(waveform_dir):
    stream = seismic.read_waveforms(waveform_dir)
    assert [tr.id for tr in stream] == ["XX.A..HHZ", "XX.B..HHZ"]
    trace = stream[0]
    assert trace.stats.npts == 330
    assert np.ma.isMaskedArray(trace.data)
    assert int(np.ma.getmaskarray(trace.data)[100:150].sum()) == 50
    assert not np.ma.getmaskarray(trace.data)[:100].any()


def test_read_waveforms_overlap_takes_later_trace(waveform_dir):
    trace = seismic.read_waveforms(waveform_dir)[0]
    # samples 230..249 are covered by the second and the third trace
    assert trace.data[229] == 1079
    assert trace.data[230] == 5000
    assert trace.data[329] == 5099


def test_read_waveforms_list_and_unmerged(waveform_dir):
    stream = seismic.read_waveforms([waveform_dir / "a.mseed"], merge=False)
    assert len(stream) == 3
    assert {tr.stats.station for tr in stream} == {"A"}


def test_read_waveforms_unreadable_file_named(tmp_path):
    bad = tmp_path / "broken.mseed"
    bad.write_bytes(b"this is not a miniSEED record\n" * 3)
    with pytest.raises(ValueError, match="broken.mseed"):
        seismic.read_waveforms(tmp_path)


def test_read_waveforms_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no waveforms here")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        seismic.read_waveforms(tmp_path)


def test_read_waveforms_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.mseed"):
        seismic.read_waveforms([tmp_path / "absent.mseed"])


def test_merge_keeps_distant_traces_apart():
    near = [make_trace("A", T0, np.zeros(100)), make_trace("A", T0 + 5.0, np.zeros(100))]
    far = make_trace("A", T0 + 86400.0, np.zeros(100))
    merged = seismic.merge_traces(obspy.Stream([*near, far]), max_gap_s=60.0)
    assert len(merged) == 2
    assert merged[0].stats.npts == 600
    assert merged[1].stats.starttime == T0 + 86400.0


def test_merge_rejects_mixed_rates():
    stream = obspy.Stream([make_trace("A", T0, np.zeros(100)), make_trace("A", T0 + 2, np.zeros(100), rate=50.0)])
    with pytest.raises(ValueError, match="XX.A..HHZ"):
        seismic.merge_traces(stream)


def test_resample_upsampling_keeps_tone():
    rate, tone_hz = 250.0, 62.5
    t = np.arange(2000) / rate
    stream, n = seismic.resample_traces(obspy.Stream([make_trace("A", T0, np.sin(2 * np.pi * tone_hz * t), rate=rate)]), 500.0)
    trace = stream[0]
    assert n == 1
    assert trace.stats.sampling_rate == 500.0
    assert trace.stats.npts == 4000
    expected = np.sin(2 * np.pi * tone_hz * np.arange(4000) / 500.0)
    # away from the filter's edge transients the tone keeps amplitude and phase
    assert np.max(np.abs(trace.data[100:-100] - expected[100:-100])) < 0.01


def test_resample_downsampling_suppresses_alias():
    rate = 1000.0
    t = np.arange(4000) / rate
    passband_tone = np.sin(2 * np.pi * 50.0 * t)
    aliasing = np.sin(2 * np.pi * 400.0 * t)  # would fold to 100 Hz at 500 Hz
    stream, _ = seismic.resample_traces(obspy.Stream([make_trace("A", T0, passband_tone + aliasing, rate=rate)]), 500.0)
    x = stream[0].data[100:-100]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 500.0)
    at_50 = spectrum[np.argmin(np.abs(freqs - 50.0))]
    at_100 = spectrum[np.argmin(np.abs(freqs - 100.0))]
    assert at_100 < 1e-3 * at_50


def test_resample_keeps_gap():
    trace = make_trace("A", T0, np.ma.masked_array(np.ones(400), mask=np.r_[np.zeros(200), np.ones(50), np.zeros(150)].astype(bool)), rate=200.0)
    stream, n = seismic.resample_traces(obspy.Stream([trace]), 100.0)
    assert n == 2
    assert [tr.stats.npts for tr in stream] == [100, 75]
    assert stream[1].stats.starttime == T0 + 250 / 200.0


def test_window_samples_nan_outside_traces():
    traces = [make_trace("A", T0 + 0.5, np.arange(100, dtype=float)), make_trace("A", T0 + 2.0, np.full(50, 7.0))]
    x = seismic.window_samples(traces, T0, 300, RATE)
    assert np.isnan(x[:50]).all()
    assert x[50] == 0.0
    assert x[149] == 99.0
    assert np.isnan(x[150:200]).all()
    assert (x[200:250] == 7.0).all()
    assert np.isnan(x[250:]).all()


def test_window_samples_rejects_other_rate():
    with pytest.raises(ValueError, match="resample"):
        seismic.window_samples([make_trace("A", T0, np.zeros(10), rate=50.0)], T0, 10, RATE)


# --- stations --------------------------------------------------------------------------

STATIONS = [  # network, station, latitude, longitude, elevation_m
    ("XX", "S10", 34.0000, -118.0000, 120.0),
    ("XX", "S2", 34.0210, -117.9710, 120.0),
    ("YY", "Q1", 33.9900, -118.0100, 15.5),
]


@pytest.fixture
def stationxml(tmp_path):
    networks = {}
    for net, sta, lat, lon, elev in STATIONS:
        channels = [
            Channel(code=f"HH{c}", location_code="", latitude=lat, longitude=lon, elevation=elev, depth=0.0, sample_rate=100.0)
            for c in "ENZ"
        ]
        station = Station(code=sta, latitude=lat, longitude=lon, elevation=elev, channels=channels)
        networks.setdefault(net, Network(code=net)).stations.append(station)
    path = tmp_path / "stations.xml"
    Inventory(networks=list(networks.values()), source="spar tests").write(str(path), format="STATIONXML")
    return path


def test_read_stations_table(stationxml):
    table = seismic.read_stations(stationxml)
    assert list(table.columns) == ["network", "station", "latitude", "longitude", "elevation_m"]
    assert list(zip(table["network"], table["station"])) == [("XX", "S2"), ("XX", "S10"), ("YY", "Q1")]
    row = table.iloc[2]
    assert row["latitude"] == pytest.approx(33.99)
    assert row["longitude"] == pytest.approx(-118.01)
    assert row["elevation_m"] == pytest.approx(15.5)


def test_read_channels_rates(stationxml):
    channels = seismic.read_channels(stationxml)
    assert len(channels) == 9
    assert set(channels["channel"]) == {"HHE", "HHN", "HHZ"}
    assert (channels["sample_rate_hz"] == 100.0).all()


def test_read_stations_unreadable_file_named(tmp_path):
    bad = tmp_path / "inv.xml"
    bad.write_text("<not-stationxml>")
    with pytest.raises(ValueError, match="inv.xml"):
        seismic.read_stations(bad)


def test_station_pair_enu_matches_geodesic(stationxml):
    table = seismic.read_stations(stationxml)
    pair = table[table["network"] == "XX"].reset_index(drop=True)
    frame = seismic.network_frame(pair)
    enu_km = seismic.station_enu_km(pair, frame)

    azimuth, _, distance_m = Geod(ellps="WGS84").inv(pair["longitude"][1], pair["latitude"][1], pair["longitude"][0], pair["latitude"][0])
    delta_m = (enu_km[0] - enu_km[1]) * 1000.0
    assert np.linalg.norm(delta_m) == pytest.approx(distance_m, abs=0.1)
    assert np.degrees(np.arctan2(delta_m[0], delta_m[1])) == pytest.approx(azimuth, abs=0.01)


def test_network_frame_centered(stationxml):
    table = seismic.read_stations(stationxml)
    frame = seismic.network_frame(table)
    assert frame.lat0_deg == pytest.approx(table["latitude"].mean())
    assert frame.h0_m == pytest.approx(table["elevation_m"].mean())
    enu_km = seismic.station_enu_km(table, frame)
    assert np.abs(enu_km.mean(axis=0)).max() < 0.01


# --- events ----------------------------------------------------------------------------


@pytest.fixture
def quakeml(tmp_path):
    early = Event(resource_id=ResourceIdentifier("smi:local/event/early"))
    early.origins = [Origin(time=T0, latitude=34.01, longitude=-117.99, depth=-250.0)]
    early.magnitudes = [Magnitude(mag=1.25)]
    late = Event(resource_id=ResourceIdentifier("smi:local/event/late"))
    late.origins = [Origin(time=T0 + 3600.5, latitude=34.02, longitude=-117.98, depth=4500.0)]
    no_origin = Event(resource_id=ResourceIdentifier("smi:local/event/empty"))
    path = tmp_path / "events" / "2021" / "catalog.xml"
    path.parent.mkdir(parents=True)
    Catalog(events=[late, early, no_origin]).write(str(path), format="QUAKEML")
    return path


def test_read_catalog_depth_sign(quakeml):
    catalog = seismic.read_catalog(quakeml.parent.parent)
    assert list(catalog["event_id"]) == ["early", "late"]
    assert catalog["depth_km"].tolist() == pytest.approx([-0.25, 4.5])
    assert catalog["magnitude"][0] == pytest.approx(1.25)
    assert np.isnan(catalog["magnitude"][1])


def test_read_catalog_times_utc(quakeml):
    catalog = seismic.read_catalog([quakeml])
    assert str(catalog["time"].dt.tz) == "UTC"
    assert catalog["time"][0] == pd.Timestamp("2021-03-04T05:06:07Z")
    assert catalog["time"][1] - catalog["time"][0] == pd.Timedelta(seconds=3600.5)


def test_read_catalog_unreadable_file_named(tmp_path):
    bad = tmp_path / "event.xml"
    bad.write_text("garbage")
    with pytest.raises(ValueError, match="event.xml"):
        seismic.read_catalog(tmp_path)


def test_hypocenter_up_is_minus_depth(quakeml, stationxml):
    catalog = seismic.read_catalog(quakeml)
    frame = seismic.network_frame(seismic.read_stations(stationxml))
    enu_km = seismic.hypocenter_enu_km(catalog, frame)
    h0_km = frame.h0_m / 1000.0
    # height above sea level is -depth; the curvature drop over a few km is below 2 m
    assert enu_km[0, 2] == pytest.approx(0.25 - h0_km, abs=0.002)
    assert enu_km[1, 2] == pytest.approx(-4.5 - h0_km, abs=0.002)
    assert enu_km[0, 2] > enu_km[1, 2]


def test_natural_key_orders_numbers():
    assert sorted(["10", "2", "1", "12", "b3", "b10"], key=seismic.natural_key) == ["1", "2", "10", "12", "b3", "b10"]
