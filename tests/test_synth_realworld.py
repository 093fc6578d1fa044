"""Tests of the RealWorld-HAR simulator: release layout, CSV format, timing, body physics and quirks.

Every test reads the zips that ``synthesize`` writes, the way an importer will,
from small configurations in temporary folders. Subjects 2, 4, 6 and 7 carry every
quirk of the release that the simulator reproduces.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spar.synth.realworld import synthesize

SUBJECTS = [2, 4, 6, 7]
SECONDS = 8
RATE = 50
SMALL = {"seed": 11, "subjects": SUBJECTS, "seconds_per_activity": SECONDS, "rate_hz": RATE, "start": "2016-06-20T09:00:00Z"}
START_MS = 1466413200000  # 2016-06-20T09:00:00Z

ACTIVITIES = ["climbingdown", "climbingup", "jumping", "lying", "running", "sitting", "standing", "walking"]
POSITIONS = ["chest", "forearm", "head", "shin", "thigh", "upperarm", "waist"]
PREFIX = {"acc": "acc", "gyr": "Gyroscope", "mag": "MagneticField"}
COLUMNS = ["id", "attr_time", "attr_x", "attr_y", "attr_z"]
ROW = re.compile(r"^\d+,\d{13},-?\d+\.\d{6},-?\d+\.\d{6},-?\d+\.\d{6}$")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("realworld")
    synthesize(out, dict(SMALL))
    return out


def zip_path(root: Path, subject: int, sensor: str, activity: str) -> Path:
    return root / f"proband{subject}" / "data" / f"{sensor}_{activity}_csv.zip"


def member_name(sensor: str, activity: str, position: str, number: str = "") -> str:
    tag = f"_{number}" if number else ""
    return f"{PREFIX[sensor]}_{activity}{tag}_{position}.csv"


def read_bytes(root: Path, subject: int, sensor: str, activity: str, position: str, number: str = "", nested: bool = False) -> bytes:
    with zipfile.ZipFile(zip_path(root, subject, sensor, activity)) as archive:
        if not nested:
            return archive.read(member_name(sensor, activity, position, number))
        inner = archive.read(f"{sensor}_{activity}_{number}_csv.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        return archive.read(member_name(sensor, activity, position, number))


def read_member(root: Path, subject: int, sensor: str, activity: str, position: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(read_bytes(root, subject, sensor, activity, position, **kwargs)))


def xyz(frame: pd.DataFrame) -> np.ndarray:
    return frame[["attr_x", "attr_y", "attr_z"]].to_numpy()


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(unit(a) @ unit(b), -1.0, 1.0))))


# --- layout ----------------------------------------------------------------------------------


def test_subject_folders_and_zip_names(small):
    assert sorted(p.name for p in small.iterdir()) == ["proband2", "proband4", "proband6", "proband7"]
    for subject in SUBJECTS:
        subject_dir = small / f"proband{subject}"
        assert [p.name for p in subject_dir.iterdir()] == ["data"]
        expected = {f"{sensor}_{activity}_csv.zip" for sensor in PREFIX for activity in ACTIVITIES}
        if subject == 2:  # the first configured subject gets the light-sensor zip
            expected.add("lig_walking_csv.zip")
        assert {p.name for p in (subject_dir / "data").iterdir()} == expected, subject


def test_plain_zips_hold_one_member_per_position(small):
    for sensor, activity in itertools.product(PREFIX, ["jumping", "lying", "running", "standing"]):
        with zipfile.ZipFile(zip_path(small, 7, sensor, activity)) as archive:
            assert sorted(archive.namelist()) == [member_name(sensor, activity, p) for p in POSITIONS]


def test_light_zip_members(small):
    with zipfile.ZipFile(small / "proband2" / "data" / "lig_walking_csv.zip") as archive:
        assert sorted(archive.namelist()) == [f"Light_walking_{p}.csv" for p in POSITIONS]
        text = archive.read("Light_walking_chest.csv").decode()
    assert text.splitlines()[0] == "id,attr_time,attr_light"


# --- CSV format and timing ---------------------------------------------------------------------


def test_csv_columns_and_nominal_rate(small):
    for sensor, position in itertools.product(PREFIX, POSITIONS):
        raw = read_bytes(small, 6, sensor, "standing", position).decode()
        lines = raw.splitlines()
        assert lines[0] == ",".join(COLUMNS)
        assert all(ROW.match(line) for line in lines[1:]), (sensor, position)

        frame = pd.read_csv(io.StringIO(raw))
        assert list(frame.columns) == COLUMNS
        assert frame["attr_time"].dtype == np.int64
        assert len(frame) == SECONDS * RATE
        assert frame["id"].tolist() == list(range(1, SECONDS * RATE + 1))
        diffs = np.diff(frame["attr_time"].to_numpy())
        assert np.median(diffs) == 20
        assert diffs.min() >= 0
        assert diffs.max() <= 20 + 20 + 10  # one repeated timestamp plus jitter at most


def test_timestamps_are_epoch_milliseconds_of_the_subject_day(small):
    # Subject 6 records on day 5 after start, and climbingdown, its first activity,
    # starts in the first hour of that day.
    times = read_member(small, 6, "acc", "climbingdown", "chest")["attr_time"]
    day_start = START_MS + 5 * 86_400_000
    assert day_start <= times.iloc[0] < day_start + 3_600_000 + 1_000


def test_positions_share_a_session_clock(small):
    for subject, activity in itertools.product(SUBJECTS, ["walking", "lying"]):
        starts, ends = [], []
        for sensor, position in itertools.product(PREFIX, POSITIONS):
            times = read_member(small, subject, sensor, activity, position)["attr_time"].to_numpy()
            starts.append(times[0])
            ends.append(times[-1])
        assert max(starts) - min(starts) < 1000, (subject, activity)
        assert max(ends) - min(ends) < 1000, (subject, activity)
        assert min(ends) - max(starts) > (SECONDS - 1.2) * 1000  # the streams overlap for most of the recording


def test_jitter_and_rare_duplicate_timestamps(small):
    diffs = np.concatenate(
        [
            np.diff(read_member(small, subject, sensor, activity, "thigh")["attr_time"].to_numpy())
            for subject, sensor, activity in itertools.product(SUBJECTS, PREFIX, ["lying", "running", "sitting", "standing"])
        ]
    )
    assert np.mean(diffs != 20) > 0.3  # jitter moves many timestamps off the 20 ms grid
    assert 0 < np.sum(diffs == 0) < 0.005 * len(diffs)


# --- physics ---------------------------------------------------------------------------------


def test_standing_gravity_magnitude_at_every_position(small):
    for subject, position in itertools.product(SUBJECTS, POSITIONS):
        mean = xyz(read_member(small, subject, "acc", "standing", position)).mean(axis=0)
        assert np.linalg.norm(mean) == pytest.approx(9.81, abs=0.1), (subject, position)


def test_shin_varies_more_than_chest_when_walking(small):
    for subject in SUBJECTS:
        shin = xyz(read_member(small, subject, "acc", "walking", "shin")).var(axis=0).sum()
        chest = xyz(read_member(small, subject, "acc", "walking", "chest")).var(axis=0).sum()
        assert shin > 2 * chest, subject


def test_running_shin_saturates_at_2g(small):
    for subject in SUBJECTS:
        values = xyz(read_member(small, subject, "acc", "running", "shin"))
        assert np.abs(values).max() == pytest.approx(19.6)
        assert np.mean(np.abs(values).max(axis=1) == 19.6) > 0.05, subject


def test_accelerometer_never_exceeds_2g(small):
    for subject, activity, position in itertools.product(SUBJECTS, ["jumping", "running"], POSITIONS):
        if (subject, activity, position) == (6, "jumping", "thigh"):
            continue  # left out like in the release
        assert np.abs(xyz(read_member(small, subject, "acc", activity, position))).max() <= 19.6


def test_gravity_direction_differs_between_positions(small):
    for subject in SUBJECTS:
        directions = {p: xyz(read_member(small, subject, "acc", "standing", p)).mean(axis=0) for p in POSITIONS}
        for a, b in itertools.combinations(POSITIONS, 2):
            assert angle_deg(directions[a], directions[b]) > 20, (subject, a, b)


def test_lying_moves_gravity_to_another_axis(small):
    for subject, position in itertools.product(SUBJECTS, ["chest", "waist", "head"]):
        standing = xyz(read_member(small, subject, "acc", "standing", position)).mean(axis=0)
        lying = xyz(read_member(small, subject, "acc", "lying", position)).mean(axis=0)
        assert angle_deg(standing, lying) > 60, (subject, position)


def test_magnetometer_field_and_inclination(small):
    # Up is 90 deg above the horizon and the field 65 deg below it, so they are 155 deg apart.
    for position in POSITIONS:
        gravity = xyz(read_member(small, 4, "acc", "standing", position)).mean(axis=0)
        field = xyz(read_member(small, 4, "mag", "standing", position))
        assert np.linalg.norm(field, axis=1).mean() == pytest.approx(48.0, abs=0.5), position
        assert angle_deg(gravity, field.mean(axis=0)) == pytest.approx(155.0, abs=2.0), position


def rms_norm(values: np.ndarray) -> float:
    return float(np.sqrt((values**2).sum(axis=1).mean()))


def test_gyroscope_still_when_standing(small):
    for subject, position in itertools.product(SUBJECTS, POSITIONS):
        standing = xyz(read_member(small, subject, "gyr", "standing", position))
        assert rms_norm(standing) < 0.1, (subject, position)


def test_head_gyroscope_steady_when_walking(small):
    for subject in SUBJECTS:
        shin = xyz(read_member(small, subject, "gyr", "walking", "shin"))
        head = xyz(read_member(small, subject, "gyr", "walking", "head"))
        assert rms_norm(shin) > 1.0, subject
        assert rms_norm(head) < 0.5, subject


# --- quirks ----------------------------------------------------------------------------------


def test_nested_climbing_zips(small):
    for subject, sensor, activity in itertools.product([4, 7], PREFIX, ["climbingdown", "climbingup"]):
        with zipfile.ZipFile(zip_path(small, subject, sensor, activity)) as archive:
            assert sorted(archive.namelist()) == [f"{sensor}_{activity}_1_csv.zip", f"{sensor}_{activity}_2_csv.zip"]
            for number in ("1", "2"):
                with zipfile.ZipFile(io.BytesIO(archive.read(f"{sensor}_{activity}_{number}_csv.zip"))) as inner:
                    assert sorted(inner.namelist()) == [member_name(sensor, activity, p, number) for p in POSITIONS]


def test_nested_recordings_follow_each_other(small):
    first = read_member(small, 4, "acc", "climbingup", "chest", number="1", nested=True)
    second = read_member(small, 4, "acc", "climbingup", "chest", number="2", nested=True)
    assert len(first) == len(second) == SECONDS * RATE
    assert second["attr_time"].iloc[0] > first["attr_time"].iloc[-1] + 60_000


def test_other_subjects_have_flat_climbing_zips(small):
    for subject in (2, 6):
        with zipfile.ZipFile(zip_path(small, subject, "gyr", "climbingdown")) as archive:
            assert sorted(archive.namelist()) == [member_name("gyr", "climbingdown", p) for p in POSITIONS]


def test_second_recordings_carry_suffix_2(small):
    for (subject, activity), sensor in itertools.product([(4, "walking"), (6, "sitting"), (7, "sitting")], PREFIX):
        with zipfile.ZipFile(zip_path(small, subject, sensor, activity)) as archive:
            expected = [member_name(sensor, activity, p) for p in POSITIONS] + [member_name(sensor, activity, p, "2") for p in POSITIONS]
            assert sorted(archive.namelist()) == sorted(expected), (subject, sensor, activity)
    first = read_member(small, 4, "acc", "walking", "chest")
    second = read_member(small, 4, "acc", "walking", "chest", number="2")
    assert second["attr_time"].iloc[0] > first["attr_time"].iloc[-1]


def test_missing_members(small):
    for sensor in PREFIX:
        with zipfile.ZipFile(zip_path(small, 2, sensor, "climbingup")) as archive:
            names = archive.namelist()
        assert member_name(sensor, "climbingup", "forearm") not in names
        assert len(names) == 6
        with zipfile.ZipFile(zip_path(small, 6, sensor, "jumping")) as archive:
            names = archive.namelist()
        assert member_name(sensor, "jumping", "thigh") not in names
        assert len(names) == 6
        with zipfile.ZipFile(zip_path(small, 7, sensor, "jumping")) as archive:
            assert member_name(sensor, "jumping", "thigh") in archive.namelist()


def test_member_without_header(small):
    # The last configured subject's MagneticField_sitting_waist.csv starts with data.
    raw = read_bytes(small, 7, "mag", "sitting", "waist").decode()
    assert ROW.match(raw.splitlines()[0])
    frame = pd.read_csv(io.StringIO(raw), header=None, names=COLUMNS)
    assert frame["id"].tolist() == list(range(1, SECONDS * RATE + 1))
    second = read_bytes(small, 7, "mag", "sitting", "waist", number="2").decode()
    assert second.splitlines()[0] == ",".join(COLUMNS)


def test_members_with_duplicated_rows(small):
    # Subjects 2, 6 and 7 are the first, middle and last configured subjects.
    for subject, sensor, activity, position in [(2, "acc", "walking", "waist"), (6, "gyr", "running", "shin"), (7, "mag", "lying", "chest")]:
        frame = read_member(small, subject, sensor, activity, position)
        assert len(frame) == SECONDS * RATE + 5
        assert frame["id"].tolist() == list(range(1, SECONDS * RATE + 6))
        repeated = frame.duplicated(subset=["attr_time", "attr_x", "attr_y", "attr_z"])
        assert repeated.sum() == 5
        assert np.flatnonzero(repeated).tolist() == [161, 163, 165, 167, 169]  # rows 160-164 of 400, each followed by its copy


# --- configuration and determinism -----------------------------------------------------------


def member_contents(root: Path) -> dict[str, bytes]:
    """Map every zip path and member (inner zips opened) to the member's bytes."""
    contents = {}
    for path in sorted(root.rglob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                data = archive.read(name)
                if name.endswith(".zip"):
                    with zipfile.ZipFile(io.BytesIO(data)) as inner:
                        contents.update({f"{path.relative_to(root)}/{name}/{n}": inner.read(n) for n in inner.namelist()})
                else:
                    contents[f"{path.relative_to(root)}/{name}"] = data
    return contents


def test_same_seed_gives_identical_files(tmp_path):
    cfg = {"seed": 3, "subjects": [4], "seconds_per_activity": 2, "rate_hz": RATE, "start": "2016-06-20T09:00:00Z"}
    synthesize(tmp_path / "a", dict(cfg))
    synthesize(tmp_path / "b", dict(cfg))
    a, b = member_contents(tmp_path / "a"), member_contents(tmp_path / "b")
    assert len(a) > 0
    assert a == b
    for path in (tmp_path / "a").rglob("*.zip"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_other_seed_gives_other_values(tmp_path):
    cfg = {"seed": 3, "subjects": [4], "seconds_per_activity": 2, "rate_hz": RATE, "start": "2016-06-20T09:00:00Z"}
    synthesize(tmp_path / "a", dict(cfg))
    synthesize(tmp_path / "b", {**cfg, "seed": 4})
    a, b = member_contents(tmp_path / "a"), member_contents(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[key] != b[key] for key in a)


def test_subject_files_independent_of_other_subjects(small, tmp_path):
    # Alone, subject 4 also gets the quirks placed by order (walking, running, lying,
    # sitting), so the test compares jumping, which none of them touches.
    synthesize(tmp_path, {**SMALL, "subjects": [4]})
    for sensor, position in itertools.product(PREFIX, POSITIONS):
        assert read_bytes(tmp_path, 4, sensor, "jumping", position) == read_bytes(small, 4, sensor, "jumping", position)


def test_subject_count_and_defaults(tmp_path):
    synthesize(tmp_path, {"subjects": 2, "seconds_per_activity": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proband1", "proband2"]
    frame = read_member(tmp_path, 1, "acc", "standing", "chest")
    assert len(frame) == 2 * 50
    assert np.median(np.diff(frame["attr_time"])) == 20
    with zipfile.ZipFile(zip_path(tmp_path, 2, "acc", "climbingup")) as archive:
        assert member_name("acc", "climbingup", "forearm") not in archive.namelist()


def test_rate_setting_changes_sampling(tmp_path):
    synthesize(tmp_path, {"subjects": [1], "seconds_per_activity": 2, "rate_hz": 25})
    frame = read_member(tmp_path, 1, "gyr", "sitting", "head")
    assert len(frame) == 2 * 25
    assert np.median(np.diff(frame["attr_time"])) == 40


@pytest.mark.parametrize(
    "change, message",
    [
        ({"subject": 3}, "unknown keys"),
        ({"subjects": [16]}, "subjects contains 16"),
        ({"subjects": [2, 2]}, "lists a subject twice"),
        ({"subjects": 0}, "subjects must be at least 1"),
        ({"seconds_per_activity": 1}, "seconds_per_activity must be at least 2"),
        ({"rate_hz": 50.5}, "rate_hz must be a whole number"),
        ({"start": "2016-06-20T09:00:00"}, "has no time zone"),
        ({"start": "yesterday"}, "is not an ISO 8601 time"),
    ],
)
def test_invalid_settings_are_rejected(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, {**SMALL, **change})
    assert not any(tmp_path.iterdir())
