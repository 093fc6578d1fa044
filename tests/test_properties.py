"""Property tests: whatever bytes or values reach a reader or the window cutter, the result is
either a valid output or a ValueError (the spar LayoutErrors subclass it), never another exception.
"""

from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import obspy
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spar.features.resample import common_windows, resample_to_grid
from spar.ingest.m3nvc import _windows_of_modality
from spar.io import m3nvc, realworld, seismic

FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

T0_MS = 1_435_000_000_000
FIELD_VALUES = ["", "1", "-2.5", "1435000000000", "1435000000020", "nan", "inf", "-inf", "1e400", "x", "true", '"', " 3 "]
HEADERS = ["id,attr_time,attr_x,attr_y,attr_z", "attr_time,attr_x,attr_y,attr_z", "ID, Attr_Time ,attr_x,attr_y,attr_z",
           "id,attr_time,attr_x", "attr_time,attr_time,attr_x,attr_y,attr_z", ""]


@st.composite
def csv_bytes(draw):
    """CSV text of the release with a random header variant and rows of random fields, or raw bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    lines = [draw(st.sampled_from(HEADERS))]
    for _ in range(draw(st.integers(0, 8))):
        lines.append(",".join(draw(st.lists(st.sampled_from(FIELD_VALUES), min_size=1, max_size=7))))
    return "\n".join(lines).encode()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def check_recordings(recordings) -> None:
    for rec in recordings:
        assert rec.time_s.ndim == 1
        assert rec.values.shape == (rec.time_s.size, 3)
        assert rec.values.dtype == np.float32
        assert np.isfinite(rec.time_s).all()
        assert (np.diff(rec.time_s) > 0).all()
        assert np.isfinite(rec.values).all()


@FAST
@given(member=csv_bytes())
def test_realworld_csv_member_valid_or_layout_error(member):
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "proband1" / "data"
        data.mkdir(parents=True)
        (data / "acc_walking_csv.zip").write_bytes(zip_of({"acc_walking_chest.csv": member}))
        try:
            recordings = realworld.read_subject(data.parent)
        except realworld.LayoutError:
            return
        check_recordings(recordings)


@FAST
@given(data=st.data())
def test_realworld_damaged_zip_valid_or_layout_error(data):
    good = zip_of({"acc_walking_chest.csv": ("id,attr_time,attr_x,attr_y,attr_z\n" + "".join(
        f"{i},{T0_MS + 20 * i},{i},2,3\n" for i in range(50))).encode(),
        "acc_walking_2_csv.zip": zip_of({"acc_walking_head.csv": b"id,attr_time,attr_x,attr_y,attr_z\n1,1435000000000,1,2,3\n"})})
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    with tempfile.TemporaryDirectory() as folder:
        subject = Path(folder) / "proband1"
        (subject / "data").mkdir(parents=True)
        (subject / "data" / "acc_walking_csv.zip").write_bytes(bytes(damaged[:cut]))
        try:
            recordings = realworld.read_subject(subject)
        except realworld.LayoutError:
            return
        check_recordings(recordings)


def miniseed_bytes() -> bytes:
    trace = obspy.Trace(np.arange(1500, dtype=np.int32) % 97, header={"network": "CI", "station": "CLC", "channel": "HHZ",
                                                                       "sampling_rate": 100.0, "starttime": obspy.UTCDateTime(2021, 3, 4)})
    buffer = io.BytesIO()
    obspy.Stream([trace]).write(buffer, format="MSEED", reclen=512)
    return buffer.getvalue()


GOOD_MSEED = miniseed_bytes()


@FAST
@given(data=st.data())
def test_miniseed_damaged_stream_or_value_error(data):
    damaged = bytearray(GOOD_MSEED)
    for _ in range(data.draw(st.integers(0, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.mseed"
        path.write_bytes(bytes(damaged[:cut]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # obspy warns about the damage it can decode around
                stream = seismic.read_waveforms(path)
        except ValueError:
            return
        start = obspy.UTCDateTime(2021, 3, 4)
        for trace in stream:
            try:
                window = seismic.window_samples([trace], start, 100, 100.0)
            except ValueError:  # a damaged header can change the sample rate
                continue
            assert window.shape == (100,)
            assert not np.isinf(window).any()


@FAST
@given(lines=st.lists(st.lists(st.sampled_from(["CI", "CLC", "", "35.8", "-117.5", "95", "nan", "x", "775",
                                                "2000-01-01", "2599-12-31T23:59:59", "not a time"]),
                               min_size=1, max_size=9), max_size=5),
       header=st.sampled_from(["#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime",
                               "#Network|Station|Latitude|Longitude|Elevation", "#Network|Station", "Network|Station", ""]))
def test_station_text_table_or_value_error(lines, header):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stations.txt"
        path.write_text("\n".join([header] + ["|".join(fields) for fields in lines]) + "\n")
        try:
            stations = seismic.read_stations(path)
        except ValueError:
            return
        assert list(stations.columns) == seismic.STATION_COLUMNS
        assert (stations["latitude"].abs() <= 90).all()
        assert (stations["longitude"].abs() <= 180).all()


@FAST
@given(text=st.text(alphabet=st.sampled_from(list("0123456789 ,./:-eqlTZnaxtime\n")), max_size=200),
       fmt=st.sampled_from([None, "scedc_stp", "scedc_search", "comcat_csv", "quakeml"]),
       suffix=st.sampled_from([".stp", ".txt", ".csv", ".xml", ".dat"]))
def test_catalog_table_or_value_error(text, fmt, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"events{suffix}"
        path.write_text(text)
        try:
            catalog = seismic.read_catalog(path, fmt=fmt)
        except ValueError:
            return
        assert list(catalog.columns) == seismic.CATALOG_COLUMNS
        assert (catalog["latitude"].abs() <= 90).all()
        assert (catalog["longitude"].abs() <= 180).all()


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@FAST
@given(offsets=st.lists(st.one_of(st.integers(-5, 30).map(lambda i: i / 200.0), finite_or_not), min_size=0, max_size=30),
       data=st.data())
def test_m3nvc_signal_grid_or_layout_error(offsets, data):
    values = data.draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=len(offsets), max_size=len(offsets)))
    start_s = 1_686_582_000.0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run1_rs1_geo.parquet"
        pq.write_table(pa.table({"timestamp": pa.array([start_s + o for o in offsets], pa.float64()),
                                 "channel": ["SH3"] * len(offsets), "samples": pa.array(values, pa.int64())}), path)
        try:
            grid = m3nvc.read_signal_on_grid(path, "geophone", start_s, 20, 200.0, ["SH3"])
        except m3nvc.LayoutError:
            return
    assert grid.shape == (1, 20)
    recorded = set(np.asarray(values, dtype=np.float32).tolist())
    assert all(v in recorded for v in grid[0][np.isfinite(grid[0])].tolist())


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"sensor_id": ["rs1", "rs2"], "latitude": [40.0963, 40.0964], "longitude": [-88.2247, -88.2251]}), buffer)
    return buffer.getvalue()


GOOD_PARQUET = parquet_bytes()


@FAST
@given(data=st.data())
def test_m3nvc_damaged_parquet_or_layout_error(data):
    damaged = bytearray(GOOD_PARQUET)
    for _ in range(data.draw(st.integers(0, 6))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sensor_location.parquet"
        path.write_bytes(bytes(damaged[:cut]))
        try:
            table = m3nvc.read_parquet(path, m3nvc.SENSOR_COLUMNS)
        except m3nvc.LayoutError:
            return
    assert list(table.columns) == list(m3nvc.SENSOR_COLUMNS)


@FAST
@given(intervals=st.lists(st.tuples(finite_or_not, finite_or_not), max_size=5),
       window_s=st.one_of(st.floats(0.01, 100.0), finite_or_not))
def test_common_windows_inside_every_interval_or_value_error(intervals, window_s):
    try:
        starts = common_windows(intervals, window_s)
    except ValueError:
        return
    for start, end in intervals:
        assert (starts >= start).all()
        assert (starts + window_s <= end + 1e-6 * max(1.0, abs(end))).all()


@FAST
@given(times=st.lists(finite_or_not, max_size=20), grid=st.lists(st.floats(-1e6, 1e6), max_size=20),
       max_gap_s=finite_or_not)
def test_resample_to_grid_shape_or_value_error(times, grid, max_gap_s):
    values = np.arange(len(times), dtype=float)
    try:
        out = resample_to_grid(np.asarray(times), values, np.asarray(grid), max_gap_s)
    except ValueError:
        return
    assert out.shape == (len(grid),)
    finite = out[np.isfinite(out)]
    assert ((finite >= 0) & (finite <= max(len(times) - 1, 0))).all()


@FAST
@given(samples=st.lists(st.one_of(st.floats(-1e6, 1e6, width=32), st.just(float("nan")), st.just(float("inf"))),
                        min_size=40, max_size=40),
       min_coverage=st.floats(0.0, 1.0))
def test_m3nvc_window_cutter_finite(samples, min_coverage):
    """Sample values up to 1e6 (int32 geophone counts reach about 2e9, but spectra of 1e6 already cover the release)."""
    grid = np.asarray(samples, dtype=np.float32).reshape(1, 40)
    spec = {"rate_hz": 200, "n_fft": 8, "hop": 4, "n_mels": 2, "fmin_hz": 2.0, "fmax_hz": 100.0}
    spectrogram, present = _windows_of_modality(grid, 2, 20, min_coverage, spec)
    assert present.shape == (2,)
    assert np.isfinite(spectrogram).all()
    assert (spectrogram[~present] == 0).all()
    coverage = np.isfinite(grid.reshape(2, 20)).mean(axis=1)
    assert present.tolist() == (coverage >= min_coverage).tolist()
