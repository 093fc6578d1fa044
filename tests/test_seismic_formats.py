"""SCEDC archive, FDSN station text and catalog readers on small files written by the tests."""

from __future__ import annotations

import datetime
import logging

import numpy as np
import obspy
import pandas as pd
import pytest

from spar.io import seismic

LOGGER = "spar.io.seismic"
DAY = datetime.date(2019, 7, 4)  # day 185 of 2019
NOON = obspy.UTCDateTime("2019-07-04T12:00:00Z")
MIDNIGHT = obspy.UTCDateTime("2019-07-05T00:00:00Z")


def make_trace(station: str, channel: str, start: obspy.UTCDateTime, data, rate: float = 100.0, location: str = "") -> obspy.Trace:
    header = {"network": "CI", "station": station, "location": location, "channel": channel, "sampling_rate": rate, "starttime": start}
    return obspy.Trace(np.asarray(data), header=header)


def write_day(root, traces: list[obspy.Trace], day: datetime.date) -> None:
    stats = traces[0].stats
    path = seismic.scedc_day_path(root, stats.network, stats.station, stats.channel, stats.location, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    obspy.Stream(traces).write(str(path), format="MSEED")


# --- file names ------------------------------------------------------------------------


def test_scedc_name_round_trip_wbm(tmp_path):
    path = seismic.scedc_day_path(tmp_path, "CI", "WBM", "HHZ", "", DAY)
    assert path == tmp_path / "continuous_waveforms" / "2019" / "2019_185" / "CIWBM__HHZ___2019185.ms"
    parts = seismic.parse_scedc_name(path)
    assert parts == {"network": "CI", "station": "WBM", "channel": "HHZ", "location": "", "year": 2019, "day_of_year": 185}


def test_scedc_name_four_letter_station_location(tmp_path):
    path = seismic.scedc_day_path(tmp_path, "CI", "JRC2", "HNE", "10", datetime.date(2019, 7, 6))
    assert path.name == "CIJRC2_HNE10_2019187.ms"
    assert path.parent.name == "2019_187"
    parts = seismic.parse_scedc_name(path.name)
    assert parts["station"] == "JRC2"
    assert parts["location"] == "10"
    assert parts["channel"] == "HNE"
    assert parts["day_of_year"] == 187


def test_parse_scedc_name_rejects_other_names():
    for name in ["CIWBM_HHZ_2019185.ms", "CIWBM__HHZ___2019185.mseed", "README.txt"]:
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            seismic.parse_scedc_name(name)


def test_parse_scedc_name_rejects_day_366_of_2019():
    with pytest.raises(ValueError, match="day 366 of 2019"):
        seismic.parse_scedc_name("CIWBM__HHZ___2019366.ms")
    assert seismic.parse_scedc_name("CIWBM__HHZ___2020366.ms")["day_of_year"] == 366


def test_scedc_day_path_rejects_long_station(tmp_path):
    with pytest.raises(ValueError, match="ABCDEF"):
        seismic.scedc_day_path(tmp_path, "CI", "ABCDEF", "HHZ", "", DAY)


# --- archive ---------------------------------------------------------------------------


@pytest.fixture
def archive_root(tmp_path):
    """An archive of day 185 and 186 of 2019, plus three files the scan must skip.

    WBM HHZ, day 185: at noon 100 samples (0..99), a 50-sample gap, 100 samples
    (1000..1099), and 100 samples (5000..5099) that overlap the previous ones by
    20 samples. From 23:59:00 a ramp 0..5999 runs up to midnight, and the file
    of day 186 continues it with 6000..11999 from midnight.
    SRT HNZ, day 185: a 5 Hz sine of amplitude 1000 at 200 Hz from 10:00:00 for 60 s.
    CLC, day 185: HH1, HH2, HHZ and HNZ, 10 s each from noon.
    """
    root = tmp_path / "scedc"
    gap_and_overlap = [
        make_trace("WBM", "HHZ", NOON, np.arange(100, dtype=np.int32)),
        make_trace("WBM", "HHZ", NOON + 1.5, np.arange(100, dtype=np.int32) + 1000),
        make_trace("WBM", "HHZ", NOON + 2.3, np.arange(100, dtype=np.int32) + 5000),
    ]
    before_midnight = make_trace("WBM", "HHZ", MIDNIGHT - 60.0, np.arange(6000, dtype=np.int32))
    write_day(root, [*gap_and_overlap, before_midnight], DAY)
    write_day(root, [make_trace("WBM", "HHZ", MIDNIGHT, np.arange(6000, 12000, dtype=np.int32))], DAY + datetime.timedelta(days=1))

    t = np.arange(60 * 200) / 200.0
    sine = (1000.0 * np.sin(2 * np.pi * 5.0 * t)).astype(np.float32)
    write_day(root, [make_trace("SRT", "HNZ", obspy.UTCDateTime("2019-07-04T10:00:00Z"), sine, rate=200.0)], DAY)

    for channel in ["HH1", "HH2", "HHZ", "HNZ"]:
        write_day(root, [make_trace("CLC", channel, NOON, np.ones(1000, dtype=np.int32))], DAY)

    day_folder = root / "continuous_waveforms" / "2019" / "2019_185"
    (day_folder / "README.txt").write_text("not a waveform")
    (day_folder / "CIWBM_HHZ_2019185.ms").write_bytes(b"misnamed")
    misplaced = root / "continuous_waveforms" / "2019" / "2019_186" / "CICLC__HHZ___2019185.ms"
    misplaced.write_bytes((day_folder / "CICLC__HHZ___2019185.ms").read_bytes())
    return root


def test_archive_skips_and_counts_other_files(archive_root, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    archive = seismic.ScedcArchive(archive_root)
    assert list(archive.files.columns) == ["network", "station", "location", "channel", "day", "path"]
    assert len(archive.files) == 7
    assert set(archive.files["station"]) == {"WBM", "SRT", "CLC"}
    summary = [r.getMessage() for r in caplog.records if "scanned" in r.getMessage()]
    assert len(summary) == 1
    assert "skipped 3 files" in summary[0]
    assert "2 not named like an SCEDC day file" in summary[0]
    assert "1 not in the folder of its day" in summary[0]


def test_archive_window_gap_and_overlap(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    stream = archive.window("CI", "WBM", "HH", NOON, NOON + 3.3, 100.0)
    assert len(stream) == 1
    trace = stream[0]
    assert trace.id == "CI.WBM..HHZ"
    assert trace.stats.starttime == NOON
    assert trace.stats.npts == 330
    mask = np.ma.getmaskarray(trace.data)
    assert int(mask[100:150].sum()) == 50
    assert not mask[:100].any()
    assert not mask[150:].any()
    # samples 230..249 are in the second and the third trace: the third, which starts later, wins
    assert trace.data[229] == 1079
    assert trace.data[230] == 5000
    assert trace.data[329] == 5099


def test_archive_window_spans_midnight(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    stream = archive.window("CI", "WBM", "HHZ", MIDNIGHT - 30.0, MIDNIGHT + 30.0, 100.0)
    assert archive.cache_info()["misses"] == 2
    assert len(stream) == 1
    trace = stream[0]
    assert trace.stats.starttime == MIDNIGHT - 30.0
    assert trace.stats.npts == 6000
    assert not np.ma.getmaskarray(trace.data).any()
    np.testing.assert_array_equal(np.asarray(trace.data), np.arange(3000, 9000))


def test_archive_window_end_is_exclusive(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    trace = archive.window("CI", "WBM", "HHZ", MIDNIGHT - 1.0, MIDNIGHT, 100.0)[0]
    assert trace.stats.npts == 100
    assert trace.data[-1] == 5999


def test_archive_reads_next_day_near_midnight(tmp_path):
    """The last half second of day 185 is stored in the file of day 186, as when a record crosses midnight."""
    write_day(tmp_path, [make_trace("WBM", "HHZ", MIDNIGHT - 10.0, np.arange(950, dtype=np.int32))], DAY)
    late = make_trace("WBM", "HHZ", MIDNIGHT - 0.5, np.arange(950, 1100, dtype=np.int32))
    write_day(tmp_path, [late], DAY + datetime.timedelta(days=1))
    archive = seismic.ScedcArchive(tmp_path)
    stream = archive.window("CI", "WBM", "HHZ", MIDNIGHT - 10.0, MIDNIGHT - 0.2, 100.0)
    assert len(stream) == 1
    assert stream[0].stats.npts == 980
    assert not np.ma.getmaskarray(stream[0].data).any()
    np.testing.assert_array_equal(np.asarray(stream[0].data), np.arange(980))


def test_archive_resamples_200_to_100_hz(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    start = obspy.UTCDateTime("2019-07-04T10:00:20Z")
    stream = archive.window("CI", "SRT", "HN", start, start + 20.0, 100.0)
    assert len(stream) == 1
    trace = stream[0]
    assert trace.stats.sampling_rate == 100.0
    assert trace.stats.starttime == start
    assert trace.stats.npts == 2000
    t = 20.0 + np.arange(2000) / 100.0  # seconds since the recording started at 10:00:00
    expected = 1000.0 * np.sin(2 * np.pi * 5.0 * t)
    # within 1 % of the amplitude everywhere, the window's edges included
    assert np.max(np.abs(trace.data - expected)) < 10.0
    assert np.max(np.abs(trace.data)) == pytest.approx(1000.0, rel=0.01)


def test_archive_prefix_selects_1_2_components(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    stream = archive.window("CI", "CLC", "HH", NOON + 1.0, NOON + 2.0, 100.0)
    assert [tr.stats.channel for tr in stream] == ["HH1", "HH2", "HHZ"]
    assert all(tr.stats.npts == 100 for tr in stream)


def test_archive_missing_day_gives_empty_stream(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    start = obspy.UTCDateTime("2019-07-10T12:00:00Z")
    assert len(archive.window("CI", "WBM", "HH", start, start + 10.0, 100.0)) == 0
    assert len(archive.window("CI", "XYZ", "HH", NOON, NOON + 10.0, 100.0)) == 0


def test_archive_lru_cache_evicts_oldest(archive_root):
    archive = seismic.ScedcArchive(archive_root, cache_size=1)
    archive.window("CI", "WBM", "HHZ", NOON, NOON + 1.0, 100.0)
    archive.window("CI", "WBM", "HHZ", NOON + 1.0, NOON + 2.0, 100.0)
    assert archive.cache_info() == {"hits": 1, "misses": 1, "size": 1, "max_size": 1}
    archive.window("CI", "SRT", "HNZ", NOON, NOON + 1.0, 100.0)
    archive.window("CI", "WBM", "HHZ", NOON, NOON + 1.0, 100.0)
    assert archive.cache_info()["misses"] == 3


def test_archive_window_returns_copies(archive_root):
    archive = seismic.ScedcArchive(archive_root)
    first = archive.window("CI", "WBM", "HHZ", NOON, NOON + 1.0, 100.0)[0]
    first.data[:] = -1
    second = archive.window("CI", "WBM", "HHZ", NOON, NOON + 1.0, 100.0)[0]
    assert second.data[0] == 0
    assert second.data[99] == 99


def test_archive_unreadable_file_named(tmp_path):
    path = seismic.scedc_day_path(tmp_path, "CI", "WBM", "HHZ", "", DAY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a miniSEED record\n" * 20)
    archive = seismic.ScedcArchive(tmp_path)
    with pytest.raises(ValueError, match="CIWBM__HHZ___2019185.ms"):
        archive.window("CI", "WBM", "HH", NOON, NOON + 1.0, 100.0)


def test_archive_without_layout_names_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="continuous_waveforms"):
        seismic.ScedcArchive(tmp_path)


# --- stations --------------------------------------------------------------------------

STATION_HEADER = "#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime\n"


def test_read_station_text_columns(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(
        STATION_HEADER
        + "CI|WBM|35.60839|-117.89049|892.0|Site W|2006-01-01T00:00:00|2599-12-31T23:59:59\n"
        + "\n"
        + "CI | CCC | 35.52495 | -117.36453 | 670 | Site C | 1999-11-18T00:00:00 |\n"
    )
    table = seismic.read_station_text(path)
    assert list(table.columns) == ["network", "station", "latitude", "longitude", "elevation_m", "site_name", "start", "end"]
    assert list(table["station"]) == ["WBM", "CCC"]
    ccc = table.iloc[1]
    assert ccc["latitude"] == pytest.approx(35.52495)
    assert ccc["longitude"] == pytest.approx(-117.36453)
    assert ccc["elevation_m"] == pytest.approx(670.0)
    assert ccc["site_name"] == "Site C"
    assert ccc["start"] == pd.Timestamp("1999-11-18T00:00:00Z")
    assert pd.isna(ccc["end"])
    assert table["end"][0] == pd.Timestamp("2599-12-31T23:59:59Z")


def test_read_station_text_bad_latitude_names_line(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(STATION_HEADER + "CI|WBM|35.60839|-117.89049|892|W|2006-01-01T00:00:00|\nCI|CCC|north|-117.36|670|C|1999-11-18T00:00:00|\n")
    with pytest.raises(ValueError, match=r"stations\.txt:3: latitude 'north' is not a number"):
        seismic.read_station_text(path)


def test_read_station_text_field_count_names_line(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(STATION_HEADER + "CI|WBM|35.60839|-117.89049|892\n")
    with pytest.raises(ValueError, match=r"stations\.txt:2: 5 '\|'-separated fields, the header has 8"):
        seismic.read_station_text(path)


def test_read_stations_dispatches_text(tmp_path):
    path = tmp_path / "stations.txt"
    path.write_text(
        STATION_HEADER
        + "CI|WRC2|35.90000|-117.60000|900|old site|2000-01-01T00:00:00|2010-01-01T00:00:00\n"
        + "CI|WRC2|35.94790|-117.65038|943|new site|2010-01-01T00:00:00|\n"
        + "CI|WBM|35.60839|-117.89049|892|W|2006-01-01T00:00:00|\n"
        + "CI|WRC10|36.00000|-117.70000|1000|X|2006-01-01T00:00:00|\n"
    )
    table = seismic.read_stations(path)
    assert list(table.columns) == ["network", "station", "latitude", "longitude", "elevation_m"]
    assert list(table["station"]) == ["WBM", "WRC2", "WRC10"]
    # WRC2 moved in 2010: the latest epoch's coordinates are used
    assert table["latitude"][1] == pytest.approx(35.94790)
    assert table["elevation_m"][1] == pytest.approx(943.0)


# --- catalogs --------------------------------------------------------------------------

STP_LINES = [
    "39000008 eq l 2019/08/23,08:07:30.260 35.9885 -117.5212 1.91 1.58 l 1.0",
    "38457511 eq l 2019/07/06,03:19:53.040 35.7695 -117.5993 8.00 7.10 w 1.0",
    "37219172 qb l 2019/07/10,20:05:12.000 35.4000 -117.7000 0.00 1.20 l 1.0",
    "39000010 eq l 2019/08/23,08:1O:00.000 35.9000 -117.5000 2.00 1.00 l 1.0",
]


def skipped_row_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "row skipped" in r.getMessage()]


def summary_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "earthquakes kept" in r.getMessage()]


def test_read_scedc_stp_known_event(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "events.stp"
    path.write_text("\n".join(STP_LINES) + "\n")
    catalog = seismic.read_scedc_stp(path)
    assert list(catalog.columns) == seismic.CATALOG_COLUMNS
    assert list(catalog["event_id"]) == ["38457511", "39000008"]
    event = catalog.iloc[0]
    assert event["time"] == pd.Timestamp("2019-07-06T03:19:53.040Z")
    assert str(catalog["time"].dt.tz) == "UTC"
    assert event["latitude"] == pytest.approx(35.7695)
    assert event["longitude"] == pytest.approx(-117.5993)
    assert event["depth_km"] == pytest.approx(8.0)
    assert event["magnitude"] == pytest.approx(7.10)
    assert event["magnitude_type"] == "w"
    assert catalog["time"][1] == pd.Timestamp("2019-08-23T08:07:30.260Z")

    warnings = skipped_row_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}:4: invalid date or time")
    summary = summary_lines(caplog)
    assert len(summary) == 1
    assert "2 earthquakes kept" in summary[0]
    assert "skipped 1 other events (qb 1)" in summary[0]
    assert "1 malformed rows" in summary[0]


def test_read_scedc_search_known_event(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "search.txt"
    path.write_text(
        "#YYY/MM/DD HH:mm:SS.ss ET GT  MAG  M   LAT       LON     DEPTH Q  EVID      NPH  NGRM\n"
        "#\n"
        "2019/07/04 17:33:49.00 eq  l  6.40  w  35.705  -117.504  10.5 A  38443183  1563  8432\n"
        "2019/07/05 12:00:00.50 eq  l  0.00  n  35.800  -117.600  -0.5 C  38450300    10    20\n"
        "\n"
        "2019/07/05 13:00:00.00 qb  l  1.10  l  35.500  -117.700   0.0 A  38450400    10    20\n"
        "2019/07/05 14:00:00.00 eq  l  1.10  l  35.500  A  38450500 10 20\n"
    )
    catalog = seismic.read_scedc_search(path)
    assert list(catalog["event_id"]) == ["38443183", "38450300"]
    first = catalog.iloc[0]
    assert first["time"] == pd.Timestamp("2019-07-04T17:33:49Z")
    assert first["latitude"] == pytest.approx(35.705)
    assert first["longitude"] == pytest.approx(-117.504)
    assert first["depth_km"] == pytest.approx(10.5)
    assert first["magnitude"] == pytest.approx(6.4)
    assert first["magnitude_type"] == "w"
    # magnitude type n means no magnitude; a negative depth is above sea level
    assert np.isnan(catalog["magnitude"][1])
    assert catalog["depth_km"][1] == pytest.approx(-0.5)
    assert catalog["time"][1] == pd.Timestamp("2019-07-05T12:00:00.5Z")

    warnings = skipped_row_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}:7: 11 fields, expected 13")
    assert "skipped 1 other events (qb 1) and 1 malformed rows" in summary_lines(caplog)[0]


COMCAT_HEADER = "time,latitude,longitude,depth,mag,magType,nst,gap,dmin,rms,net,id,updated,place,type\n"


def test_read_comcat_csv_known_event(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "comcat.csv"
    path.write_text(
        COMCAT_HEADER
        + '2019-07-06T03:19:53.040Z,35.7695,-117.5993,8,7.1,mw,,,,0.19,ci,ci38457511,2023-01-01T00:00:00.000Z,"2 km W of A Place, CA",earthquake\n'
        + "2019-07-06T04:00:00.000Z,35.8,-117.6,0.31,,ml,,,,0.1,ci,ci38457600,2023-01-01T00:00:00.000Z,Somewhere,earthquake\n"
        + "2019-07-07T18:00:00.000Z,35.5,-117.7,0,1.3,ml,,,,0.1,ci,ci38460000,2023-01-01T00:00:00.000Z,Pit,quarry blast\n"
        + "2019-07-08T18:00:00.000Z,35.5,-117.7,0,1.3,ml,,,,0.1,ci,ci38460100,2023-01-01T00:00:00.000Z,Range,explosion\n"
        + "2019-13-45T18:00:00.000Z,35.5,-117.7,0,1.3,ml,,,,0.1,ci,ci38460200,2023-01-01T00:00:00.000Z,Bad,earthquake\n"
    )
    catalog = seismic.read_comcat_csv(path)
    assert list(catalog["event_id"]) == ["ci38457511", "ci38457600"]
    event = catalog.iloc[0]
    assert event["time"] == pd.Timestamp("2019-07-06T03:19:53.040Z")
    assert event["latitude"] == pytest.approx(35.7695)
    assert event["longitude"] == pytest.approx(-117.5993)
    assert event["depth_km"] == pytest.approx(8.0)
    assert event["magnitude"] == pytest.approx(7.1)
    assert event["magnitude_type"] == "mw"
    assert np.isnan(catalog["magnitude"][1])

    warnings = skipped_row_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}:6: invalid time")
    assert "skipped 2 other events (explosion 1, quarry blast 1) and 1 malformed rows" in summary_lines(caplog)[0]


def test_read_comcat_csv_missing_column_named(tmp_path):
    path = tmp_path / "comcat.csv"
    path.write_text("time,latitude,longitude,depth,mag\n2019-07-06T03:19:53Z,35.7,-117.6,8,7.1\n")
    with pytest.raises(ValueError, match=r"comcat\.csv:1: header lacks ComCat column\(s\) \['magType', 'id', 'type'\]"):
        seismic.read_comcat_csv(path)


def test_catalog_logs_ten_rows_then_counts(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "events.stp"
    path.write_text(STP_LINES[0] + "\n" + "".join(f"3900{i:04d} eq l broken\n" for i in range(12)))
    catalog = seismic.read_scedc_stp(path)
    assert len(catalog) == 1
    warnings = skipped_row_warnings(caplog)
    assert len(warnings) == 10
    assert warnings[0].startswith(f"{path}:2: 4 fields, expected 10")
    assert warnings[-1].startswith(f"{path}:11:")
    assert "12 malformed rows (2 of them not logged)" in summary_lines(caplog)[0]


def test_catalog_all_rows_malformed_names_file(tmp_path):
    path = tmp_path / "broken.stp"
    path.write_text("one two three\nfour five six\n")
    with pytest.raises(ValueError, match=r"broken\.stp: all 2 rows are malformed"):
        seismic.read_scedc_stp(path)


def test_read_catalog_mixed_formats_drops_duplicates(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    stp = tmp_path / "a.stp"
    stp.write_text(STP_LINES[1] + "\n")
    search = tmp_path / "b.txt"
    search.write_text(
        "2019/07/06 03:19:53.04 eq  l  7.10  w  35.770  -117.599   8.0 A  38457511  2057 17845\n"
        "2019/07/04 17:33:49.00 eq  l  6.40  w  35.705  -117.504  10.5 A  38443183  1563  8432\n"
    )
    comcat = tmp_path / "c.csv"
    comcat.write_text(COMCAT_HEADER + "2019-07-05T11:07:53.040Z,35.76,-117.575,7,5.4,mw,,,,0.2,ci,ci38450263,2023-01-01T00:00:00Z,X,earthquake\n")
    other_suffix = tmp_path / "d.catalog"
    other_suffix.write_text("39000008 eq l 2019/08/23,08:07:30.260 35.9885 -117.5212 1.91 1.58 l 1.0\n")

    catalog = seismic.read_catalog([stp, search, comcat, other_suffix])
    assert list(catalog["event_id"]) == ["38443183", "ci38450263", "38457511", "39000008"]
    # the STP row of 38457511 was read first, so its latitude is kept
    assert catalog.set_index("event_id").loc["38457511", "latitude"] == pytest.approx(35.7695)
    assert any("dropped 1 rows whose event_id" in r.getMessage() for r in caplog.records)


def test_read_catalog_quakeml_magnitude_type(tmp_path):
    event = obspy.core.event.Event(resource_id=obspy.core.event.ResourceIdentifier("smi:local/event/ev1"))
    event.origins = [obspy.core.event.Origin(time=NOON, latitude=35.9, longitude=-117.6, depth=3500.0)]
    event.magnitudes = [obspy.core.event.Magnitude(mag=2.5, magnitude_type="ML")]
    path = tmp_path / "events.xml"
    obspy.core.event.Catalog(events=[event]).write(str(path), format="QUAKEML")
    catalog = seismic.read_catalog(tmp_path)
    assert list(catalog.columns) == seismic.CATALOG_COLUMNS
    assert catalog["event_id"][0] == "ev1"
    assert catalog["depth_km"][0] == pytest.approx(3.5)
    assert catalog["magnitude_type"][0] == "ML"


def test_read_catalog_folder_with_fmt(tmp_path):
    (tmp_path / "2019").mkdir()
    (tmp_path / "2019" / "july.stp").write_text(STP_LINES[1] + "\n")
    (tmp_path / "notes.md").write_text("not a catalog")
    catalog = seismic.read_catalog(tmp_path, fmt="scedc_stp")
    assert list(catalog["event_id"]) == ["38457511"]


def test_read_catalog_unknown_format_named(tmp_path):
    path = tmp_path / "events.dat"
    path.write_text("something else entirely\n")
    with pytest.raises(ValueError, match=r"events\.dat.*pass fmt="):
        seismic.read_catalog(path)
    with pytest.raises(ValueError, match="unknown catalog format 'isf'"):
        seismic.read_catalog(path, fmt="isf")


# --- region selection ------------------------------------------------------------------

KM_PER_DEGREE_LATITUDE = 111.0  # a meridian degree is 110.96 km near 36 N, so distances below are 0.04 % short


def test_events_in_region_counts():
    center_lat, center_lon = 35.9, -117.6
    catalog = pd.DataFrame(
        {
            "event_id": ["at79", "at81", "weak", "no_mag", "far_weak"],
            "latitude": [center_lat + d / KM_PER_DEGREE_LATITUDE for d in (79.0, 81.0, 10.0, 20.0, 200.0)],
            "longitude": [center_lon] * 5,
            "magnitude": [2.0, 3.0, -1.0, np.nan, -1.0],
        }
    )
    selected, counts = seismic.events_in_region(catalog, center_lat, center_lon, radius_km=80.0, min_magnitude=0.0)
    assert list(selected["event_id"]) == ["at79"]
    assert selected["distance_km"][0] == pytest.approx(79.0, abs=0.1)
    assert counts == {"total": 5, "outside_radius": 2, "below_magnitude": 3, "selected": 1}


def test_events_in_region_limits_inclusive():
    catalog = pd.DataFrame({"event_id": ["center"], "latitude": [35.9], "longitude": [-117.6], "magnitude": [1.5]})
    selected, counts = seismic.events_in_region(catalog, 35.9, -117.6, radius_km=1.0, min_magnitude=1.5)
    assert counts["selected"] == 1
    assert selected["distance_km"][0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="radius_km"):
        seismic.events_in_region(catalog, 35.9, -117.6, radius_km=0.0, min_magnitude=1.5)
