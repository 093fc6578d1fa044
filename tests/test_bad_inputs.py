"""Malformed raw inputs of the three readers: each case gets a clear error or a defined recovery.

Every fixture is written here in the real format (miniSEED through obspy,
parquet through pyarrow, zips of CSVs through zipfile). docs/data-formats.md
lists every case with the behaviour asserted here.
"""

from __future__ import annotations

import io
import logging
import zipfile

import numpy as np
import obspy
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spar.features.store import open_store
from spar.ingest import m3nvc as m3nvc_ingest
from spar.ingest.ridgecrest import ingest as ingest_ridgecrest
from spar.io import m3nvc, realworld, seismic
from spar.io.m3nvc import LayoutError as M3nvcLayoutError
from spar.io.realworld import LayoutError as RealWorldLayoutError

T0 = obspy.UTCDateTime("2021-03-04T05:06:07Z")
STATION_HEADER = "#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime\n"


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


# --- Ridgecrest / SCEDC: miniSEED -------------------------------------------------------


def write_mseed(path, data, channel="HHZ", encoding=None, reclen=512):
    """Write one CI.CLC trace at 100 Hz starting at T0."""
    trace = obspy.Trace(np.asarray(data), header={"network": "CI", "station": "CLC", "location": "", "channel": channel,
                                                  "sampling_rate": 100.0, "starttime": T0})
    kwargs = {"encoding": encoding} if encoding else {}
    obspy.Stream([trace]).write(str(path), format="MSEED", reclen=reclen, **kwargs)


# obspy warns about the partial record itself; spar's logged warning is what these tests check.
@pytest.mark.filterwarnings("ignore:readMSEEDBuffer")
def test_mseed_truncated_keeps_whole_records(tmp_path, caplog):
    good = tmp_path / "good.mseed"
    write_mseed(good, np.arange(2000, dtype=np.int32))
    whole = good.read_bytes()
    assert len(whole) == 3 * 512
    cut = tmp_path / "cut.mseed"
    cut.write_bytes(whole[: 512 + 100])  # one whole record and 100 bytes of the next

    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        stream = seismic.read_waveforms(cut)

    assert len(stream) == 1
    n = stream[0].stats.npts
    assert 0 < n < 2000
    np.testing.assert_array_equal(stream[0].data, np.arange(n))
    [message] = warnings_of(caplog)
    assert str(cut) in message
    assert "612 bytes are not a whole number of 512-byte records" in message
    assert "the last 100 bytes (a truncated record) were left out" in message


def test_mseed_cut_inside_first_record(tmp_path):
    good = tmp_path / "good.mseed"
    write_mseed(good, np.arange(2000, dtype=np.int32))
    cut = tmp_path / "cut.mseed"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot read .*cut\.mseed as miniSEED .*remove or replace the file"):
        seismic.read_waveforms(cut)


def test_mseed_empty_file(tmp_path):
    empty = tmp_path / "empty.mseed"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read .*empty\.mseed as miniSEED .*128 bytes"):
        seismic.read_waveforms(empty)


def test_mseed_corrupt_steim_frames(tmp_path):
    path = tmp_path / "corrupt.mseed"
    write_mseed(path, np.arange(2000, dtype=np.int32))
    damaged = bytearray(path.read_bytes())
    damaged[100:140] = b"\xff" * 40  # inside the first record's Steim2 frames
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"(?s)cannot read .*corrupt\.mseed as miniSEED \(InternalMSEEDError.*Steim2"):
        seismic.read_waveforms(path)


def test_mseed_corrupt_header(tmp_path):
    path = tmp_path / "header.mseed"
    write_mseed(path, np.arange(2000, dtype=np.int32))
    damaged = bytearray(path.read_bytes())
    damaged[:48] = b"\x00" * 48  # the fixed header of the first record
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"cannot read .*header\.mseed as miniSEED .*julday"):
        seismic.read_waveforms(path)


def test_mseed_nan_and_inf_samples_missing(tmp_path):
    data = np.arange(10, dtype=np.float64)
    data[3] = np.nan
    data[5] = np.inf
    data[6] = -np.inf
    path = tmp_path / "float.mseed"
    write_mseed(path, data)

    stream = seismic.read_waveforms(path)
    window = seismic.window_samples(stream, T0, 12, 100.0)

    expected = [0, 1, 2, np.nan, 4, np.nan, np.nan, 7, 8, 9, np.nan, np.nan]
    np.testing.assert_array_equal(window, expected)
    assert np.isposinf(stream[0].data[5])  # the trace itself is not modified


def test_mseed_text_records_rejected(tmp_path):
    path = tmp_path / "log.mseed"
    write_mseed(path, np.frombuffer(b"station log line", dtype="|S1").copy(), channel="LOG", encoding="ASCII")
    with pytest.raises(ValueError) as raised:
        seismic.read_waveforms(path)
    message = str(raised.value)
    assert str(path) in message
    assert "trace CI.CLC..LOG contains |S1 data, not numeric samples" in message
    assert "list only waveform files" in message


@pytest.mark.filterwarnings("ignore:readMSEEDBuffer")
def test_archive_truncated_day_file_warns(tmp_path, caplog):
    day = T0.datetime.date()
    path = seismic.scedc_day_path(tmp_path, "CI", "CLC", "HHZ", "", day)
    path.parent.mkdir(parents=True)
    write_mseed(path, np.arange(2000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[: 2 * 512 + 10])

    archive = seismic.ScedcArchive(tmp_path)
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        stream = archive.window("CI", "CLC", "HH", T0, T0 + 30.0, 100.0)

    assert len(stream) == 1
    np.testing.assert_array_equal(stream[0].data[:100], np.arange(100))
    assert any(f"SCEDC day file {path}: 1034 bytes" in message and "the last 10 bytes" in message for message in warnings_of(caplog))


# --- Ridgecrest / SCEDC: stations -------------------------------------------------------


def test_station_text_longitude_out_of_range(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(STATION_HEADER + "CI|CLC|35.8|-200.5|775|site|2000-01-01|\n")
    with pytest.raises(ValueError, match=r"stations\.txt:2: longitude -200\.5 is outside \[-180, 180\] degrees; fix or remove the line"):
        seismic.read_stations(path)


def test_station_text_without_latitude(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(STATION_HEADER + "CI|CLC||-117.5|775|site|2000-01-01|\n")
    with pytest.raises(ValueError, match=r"stations\.txt:2: latitude '' is not a number; fix or remove the line"):
        seismic.read_stations(path)


def test_station_text_listed_twice_latest_wins(tmp_path, caplog):
    path = tmp_path / "stations.txt"
    path.write_text(
        STATION_HEADER
        + "CI|CLC|35.9|-117.5|775|moved|2010-01-01|\n"
        + "CI|CLC|35.8|-117.5|775|old|2000-01-01|2010-01-01\n"
    )
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        stations = seismic.read_stations(path)
    assert stations[["station", "latitude"]].values.tolist() == [["CLC", 35.9]]
    [message] = warnings_of(caplog)
    assert f"{path}: stations [('CI', 'CLC')] have epochs with different coordinates; using the latest epoch" == message


STATIONXML = """<?xml version="1.0" encoding="UTF-8"?>
<FDSNStationXML xmlns="http://www.fdsn.org/xml/station/1" schemaVersion="1.1">
<Source>test</Source><Created>2020-01-01T00:00:00</Created>
<Network code="CI">
<Station code="CLC">{coordinates}<Elevation>775</Elevation><Site><Name>China Lake</Name></Site></Station>
<Station code="WRC2"><Latitude>35.9479</Latitude><Longitude>-117.65038</Longitude><Elevation>943</Elevation><Site><Name>W</Name></Site></Station>
</Network>
</FDSNStationXML>
"""


def test_stationxml_station_without_coordinates(tmp_path):
    path = tmp_path / "stations.xml"
    path.write_text(STATIONXML.format(coordinates="<Longitude>-117.59751</Longitude>"))
    with pytest.raises(ValueError) as raised:
        seismic.read_stations(path)
    assert str(raised.value) == (
        f"{path}: station(s) ['CI.CLC'] have no numeric Latitude or Longitude; add the coordinates or remove the stations from the file"
    )


def test_stationxml_latitude_out_of_range(tmp_path):
    path = tmp_path / "stations.xml"
    path.write_text(STATIONXML.format(coordinates="<Latitude>95.8</Latitude><Longitude>-117.59751</Longitude>"))
    with pytest.raises(ValueError, match=r"cannot read .*stations\.xml as StationXML \(ValueError: value 95\.8 out of bounds \(-90, 90\)\)"):
        seismic.read_stations(path)


def test_stationxml_html_page_rejected(tmp_path):
    path = tmp_path / "stations.xml"
    path.write_text("<html><body>Service unavailable</body></html>\n")
    with pytest.raises(ValueError, match=r"cannot read .*stations\.xml as StationXML \(AttributeError.*remove or replace the file"):
        seismic.read_stations(path)


# --- Ridgecrest / SCEDC: catalogs -------------------------------------------------------


def test_catalog_stp_latitude_out_of_range_skipped(tmp_path, caplog):
    path = tmp_path / "events.stp"
    path.write_text(
        "1001 eq l 2021/03/04,05:06:07.500 95.9 -117.6 8.0 2.1 l 1.0\n"
        "1002 eq l 2021/03/04,06:00:00.000 35.9 -117.6 8.0 1.5 l 1.0\n"
    )
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        catalog = seismic.read_catalog(path)
    assert catalog["event_id"].tolist() == ["1002"]
    assert f"{path}:1: latitude 95.9 is outside [-90, 90] degrees; row skipped" in warnings_of(caplog)


def test_catalog_comcat_text_magnitude_skipped(tmp_path, caplog):
    path = tmp_path / "events.csv"
    path.write_text(
        "time,latitude,longitude,depth,mag,magType,id,type\n"
        "2021-03-04T05:06:07.5Z,35.9,-117.6,8.0,big,ml,ci1,earthquake\n"
        "2021-03-04T06:00:00.0Z,35.8,-117.5,4.0,1.0,ml,ci2,earthquake\n"
    )
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        catalog = seismic.read_catalog(path)
    assert catalog["event_id"].tolist() == ["ci2"]
    assert f"{path}:2: mag 'big' is not a number; row skipped" in warnings_of(caplog)


def test_catalog_all_rows_non_finite(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "time,latitude,longitude,depth,mag,magType,id,type\n"
        "2021-03-04T05:06:07.5Z,35.9,-117.6,8.0,inf,ml,ci1,earthquake\n"
        "2021-03-04T06:00:00.0Z,35.8,-117.5,nan,1.0,ml,ci2,earthquake\n"
    )
    with pytest.raises(ValueError, match=r"events\.csv: all 2 rows are malformed for the ComCat CSV format .*pass the right fmt"):
        seismic.read_catalog(path)


def test_catalog_empty_file_no_events(tmp_path, caplog):
    path = tmp_path / "events.stp"
    path.write_text("")
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        catalog = seismic.read_catalog(path)
    assert len(catalog) == 0
    assert list(catalog.columns) == seismic.CATALOG_COLUMNS
    assert f"{path} contains no event rows" in warnings_of(caplog)


QUAKEML = """<?xml version="1.0" encoding="UTF-8"?>
<q:quakeml xmlns="http://quakeml.org/xmlns/bed/1.2" xmlns:q="http://quakeml.org/xmlns/quakeml/1.2">
<eventParameters publicID="smi:test/catalog">
<event publicID="smi:test/event/e1"><origin publicID="smi:test/origin/o1"><time><value>2021-03-04T05:06:07Z</value></time>
<latitude><value>135.9</value></latitude><longitude><value>-117.6</value></longitude></origin></event>
<event publicID="smi:test/event/e2"><origin publicID="smi:test/origin/o2"><time><value>2021-03-04T06:00:00Z</value></time>
<latitude><value>35.9</value></latitude><longitude><value>-117.6</value></longitude></origin></event>
</eventParameters>
</q:quakeml>
"""


def test_catalog_quakeml_latitude_out_of_range_skipped(tmp_path, caplog):
    path = tmp_path / "events.xml"
    path.write_text(QUAKEML)
    with caplog.at_level(logging.WARNING, logger="spar.io.seismic"):
        catalog = seismic.read_catalog(path)
    assert catalog["event_id"].tolist() == ["e2"]
    assert (
        f"{path}: skipped 1 events whose (latitude, longitude) is outside [-90, 90] x [-180, 180] degrees: "
        "['smi:test/event/e1 (135.9, -117.6)']"
    ) in warnings_of(caplog)


def test_catalog_unknown_format_of_csv_content(tmp_path):
    path = tmp_path / "events.log"
    path.write_text("evid;date;lat;lon\n1001;2021-03-04;35.9;-117.6\n")
    with pytest.raises(ValueError, match=r"cannot detect the catalog format of .*events\.log .*'evid;date;lat;lon'.*pass fmt="):
        seismic.read_catalog(path)


def test_catalog_events_outside_region_dropped(tmp_path):
    """Of three events, one lies 1 degree of latitude (111 km) north and one in the southern hemisphere."""
    path = tmp_path / "events.stp"
    path.write_text(
        "2001 eq l 2021/03/04,05:06:07.500 35.9 -117.6 8.0 2.1 l 1.0\n"
        "2002 eq l 2021/03/04,06:00:00.000 36.9 -117.6 8.0 2.5 l 1.0\n"
        "2003 eq l 2021/03/04,07:00:00.000 -35.9 -117.6 8.0 3.0 l 1.0\n"
    )
    catalog = seismic.read_catalog(path)
    selected, counts = seismic.events_in_region(catalog, 35.9, -117.6, 80.0, 0.0)
    assert selected["event_id"].tolist() == ["2001"]
    assert counts == {"total": 3, "outside_radius": 2, "below_magnitude": 0, "selected": 1}


RIDGECREST_CFG = {
    "catalog": "events.stp",
    "stations": "stations.txt",
    "network": "CI",
    "station_list": ["CLC", "WRC2"],
    "center_lat": 35.9,
    "center_lon": -117.6,
    "radius_km": 80.0,
    "min_magnitude": 0.0,
    "rate_hz": 100.0,
    "pre_origin_s": 1.0,
    "window_s": 2.56,
    "bandpass_hz": [2.0, 35.0],
    "n_fft": 64,
    "hop": 64,
    "max_freq_bins": 16,
    "min_coverage": 0.9,
    "taper_fraction": 0.05,
    "archive_cache_files": 8,
    "train_years": [2021],
    "val_years": [2022],
}


def test_ingest_event_without_station_data(tmp_path, caplog):
    """Event 1002 has no waveform at any station: it stays in the store with every station absent."""
    raw = tmp_path / "raw"
    rng = np.random.default_rng(1)
    origin = T0 + 1.0
    for station in ("CLC", "WRC2"):
        for channel in ("HHE", "HHN", "HHZ", "HNE", "HNN", "HNZ"):
            path = seismic.scedc_day_path(raw, "CI", station, channel, "", origin.datetime.date())
            path.parent.mkdir(parents=True, exist_ok=True)
            trace = obspy.Trace((100 * rng.standard_normal(600)).astype(np.int32),
                                header={"network": "CI", "station": station, "channel": channel, "sampling_rate": 100.0, "starttime": T0})
            obspy.Stream([trace]).write(str(path), format="MSEED")
    (raw / "stations.txt").write_text(STATION_HEADER + "CI|CLC|35.81574|-117.59751|775|a|2000-01-01|\nCI|WRC2|35.9479|-117.65038|943|b|2000-01-01|\n")
    (raw / "events.stp").write_text(
        "1001 eq l 2021/03/04,05:06:08.000 35.9 -117.6 8.0 2.0 l 1.0\n"
        "1002 eq l 2021/03/04,09:00:00.000 35.9 -117.6 8.0 2.0 l 1.0\n"
    )

    with caplog.at_level(logging.INFO):
        ingest_ridgecrest(raw, tmp_path / "store.zarr", RIDGECREST_CFG)
    ds = open_store(tmp_path / "store.zarr")

    assert ds["group"].values.tolist() == ["1001", "1002"]
    for modality in ("broadband", "accelerometer"):
        assert ds[f"present_{modality}"].values.tolist() == [[True, True], [False, False]]
        assert (ds[f"signal_{modality}"].values[1] == 0).all()
    assert "absent station-windows: broadband 2, accelerometer 2 of 4" in caplog.text


# --- M3N-VC -----------------------------------------------------------------------------

START = pd.Timestamp("2023-06-12T15:00:00Z")
START_S = START.timestamp()


def write_runs(folder, rows=None):
    """Write run_ids.parquet; rows are (run_id, label, set, start, end) with Timestamps."""
    rows = rows if rows is not None else [(1, "cx30", "train", START, START + pd.Timedelta(seconds=4))]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "run_id": pa.array([r[0] for r in rows], pa.int64()),
        "label": pa.array([r[1] for r in rows], pa.string()),
        "set": pa.array([r[2] for r in rows], pa.string()),
        "start_time": pa.array([r[3] for r in rows], pa.timestamp("us", tz="UTC")),
        "end_time": pa.array([r[4] for r in rows], pa.timestamp("us", tz="UTC")),
    }), folder / "run_ids.parquet")


def write_sensors(folder, sensors):
    """Write sensor_location.parquet from a dict of pyarrow-compatible columns."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(sensors), folder / "sensor_location.parquet")


def write_geophone(path, timestamps, samples):
    pq.write_table(pa.table({"timestamp": np.asarray(timestamps, dtype=float), "channel": ["SH3"] * len(timestamps),
                             "samples": samples}), path)


def test_parquet_zero_length(tmp_path):
    path = tmp_path / "run1_rs1_geo.parquet"
    path.write_bytes(b"")
    with pytest.raises(M3nvcLayoutError, match=r"run1_rs1_geo\.parquet is not a readable parquet file: Parquet file size is 0 bytes"):
        m3nvc.read_signal_on_grid(path, "geophone", START_S, 10, 200.0, ["SH3"])


def test_parquet_damaged_data_page(tmp_path):
    path = tmp_path / "run1_rs1_geo.parquet"
    write_geophone(path, START_S + np.arange(400) / 200.0, np.arange(400, dtype=np.int64))
    damaged = bytearray(path.read_bytes())
    damaged[10:200] = b"\x00" * 190  # the first data pages; the footer stays intact
    path.write_bytes(bytes(damaged))
    with pytest.raises(M3nvcLayoutError, match=r"run1_rs1_geo\.parquet has unreadable data .*replace the file with the release's copy"):
        m3nvc.read_signal_on_grid(path, "geophone", START_S, 10, 200.0, ["SH3"])


def test_parquet_sensor_table_missing_column(tmp_path):
    write_runs(tmp_path / "s31")
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs1"], "latitude": [40.0963]})
    with pytest.raises(M3nvcLayoutError, match=r"sensor_location\.parquet lacks column\(s\) \['longitude'\]; found \['sensor_id', 'latitude'\]"):
        m3nvc.read_scene(tmp_path / "s31")


def test_signal_rows_out_of_order(tmp_path):
    timestamps = START_S + np.arange(8) / 200.0
    samples = np.arange(8, dtype=np.int64) * 10
    order = np.array([3, 0, 7, 1, 6, 2, 5, 4])
    path = tmp_path / "run1_rs1_geo.parquet"
    write_geophone(path, timestamps[order], samples[order])
    grid = m3nvc.read_signal_on_grid(path, "geophone", START_S, 10, 200.0, ["SH3"])
    np.testing.assert_array_equal(grid[0], [0, 10, 20, 30, 40, 50, 60, 70, np.nan, np.nan])


def test_signal_duplicate_timestamps_last_wins(tmp_path):
    timestamps = START_S + np.array([0, 1, 1, 2, 3]) / 200.0
    path = tmp_path / "run1_rs1_geo.parquet"
    write_geophone(path, timestamps, np.array([5, 6, 7, 8, 9], dtype=np.int64))
    grid = m3nvc.read_signal_on_grid(path, "geophone", START_S, 4, 200.0, ["SH3"])
    np.testing.assert_array_equal(grid[0], [5, 7, 8, 9])


def test_signal_rate_disagrees_with_timestamps(tmp_path):
    path = tmp_path / "run1_rs1_geo.parquet"
    write_geophone(path, START_S + np.arange(100) / 100.0, np.zeros(100, dtype=np.int64))
    with pytest.raises(M3nvcLayoutError) as raised:
        m3nvc.read_signal_on_grid(path, "geophone", START_S, 400, 200.0, ["SH3"])
    message = str(raised.value)
    assert str(path) in message
    assert "timestamps are 0.01 s apart (100 Hz) but the configured rate is 200 Hz" in message
    assert "set rate_hz in params.yaml" in message


def test_signal_nan_timestamp_dropped(tmp_path, caplog):
    timestamps = START_S + np.arange(6) / 200.0
    timestamps[3] = np.nan
    path = tmp_path / "run1_rs1_geo.parquet"
    write_geophone(path, timestamps, np.arange(6, dtype=np.int64) + 1)
    with caplog.at_level(logging.WARNING, logger="spar.io.m3nvc"):
        grid = m3nvc.read_signal_on_grid(path, "geophone", START_S, 6, 200.0, ["SH3"])
    np.testing.assert_array_equal(grid[0], [1, 2, 3, np.nan, 5, 6])
    assert f"{path}: dropped 1 of 6 rows whose timestamp is NaN or infinite" in warnings_of(caplog)


def test_signal_infinite_samples_make_node_absent():
    """Infinite samples count as missing: 3 of 10 missing leaves 70 % coverage, below min_coverage 0.9."""
    grid = np.arange(20, dtype=np.float32).reshape(1, 20)
    grid[0, [2, 4, 6]] = np.inf
    spec = {"rate_hz": 200, "n_fft": 8, "hop": 2, "n_mels": 2, "fmin_hz": 2.0, "fmax_hz": 100.0}
    spectrogram, present = m3nvc_ingest._windows_of_modality(grid, 2, 10, 0.9, spec)
    assert present.tolist() == [False, True]
    assert (spectrogram[0] == 0).all()
    assert np.isfinite(spectrogram).all()


def test_signal_text_samples_rejected(tmp_path):
    path = tmp_path / "run1_rs1_mic.parquet"
    pq.write_table(pa.table({"timestamp": START_S + np.arange(3) / 1600.0, "samples": ["12", "n/a", "14"]}), path)
    with pytest.raises(M3nvcLayoutError) as raised:
        m3nvc.read_signal_on_grid(path, "microphone", START_S, 3, 1600.0)
    message = str(raised.value)
    assert str(path) in message
    assert "column 'samples' has dtype" in message
    assert "values such as 'n/a'" in message
    assert "rewrite the column as int or float" in message


def test_signal_zero_rows_all_missing(tmp_path):
    path = tmp_path / "run1_rs1_mic.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([], pa.float64()), "samples": pa.array([], pa.int64())}), path)
    grid = m3nvc.read_signal_on_grid(path, "microphone", START_S, 5, 1600.0)
    assert grid.shape == (1, 5)
    assert np.isnan(grid).all()


def test_sensor_latitude_out_of_range(tmp_path):
    write_runs(tmp_path / "s31")
    # rs2 in degrees and minutes (40 deg 05.78 min) instead of decimal degrees
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs1", "rs2"], "latitude": [40.0963, 4005.78], "longitude": [-88.2247, -8813.48]})
    with pytest.raises(M3nvcLayoutError) as raised:
        m3nvc.read_scene(tmp_path / "s31")
    message = str(raised.value)
    assert "sensor_location.parquet" in message
    assert "['rs2 (4005.78, -8813.48)']" in message
    assert "check for swapped columns" in message


def test_sensor_without_longitude(tmp_path):
    write_runs(tmp_path / "s31")
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs1", "rs2"], "latitude": [40.0963, 40.0964], "longitude": [-88.2247, None]})
    with pytest.raises(M3nvcLayoutError, match=r"sensor_location\.parquet has missing coordinates for \['rs2'\]; fill in latitude and longitude"):
        m3nvc.read_scene(tmp_path / "s31")


def test_sensor_listed_twice_other_coordinates(tmp_path):
    write_runs(tmp_path / "s31")
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs1", "rs2", "rs1"], "latitude": [40.0963, 40.0964, 40.0970],
                                     "longitude": [-88.2247, -88.2251, -88.2247]})
    with pytest.raises(M3nvcLayoutError) as raised:
        m3nvc.read_scene(tmp_path / "s31")
    message = str(raised.value)
    assert "sensors ['rs1'] are listed more than once with different coordinates" in message
    assert "'latitude': 40.097" in message
    assert "keep one row per sensor" in message


def test_sensor_listed_twice_same_coordinates(tmp_path, caplog):
    write_runs(tmp_path / "s31")
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs2", "rs1", "rs2"], "latitude": [40.0964, 40.0963, 40.0964],
                                     "longitude": [-88.2251, -88.2247, -88.2251]})
    with caplog.at_level(logging.WARNING, logger="spar.io.m3nvc"):
        scene = m3nvc.read_scene(tmp_path / "s31")
    assert scene.sensors["sensor_id"].tolist() == ["rs1", "rs2"]
    assert scene.sensors["latitude"].tolist() == [40.0963, 40.0964]
    assert any("sensors ['rs2'] are listed more than once with the same coordinates; keeping one row each" in m for m in warnings_of(caplog))


def test_sensor_latitude_as_text(tmp_path):
    write_runs(tmp_path / "s31")
    write_sensors(tmp_path / "s31", {"sensor_id": ["rs1"], "latitude": ["40.0963 N"], "longitude": [-88.2247]})
    with pytest.raises(M3nvcLayoutError, match=r"column 'latitude' has dtype .* with values such as '40\.0963 N'"):
        m3nvc.read_scene(tmp_path / "s31")


def test_run_table_without_rows(tmp_path):
    write_runs(tmp_path / "s31", rows=[])
    with pytest.raises(M3nvcLayoutError, match=r"run_ids\.parquet lists no runs"):
        m3nvc.read_scene(tmp_path / "s31")


def test_run_ending_before_start(tmp_path):
    write_runs(tmp_path / "s31", rows=[(7, "cx30", "train", START, START - pd.Timedelta(seconds=3))])
    with pytest.raises(M3nvcLayoutError, match=r"run_ids\.parquet: runs \[7\] end before they start; swap start_time and end_time"):
        m3nvc.read_scene(tmp_path / "s31")


def test_run_id_repeated(tmp_path):
    span = (START, START + pd.Timedelta(seconds=4))
    write_runs(tmp_path / "s31", rows=[(3, "cx30", "train", *span), (3, "miata", "test", *span)])
    with pytest.raises(M3nvcLayoutError, match=r"run ids \[3\] appear more than once; each run needs its own id"):
        m3nvc.read_scene(tmp_path / "s31")


def test_run_id_as_text(tmp_path):
    folder = tmp_path / "s31"
    folder.mkdir()
    pq.write_table(pa.table({"run_id": ["run-one"], "label": ["cx30"], "set": ["train"],
                             "start_time": pa.array([START], pa.timestamp("us", tz="UTC")),
                             "end_time": pa.array([START], pa.timestamp("us", tz="UTC"))}), folder / "run_ids.parquet")
    with pytest.raises(M3nvcLayoutError, match=r"run_ids\.parquet: column 'run_id' has dtype .* with values such as 'run-one'"):
        m3nvc.read_scene(folder)


def test_run_time_as_free_text(tmp_path):
    folder = tmp_path / "s31"
    folder.mkdir()
    pq.write_table(pa.table({"run_id": [1], "label": ["cx30"], "set": ["train"], "start_time": ["yesterday noon"],
                             "end_time": ["today"]}), folder / "run_ids.parquet")
    with pytest.raises(M3nvcLayoutError, match=r"run_ids\.parquet: column 'start_time' has a value that is not a date and time .*yesterday noon"):
        m3nvc.read_scene(folder)


def test_run_unknown_label(tmp_path):
    span = (START, START + pd.Timedelta(seconds=4))
    write_runs(tmp_path / "s31", rows=[(1, "tesla", "train", *span)])
    with pytest.raises(M3nvcLayoutError, match=r"unknown label 'tesla'; known classes are \('cx30'"):
        m3nvc.read_scene(tmp_path / "s31")


def write_gps(path, seconds, latitude, longitude):
    times = pa.array((START + pd.to_timedelta(seconds, unit="s")).tz_localize(None), pa.timestamp("us"))
    pq.write_table(pa.table({"time": times, "latitude": latitude, "longitude": longitude}), path)


def test_gps_latitude_out_of_range(tmp_path):
    path = tmp_path / "run1_gps.parquet"
    write_gps(path, [0.0, 1.0], [40.0963, 140.0963], [-88.2247, -88.2247])
    with pytest.raises(M3nvcLayoutError) as raised:
        m3nvc.read_gps(path)
    message = str(raised.value)
    assert str(path) in message
    assert f"row at {START_S + 1.0} s (140.0963, -88.2247)" in message


def test_gps_rows_out_of_order_sorted(tmp_path):
    path = tmp_path / "run1_gps.parquet"
    write_gps(path, [2.0, 0.0, 1.0], [40.3, 40.1, 40.2], [-88.2, -88.2, -88.2])
    track = m3nvc.read_gps(path)
    assert (track["time_s"] - START_S).tolist() == [0.0, 1.0, 2.0]
    assert track["latitude"].tolist() == [40.1, 40.2, 40.3]


def test_gps_missing_time_dropped(tmp_path):
    path = tmp_path / "run1_gps.parquet"
    times = pa.array([START.tz_localize(None), None, (START + pd.Timedelta(seconds=2)).tz_localize(None)], pa.timestamp("us"))
    pq.write_table(pa.table({"time": times, "latitude": [40.1, 40.2, 40.3], "longitude": [-88.2, -88.2, -88.2]}), path)
    track = m3nvc.read_gps(path)
    assert (track["time_s"] - START_S).tolist() == [0.0, 2.0]
    assert track["latitude"].tolist() == [40.1, 40.3]


# --- RealWorld-HAR ----------------------------------------------------------------------

T0_MS = 1_435_000_000_000
HEADER = "id,attr_time,attr_x,attr_y,attr_z"


def rows_text(count, step_ms=20, start_ms=T0_MS):
    return "".join(f"{i + 1},{start_ms + i * step_ms},{i}.5,2,3\n" for i in range(count))


def write_subject(root, members, zip_name="acc_walking_csv.zip"):
    """Write proband1/data/<zip_name> holding ``members`` and return the subject folder."""
    data = root / "proband1" / "data"
    data.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    (data / zip_name).write_bytes(buffer.getvalue())
    return root / "proband1"


def test_header_variant_spaces_quotes_case(tmp_path):
    header = ' "ID" , "Attr_Time" ,ATTR_X, attr_y ,"attr_z"\n'
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": header + rows_text(3)})
    [recording] = realworld.read_subject(subject)
    np.testing.assert_array_equal(recording.time_s, (T0_MS + np.array([0, 20, 40])) / 1000.0)
    np.testing.assert_array_equal(recording.values[:, 0], [0.5, 1.5, 2.5])


def test_header_variant_reordered_columns(tmp_path):
    text = "attr_x,attr_y,attr_z,attr_time\n7,8,9,1435000000000\n4,5,6,1435000000020\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    [recording] = realworld.read_subject(subject)
    np.testing.assert_array_equal(recording.values, [[7, 8, 9], [4, 5, 6]])


def test_header_semicolon_separated(tmp_path):
    text = "id;attr_time;attr_x;attr_y;attr_z\n1;1435000000000;1;2;3\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with pytest.raises(RealWorldLayoutError) as raised:
        realworld.read_subject(subject)
    message = str(raised.value)
    assert "acc_walking_csv.zip:acc_walking_chest.csv: missing column(s) ['attr_time', 'attr_x', 'attr_y', 'attr_z']" in message
    assert "found ['id;attr_time;attr_x;attr_y;attr_z']" in message


def test_header_column_named_twice(tmp_path):
    text = "attr_time,attr_time,attr_x,attr_y,attr_z\n1,1435000000000,1,2,3\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_chest\.csv: the header names column\(s\) \['attr_time'\] more than once"):
        realworld.read_subject(subject)


def test_csv_blank_lines_only_skipped(tmp_path, caplog):
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": "\n  \n\n", "acc_walking_head.csv": HEADER + "\n" + rows_text(2)})
    with caplog.at_level(logging.WARNING, logger="spar.io.realworld"):
        recordings = realworld.read_subject(subject)
    assert [r.position for r in recordings] == ["head"]
    assert "proband1/data/acc_walking_csv.zip:acc_walking_chest.csv: skipped, the CSV has no data rows" in warnings_of(caplog)


def test_csv_nan_inf_and_short_rows_dropped(tmp_path, caplog):
    text = HEADER + "\n" + "1,1435000000000,1,2,3\n2,1435000000020,inf,2,3\n3,1435000000040,NaN,2,3\n4,1435000000060,1\n5,1435000000080,5,2,3\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with caplog.at_level(logging.INFO, logger="spar.io.realworld"):
        [recording] = realworld.read_subject(subject)
    np.testing.assert_array_equal(recording.values[:, 0], [1, 5])
    assert "removed 0 duplicate timestamps and 3 rows with empty fields" in caplog.text


def test_csv_true_false_values_rejected(tmp_path):
    text = HEADER + "\n" + "1,1435000000000,true,2,3\n2,1435000000020,false,2,3\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_chest\.csv, line 2: column attr_x has the non-numeric value 'True'"):
        realworld.read_subject(subject)


def test_csv_text_in_time_column(tmp_path):
    text = HEADER + "\n" + "1,1435000000000,1,2,3\n2,12:00:01,1,2,3\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_chest\.csv, line 3: column attr_time has the non-numeric value '12:00:01'"):
        realworld.read_subject(subject)


def test_csv_not_utf8(tmp_path):
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": (HEADER + "\n" + rows_text(2)).encode("utf-16")})
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_chest\.csv is not UTF-8 text"):
        realworld.read_subject(subject)


def test_csv_row_with_extra_field(tmp_path):
    text = HEADER + "\n" + rows_text(2) + "3,1435000000040,1,2,3,4\n"
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_chest\.csv is not a valid CSV: .*Expected 5 fields in line 4, saw 6"):
        realworld.read_subject(subject)


def test_csv_timestamps_in_seconds_warned(tmp_path, caplog):
    text = HEADER + "\n" + "".join(f"{i + 1},{1435000000 + i},1,2,3\n" for i in range(4))
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": text})
    with caplog.at_level(logging.WARNING, logger="spar.io.realworld"):
        [recording] = realworld.read_subject(subject)
    np.testing.assert_array_equal(recording.time_s, [1435000.0, 1435000.001, 1435000.002, 1435000.003])
    assert any(
        "acc_walking_chest.csv: median sample spacing is 0.001 s, far from the nominal 0.02 s (50 Hz)" in m and "epoch milliseconds" in m
        for m in warnings_of(caplog)
    )


def test_zip_member_of_other_activity_skipped(tmp_path, caplog):
    subject = write_subject(tmp_path, {"acc_running_chest.csv": HEADER + "\n" + rows_text(2)})
    with caplog.at_level(logging.WARNING, logger="spar.io.realworld"):
        recordings = realworld.read_subject(subject)
    assert recordings == []
    assert (
        "proband1/data/acc_walking_csv.zip:acc_running_chest.csv: skipped, the member's sensor or activity differs from its zip (acc walking)"
        in warnings_of(caplog)
    )


def test_zip_member_of_unknown_position_skipped(tmp_path, caplog):
    subject = write_subject(tmp_path, {"acc_walking_ankle.csv": HEADER + "\n" + rows_text(2), "acc_walking_chest.csv": HEADER + "\n" + rows_text(2)})
    with caplog.at_level(logging.WARNING, logger="spar.io.realworld"):
        recordings = realworld.read_subject(subject)
    assert [r.position for r in recordings] == ["chest"]
    assert any("acc_walking_ankle.csv: skipped, unknown position 'ankle'" in m for m in warnings_of(caplog))


def test_zip_member_failing_crc(tmp_path):
    subject = write_subject(tmp_path, {"acc_walking_chest.csv": HEADER + "\n" + rows_text(200)})
    path = subject / "data" / "acc_walking_csv.zip"
    damaged = bytearray(path.read_bytes())
    offset = 30 + len("acc_walking_chest.csv") + 40  # inside the deflated data of the only member
    damaged[offset : offset + 8] = bytes(8) if damaged[offset : offset + 8] != bytes(8) else b"\xff" * 8
    path.write_bytes(bytes(damaged))
    with pytest.raises(RealWorldLayoutError, match=r"acc_walking_csv\.zip:acc_walking_chest\.csv cannot be read .*replace the zip with the release's copy"):
        realworld.read_subject(subject)


def test_inner_zip_truncated(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("acc_climbingup_chest.csv", HEADER + "\n" + rows_text(3))
    subject = write_subject(tmp_path, {"acc_climbingup_2_csv.zip": inner.getvalue()[:40]}, zip_name="acc_climbingup_csv.zip")
    with pytest.raises(RealWorldLayoutError, match=r"acc_climbingup_csv\.zip:acc_climbingup_2_csv\.zip is not a readable zip file .*replace the outer zip"):
        realworld.read_subject(subject)
