"""The RealWorld-HAR importer on two subjects written by the tests in the release layout."""

import io
import zipfile

import numpy as np
import pytest

from spar.features.store import open_store
from spar.ingest.realworld import ingest
from spar.io.body import body_positions

RATE = 50.0
CFG = {
    "positions": ["chest", "shin"],
    "rate_hz": RATE,
    "window_s": 4.0,
    "max_gap_s": 0.2,
    "min_coverage": 0.9,
    "train_subjects": [1],
    "val_subjects": [2],
}
T0_MS = 1_465_000_000_000
MARK_S = 6.0  # both positions see a spike at this time after T0


def csv_member(start_s: float, seconds: float) -> bytes:
    """A 50 Hz recording from T0 + start_s with a spike on x at T0 + MARK_S."""
    t_ms = T0_MS + np.round(1000 * (start_s + np.arange(int(seconds * RATE)) / RATE)).astype(np.int64)
    x = np.where(np.abs(t_ms - (T0_MS + 1000 * MARK_S)) < 1, 50.0, 0.0)
    lines = ["id,attr_time,attr_x,attr_y,attr_z"]
    lines += [f"{i + 1},{t},{v:.3f},0.0,9.81" for i, (t, v) in enumerate(zip(t_ms, x))]
    return ("\n".join(lines) + "\n").encode()


def write_subject(root, subject: int, shin_seconds: float | None):
    """Write walking for acc, gyr and mag: chest from T0 + 0 s for 14 s, shin from T0 + 1 s (or no shin)."""
    data = root / f"proband{subject}" / "data"
    data.mkdir(parents=True)
    for sensor, prefix in (("acc", "acc"), ("gyr", "Gyroscope"), ("mag", "MagneticField")):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"{prefix}_walking_chest.csv", csv_member(0.0, 14.0))
            if shin_seconds:
                archive.writestr(f"{prefix}_walking_shin.csv", csv_member(1.0, shin_seconds))
        (data / f"{sensor}_walking_csv.zip").write_bytes(buffer.getvalue())


@pytest.fixture
def raw(tmp_path):
    write_subject(tmp_path / "raw", 1, shin_seconds=13.0)
    write_subject(tmp_path / "raw", 2, shin_seconds=None)  # subject 2 has no shin recording
    return tmp_path / "raw"


def test_windows_align_positions(raw, tmp_path):
    ingest(raw, tmp_path / "realworld.zarr", CFG)
    ds = open_store(tmp_path / "realworld.zarr")

    # subject 1: chest 0-14 s and shin 1-14 s overlap for 13 s -> 3 windows of 4 s from T0 + 1 s
    subject1 = np.flatnonzero(ds["group"].values == "subject1")
    assert subject1.size == 3
    starts = (ds["time"].values[subject1].astype("int64") / 1e6 - T0_MS) / 1000
    np.testing.assert_allclose(starts, [1.0, 5.0, 9.0])
    assert ds["signal_accelerometer"].shape[2:] == (3, 1, 200)

    # the spike at T0 + 6 s is at sample 50 of the second window in both positions (1 s after its start)
    raw_x = ds["signal_accelerometer"].values[subject1[1], :, 0, 0, :]
    assert raw_x[0].argmax() == 50
    assert raw_x[1].argmax() == 50

    # subject 2 has no shin: windows follow the chest alone and the shin is absent
    subject2 = np.flatnonzero(ds["group"].values == "subject2")
    assert subject2.size == 3
    assert ds["present_accelerometer"].values[subject2].tolist() == [[True, False]] * 3
    assert (ds["signal_gyroscope"].values[subject2][:, 1] == 0).all()

    # labels, split and body positions
    assert set(ds["label"].values.tolist()) == {ds["class_name"].values.tolist().index("walking")}
    assert ds["split"].values[subject1].tolist() == ["train"] * 3
    assert ds["split"].values[subject2].tolist() == ["val"] * 3
    np.testing.assert_allclose(ds["position"].values[0], body_positions(["chest", "shin"]), atol=1e-6)


def test_no_subject_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="proband"):
        ingest(tmp_path / "empty", tmp_path / "x.zarr", CFG)
