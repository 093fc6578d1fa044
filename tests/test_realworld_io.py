"""RealWorld-HAR reader on small zips written here in the release layout, with the release's quirks."""

from __future__ import annotations

import io
import logging
import zipfile

import numpy as np
import pytest

from spar.io import realworld
from spar.io.realworld import LayoutError, find_subjects, read_subject

T0_MS = 1_435_000_000_000  # 2015-06-22T19:06:40Z in epoch milliseconds
T0_S = T0_MS / 1000.0
HEADER = "id,attr_time,attr_x,attr_y,attr_z"
G2 = 19.6133  # 2 g in m/s^2, where the release's accelerometer clips


def csv_text(rows, header: bool = True) -> str:
    """CSV text of rows (time_ms, x, y, z), numbered from 1 in the id column."""
    lines = [HEADER] if header else []
    lines += [f"{number},{t},{x},{y},{z}" for number, (t, x, y, z) in enumerate(rows, start=1)]
    return "\n".join(lines) + "\n"


def steady_rows(start_ms: int, count: int, x: float = 1.0, step_ms: int = 20) -> list[tuple]:
    """Rows every step_ms with constant values (x, 2, 3)."""
    return [(start_ms + i * step_ms, x, 2.0, 3.0) for i in range(count)]


def zip_bytes(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def write_zip(path, members: dict[str, str | bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(members))


# Chest walking, rows in file order: a duplicate timestamp (20 ms, second copy x=99),
# jitter (41 and 59 ms instead of 40 and 60) and two rows out of order.
CHEST_ROWS = [
    (T0_MS + 0, 1.0, 0.0, 9.8),
    (T0_MS + 20, 2.0, 0.0, 9.8),
    (T0_MS + 20, 99.0, 0.0, 9.8),
    (T0_MS + 59, 4.0, 0.0, 9.8),
    (T0_MS + 41, 3.0, 0.0, 9.8),
    (T0_MS + 80, 5.0, 0.0, 9.8),
]
CLIPPED_ROWS = [
    (T0_MS + 0, G2, -G2, 9.8),
    (T0_MS + 20, G2, -G2, 9.8),
    (T0_MS + 40, 5.0, -3.0, 9.8),
]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release root with subjects 4 (every quirk that reads), 2 (files that are skipped) and 10 (no data)."""
    root = tmp_path_factory.mktemp("realworld")
    data4 = root / "proband4" / "data"

    write_zip(
        data4 / "acc_walking_csv.zip",
        {
            "acc_walking_chest.csv": csv_text(CHEST_ROWS),
            "acc_walking_2_chest.csv": csv_text(steady_rows(T0_MS + 60_000, 3, x=7.0)),
            "acc_walking_head.csv": csv_text(steady_rows(T0_MS, 4, x=-1.5), header=False),
            "acc_walking_thigh.csv": csv_text(CLIPPED_ROWS),
            "__MACOSX/._acc_walking_chest.csv": b"\x00\x05\x16\x07 resource fork",
        },
    )
    climbing_1 = zip_bytes({"acc_climbingup_chest.csv": csv_text(steady_rows(T0_MS, 5, x=1.0))})
    climbing_2 = zip_bytes(
        {
            "acc_climbingup_chest.csv": csv_text(steady_rows(T0_MS + 100_000, 6, x=2.0)),
            "acc_climbingup_waist.csv": csv_text(steady_rows(T0_MS + 100_000, 7, x=3.0)),
        }
    )
    write_zip(data4 / "acc_climbingup_csv.zip", {"acc_climbingup_1_csv.zip": climbing_1, "acc_climbingup_2_csv.zip": climbing_2})
    write_zip(data4 / "gyr_walking_csv.zip", {"Gyroscope_walking_chest.csv": csv_text(steady_rows(T0_MS, 3, x=0.25))})
    write_zip(data4 / "mag_walking_csv.zip", {"MagneticField_walking_chest.csv": csv_text(steady_rows(T0_MS, 2, x=-40.0))})
    write_zip(data4 / "acc_running_csv.zip", {"ACC_Running_Chest.csv": csv_text(steady_rows(T0_MS, 2))})
    # Sensors outside SENSORS have other columns and must never be parsed.
    write_zip(data4 / "gps_walking_csv.zip", {"Gps_walking.csv": "id,attr_time,attr_lat,attr_lng\n1,1,49.4,8.5\n"})
    write_zip(data4 / "lig_walking_csv.zip", {"Light_walking_chest.csv": "id,attr_time,attr_light\n1,1,300\n"})
    (data4 / "readme.txt").write_text("not a zip")

    data2 = root / "proband2" / "data"
    write_zip(
        data2 / "acc_sitting_csv.zip",
        {
            "acc_sitting_chest.csv": "",
            "acc_sitting_waist.csv": HEADER + "\n",
            "acc_sitting_head.csv": csv_text(steady_rows(T0_MS, 3)),
        },
    )
    write_zip(data2 / "acc_lying_csv.zip", {"notes.txt": "recording failed"})

    (root / "proband10" / "data").mkdir(parents=True)
    (root / "docs").mkdir()
    return root


@pytest.fixture(scope="module")
def subject4(release):
    recordings = read_subject(release / "proband4")
    return {(r.sensor, r.activity, r.position, r.recording): r for r in recordings}


def test_find_subjects_sorted_by_number(release):
    names = [path.name for path in find_subjects(release)]
    assert names == ["proband2", "proband4", "proband10"]


def test_find_subjects_without_subjects(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(LayoutError, match="no proband<N> folder") as err:
        find_subjects(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_find_subjects_given_one_subject(release):
    with pytest.raises(LayoutError, match="one subject folder"):
        find_subjects(release / "proband4")


def test_read_subject_keys(subject4):
    assert sorted(subject4) == [
        ("acc", "climbingup", "chest", 1),
        ("acc", "climbingup", "chest", 2),
        ("acc", "climbingup", "waist", 2),
        ("acc", "running", "chest", 1),
        ("acc", "walking", "chest", 1),
        ("acc", "walking", "chest", 2),
        ("acc", "walking", "head", 1),
        ("acc", "walking", "thigh", 1),
        ("gyr", "walking", "chest", 1),
        ("mag", "walking", "chest", 1),
    ]


def test_read_subject_list_order(release):
    recordings = read_subject(release / "proband4")
    keys = [(r.sensor, r.activity, r.position, r.recording) for r in recordings]
    assert keys == sorted(keys)
    assert {r.subject for r in recordings} == {4}


def test_nested_zips_both_recordings(subject4):
    first = subject4[("acc", "climbingup", "chest", 1)]
    second = subject4[("acc", "climbingup", "chest", 2)]
    waist = subject4[("acc", "climbingup", "waist", 2)]
    assert len(first.time_s) == 5
    assert len(second.time_s) == 6
    assert len(waist.time_s) == 7
    assert first.values[0, 0] == 1.0
    assert second.values[0, 0] == 2.0
    assert second.time_s[0] == pytest.approx(T0_S + 100.0)
    assert first.source == "proband4/data/acc_climbingup_csv.zip:acc_climbingup_1_csv.zip:acc_climbingup_chest.csv"
    assert second.source == "proband4/data/acc_climbingup_csv.zip:acc_climbingup_2_csv.zip:acc_climbingup_chest.csv"


def test_numbered_member_second_recording(subject4):
    second = subject4[("acc", "walking", "chest", 2)]
    assert second.source == "proband4/data/acc_walking_csv.zip:acc_walking_2_chest.csv"
    np.testing.assert_allclose(second.time_s, T0_S + 60.0 + np.array([0.0, 0.02, 0.04]), rtol=0, atol=1e-6)
    assert second.values[:, 0].tolist() == [7.0, 7.0, 7.0]


def test_duplicates_removed_and_sorted(subject4):
    chest = subject4[("acc", "walking", "chest", 1)]
    np.testing.assert_allclose(chest.time_s - T0_S, [0.0, 0.020, 0.041, 0.059, 0.080], rtol=0, atol=1e-6)
    # Of the two rows at 20 ms the first (x = 2) is kept, and x follows time after sorting.
    assert chest.values[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert chest.time_s.dtype == np.float64
    assert chest.values.dtype == np.float32
    assert chest.values.shape == (5, 3)
    assert chest.interval == pytest.approx((T0_S, T0_S + 0.08))


def test_clipped_values_kept(subject4):
    thigh = subject4[("acc", "walking", "thigh", 1)]
    np.testing.assert_allclose(thigh.values[:2, 0], [G2, G2], rtol=1e-6)
    np.testing.assert_allclose(thigh.values[:2, 1], [-G2, -G2], rtol=1e-6)
    assert thigh.values[2].tolist() == [5.0, -3.0, pytest.approx(9.8)]


def test_csv_without_header(subject4):
    head = subject4[("acc", "walking", "head", 1)]
    assert len(head.time_s) == 4
    assert head.values[:, 0].tolist() == [-1.5] * 4
    assert head.values[0, 1:].tolist() == [2.0, 3.0]


def test_missing_positions_absent(subject4, release, caplog):
    walking_positions = {key[2] for key in subject4 if key[:2] == ("acc", "walking")}
    assert walking_positions == {"chest", "head", "thigh"}

    with caplog.at_level(logging.INFO, logger="spar.io.realworld"):
        read_subject(release / "proband4")
    assert "no acc walking recording for position(s) ['forearm', 'shin', 'upperarm', 'waist']" in caplog.text


def test_sensor_prefix_spellings(subject4):
    assert subject4[("gyr", "walking", "chest", 1)].values[0, 0] == 0.25
    assert subject4[("mag", "walking", "chest", 1)].values[0, 0] == -40.0
    assert subject4[("acc", "running", "chest", 1)].source == "proband4/data/acc_running_csv.zip:ACC_Running_Chest.csv"


def test_sensor_and_position_filters(release):
    recordings = read_subject(release / "proband4", sensors=("gyr",), positions=("chest", "head"))
    assert [(r.sensor, r.activity, r.position) for r in recordings] == [("gyr", "walking", "chest")]
    acc_head = read_subject(release / "proband4", sensors=("acc",), positions=("head",))
    assert [(r.activity, r.position) for r in acc_head] == [("walking", "head")]


def test_unknown_sensor_rejected(release):
    with pytest.raises(ValueError, match="'gps'"):
        read_subject(release / "proband4", sensors=("acc", "gps"))


def test_summary_counts_duplicates(release, caplog):
    with caplog.at_level(logging.INFO, logger="spar.io.realworld"):
        read_subject(release / "proband4")
    summary = [record.getMessage() for record in caplog.records if "proband4: read" in record.getMessage()]
    assert len(summary) == 1
    assert "read 10 recordings" in summary[0]
    assert "(40 rows) from 5 zips" in summary[0]
    assert "removed 1 duplicate timestamps" in summary[0]
    assert "skipped zips of other sensors (2)" in summary[0]


def test_empty_csv_skipped(release, caplog):
    with caplog.at_level(logging.INFO, logger="spar.io.realworld"):
        recordings = read_subject(release / "proband2")
    assert [(r.activity, r.position) for r in recordings] == [("sitting", "head")]

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "proband2/data/acc_sitting_csv.zip:acc_sitting_chest.csv: skipped, the CSV has no data rows" in warnings
    assert "proband2/data/acc_sitting_csv.zip:acc_sitting_waist.csv: skipped, the CSV has no data rows" in warnings
    assert "empty CSVs (2)" in caplog.text


def test_zip_without_member_skipped(release, caplog):
    with caplog.at_level(logging.INFO, logger="spar.io.realworld"):
        read_subject(release / "proband2")
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    lying = [message for message in warnings if "acc_lying_csv.zip" in message]
    assert len(lying) == 1
    assert "proband2/data/acc_lying_csv.zip: skipped, no member named like acc_lying_<position>.csv" in lying[0]
    assert "notes.txt" in lying[0]
    assert "zips without expected members (1)" in caplog.text


def test_missing_column_names_member(tmp_path):
    text = "id,attr_time,attr_x,attr_y\n1,1435000000000,1.0,2.0\n"
    write_zip(tmp_path / "proband1" / "data" / "acc_walking_csv.zip", {"acc_walking_chest.csv": text})
    with pytest.raises(LayoutError) as err:
        read_subject(tmp_path / "proband1")
    message = str(err.value)
    assert "proband1/data/acc_walking_csv.zip:acc_walking_chest.csv" in message
    assert "missing column(s) ['attr_z']" in message
    assert "found ['id', 'attr_time', 'attr_x', 'attr_y']" in message


def test_missing_column_in_inner_zip(tmp_path):
    inner = zip_bytes({"acc_climbingdown_shin.csv": "id,attr_time,attr_y,attr_z\n1,1435000000000,2.0,3.0\n"})
    write_zip(tmp_path / "proband7" / "data" / "acc_climbingdown_csv.zip", {"acc_climbingdown_3_csv.zip": inner})
    with pytest.raises(LayoutError, match="attr_x") as err:
        read_subject(tmp_path / "proband7")
    assert "acc_climbingdown_csv.zip:acc_climbingdown_3_csv.zip:acc_climbingdown_shin.csv" in str(err.value)


def test_headerless_wrong_column_count(tmp_path):
    write_zip(tmp_path / "proband1" / "data" / "acc_walking_csv.zip", {"acc_walking_chest.csv": "1435000000000,1.0,2.0,3.0\n"})
    with pytest.raises(LayoutError, match="no header row and 4 columns"):
        read_subject(tmp_path / "proband1")


def test_non_numeric_value_names_line(tmp_path):
    text = HEADER + "\n1,1435000000000,1.0,2.0,3.0\n\n2,1435000000020,abc,2.0,3.0\n"
    write_zip(tmp_path / "proband1" / "data" / "acc_walking_csv.zip", {"acc_walking_chest.csv": text})
    with pytest.raises(LayoutError, match=r"acc_walking_chest.csv, line 4: column attr_x has the non-numeric value 'abc'"):
        read_subject(tmp_path / "proband1")


def test_empty_field_row_dropped(tmp_path):
    text = HEADER + "\n1,1435000000000,1.0,2.0,3.0\n2,1435000000020,,2.0,3.0\n3,1435000000040,4.0,5.0,6.0\n"
    write_zip(tmp_path / "proband1" / "data" / "acc_walking_csv.zip", {"acc_walking_chest.csv": text})
    [recording] = read_subject(tmp_path / "proband1")
    assert recording.values[:, 0].tolist() == [1.0, 4.0]


def test_unreadable_zip_named(tmp_path):
    path = tmp_path / "proband1" / "data" / "acc_walking_csv.zip"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(LayoutError, match="not a readable zip file") as err:
        read_subject(tmp_path / "proband1")
    assert str(path) in str(err.value)


def test_same_recording_twice_rejected(tmp_path):
    inner = zip_bytes({"acc_jumping_2_head.csv": csv_text(steady_rows(T0_MS, 2))})
    members = {"acc_jumping_2_head.csv": csv_text(steady_rows(T0_MS, 2)), "acc_jumping_2_csv.zip": inner}
    write_zip(tmp_path / "proband1" / "data" / "acc_jumping_csv.zip", members)
    with pytest.raises(LayoutError, match="both give acc jumping head recording 2"):
        read_subject(tmp_path / "proband1")


def test_unpacked_inner_zips_numbered(tmp_path):
    data = tmp_path / "proband14" / "data"
    write_zip(data / "acc_climbingdown_1_csv.zip", {"acc_climbingdown_head.csv": csv_text(steady_rows(T0_MS, 2, x=1.0))})
    write_zip(data / "acc_climbingdown_2_csv.zip", {"acc_climbingdown_head.csv": csv_text(steady_rows(T0_MS, 3, x=2.0))})
    recordings = read_subject(tmp_path / "proband14")
    assert [(r.recording, len(r.time_s)) for r in recordings] == [(1, 2), (2, 3)]


def test_subject_folder_without_data(tmp_path):
    (tmp_path / "proband3").mkdir()
    with pytest.raises(LayoutError, match="proband3/data is missing"):
        read_subject(tmp_path / "proband3")


def test_constants():
    assert realworld.ACTIVITIES == tuple(sorted(realworld.ACTIVITIES))
    assert len(realworld.ACTIVITIES) == 8
    assert realworld.POSITIONS == ("chest", "forearm", "head", "shin", "thigh", "upperarm", "waist")
    assert realworld.SENSORS == ("acc", "gyr", "mag")
