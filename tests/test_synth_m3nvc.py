"""Tests of the M3N-VC simulator: release layout, timing, defects and physics.

Every test reads the parquet files that ``synthesize`` writes, the way the importer
will, from small configurations in temporary folders.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spar.io.geodesy import EnuFrame
from spar.synth.m3nvc import synthesize

MIC_RATE = 1600
GEO_RATE = 200
START = "2023-06-12T15:00:00Z"
START_EPOCH_S = 1686582000.0  # 2023-06-12T15:00:00Z
SOUND_SPEED = 343.0

# A single-vehicle scene, the scene with the real s31 coordinates and the two-vehicle
# scene, with short runs so the whole file runs in seconds.
SMALL = {
    "seed": 7,
    "scenes": ["h08", "s31", "i22"],
    "train_run_s": 4,
    "test_run_s": 3,
    "mic_rate_hz": MIC_RATE,
    "geo_rate_hz": GEO_RATE,
    "start": START,
}

GEO_SCHEMA = pa.schema([("timestamp", pa.float64()), ("channel", pa.string()), ("samples", pa.int64())])
MIC_SCHEMA = pa.schema([("timestamp", pa.float64()), ("samples", pa.int64())])
GPS_SCHEMA = pa.schema(
    [("time", pa.timestamp("us")), ("latitude", pa.float64()), ("longitude", pa.float64()), ("elevation", pa.float64())]
)
DIS_SCHEMA = pa.schema([("time", pa.timestamp("us")), ("distance", pa.float64())])


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m3nvc")
    synthesize(out, dict(SMALL))
    return out


def read(path: Path) -> pa.Table:
    return pq.read_table(path)


def runs_of(scene_dir: Path):
    return read(scene_dir / "run_ids.parquet").to_pylist()


def sensors_of(scene_dir: Path) -> list[str]:
    return read(scene_dir / "sensor_location.parquet").column("sensor_id").to_pylist()


def run_bounds_s(run: dict) -> tuple[float, float]:
    return run["start_time"].timestamp(), run["end_time"].timestamp()


def samples(path: Path) -> np.ndarray:
    return read(path).column("samples").to_numpy()


def scene_nodes(scene_dir: Path) -> tuple[EnuFrame, dict[str, np.ndarray]]:
    """Return an ENU frame centred on the scene's nodes and each node's (east, north) in meters."""
    table = read(scene_dir / "sensor_location.parquet").to_pydict()
    lat, lon = np.array(table["latitude"]), np.array(table["longitude"])
    frame = EnuFrame.centered_on(lat, lon)
    return frame, dict(zip(table["sensor_id"], frame.to_enu(lat, lon)[:, :2]))


# --- layout ----------------------------------------------------------------------------------


def test_scene_folders_and_file_names(small):
    assert sorted(p.name for p in small.iterdir()) == ["h08", "i22", "s31"]
    for scene in SMALL["scenes"]:
        scene_dir = small / scene
        expected = {"run_ids.parquet", "sensor_location.parquet"}
        for run in runs_of(scene_dir):
            n = run["run_id"]
            for sensor in sensors_of(scene_dir):
                m = sensor.removeprefix("rs")
                expected |= {f"run{n}_rs{m}_geo.parquet", f"run{n}_rs{m}_mic.parquet"}
                if run["label"] != "background":
                    expected.add(f"run{n}_rs{m}_dis.parquet")
            if run["label"] != "background":
                expected.add(f"run{n}_gps.parquet")
        assert {p.name for p in scene_dir.iterdir()} == expected, scene


def test_run_table_schema_and_labels(small):
    expected_schema = pa.schema(
        [
            ("run_id", pa.int64()),
            ("label", pa.string()),
            ("set", pa.string()),
            ("start_time", pa.timestamp("us", tz="UTC")),
            ("end_time", pa.timestamp("us", tz="UTC")),
            ("length", pa.duration("us")),
        ]
    )
    expected_labels = {
        "h08": {"cx30", "gle350", "mustang", "miata", "background"},
        "s31": {"cx30", "gle350", "mustang", "miata", "background"},
        "i22": {"cx30+mustang", "cx30+miata", "mustang+miata", "background"},
    }
    for scene, labels in expected_labels.items():
        table = read(small / scene / "run_ids.parquet")
        assert table.schema.remove_metadata() == expected_schema
        runs = table.to_pylist()
        for split, length_s in (("train", SMALL["train_run_s"]), ("test", SMALL["test_run_s"])):
            split_runs = [r for r in runs if r["set"] == split]
            assert sorted(r["label"] for r in split_runs) == sorted(labels), (scene, split)
            for run in split_runs:
                assert run["length"].total_seconds() == length_s
                assert run["end_time"] - run["start_time"] == run["length"]


def test_runs_follow_each_other_in_time(small):
    first_starts = []
    all_ids = []
    for scene in SMALL["scenes"]:
        runs = sorted(runs_of(small / scene), key=lambda r: r["start_time"])
        first_starts.append(runs[0]["start_time"])
        all_ids += [r["run_id"] for r in runs]
        for before, after in itertools.pairwise(runs):
            gap_s = (after["start_time"] - before["end_time"]).total_seconds()
            assert 2.0 <= gap_s <= 10.0, (scene, before["run_id"], gap_s)
    assert first_starts[0].timestamp() == START_EPOCH_S
    days = [(s - first_starts[0]).days for s in first_starts]
    assert days == [0, 1, 2]
    assert len(set(all_ids)) == len(all_ids)


def test_sensor_locations(small):
    expected_schema = pa.schema(
        [("sensor_id", pa.string()), ("latitude", pa.float64()), ("longitude", pa.float64()), ("terrain", pa.string())]
    )
    centres = {}
    for scene, n_nodes in (("h08", 6), ("s31", 6), ("i22", 8)):
        table = read(small / scene / "sensor_location.parquet")
        assert table.schema.remove_metadata() == expected_schema
        rows = table.to_pydict()
        assert len(rows["sensor_id"]) == n_nodes
        assert all(re.fullmatch(r"rs\d+", s) for s in rows["sensor_id"])
        numbers = sorted(int(s[2:]) for s in rows["sensor_id"])
        assert numbers != list(range(numbers[0], numbers[0] + n_nodes)), "ids are expected to skip numbers"
        lat, lon = np.array(rows["latitude"]), np.array(rows["longitude"])
        assert np.all(np.abs(lat - 40.09) < 0.02), lat
        assert np.all(np.abs(lon + 88.22) < 0.03), lon

        frame = EnuFrame.centered_on(lat, lon)
        enu = frame.to_enu(lat, lon)[:, :2]
        span = np.max(np.linalg.norm(enu[:, None] - enu[None], axis=-1))
        assert 40.0 <= span <= 90.0, (scene, span)
        centres[scene] = (lat.mean(), lon.mean())

    frame = EnuFrame(40.09, -88.22)
    points = [frame.to_enu(*c)[:2] for c in centres.values()]
    for a, b in itertools.combinations(points, 2):
        assert np.linalg.norm(a - b) > 200.0


def test_s31_uses_release_coordinates(small):
    rows = read(small / "s31" / "sensor_location.parquet").to_pydict()
    got = {s: (la, lo) for s, la, lo in zip(rows["sensor_id"], rows["latitude"], rows["longitude"])}
    assert got == {
        "rs1": (40.096379, -88.224714),
        "rs2": (40.096373, -88.225168),
        "rs5": (40.096089, -88.224689),
        "rs6": (40.096109, -88.225360),
        "rs7": (40.096668, -88.224669),
        "rs8": (40.096638, -88.225354),
    }


# --- recordings ------------------------------------------------------------------------------


def recording_files(small):
    """Yield (scene, run, sensor, modality, path, rate) for every geophone and microphone file."""
    for scene in SMALL["scenes"]:
        for run in runs_of(small / scene):
            for sensor in sensors_of(small / scene):
                for modality, rate in (("geo", GEO_RATE), ("mic", MIC_RATE)):
                    path = small / scene / f"run{run['run_id']}_{sensor}_{modality}.parquet"
                    yield scene, run, sensor, modality, path, rate


def test_recording_schemas(small):
    for _, _, _, modality, path, _ in recording_files(small):
        schema = read(path).schema.remove_metadata()
        assert schema == (GEO_SCHEMA if modality == "geo" else MIC_SCHEMA), path.name
    geo = read(next(small.glob("h08/run1_rs1_geo.parquet")))
    assert set(geo.column("channel").to_pylist()) == {"SH3"}


def test_sample_counts_and_timestamps(small):
    short = []
    for scene, run, sensor, modality, path, rate in recording_files(small):
        start_s, end_s = run_bounds_s(run)
        times = read(path).column("timestamp").to_numpy()
        length_s = run["length"].total_seconds()
        assert times[0] == pytest.approx(start_s, abs=1e-6)
        assert np.all(times >= start_s), path.name
        assert np.all(times < end_s), path.name
        assert np.all(np.diff(times) > 0)
        if len(times) == round(length_s * rate):
            assert np.allclose(np.diff(times), 1.0 / rate, atol=1e-6), path.name
        else:
            short.append((scene, run["run_id"], sensor, modality))
    # Only the two deliberate defects shorten a file: one node ends early (both
    # modalities) and one node misses a stretch of geophone samples.
    assert len(short) == 3, short
    assert sum(m == "mic" for *_, m in short) == 1


def test_early_ending_node(small):
    early = []
    for scene, run, sensor, modality, path, rate in recording_files(small):
        _, end_s = run_bounds_s(run)
        times = read(path).column("timestamp").to_numpy()
        if times[-1] < end_s - 0.5:
            early.append((scene, run["run_id"], run["set"], sensor, modality, end_s - times[-1]))
    assert len(early) == 2, early
    (scene_a, run_a, set_a, sensor_a, _, cut_a), (scene_b, run_b, _, sensor_b, _, cut_b) = early
    assert (scene_a, run_a, sensor_a) == (scene_b, run_b, sensor_b)
    assert set_a == "test"
    assert {m for *_, m, _ in early} == {"geo", "mic"}
    assert cut_a == pytest.approx(cut_b, abs=0.01)
    # The samples that remain are contiguous.
    path = small / scene_a / f"run{run_a}_{sensor_a}_mic.parquet"
    assert np.allclose(np.diff(read(path).column("timestamp").to_numpy()), 1.0 / MIC_RATE, atol=1e-6)


def test_geophone_gap(small):
    gaps = []
    for scene, run, sensor, modality, path, rate in recording_files(small):
        steps = np.diff(read(path).column("timestamp").to_numpy())
        if steps.max() > 1.5 / rate:
            gaps.append((scene, run["run_id"], sensor, modality, steps.max()))
    assert len(gaps) == 1, gaps
    _, _, _, modality, gap_s = gaps[0]
    assert modality == "geo"
    assert 0.5 <= gap_s <= 5.0


def test_microphone_counts_fit_int16(small):
    for _, run, _, modality, path, _ in recording_files(small):
        if modality == "mic":
            values = samples(path)
            assert values.min() >= -32768, path.name
            assert values.max() <= 32767, path.name
            assert values.std() > 10, "microphone is silent"


def test_same_seed_gives_identical_files(small, tmp_path):
    synthesize(tmp_path, dict(SMALL))
    first = sorted(p.relative_to(small) for p in small.rglob("*.parquet"))
    second = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    assert first == second
    for rel in first:
        assert read(small / rel).equals(read(tmp_path / rel)), rel
        assert (small / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_other_seed_changes_samples(small, tmp_path):
    synthesize(tmp_path, {**SMALL, "seed": SMALL["seed"] + 1, "scenes": ["h08"]})
    a = samples(small / "h08" / "run1_rs1_mic.parquet")
    b = samples(tmp_path / "h08" / "run1_rs1_mic.parquet")
    assert a.shape == b.shape
    assert not np.array_equal(a, b)


# --- GPS and distances -----------------------------------------------------------------------


def test_gps_and_distance_files(small):
    for scene in SMALL["scenes"]:
        scene_dir = small / scene
        frame, nodes = scene_nodes(scene_dir)
        for run in runs_of(scene_dir):
            if run["label"] == "background":
                continue
            vehicles = run["label"].split("+")
            gps = read(scene_dir / f"run{run['run_id']}_gps.parquet")
            if len(vehicles) == 1:
                assert gps.schema.remove_metadata() == GPS_SCHEMA
            else:
                assert gps.schema.remove_metadata() == GPS_SCHEMA.append(pa.field("label", pa.string()))
                assert sorted(set(gps.column("label").to_pylist())) == sorted(vehicles)

            # 1 Hz fixes on whole seconds from the run start, for every vehicle.
            start_s, end_s = run_bounds_s(run)
            times_s = gps.column("time").cast(pa.int64()).to_numpy() / 1e6
            expected = start_s + np.arange(int(run["length"].total_seconds()))
            assert np.array_equal(np.unique(times_s), expected)
            assert len(times_s) == len(expected) * len(vehicles)

            # Distances are the horizontal distance from the (nearest) GPS fix to each node.
            rows = gps.to_pydict()
            fixes = frame.to_enu(np.array(rows["latitude"]), np.array(rows["longitude"]))[:, :2]
            owner = rows.get("label", vehicles * len(expected))
            for sensor, position in nodes.items():
                dis = read(scene_dir / f"run{run['run_id']}_{sensor}_dis.parquet")
                assert dis.schema.remove_metadata() == DIS_SCHEMA
                assert np.array_equal(dis.column("time").cast(pa.int64()).to_numpy() / 1e6, expected)
                per_vehicle = [np.linalg.norm(fixes[np.array(owner) == v] - position, axis=1) for v in vehicles]
                assert np.allclose(dis.column("distance").to_numpy(), np.min(per_vehicle, axis=0), atol=0.05)


def test_gps_speed_is_plausible(small):
    frame = EnuFrame(40.09, -88.22)
    for run in runs_of(small / "h08"):
        if run["label"] == "background":
            continue
        rows = read(small / "h08" / f"run{run['run_id']}_gps.parquet").to_pydict()
        enu = frame.to_enu(np.array(rows["latitude"]), np.array(rows["longitude"]))[:, :2]
        steps = np.linalg.norm(np.diff(enu, axis=0), axis=1)
        assert steps.max() < 12.0 + 4 * 2.0, steps  # top speed plus a generous GPS error


# --- physics ---------------------------------------------------------------------------------


def rms_per_second(values: np.ndarray, rate: int, n_seconds: int) -> np.ndarray:
    frames = values[: n_seconds * rate].astype(float).reshape(n_seconds, rate)
    return np.sqrt((frames**2).mean(axis=1))


def test_geophone_louder_at_nearest_node(small):
    wins = 0
    windows = 0
    for scene in ("h08", "s31"):
        scene_dir = small / scene
        sensors = sensors_of(scene_dir)
        for run in runs_of(scene_dir):
            if run["label"] == "background":
                continue
            n = run["run_id"]
            distance = np.array([read(scene_dir / f"run{n}_{s}_dis.parquet").column("distance").to_numpy() for s in sensors])
            n_seconds = min(len(samples(scene_dir / f"run{n}_{s}_geo.parquet")) for s in sensors) // GEO_RATE
            rms = np.array([rms_per_second(samples(scene_dir / f"run{n}_{s}_geo.parquet"), GEO_RATE, n_seconds) for s in sensors])
            for k in range(n_seconds):
                near, far = np.argmin(distance[:, k]), np.argmax(distance[:, k])
                if distance[far, k] - distance[near, k] > 20.0:
                    windows += 1
                    wins += rms[near, k] > rms[far, k]
    assert windows >= 20
    assert wins / windows >= 0.8, (wins, windows)


def test_background_runs_are_quiet(small):
    for scene in ("h08", "s31"):
        scene_dir = small / scene
        runs = runs_of(scene_dir)
        background = next(r for r in runs if r["label"] == "background" and r["set"] == "train")
        vehicle = next(r for r in runs if r["label"] == "mustang" and r["set"] == "train")
        for sensor in sensors_of(scene_dir):
            for modality in ("geo", "mic"):
                quiet = samples(scene_dir / f"run{background['run_id']}_{sensor}_{modality}.parquet").std()
                loud = samples(scene_dir / f"run{vehicle['run_id']}_{sensor}_{modality}.parquet").std()
                assert loud > 2 * quiet, (scene, sensor, modality, quiet, loud)


def phat_lag(near: np.ndarray, far: np.ndarray, centre: int, half: int, max_lag: int) -> int:
    """Return the lag in samples (0..max_lag) by which ``far`` follows ``near`` around ``centre``.

    Generalised cross-correlation with phase transform, restricted to 150-720 Hz, of a
    Hann-windowed near segment against a far segment that extends max_lag samples later.
    """
    a = near[centre - half : centre + half].astype(float) * np.hanning(2 * half)
    b = far[centre - half : centre + half + max_lag].astype(float)
    n_fft = 4096
    cross = np.fft.rfft(b, n_fft) * np.conj(np.fft.rfft(a, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / MIC_RATE)
    cross = cross / (np.abs(cross) + 1e-9) * ((freqs > 150) & (freqs < 720))
    return int(np.argmax(np.fft.irfft(cross, n_fft)[: max_lag + 1]))


def test_sound_delay_matches_distance(tmp_path):
    synthesize(tmp_path, {**SMALL, "scenes": ["h08"], "train_run_s": 8, "test_run_s": 5})
    scene_dir = tmp_path / "h08"
    sensors = sensors_of(scene_dir)
    errors = []
    predictions = []
    for run in runs_of(scene_dir):
        if run["label"] == "background":
            continue
        n = run["run_id"]
        mic = {s: samples(scene_dir / f"run{n}_{s}_mic.parquet") for s in sensors}
        dis = {s: read(scene_dir / f"run{n}_{s}_dis.parquet").column("distance").to_numpy() for s in sensors}
        for k in range(1, len(dis[sensors[0]]) - 1):
            # Compare the nearest node with a node at least 25 m farther whose range rate is
            # similar, so the delay changes little inside the 0.3 s window.
            rate = {s: (dis[s][k + 1] - dis[s][k - 1]) / 2 for s in sensors}
            near = min(sensors, key=lambda s: dis[s][k])
            candidates = [s for s in sensors if dis[s][k] - dis[near][k] > 25 and abs(rate[s] - rate[near]) < 4]
            if not candidates:
                continue
            far = max(candidates, key=lambda s: dis[s][k])
            if min(len(mic[near]), len(mic[far])) < k * MIC_RATE + 1000:
                continue
            predicted = (dis[far][k] - dis[near][k]) / SOUND_SPEED
            measured = phat_lag(mic[near], mic[far], k * MIC_RATE, 240, 400) / MIC_RATE
            predictions.append(predicted)
            errors.append(measured - predicted)
    errors = np.abs(errors)
    assert len(errors) >= 15
    assert min(predictions) > 0.07  # a missing delay would be off by at least 70 ms
    assert np.median(errors) < 0.005, np.round(errors * 1000)
    assert np.mean(errors < 0.010) >= 0.6, np.round(errors * 1000)


def band_power(values: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(values.astype(float))) ** 2
    freqs = np.fft.rfftfreq(len(values), 1.0 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum() / len(values))


def test_weather_noise(tmp_path):
    synthesize(tmp_path, {**SMALL, "scenes": ["h08", "h24", "i29"], "train_run_s": 3, "test_run_s": 2})

    def median_band_power(scene: str, low: float, high: float) -> float:
        run = next(r for r in runs_of(tmp_path / scene) if r["label"] == "background" and r["set"] == "train")
        return float(
            np.median(
                [
                    band_power(samples(tmp_path / scene / f"run{run['run_id']}_{s}_mic.parquet"), MIC_RATE, low, high)
                    for s in sensors_of(tmp_path / scene)
                ]
            )
        )

    # Rain in h24 adds hiss above 400 Hz; wind in i29 adds gusts below 30 Hz.
    assert median_band_power("h24", 400, 800) > 3 * median_band_power("h08", 400, 800)
    assert median_band_power("i29", 5, 30) > 10 * median_band_power("h08", 5, 30)


def test_h24_layout_is_h08_moved_a_few_meters(tmp_path):
    synthesize(tmp_path, {**SMALL, "scenes": ["h08", "h24"], "train_run_s": 2, "test_run_s": 2})
    layouts = {}
    for scene in ("h08", "h24"):
        rows = read(tmp_path / scene / "sensor_location.parquet").to_pydict()
        lat, lon = np.array(rows["latitude"]), np.array(rows["longitude"])
        layouts[scene] = EnuFrame.centered_on(lat, lon).to_enu(lat, lon)[:, :2]
        assert rows["sensor_id"] == ["rs1", "rs2", "rs3", "rs5", "rs6", "rs8"]
    moved = np.linalg.norm(layouts["h24"] - layouts["h08"], axis=1)
    assert np.all(moved > 0.5), moved
    assert np.all(moved < 6.0), moved


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scenes": ["h08", "x99"]}, "x99"),
        ({"train_run_s": 0}, "train_run_s"),
        ({"mic_rate_hz": 1600.5}, "mic_rate_hz"),
        ({"start": "2023-06-12T15:00:00"}, "time zone"),
        ({"start": "yesterday"}, "yesterday"),
    ],
)
def test_invalid_config_is_rejected(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, {**SMALL, **change})
    assert list(tmp_path.iterdir()) == []


def test_missing_key_is_rejected(tmp_path):
    cfg = dict(SMALL)
    del cfg["seed"]
    with pytest.raises(ValueError, match="seed"):
        synthesize(tmp_path, cfg)
