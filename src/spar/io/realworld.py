"""Reader for the RealWorld-HAR public release (University of Mannheim, 15 subjects).

Layout::

    proband<N>/data/<sensor>_<activity>_csv.zip     sensor acc, gyr or mag (gps, lig, mic, ... are ignored)
        acc_<activity>_<position>.csv                accelerometer, m/s^2, clipped near +/-19.6 (2 g)
        Gyroscope_<activity>_<position>.csv          gyroscope
        MagneticField_<activity>_<position>.csv      magnetometer
        <sensor>_<activity>_<k>_csv.zip              inner zip holding recording k (some climbing zips)

Each CSV has the columns ``id,attr_time,attr_x,attr_y,attr_z`` with ``attr_time``
in Unix epoch milliseconds, sampled at a nominal 50 Hz with jitter, duplicate
timestamps and gaps. Some copies of the release lack the header row.

Rules of ``read_subject``:

- Names are matched without regard to case. A member's sensor prefix may be
  ``acc``, ``gyr``/``Gyroscope`` or ``mag``/``MagneticField``.
- Every inner zip is read, so an activity recorded several times gives one
  ``Recording`` per inner zip.
- The recording number is the ``_<k>`` of the member name
  (``acc_walking_2_chest.csv`` is recording 2). Without one it is the ``_<k>``
  of the inner zip that contains the member, and 1 otherwise. Two members with
  the same sensor, activity, position and recording number raise LayoutError.
- Timestamps are sorted (stable), and of equal timestamps the first row in
  file order is kept. Rows with an empty field are dropped. Values clipped at
  +/-2 g are kept as they are.
- A CSV that lacks one of ``attr_time, attr_x, attr_y, attr_z``, or names a
  column twice, raises LayoutError naming the zip, the member and the columns
  found (``id`` is not used and may be absent). Header names are matched
  without regard to case, surrounding spaces or double quotes. A CSV without a
  header row must have exactly the five columns of the release.
- A value that is not a number (text, ``true``/``false``) raises LayoutError
  naming the member, the line and the value. ``nan``, ``inf`` and a missing
  trailing field count as empty fields, so their rows are dropped.
- A CSV whose median sample spacing is more than 4 times away from the
  nominal 20 ms is read as it is, with a warning that ``attr_time`` may be in
  another unit than milliseconds.
- An empty CSV (no bytes, or a header without rows) and a zip without any
  member named like the release are skipped with a warning. A zip that cannot
  be opened raises LayoutError naming it.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm import tqdm

log = logging.getLogger(__name__)

SENSORS = ("acc", "gyr", "mag")
ACTIVITIES = ("climbingdown", "climbingup", "jumping", "lying", "running", "sitting", "standing", "walking")
POSITIONS = ("chest", "forearm", "head", "shin", "thigh", "upperarm", "waist")

CSV_COLUMNS = ("id", "attr_time", "attr_x", "attr_y", "attr_z")
NOMINAL_SPACING_S = 0.02  # the release's nominal 50 Hz
# A CSV whose median spacing is off by more than this factor gets a warning: its
# attr_time is likely in another unit (seconds or microseconds instead of milliseconds).
SPACING_FACTOR = 4.0
REQUIRED_COLUMNS = ("attr_time", "attr_x", "attr_y", "attr_z")

# Spellings of the sensor prefix in zip and member names, lower case, mapped to SENSORS.
SENSOR_PREFIXES = {
    "acc": "acc",
    "gyr": "gyr",
    "gyroscope": "gyr",
    "mag": "mag",
    "magneticfield": "mag",
}

SUBJECT_PATTERN = re.compile(r"proband(?P<subject>\d+)", re.IGNORECASE)
# <sensor>_<activity>_csv.zip in the data folder, <sensor>_<activity>_<k>_csv.zip inside it.
ZIP_PATTERN = re.compile(r"(?P<prefix>[a-z]+)_(?P<activity>[a-z]+)(?:_(?P<number>\d+))?_csv\.zip", re.IGNORECASE)
# <prefix>_<activity>[_<k>]_<position>.csv
MEMBER_PATTERN = re.compile(
    r"(?P<prefix>[a-z]+)_(?P<activity>[a-z]+)(?:_(?P<number>\d+))?_(?P<position>[a-z]+)\.csv", re.IGNORECASE
)


class LayoutError(ValueError):
    """Raw files that do not follow the RealWorld-HAR release layout."""


@dataclass
class Recording:
    """One CSV member of the release: a sensor at one body position during one activity."""

    subject: int
    sensor: str  # one of SENSORS
    activity: str  # one of ACTIVITIES
    position: str  # one of POSITIONS
    recording: int  # 1 for the first recording, 2 for a `_2` member or inner zip 2, ...
    source: str  # zip path relative to the release root, then ':' and each member name
    time_s: np.ndarray = field(repr=False)  # float64 (n,), epoch seconds, strictly increasing
    values: np.ndarray = field(repr=False)  # float32 (n, 3): x, y, z in the sensor's unit

    @property
    def interval(self) -> tuple[float, float]:
        """First and last timestamp in epoch seconds."""
        return float(self.time_s[0]), float(self.time_s[-1])


@dataclass
class _Tally:
    """Counts behind the per-subject summary line."""

    zips: int = 0
    rows: int = 0
    duplicates: int = 0
    incomplete_rows: int = 0
    skipped: Counter = field(default_factory=Counter)


def find_subjects(root: str | Path) -> list[Path]:
    """Return the ``proband<N>`` folders under ``root``, sorted by N.

    Raises LayoutError naming ``root`` when it is not a folder or contains no subject folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder; pass the folder that contains proband1, proband2, ...")

    subjects = []
    for path in root.iterdir():
        match = SUBJECT_PATTERN.fullmatch(path.name)
        if match and path.is_dir():
            subjects.append((int(match["subject"]), path))

    if not subjects and SUBJECT_PATTERN.fullmatch(root.name):
        raise LayoutError(f"{root} is one subject folder; pass its parent folder, {root.parent}, which contains proband1, proband2, ...")
    if not subjects:
        raise LayoutError(
            f"{root} does not follow the RealWorld-HAR layout: no proband<N> folder found; "
            "expected for example proband1/data/acc_walking_csv.zip"
        )
    return [path for _, path in sorted(subjects)]


def read_subject(folder: str | Path, sensors=SENSORS, positions=POSITIONS) -> list[Recording]:
    """Read every recording of one subject folder (``proband<N>``).

    Args:
        folder: the subject folder; its zips are in ``folder/data``.
        sensors: sensors to read, a subset of SENSORS; zips of other sensors are ignored.
        positions: body positions to keep, a subset of POSITIONS.

    Returns:
        Recordings sorted by sensor, activity, position and recording number.
        A position or activity the subject lacks is absent from the list (logged at INFO).

    Raises:
        LayoutError: the folder is not named ``proband<N>``, has no ``data`` folder,
            a zip cannot be opened, a CSV lacks a column or contains a non-numeric value,
            or two members give the same recording.
    """
    folder = Path(folder)
    sensors = _check_subset("sensors", sensors, SENSORS)
    positions = _check_subset("positions", positions, POSITIONS)
    match = SUBJECT_PATTERN.fullmatch(folder.name)
    if not match:
        raise LayoutError(f"{folder}: a subject folder must be named proband<N>, for example proband3")
    subject = int(match["subject"])
    data_dir = folder / "data"
    if not data_dir.is_dir():
        raise LayoutError(f"{data_dir} is missing; the release keeps each subject's zips in proband<N>/data/")

    requested_zips = []
    tally = _Tally()
    for path in sorted(data_dir.iterdir()):
        name_match = ZIP_PATTERN.fullmatch(path.name)
        if not path.is_file() or not name_match:
            continue
        sensor = SENSOR_PREFIXES.get(name_match["prefix"].lower())
        if sensor not in sensors:
            tally.skipped["zips of other sensors"] += 1
            continue
        activity = name_match["activity"].lower()
        if activity not in ACTIVITIES:
            log.warning("%s: skipped, unknown activity %r; known activities are %s", path, activity, ACTIVITIES)
            tally.skipped["zips of unknown activities"] += 1
            continue
        # A numbered zip such as acc_climbingup_2_csv.zip may also sit in data/ if someone unpacked the outer zip.
        number = int(name_match["number"]) if name_match["number"] else None
        requested_zips.append((path, sensor, activity, number))

    recordings: dict[tuple[str, str, str, int], Recording] = {}
    for path, sensor, activity, number in tqdm(requested_zips, desc=f"read {folder.name}", unit="zip", disable=None):
        source = f"{folder.name}/{data_dir.name}/{path.name}"
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise LayoutError(f"{path} is not a readable zip file ({err}); replace it with the release's copy") from err
        with archive:
            found = _read_zip(archive, source, subject, sensor, activity, positions, number, tally)
        tally.zips += 1
        for rec in found:
            _add_recording(recordings, rec)

    result = [recordings[key] for key in sorted(recordings)]
    _log_absent_positions(folder.name, result, positions)
    skipped = ", ".join(f"{reason} ({count})" for reason, count in sorted(tally.skipped.items())) or "nothing"
    log.info(
        "%s: read %d recordings (%d rows) from %d zips; removed %d duplicate timestamps and %d rows with empty fields; skipped %s",
        folder.name,
        len(result),
        tally.rows,
        tally.zips,
        tally.duplicates,
        tally.incomplete_rows,
        skipped,
    )
    return result


def _check_subset(name: str, requested, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``requested`` as a tuple; raise ValueError naming any value not in ``allowed``."""
    if isinstance(requested, str):
        requested = (requested,)
    requested = tuple(requested)
    unknown = [value for value in requested if value not in allowed]
    if unknown:
        raise ValueError(f"{name} contains unknown value(s) {unknown}; choose from {allowed}")
    return requested


def _add_recording(recordings: dict, rec: Recording) -> None:
    """Insert ``rec`` by its key; raise LayoutError if another member already gave that recording."""
    key = (rec.sensor, rec.activity, rec.position, rec.recording)
    if key in recordings:
        raise LayoutError(
            f"{rec.source} and {recordings[key].source} both give {rec.sensor} {rec.activity} {rec.position} "
            f"recording {rec.recording}; rename one member with a _<k> suffix, for example {rec.sensor}_{rec.activity}_2_{rec.position}.csv"
        )
    recordings[key] = rec


def _read_zip(
    archive: zipfile.ZipFile,
    source: str,
    subject: int,
    sensor: str,
    activity: str,
    positions: tuple[str, ...],
    zip_number: int | None,
    tally: _Tally,
) -> list[Recording]:
    """Read the CSV members of one zip and, recursively, of the zips inside it.

    ``zip_number`` is the ``_<k>`` of the zip's name, None for a zip without one.
    """
    recordings = []
    expected_members = 0
    names = []

    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        # Zips made on macOS add resource forks under __MACOSX/ and as ._<name>.
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("._"):
            continue
        names.append(info.filename)
        where = f"{source}:{info.filename}"

        inner_match = ZIP_PATTERN.fullmatch(path.name)
        if inner_match:
            expected_members += 1
            inner_number = int(inner_match["number"]) if inner_match["number"] else zip_number
            data = _read_member(archive, info, source)
            try:
                inner = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as err:
                raise LayoutError(f"{where} is not a readable zip file ({err}); replace the outer zip with the release's copy") from err
            with inner:
                recordings += _read_zip(inner, where, subject, sensor, activity, positions, inner_number, tally)
            continue

        member_match = MEMBER_PATTERN.fullmatch(path.name)
        if not member_match or SENSOR_PREFIXES.get(member_match["prefix"].lower()) is None:
            continue
        expected_members += 1
        member_sensor = SENSOR_PREFIXES[member_match["prefix"].lower()]
        member_activity = member_match["activity"].lower()
        position = member_match["position"].lower()
        if member_sensor != sensor or member_activity != activity:
            log.warning("%s: skipped, the member's sensor or activity differs from its zip (%s %s)", where, sensor, activity)
            tally.skipped["members whose name differs from their zip"] += 1
            continue
        if position not in POSITIONS:
            log.warning("%s: skipped, unknown position %r; known positions are %s", where, position, POSITIONS)
            tally.skipped["members of unknown positions"] += 1
            continue
        if position not in positions:
            tally.skipped["members of positions not requested"] += 1
            continue

        table = _parse_csv(_read_member(archive, info, source), where)
        if table is None:
            log.warning("%s: skipped, the CSV has no data rows", where)
            tally.skipped["empty CSVs"] += 1
            continue
        time_s, values, duplicates, incomplete = table
        tally.rows += len(time_s)
        tally.duplicates += duplicates
        tally.incomplete_rows += incomplete

        if member_match["number"]:
            number = int(member_match["number"])
        elif zip_number is not None:
            number = zip_number
        else:
            number = 1
        recordings.append(
            Recording(
                subject=subject,
                sensor=sensor,
                activity=activity,
                position=position,
                recording=number,
                source=where,
                time_s=time_s,
                values=values,
            )
        )

    if expected_members == 0:
        log.warning(
            "%s: skipped, no member named like %s_%s_<position>.csv or an inner %s_%s_<k>_csv.zip; members found: %s",
            source,
            sensor,
            activity,
            sensor,
            activity,
            names[:10],
        )
        tally.skipped["zips without expected members"] += 1
    return recordings


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    """Return the bytes of one member; raise LayoutError naming the zip and the member if they cannot be read."""
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as err:
        raise LayoutError(f"{source}:{info.filename} cannot be read ({err}); replace the zip with the release's copy") from err


def _parse_csv(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Parse one member CSV, with or without its header row.

    Returns:
        ``(time_s, values, duplicates, incomplete)``, or None when the CSV has no data row.
        ``time_s`` is float64 (n,) epoch seconds, sorted, and of equal timestamps
        only the first row in file order is kept. ``values`` is float32 (n, 3) x, y, z.
        ``duplicates`` counts the rows removed for a repeated timestamp and
        ``incomplete`` the rows dropped for an empty field.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LayoutError(f"{where} is not UTF-8 text ({err})") from err
    # pandas skips blank lines, so row i of the table is the i-th non-blank line (after the header).
    lines = text.splitlines()
    line_numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
    if not line_numbers:
        return None

    first_fields = [cell.strip().strip('"') for cell in lines[line_numbers[0] - 1].split(",")]
    has_header = any(cell and not _is_number(cell) for cell in first_fields)
    if has_header:
        found = [cell.lower() for cell in first_fields]
        missing = [column for column in REQUIRED_COLUMNS if column not in found]
        if missing:
            raise LayoutError(
                f"{where}: missing column(s) {missing}; found {found}. "
                f"The release's CSVs have the columns {','.join(CSV_COLUMNS)}"
            )
        repeated = sorted({column for column in found if found.count(column) > 1})
        if repeated:
            raise LayoutError(f"{where}: the header names column(s) {repeated} more than once; keep one column of each name")
        table = _read_table(text, where, header=0)
        table.columns = [str(column).strip().strip('"').lower() for column in table.columns]
    else:
        table = _read_table(text, where, header=None)
        if table.shape[1] != len(CSV_COLUMNS):
            raise LayoutError(
                f"{where}: no header row and {table.shape[1]} columns; a CSV without a header row "
                f"needs the {len(CSV_COLUMNS)} columns {','.join(CSV_COLUMNS)}"
            )
        table.columns = list(CSV_COLUMNS)
    if table.empty:
        return None

    row_lines = line_numbers[1:] if has_header else line_numbers
    numeric = {column: _numeric_column(table[column], column, where, row_lines) for column in REQUIRED_COLUMNS}
    complete = np.ones(len(table), dtype=bool)
    for column in REQUIRED_COLUMNS:
        complete &= np.isfinite(numeric[column])
    incomplete = int((~complete).sum())
    if not complete.any():
        return None

    time_s = numeric["attr_time"][complete] / 1000.0
    values = np.column_stack([numeric[column][complete] for column in ("attr_x", "attr_y", "attr_z")])
    order = np.argsort(time_s, kind="stable")
    time_s = time_s[order]
    values = values[order]
    keep = np.ones(len(time_s), dtype=bool)
    keep[1:] = np.diff(time_s) > 0
    duplicates = int((~keep).sum())
    time_s = time_s[keep]
    if len(time_s) > 1:
        spacing = float(np.median(np.diff(time_s)))
        if not NOMINAL_SPACING_S / SPACING_FACTOR <= spacing <= NOMINAL_SPACING_S * SPACING_FACTOR:
            log.warning(
                "%s: median sample spacing is %.6g s, far from the nominal %g s (50 Hz); check that attr_time is in epoch milliseconds",
                where, spacing, NOMINAL_SPACING_S,
            )
    return time_s, values[keep].astype(np.float32), duplicates, incomplete


def _read_table(text: str, where: str, header: int | None) -> pd.DataFrame:
    """Run pandas' CSV parser; raise LayoutError naming the member when a row has too many fields."""
    try:
        return pd.read_csv(io.StringIO(text), header=header, skip_blank_lines=True)
    except pd.errors.ParserError as err:
        raise LayoutError(f"{where} is not a valid CSV: {err}") from err


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_column(column: pd.Series, name: str, where: str, row_lines: list[int]) -> np.ndarray:
    """Convert a CSV column to float64; raise LayoutError naming the line of the first non-numeric value.

    ``row_lines`` contains the line number in the file of each table row. Empty
    fields become NaN and are dropped by the caller.
    """
    if pd.api.types.is_bool_dtype(column):
        line = row_lines[0] if row_lines else "unknown"
        raise LayoutError(f"{where}, line {line}: column {name} has the non-numeric value {str(column.iloc[0])!r}; "
                          "fix or remove that line")
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna().to_numpy() & column.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = row_lines[row] if row < len(row_lines) else "unknown"
        raise LayoutError(f"{where}, line {line}: column {name} has the non-numeric value {column.iloc[row]!r}; "
                          "fix or remove that line")
    return converted.to_numpy(dtype=np.float64)


def _log_absent_positions(subject_name: str, recordings: list[Recording], positions: tuple[str, ...]) -> None:
    """Log, per sensor and activity that was read, the requested positions without any recording."""
    present: dict[tuple[str, str], set[str]] = {}
    for rec in recordings:
        present.setdefault((rec.sensor, rec.activity), set()).add(rec.position)
    for (sensor, activity), found in sorted(present.items()):
        absent = [position for position in positions if position not in found]
        if absent:
            log.info("%s: no %s %s recording for position(s) %s", subject_name, sensor, activity, absent)
