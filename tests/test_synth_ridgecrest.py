"""Tests of the Ridgecrest simulator: SCEDC layout, channel variants, catalogs and physics.

The waveform tests read the files that ``synthesize`` writes for a small
configuration, with obspy, as the importer will. The statistical tests use
``plan_events`` on larger catalogs, which draws events and detections without
writing waveforms.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import obspy
import pandas as pd
import pytest
from pyproj import Geod

from spar.io import seismic
from spar.io.geodesy import EnuFrame
from spar.synth import ridgecrest
from spar.synth.ridgecrest import plan_events, synthesize

# Seed 16 draws six earthquakes of M0.5-2.3 in 2021, two of them on the same day.
TINY = {"seed": 16, "years": [2021], "events_per_year": 8, "magnitude_min": 0.5}
MEDIUM = {"seed": 5, "years": [2021, 2022], "events_per_year": 300}

# The 16 CI stations of the SPAR paper's network with their published coordinates:
# code, latitude, longitude, elevation in meters.
PUBLISHED = [
    ("CCC", 35.52495, -117.36453, 670),
    ("CLC", 35.81574, -117.59751, 775),
    ("DAW", 36.27148, -117.59214, 1477),
    ("JRC2", 35.98249, -117.80885, 1469),
    ("LRL", 35.47954, -117.68212, 1340),
    ("MPM", 36.05799, -117.48901, 1839),
    ("SLA", 35.89095, -117.28332, 1174),
    ("SRT", 35.69235, -117.75051, 667),
    ("TOW2", 35.80856, -117.76488, 685),
    ("WBM", 35.60839, -117.89049, 892),
    ("WCS2", 36.02521, -117.76526, 1143),
    ("WMF", 36.11758, -117.85486, 1537),
    ("WNM", 35.84220, -117.90616, 974),
    ("WRC2", 35.94790, -117.65038, 943),
    ("WRV2", 36.00774, -117.89040, 1070),
    ("WVP2", 35.94939, -117.81769, 1465),
]
CODES = [row[0] for row in PUBLISHED]

# SCEDC file name: network (2), station padded with _ to 5, channel (3), location padded to 2, _YYYYDDD.ms
FILE_NAME = re.compile(r"^(?P<net>[A-Z0-9]{2})(?P<sta>[A-Z0-9_]{5})(?P<cha>[A-Z0-9]{3})(?P<loc>[A-Z0-9_]{2})_(?P<year>\d{4})(?P<doy>\d{3})\.ms$")
DAY_FOLDER = re.compile(r"^(?P<year>\d{4})/(?P=year)_(?P<doy>\d{3})$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ridgecrest")
    synthesize(out, dict(TINY))
    return out


@pytest.fixture(scope="module")
def tiny_plan():
    return plan_events(dict(TINY))


@pytest.fixture(scope="module")
def medium_plan():
    return plan_events(dict(MEDIUM))


def parse_name(path: Path) -> dict:
    match = FILE_NAME.match(path.name)
    assert match, f"{path.name} does not follow the SCEDC file name pattern"
    fields = match.groupdict()
    return {
        "network": fields["net"],
        "station": fields["sta"].rstrip("_"),
        "channel": fields["cha"],
        "location": fields["loc"].replace("_", ""),
        "day": obspy.UTCDateTime(year=int(fields["year"]), julday=int(fields["doy"])),
    }


def waveform_files(root: Path) -> list[Path]:
    return sorted((root / "continuous_waveforms").rglob("*.ms"))


def utc_ms(time_ms) -> obspy.UTCDateTime:
    return obspy.UTCDateTime(ns=int(time_ms) * 1_000_000)


def read_segment(root: Path, station: str, channel: str, start: obspy.UTCDateTime, end: obspy.UTCDateTime) -> obspy.Trace:
    """Read one channel between start and end from the day file of start, merged."""
    folder = root / "continuous_waveforms" / f"{start.year}" / f"{start.year}_{start.julday:03d}"
    stream = obspy.read(str(folder / ridgecrest.day_file_name(station, channel, start)))
    stream.merge(method=1)
    stream.trim(start, end)
    assert len(stream) == 1, f"{station} {channel}: expected one trace between {start} and {end}, got {len(stream)}"
    return stream[0]


def filtered(trace: obspy.Trace) -> obspy.Trace:
    trace = trace.copy()
    trace.data = trace.data.astype(np.float64)
    trace.detrend("demean")
    trace.taper(0.02)
    trace.filter("bandpass", freqmin=2.0, freqmax=20.0)  # causal, so energy is never moved ahead of an onset
    return trace


# --- layout ---------------------------------------------------------------------------------


def test_day_file_name_example():
    # 2021-07-04 is day 185 of 2021 (181 days in January to June, plus 4).
    assert ridgecrest.day_file_name("WBM", "HHZ", obspy.UTCDateTime(2021, 7, 4)) == "CIWBM__HHZ___2021185.ms"
    assert ridgecrest.day_file_name("JRC2", "HNE", obspy.UTCDateTime(2021, 1, 1)) == "CIJRC2_HNE___2021001.ms"
    assert ridgecrest.day_folder(obspy.UTCDateTime(2021, 7, 4)) == "2021/2021_185"


def test_file_names_follow_scedc_layout(tiny):
    files = waveform_files(tiny)
    assert files
    for path in files:
        fields = parse_name(path)
        folder = path.parent.relative_to(tiny / "continuous_waveforms").as_posix()
        match = DAY_FOLDER.match(folder)
        assert match, f"folder {folder} is not YYYY/YYYY_DDD"
        assert (int(match["year"]), int(match["doy"])) == (fields["day"].year, fields["day"].julday)
        assert fields["network"] == "CI"
        assert fields["location"] == ""
        assert fields["station"] in CODES
        assert fields["channel"][:2] in ("HH", "HN")


def test_files_exist_for_recorded_pairs_only(tiny, tiny_plan):
    expected = set()
    quakes = tiny_plan.earthquakes
    for q, s in zip(*np.nonzero(tiny_plan.recorded)):
        origin = utc_ms(quakes["time_ms"].iat[q])
        for edge in (origin - 10.0, origin + 39.99):
            day = obspy.UTCDateTime(edge.date)
            for channel in [ch.code for ch in ridgecrest.station_channels(CODES[s], 100)]:
                expected.add((CODES[s], channel, day.year, day.julday))
    found = set()
    for path in waveform_files(tiny):
        fields = parse_name(path)
        found.add((fields["station"], fields["channel"], fields["day"].year, fields["day"].julday))
    assert found == expected


def test_day_files_contain_int32_steim2(tiny):
    for path in waveform_files(tiny):
        fields = parse_name(path)
        stream = obspy.read(str(path), format="MSEED")
        assert len(stream) >= 1
        for trace in stream:
            assert trace.data.dtype == np.int32, path.name
            assert trace.stats.mseed.encoding == "STEIM2", path.name
            assert (trace.stats.network, trace.stats.station, trace.stats.location) == ("CI", fields["station"], "")
            assert trace.stats.channel == fields["channel"]
            expected_rate = 200.0 if (fields["station"], fields["channel"][:2]) == ("CLC", "HN") else 100.0
            assert trace.stats.sampling_rate == expected_rate, path.name
            assert trace.stats.starttime >= fields["day"], path.name
            assert trace.stats.endtime < fields["day"] + 86400, path.name


def test_channel_variants(tiny):
    channels_by_station: dict[str, set[str]] = {}
    for path in waveform_files(tiny):
        fields = parse_name(path)
        channels_by_station.setdefault(fields["station"], set()).add(fields["channel"])
    assert channels_by_station["WRC2"] == {"HHZ", "HH1", "HH2", "HNZ", "HNN", "HNE"}
    assert channels_by_station["CLC"] == {"HHZ", "HHN", "HHE", "HNZ", "HNN", "HNE"}
    others = {code: channels for code, channels in channels_by_station.items() if code != "WRC2"}
    assert others
    for code, channels in others.items():
        assert channels == {"HHZ", "HHN", "HHE", "HNZ", "HNN", "HNE"}, code


def test_day_with_two_events_has_gap(tiny, tiny_plan):
    quakes = tiny_plan.earthquakes
    days = quakes["time_ms"] // 86_400_000
    shared = days[days.duplicated(keep=False)]
    assert len(shared) == 2, "the tiny configuration should have exactly one day with two earthquakes"
    first, second = shared.index
    stations = np.flatnonzero(tiny_plan.recorded[first] & tiny_plan.recorded[second])
    assert stations.size > 0
    origin = utc_ms(quakes["time_ms"].iat[first])
    folder = tiny / "continuous_waveforms" / f"{origin.year}" / f"{origin.year}_{origin.julday:03d}"
    stream = obspy.read(str(folder / ridgecrest.day_file_name(CODES[stations[0]], "HHZ", origin)))
    assert len(stream) == 2
    assert stream[0].stats.npts == 5000  # 10 s before plus 40 s after the origin at 100 Hz
    assert stream[1].stats.starttime - stream[0].stats.endtime > 60.0


def test_one_file_has_duplicate_overlap(tiny):
    overlapping = []
    for path in waveform_files(tiny):
        stream = obspy.read(str(path))
        traces = sorted(stream, key=lambda t: t.stats.starttime)
        for earlier, later in zip(traces, traces[1:]):
            if later.stats.starttime <= earlier.stats.endtime:
                overlapping.append((path, earlier, later))
    assert len(overlapping) == 1
    path, earlier, later = overlapping[0]
    assert parse_name(path)["channel"] == "HHZ"
    assert later.stats.npts == 1000  # 10 s at 100 Hz
    offset = round((later.stats.starttime - earlier.stats.starttime) * 100.0)
    np.testing.assert_array_equal(earlier.data[offset : offset + later.stats.npts], later.data)


def test_segments_cover_recorded_pairs(tiny, tiny_plan):
    quakes = tiny_plan.earthquakes
    for q in range(len(quakes)):
        origin = utc_ms(quakes["time_ms"].iat[q])
        folder = tiny / "continuous_waveforms" / f"{origin.year}" / f"{origin.year}_{origin.julday:03d}"
        for s, code in enumerate(CODES):
            path = folder / ridgecrest.day_file_name(code, "HHZ", origin)
            covering = []
            if path.exists():
                covering = [t for t in obspy.read(str(path)) if t.stats.starttime <= origin <= t.stats.endtime]
            if tiny_plan.recorded[q, s]:
                assert covering, f"event {q} at {code}: no HHZ trace covers the origin time"
                assert min(t.stats.starttime for t in covering) == origin - 10.0
            else:
                assert not covering, f"event {q} at {code} is below the detection threshold but has data"


# --- station metadata --------------------------------------------------------------------------


def test_station_csv_published_coordinates():
    table = ridgecrest.read_station_table()
    assert list(table.columns) == ["network", "station", "latitude", "longitude", "elevation_m"]
    assert table["network"].eq("CI").all()
    assert [tuple(row) for row in table[["station", "latitude", "longitude", "elevation_m"]].itertuples(index=False)] == PUBLISHED


def test_station_text_lists_16_stations(tiny):
    lines = (tiny / "stations" / "ci_stations.txt").read_text().splitlines()
    assert lines[0] == "#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime"
    rows = [line.split("|") for line in lines[1:]]
    assert len(rows) == 16
    for fields, (code, lat, lon, elev) in zip(rows, PUBLISHED):
        assert len(fields) == 8
        assert fields[0] == "CI"
        assert fields[1] == code
        assert float(fields[2]) == lat
        assert float(fields[3]) == lon
        assert float(fields[4]) == elev


def test_station_xml_lists_channels(tiny):
    path = tiny / "stations" / "ci_stations.xml"
    stations = seismic.read_stations(path)
    assert list(zip(stations["station"], stations["latitude"], stations["longitude"], stations["elevation_m"])) == PUBLISHED
    channels = seismic.read_channels(path)
    assert len(channels) == 16 * 6
    clc_hn = channels[(channels["station"] == "CLC") & channels["channel"].str.startswith("HN")]
    assert clc_hn["sample_rate_hz"].tolist() == [200.0, 200.0, 200.0]
    assert (channels.drop(clc_hn.index)["sample_rate_hz"] == 100.0).all()

    inventory = obspy.read_inventory(str(path))
    wrc2 = {cha.code: cha for cha in inventory.select(station="WRC2")[0][0]}
    assert sorted(wrc2) == ["HH1", "HH2", "HHZ", "HNE", "HNN", "HNZ"]
    assert wrc2["HH1"].azimuth == 27.0
    assert wrc2["HH2"].azimuth == 117.0
    assert wrc2["HHZ"].dip == -90.0
    assert wrc2["HHZ"].response.instrument_sensitivity.value == ridgecrest.HH_GAIN


# --- catalogs ---------------------------------------------------------------------------------


def read_stp(path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        assert len(fields) == 10, f"{path.name} line {number}: {line!r}"
        date, time = fields[3].split(",")
        rows.append(
            {
                "evid": int(fields[0]),
                "type": fields[1],
                "time": obspy.UTCDateTime(f"{date.replace('/', '-')}T{time}Z"),
                "latitude": float(fields[4]),
                "longitude": float(fields[5]),
                "depth": float(fields[6]),
                "mag": float(fields[7]),
            }
        )
    return pd.DataFrame(rows)


def test_catalog_stp_and_comcat_agree(tiny, tiny_plan):
    stp = read_stp(tiny / "catalog" / "scedc.stp")
    with open(tiny / "catalog" / "comcat.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [
            "time", "latitude", "longitude", "depth", "mag", "magType", "nst", "gap", "dmin", "rms", "net", "id", "updated", "place", "type",
        ]
        comcat = list(reader)

    assert len(stp) == len(comcat) == len(tiny_plan.catalog)
    assert list(stp["time"]) == sorted(stp["time"])
    assert (stp["type"] == "qb").sum() == 3
    by_id = {row["id"]: row for row in comcat}
    for row in stp.itertuples(index=False):
        other = by_id[f"ci{row.evid}"]
        assert obspy.UTCDateTime(other["time"]) == row.time
        assert float(other["latitude"]) == row.latitude
        assert float(other["longitude"]) == row.longitude
        assert float(other["depth"]) == row.depth
        assert float(other["mag"]) == row.mag
        assert other["type"] == {"eq": "earthquake", "qb": "quarry blast"}[row.type]


def test_comcat_station_count_matches_files(tiny, tiny_plan):
    with open(tiny / "catalog" / "comcat.csv", newline="") as handle:
        comcat = {row["id"]: row for row in csv.DictReader(handle)}
    quakes = tiny_plan.earthquakes
    for q in range(len(quakes)):
        origin = utc_ms(quakes["time_ms"].iat[q])
        folder = tiny / "continuous_waveforms" / f"{origin.year}" / f"{origin.year}_{origin.julday:03d}"
        with_data = [
            code for code in CODES
            if (folder / ridgecrest.day_file_name(code, "HHZ", origin)).exists()
            and any(t.stats.starttime <= origin <= t.stats.endtime for t in obspy.read(str(folder / ridgecrest.day_file_name(code, "HHZ", origin))))
        ]
        assert int(comcat[f"ci{quakes['evid'].iat[q]}"]["nst"]) == len(with_data)


# --- physics ----------------------------------------------------------------------------------


def test_travel_time_of_vertical_ray():
    # 5.5 km at 5.5 km/s plus 4.5 km at 6.3 km/s
    p_s, s_s = ridgecrest.travel_times(10.0, 0.0, 10.0)
    assert p_s == pytest.approx(1.0 + 4.5 / 6.3)
    assert s_s == pytest.approx(1.73 * (1.0 + 4.5 / 6.3))


def test_travel_time_of_horizontal_ray():
    p_s, _ = ridgecrest.travel_times(8.0, 8.0, 12.6)
    assert p_s == pytest.approx(2.0)  # 12.6 km at 6.3 km/s


def test_corner_frequency_scales_with_moment():
    assert ridgecrest.seismic_moment(4.0) == pytest.approx(10**15.1)
    # one magnitude unit multiplies the moment by 10 ** 1.5, so the corner drops by 10 ** 0.5
    ratio = ridgecrest.corner_frequency(ridgecrest.seismic_moment(2.0), 3.5) / ridgecrest.corner_frequency(ridgecrest.seismic_moment(3.0), 3.5)
    assert ratio == pytest.approx(10**0.5)


def test_picks_p_before_s_and_sp_grows(medium_plan):
    p_s = medium_plan.p_travel_s[medium_plan.recorded]
    s_s = medium_plan.s_travel_s[medium_plan.recorded]
    distance = medium_plan.distance_km[medium_plan.recorded]
    assert np.all(p_s > 0.0)
    assert np.all(s_s > p_s)
    # Rays stay in the crust (Vp 5.5-6.7 km/s), so S-P per km lies between 0.73 / 6.7 and 0.73 / 5.5 s.
    sp_per_km = (s_s - p_s) / distance
    assert sp_per_km.min() >= 0.73 / 6.7 - 1e-9
    assert sp_per_km.max() <= 0.73 / 5.5 + 1e-9
    assert np.corrcoef(distance, s_s - p_s)[0, 1] > 0.95


def test_waveform_onsets_match_picks(tiny, tiny_plan):
    quakes = tiny_plan.earthquakes
    pairs = list(zip(*np.nonzero(tiny_plan.recorded & (tiny_plan.snr > 200.0))))
    assert len(pairs) >= 10
    p_offsets, s_minus_p = [], []
    for q, s in pairs:
        origin = utc_ms(quakes["time_ms"].iat[q])
        p_s = tiny_plan.p_travel_s[q, s]
        s_s = tiny_plan.s_travel_s[q, s]
        vertical = filtered(read_segment(tiny, CODES[s], "HHZ", origin - 10.0, origin + 39.99))
        t = (vertical.stats.starttime - origin) + vertical.times()  # seconds after the origin
        noise = vertical.data[(t > -9.0) & (t < p_s - 1.5)].std()
        onset = t[np.flatnonzero(np.abs(vertical.data) > 8.0 * noise)[0]]
        p_offsets.append(onset - p_s)

        horizontal_codes = ("HH1", "HH2") if CODES[s] == "WRC2" else ("HHN", "HHE")
        energy = sum(filtered(read_segment(tiny, CODES[s], code, origin - 10.0, origin + 39.99)).data ** 2 for code in horizontal_codes)
        peak = t[np.argmax(energy)]
        s_minus_p.append(peak - onset)
        assert peak > s_s - 0.3, f"event {q} at {CODES[s]}: horizontal peak {peak:.2f} s before S at {s_s:.2f} s"

    # The first sample above noise is at the P pick, within filter spread and envelope rise.
    assert min(p_offsets) > -0.1
    assert max(p_offsets) < 0.5
    distances = [tiny_plan.distance_km[q, s] for q, s in pairs]
    assert np.corrcoef(distances, s_minus_p)[0, 1] > 0.8


def test_small_events_barely_show_on_hn(tiny, tiny_plan):
    quakes = tiny_plan.earthquakes
    small = (quakes["magnitude"].to_numpy() < 1.2)[:, None] & tiny_plan.recorded & (tiny_plan.snr > 20.0)
    pairs = list(zip(*np.nonzero(small)))
    assert len(pairs) >= 5
    ratios = []
    for q, s in pairs:
        origin = utc_ms(quakes["time_ms"].iat[q])
        snr = {}
        for channel in ("HHZ", "HNZ"):
            trace = filtered(read_segment(tiny, CODES[s], channel, origin - 10.0, origin + 39.99))
            t = (trace.stats.starttime - origin) + trace.times()
            noise = trace.data[(t > -9.0) & (t < -1.0)].std()
            snr[channel] = np.abs(trace.data[t > 0.0]).max() / noise
        ratios.append(snr["HNZ"] / snr["HHZ"])
    assert np.median(ratios) < 0.3


def test_missing_fraction_near_target(medium_plan):
    missing = 1.0 - medium_plan.recorded.mean()
    assert abs(missing - 0.2) < 0.05

    magnitude = medium_plan.earthquakes["magnitude"].to_numpy()[:, None] * np.ones((1, 16))
    distance = medium_plan.distance_km
    weak_far = (magnitude < 0.5) & (distance > 50.0)
    strong_near = (magnitude >= 1.5) | (distance < 15.0)
    assert weak_far.sum() > 100
    assert 1.0 - medium_plan.recorded[weak_far].mean() > 0.4
    assert 1.0 - medium_plan.recorded[strong_near].mean() < 0.02


def test_missing_fraction_follows_setting():
    plan = plan_events({**MEDIUM, "missing_target_fraction": 0.4})
    assert abs((1.0 - plan.recorded.mean()) - 0.4) < 0.06
    everything = plan_events({**MEDIUM, "missing_target_fraction": 0.0})
    assert everything.recorded.all()


def test_magnitudes_follow_gutenberg_richter(medium_plan):
    magnitude = medium_plan.earthquakes["magnitude"].to_numpy()
    assert magnitude.min() >= 0.0
    assert magnitude.max() <= 5.0
    counts = [int(((magnitude >= lo) & (magnitude < lo + 1)).sum()) for lo in range(3)]
    assert counts[0] > counts[1] > counts[2]
    # b = 1: each magnitude unit has about a tenth of the events of the one below
    assert 0.06 < (magnitude >= 1.0).mean() < 0.15


def test_events_poisson_within_radius_along_fault(medium_plan):
    quakes = medium_plan.earthquakes
    assert abs(len(quakes) - 600) < 4 * np.sqrt(600)
    times = quakes["time_ms"].to_numpy()
    assert times.min() >= obspy.UTCDateTime(2021, 1, 1).ns // 1_000_000
    assert times.max() < obspy.UTCDateTime(2023, 1, 1).ns // 1_000_000
    assert quakes["depth_km"].between(0.0, 20.0).all()

    _, _, distance_m = Geod(ellps="WGS84").inv(np.full(len(quakes), -117.6), np.full(len(quakes), 35.9), quakes["longitude"], quakes["latitude"])
    assert np.max(distance_m) <= 80_050.0  # 80 km plus the rounding of coordinates to 4 decimals

    # Distance from the fault line through the center striking N40W (azimuth 320 degrees).
    enu = EnuFrame(35.9, -117.6).to_enu(quakes["latitude"], quakes["longitude"]) / 1000.0
    across = enu[:, 0] * np.cos(np.deg2rad(320.0)) - enu[:, 1] * np.sin(np.deg2rad(320.0))
    assert (np.abs(across) < 6.0).mean() > 0.7


def test_blasts_are_in_catalog_only(tiny_plan):
    catalog = tiny_plan.catalog
    assert (catalog["event_type"] == "qb").sum() == 3
    assert len(tiny_plan.quakes) == (catalog["event_type"] == "eq").sum()
    assert tiny_plan.recorded.shape == (len(tiny_plan.quakes), 16)


def test_synthesize_is_deterministic(tiny, tmp_path):
    synthesize(tmp_path, dict(TINY))
    first = {p.relative_to(tiny): p.read_bytes() for p in sorted(tiny.rglob("*")) if p.is_file()}
    second = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name] == second[name], name


def test_other_seed_gives_other_catalog(tiny_plan):
    other = plan_events({**TINY, "seed": 17})
    assert not tiny_plan.catalog["time_ms"].equals(other.catalog["time_ms"])


# --- helpers ----------------------------------------------------------------------------------


def test_split_at_midnight():
    start = obspy.UTCDateTime(2021, 3, 4, 23, 59, 55).ns
    pieces = ridgecrest.split_at_midnight(start, np.arange(1000, dtype=np.int32), 100.0)
    assert len(pieces) == 2
    assert [len(piece) for _, _, piece in pieces] == [500, 500]
    assert obspy.UTCDateTime(ns=pieces[1][1]) == obspy.UTCDateTime(2021, 3, 5)
    assert pieces[1][2][0] == 500
    assert pieces[1][0] - pieces[0][0] == 1


def test_plan_records_merges_overlapping_segments():
    # Station 0 records events at 0 s, 30 s and 200 s, and station 1 only the one at 30 s.
    plan = SimpleNamespace(
        earthquakes=pd.DataFrame({"time_ms": [1_000_000, 1_030_000, 1_200_000]}),
        recorded=np.array([[True, False], [True, True], [True, False]]),
        stations=pd.DataFrame({"station": ["A", "B"]}),
    )
    settings = ridgecrest.parse_settings({})
    records = ridgecrest.plan_records(plan, settings)
    assert [(r.station, r.start_ms, r.n_samples, r.quakes) for r in records] == [
        (0, 990_000, 8000, (0, 1)),  # 10 s before the first to 40 s after the second: 80 s
        (1, 1_020_000, 5000, (1,)),
        (0, 1_190_000, 5000, (2,)),
    ]


def test_overlapping_record_across_midnight(tiny_plan, tmp_path):
    # Move the first two earthquakes to 23:59:30 and 23:59:50 of the day before the
    # first one: their segments overlap and the merged record crosses midnight.
    midnight = obspy.UTCDateTime(utc_ms(tiny_plan.earthquakes["time_ms"].iat[0]).date)
    catalog = tiny_plan.catalog.copy()
    first, second = tiny_plan.quakes[:2]
    catalog.loc[first, "time_ms"] = (midnight - 30.0).ns // 1_000_000
    catalog.loc[second, "time_ms"] = (midnight - 10.0).ns // 1_000_000
    plan = dataclasses.replace(tiny_plan, catalog=catalog)
    station = int(np.flatnonzero(plan.recorded[0] & plan.recorded[1])[0])

    ridgecrest.write_waveforms(tmp_path, plan, ridgecrest.parse_settings(dict(TINY)))

    code = CODES[station]
    before = obspy.read(str(tmp_path / ridgecrest.day_folder(midnight - 1.0) / ridgecrest.day_file_name(code, "HNZ", midnight - 1.0)))
    after = obspy.read(str(tmp_path / ridgecrest.day_folder(midnight) / ridgecrest.day_file_name(code, "HNZ", midnight)))
    rate = 200.0 if code == "CLC" else 100.0
    assert len(before) == 1
    assert before[0].stats.starttime == midnight - 40.0  # 10 s before the first origin
    assert before[0].stats.npts == 40 * rate
    assert after[0].stats.starttime == midnight
    assert after[0].stats.npts == 30 * rate  # up to 40 s after the second origin


def test_invalid_settings_name_the_key():
    with pytest.raises(ValueError, match="unknown keys.*magnitude_mni"):
        ridgecrest.parse_settings({"magnitude_mni": 1.0})
    with pytest.raises(ValueError, match="magnitude_min"):
        ridgecrest.parse_settings({"magnitude_min": 5.0, "magnitude_max": 4.0})
    with pytest.raises(ValueError, match="years"):
        ridgecrest.parse_settings({"years": []})
    with pytest.raises(ValueError, match="rate_hz"):
        ridgecrest.parse_settings({"rate_hz": 0})
    with pytest.raises(ValueError, match="missing_target_fraction"):
        ridgecrest.parse_settings({"missing_target_fraction": 1.5})
