"""Simulated RealWorld-HAR subjects written in the public release layout.

``synthesize`` writes one ``proband<N>/data/`` folder per subject with one zip per
sensor and activity, ``<sensor>_<activity>_csv.zip`` for ``acc``, ``gyr`` and
``mag``. Each zip holds one CSV member per body position, named as in the release
(``acc_walking_chest.csv``, ``Gyroscope_walking_chest.csv``,
``MagneticField_walking_chest.csv``), with the columns ``id,attr_time,attr_x,attr_y,attr_z``:
a row number from 1, Unix epoch milliseconds, and three axes in m/s^2, rad/s or uT.

Body model, per recording:

* A subject walks, runs, climbs stairs or jumps with a gait phase that advances at a
  subject-specific step frequency, or sits, stands or lies still with slow sway and
  breathing. The heading meanders slowly during locomotion.
* Thigh and shin swing in the sagittal plane at the stride frequency, the shin with
  a larger amplitude and a phase lag. The upper arm and forearm swing against the
  leg on the same side. Chest, waist and head follow the trunk, whose small
  oscillations the head attenuates.
* The trunk's linear acceleration is a sum of step harmonics (a flight and push-off
  cycle when jumping). Every foot strike adds a decaying shock along the segment
  axis, strongest at the shin.
* Each sensor sits on its segment with a fixed mounting rotation per position and
  subject, so gravity and the geomagnetic field land on different axes at
  different positions. Lying turns the body so that gravity lands on another axis
  than when standing.
* Accelerometer: gravity (9.81 m/s^2) plus linear acceleration, rotated into the
  sensor frame, plus noise, clipped at +/-19.6 m/s^2 (2 g). Gyroscope: the
  segment's angular velocity in the sensor frame, plus bias and noise.
  Magnetometer: a 48 uT field with 65 deg inclination rotated into the sensor
  frame, plus noise.

Timing: all positions of one recording share one session clock. Each position's
device starts up to 0.85 s after the session start and carries its own clock
offset of up to +/-40 ms, so the first samples of all members of a recording lie
within one second of each other. Every member has its own rate error of up to
+/-0.05 %. Timestamps have a few milliseconds of jitter (at most 6 ms), and about
one sample in 1500 repeats the previous timestamp.

Quirks of the release that readers must handle. Each is tied to a subject number
of the release and applied when that subject is configured:

* Subjects 4 and 7: the climbingdown and climbingup zips of acc, gyr and mag hold
  one inner zip per recording (``acc_climbingup_1_csv.zip``,
  ``acc_climbingup_2_csv.zip``), whose members carry the recording number
  (``acc_climbingup_1_chest.csv``).
* A second recording whose members carry ``_2`` (``acc_walking_2_chest.csv``)
  beside the first recording's members, for subjects 4 and 13 walking, 6 and 7
  sitting and 8 standing.
* No member for subject 2 climbingup forearm and subject 6 jumping thigh, in all
  three sensors' zips.

These quirks go to configured subjects picked by their order, so they occur with
any subject list:

* a light-sensor zip ``lig_walking_csv.zip`` for the first subject, which readers
  must ignore;
* one member without the header row: ``MagneticField_sitting_waist.csv`` of the
  last subject;
* five consecutive rows that each appear twice (same timestamp and values, while
  the ids keep counting up) in three members: acc walking waist of the first subject, gyr running
  shin of the middle subject and mag lying chest of the last subject.

Conventions of this simulator beyond the real release:

* Subject N records on day N - 1 after ``start``, its activities in the order of
  ``ACTIVITIES``, 1-3 minutes apart. A subject's files do not depend on which other
  subjects are configured, except for the order-picked quirks above.
* Every recording, also each recording of a split activity, lasts
  ``seconds_per_activity``.
* Zip members carry the start time of their recording (UTC) as their date, so the
  same configuration gives byte-identical zips.
* Each subject folder is written as a whole and then renamed into place, so a
  previous folder of the same subject is replaced completely.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from spar.files import atomic_path

log = logging.getLogger(__name__)

# --- constants of the release format -------------------------------------------------------

ACTIVITIES = ("climbingdown", "climbingup", "jumping", "lying", "running", "sitting", "standing", "walking")
POSITIONS = ("chest", "forearm", "head", "shin", "thigh", "upperarm", "waist")
SENSORS = ("acc", "gyr", "mag")
MEMBER_PREFIX = {"acc": "acc", "gyr": "Gyroscope", "mag": "MagneticField"}
CSV_HEADER = "id,attr_time,attr_x,attr_y,attr_z\n"
LIGHT_HEADER = "id,attr_time,attr_light\n"
MAX_SUBJECT = 15

# --- quirks of the release, by subject number ----------------------------------------------

NESTED_SUBJECTS = (4, 7)  # climbing zips hold one inner zip per recording
NESTED_ACTIVITIES = ("climbingdown", "climbingup")
NESTED_RECORDINGS = ("1", "2")
SECOND_RECORDINGS = ((4, "walking"), (13, "walking"), (6, "sitting"), (7, "sitting"), (8, "standing"))
MISSING_MEMBERS = ((2, "climbingup", "forearm"), (6, "jumping", "thigh"))
DUPLICATED_ROWS = 5  # rows written twice in each member with duplicated rows

# --- defaults of cfg ---------------------------------------------------------------------------

DEFAULTS = {
    "seed": 2016,
    "subjects": 15,
    "seconds_per_activity": 40,
    "rate_hz": 50,
    "start": "2016-06-20T09:00:00Z",
}

# --- physical constants of the simulator -------------------------------------------------

GRAVITY_M_S2 = 9.81
ACC_LIMIT_M_S2 = 19.6  # +/-2 g range of the phones' accelerometers
FIELD_UT = 48.0
INCLINATION_DEG = 65.0
# World frame: x north, y west, z up. The field points north and down.
FIELD_WORLD_UT = FIELD_UT * np.array([math.cos(math.radians(INCLINATION_DEG)), 0.0, -math.sin(math.radians(INCLINATION_DEG))])
ACC_NOISE_M_S2 = 0.04
GYR_NOISE_RAD_S = 0.008
GYR_BIAS_RAD_S = 0.01  # largest constant bias per file
MAG_NOISE_UT = 0.4
# Device start, stream start and clock offset together keep the first samples of a
# recording's streams within 0.85 + 0.03 + 0.08 + 0.012 s < 1 s of each other.
DEVICE_START_MAX_S = 0.85
STREAM_START_MAX_S = 0.03  # delay of each sensor's first sample after its device starts
CLOCK_OFFSET_MAX_MS = 40.0
RATE_ERROR_MAX = 5e-4
JITTER_MS = 2.0  # standard deviation of the timestamp jitter
JITTER_MAX_MS = 6.0
DUPLICATE_TIMESTAMP_RATE = 1.0 / 1500.0
MOUNT_PERTURBATION_DEG = 8.0  # largest per-subject change of a sensor's mounting angle about each axis
DIFF_STEP_S = 2e-3  # step of the central differences for angular velocity and acceleration
SHOCK_DECAY_S = 0.025
SHOCK_HZ = 18.0

# Sensor mounting per position: the sensor-frame directions of the segment's up and
# forward axes in the neutral standing posture (Android axes: x right, y top, z out of
# the screen). Standing gravity lands on a different axis at every position: the
# closest pair of up directions is 45 deg apart.
MOUNTS = {
    "chest": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "forearm": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "head": ((1.0, 1.0, 1.0), (1.0, -1.0, 0.0)),
    "shin": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "thigh": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "upperarm": ((-1.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "waist": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}

# Weight of a foot strike's shock at each position: (same-side foot, other foot).
SHOCK_WEIGHTS = {
    "shin": (1.0, 0.05),
    "thigh": (0.5, 0.1),
    "waist": (0.35, 0.35),
    "chest": (0.25, 0.25),
    "head": (0.15, 0.15),
    "upperarm": (0.15, 0.15),
    "forearm": (0.1, 0.1),
}

# Body geometry in meters, body frame x forward, y left, z up, origin at the pelvis.
# Every sensor sits on the right side.
WAIST_SENSOR = (0.12, -0.08, 0.0)
CHEST_SENSOR = (0.12, 0.0, 0.35)
HEAD_SENSOR = (0.05, 0.0, 0.65)
HIP = (0.0, -0.1, 0.0)
THIGH_LENGTH = 0.45
THIGH_SENSOR = (0.06, 0.0, -0.2)  # from the hip along the thigh
SHIN_SENSOR = (0.05, 0.0, -0.22)  # from the knee along the shin
SHOULDER = (0.0, -0.2, 0.45)
UPPERARM_LENGTH = 0.3
UPPERARM_SENSOR = (0.0, -0.04, -0.15)
FOREARM_SENSOR = (0.0, -0.02, -0.24)  # the wrist, from the elbow
HEAD_STABILISATION = 0.3  # fraction of the trunk's oscillation angles that reaches the head


@dataclass(frozen=True)
class ActivityModel:
    """Motion of one activity at a subject amplitude scale of 1.

    Limb angles are forward swings in degrees from hanging straight down in the
    posture frame, given as (mean, amplitude).

    Attributes:
        kind: ``gait`` (alternating legs), ``jump`` (both legs together) or ``static``.
        step_hz: range of the subjects' step (or jump) frequencies, or None when static.
        trunk_acc: amplitudes of the trunk's forward, lateral and vertical
            acceleration in m/s^2. ``jump`` ignores the vertical one and uses its
            flight and push-off cycle instead.
        thigh, shin, upperarm, forearm: limb angles, degrees.
        trunk_deg: oscillation amplitudes of trunk pitch, roll and yaw, degrees.
        lean_deg: forward lean of the trunk, degrees.
        shock_m_s2: peak shock of a foot strike at the shin, m/s^2.
        sway_deg: amplitude of the slow postural sway, degrees.
        legs_sway: whether the legs follow the sway (standing) or rest (sitting, lying).
        lying: whether the body lies on its back.
    """

    kind: str
    step_hz: tuple[float, float] | None
    trunk_acc: tuple[float, float, float]
    thigh: tuple[float, float]
    shin: tuple[float, float]
    upperarm: tuple[float, float]
    forearm: tuple[float, float]
    trunk_deg: tuple[float, float, float]
    lean_deg: float
    shock_m_s2: float
    sway_deg: float
    legs_sway: bool
    lying: bool


MODELS = {
    "walking": ActivityModel("gait", (1.6, 2.1), (1.5, 0.8, 2.5), (5, 22), (-10, 35), (0, 15), (15, 20), (1, 2, 4), 3, 8.0, 0.0, False, False),
    "running": ActivityModel("gait", (2.5, 3.0), (4.0, 1.5, 9.0), (15, 35), (-35, 45), (0, 25), (70, 20), (1.5, 3, 6), 10, 30.0, 0.0, False, False),
    "climbingup": ActivityModel("gait", (1.2, 1.6), (1.2, 0.8, 2.0), (30, 30), (-15, 30), (0, 10), (15, 15), (1, 2, 3), 10, 5.0, 0.0, False, False),
    "climbingdown": ActivityModel("gait", (1.4, 1.9), (1.5, 1.0, 3.0), (15, 20), (-10, 30), (0, 10), (15, 15), (1, 2, 3), -3, 12.0, 0.0, False, False),
    "jumping": ActivityModel("jump", (1.8, 2.2), (0.5, 0.3, 0.0), (15, 20), (-15, 25), (10, 25), (40, 20), (2, 1, 1), 5, 25.0, 0.0, False, False),
    "standing": ActivityModel("static", None, (0, 0, 0), (0, 0), (0, 0), (0, 0), (10, 0), (0, 0, 0), 0, 0.0, 1.0, True, False),
    "sitting": ActivityModel("static", None, (0, 0, 0), (85, 0), (5, 0), (5, 0), (55, 0), (0, 0, 0), -8, 0.0, 0.7, False, False),
    "lying": ActivityModel("static", None, (0, 0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0, 0), 0, 0.0, 0.2, False, True),
}
JUMP_CONTACT = (0.55, 0.65)  # range of the fraction of a jump cycle with the feet on the ground


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated ``synth.realworld`` parameters."""

    seed: int
    subjects: tuple[int, ...]  # release subject numbers, increasing
    seconds_per_activity: int
    rate_hz: int
    start_ms: int  # start of day 0, milliseconds since the Unix epoch (UTC)


def _require_int(cfg: dict, key: str, minimum: int, maximum: int | None = None) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or float(value) != int(value):
        raise ValueError(f"synth.realworld.{key} must be a whole number, got {value!r}")
    if int(value) < minimum or (maximum is not None and int(value) > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"synth.realworld.{key} must be at least {minimum}{upper}, got {value!r}")
    return int(value)


def _parse_subjects(value) -> tuple[int, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        count = _require_int({"subjects": value}, "subjects", 1, MAX_SUBJECT)
        return tuple(range(1, count + 1))
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"synth.realworld.subjects must be a count (1-{MAX_SUBJECT}) or a list of subject numbers, got {value!r}")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_SUBJECT:
            raise ValueError(f"synth.realworld.subjects contains {item!r}; subject numbers are whole numbers from 1 to {MAX_SUBJECT}")
        numbers.append(item)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"synth.realworld.subjects lists a subject twice: {list(value)}")
    return tuple(sorted(numbers))


def parse_settings(cfg: dict) -> Settings:
    """Validate the ``synth.realworld`` mapping, fill in DEFAULTS and return ``Settings``.

    Raises:
        ValueError: naming the key, the invalid value and the accepted values.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"synth.realworld must be a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"synth.realworld has unknown keys {unknown}; known keys: {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **cfg}

    try:
        start = dt.datetime.fromisoformat(str(merged["start"]))
    except ValueError as err:
        raise ValueError(f"synth.realworld.start {merged['start']!r} is not an ISO 8601 time such as 2016-06-20T09:00:00Z") from err
    if start.tzinfo is None:
        raise ValueError(f"synth.realworld.start {merged['start']!r} has no time zone; append Z for UTC")
    if start.year < 1980:
        raise ValueError(f"synth.realworld.start {merged['start']!r} is before 1980, which zip member dates cannot store")
    start_ms = (start - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(milliseconds=1)

    return Settings(
        seed=_require_int(merged, "seed", 0),
        subjects=_parse_subjects(merged["subjects"]),
        seconds_per_activity=_require_int(merged, "seconds_per_activity", 2),
        rate_hz=_require_int(merged, "rate_hz", 10, 200),
        start_ms=int(start_ms),
    )


# --- recordings and quirks ------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One recording session of one subject and activity.

    Attributes:
        number: ``""`` for the plain recording, or the number that member names
            carry (``"2"`` in ``acc_walking_2_chest.csv``, ``"1"`` in a nested zip).
        index: position of the recording within its activity, used to seed its random numbers.
        start_ms: session start, milliseconds since the Unix epoch (UTC).
        nested: whether the recording's members sit in an inner zip of their own.
    """

    subject: int
    activity: str
    number: str
    index: int
    start_ms: int
    seconds: int
    nested: bool

    def member_name(self, sensor: str, position: str) -> str:
        tag = f"_{self.number}" if self.number else ""
        return f"{MEMBER_PREFIX[sensor]}_{self.activity}{tag}_{position}.csv"

    def inner_zip_name(self, sensor: str) -> str:
        return f"{sensor}_{self.activity}_{self.number}_csv.zip"


@dataclass(frozen=True)
class QuirkPlan:
    """Quirks that land on the configured subjects.

    Member keys are (subject, sensor, activity, position) of plain recordings.
    """

    nested_subjects: tuple[int, ...]
    second_recordings: tuple[tuple[int, str], ...]
    missing_members: tuple[tuple[int, str, str], ...]
    light_subject: int
    headerless: tuple[int, str, str, str]
    duplicated_rows: tuple[tuple[int, str, str, str], ...]
    absent: tuple[int, ...]  # subjects of release quirks that are not configured


def plan_quirks(subjects: tuple[int, ...]) -> QuirkPlan:
    """Place the release quirks on the configured subjects (see the module docstring)."""
    present = set(subjects)
    release_subjects = {*NESTED_SUBJECTS, *(s for s, _ in SECOND_RECORDINGS), *(s for s, _, _ in MISSING_MEMBERS)}
    first, middle, last = subjects[0], subjects[len(subjects) // 2], subjects[-1]
    return QuirkPlan(
        nested_subjects=tuple(s for s in NESTED_SUBJECTS if s in present),
        second_recordings=tuple(q for q in SECOND_RECORDINGS if q[0] in present),
        missing_members=tuple(q for q in MISSING_MEMBERS if q[0] in present),
        light_subject=first,
        headerless=(last, "mag", "sitting", "waist"),
        duplicated_rows=((first, "acc", "walking", "waist"), (middle, "gyr", "running", "shin"), (last, "mag", "lying", "chest")),
        absent=tuple(sorted(release_subjects - present)),
    )


def _rng(settings: Settings, *keys: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, *keys])


def plan_recordings(settings: Settings, subject: int, quirks: QuirkPlan) -> list[Recording]:
    """Lay out a subject's recordings in time: day ``subject - 1``, activities in ACTIVITIES order."""
    rng = _rng(settings, subject, 0)
    start_ms = settings.start_ms + (subject - 1) * 86_400_000 + int(rng.integers(0, 3_600_000))
    recordings = []
    for activity in ACTIVITIES:
        if subject in quirks.nested_subjects and activity in NESTED_ACTIVITIES:
            numbers, nested = NESTED_RECORDINGS, True
        elif (subject, activity) in quirks.second_recordings:
            numbers, nested = ("", "2"), False
        else:
            numbers, nested = ("",), False
        for index, number in enumerate(numbers):
            recordings.append(Recording(subject, activity, number, index, start_ms, settings.seconds_per_activity, nested))
            start_ms += (settings.seconds_per_activity + 1) * 1000 + int(rng.integers(60_000, 180_001))
    return recordings


# --- rotations ---------------------------------------------------------------------------------


def rot_x(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about x for angles in radians, shape angle.shape + (3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    ones, zeros = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([ones, zeros, zeros], -1), np.stack([zeros, c, -s], -1), np.stack([zeros, s, c], -1)], -2)


def rot_y(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about y for angles in radians, shape angle.shape + (3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    ones, zeros = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, zeros, s], -1), np.stack([zeros, ones, zeros], -1), np.stack([-s, zeros, c], -1)], -2)


def rot_z(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about z for angles in radians, shape angle.shape + (3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    ones, zeros = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, -s, zeros], -1), np.stack([s, c, zeros], -1), np.stack([zeros, zeros, ones], -1)], -2)


def swing(angle_deg: np.ndarray) -> np.ndarray:
    """Rotation that turns a segment hanging along -z forward (toward +x) by angle_deg."""
    return rot_y(-np.radians(angle_deg))


def mount_matrix(position: str) -> np.ndarray:
    """Return the nominal rotation from segment to sensor coordinates of a position, shape (3, 3)."""
    up, forward = (np.asarray(v, dtype=float) for v in MOUNTS[position])
    up /= np.linalg.norm(up)
    forward -= up * (forward @ up)
    forward /= np.linalg.norm(forward)
    return np.column_stack([forward, np.cross(up, forward), up])


def _apply(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Multiply (n, 3, 3) or (3, 3) matrices with (n, 3) or (3,) vectors."""
    return np.einsum("...ij,...j->...i", matrices, vectors)


def _smooth_wobble(rng: np.random.Generator, amplitude: float, band_hz: tuple[float, float], terms: int = 3):
    """Draw a smooth random function of time (s): a sum of sinusoids whose peak is at most amplitude."""
    freqs = rng.uniform(*band_hz, terms)
    phases = rng.uniform(0, 2 * np.pi, terms)
    weights = rng.uniform(0.5, 1.0, terms)
    weights *= amplitude / weights.sum()

    def wobble(t: np.ndarray) -> np.ndarray:
        return np.sin(2 * np.pi * np.multiply.outer(t, freqs) + phases) @ weights

    return wobble


# --- body model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectTraits:
    """Fixed properties of one subject."""

    step_hz: dict  # activity -> step (or jump) frequency, Hz
    amplitude: float  # scale of gait accelerations, swing angles and shocks
    posture_deg: dict  # activity -> offsets of (thigh, shin, upperarm, forearm, lean), degrees
    mounts: dict  # position -> rotation from segment to sensor coordinates, (3, 3)


def subject_traits(settings: Settings, subject: int) -> SubjectTraits:
    """Draw a subject's gait frequencies, amplitude, posture offsets and sensor mountings."""
    rng = _rng(settings, subject, 1)
    step_hz = {a: float(rng.uniform(*m.step_hz)) if m.step_hz else 0.0 for a, m in MODELS.items()}
    amplitude = float(rng.uniform(0.85, 1.15))
    posture = {a: rng.normal(0.0, 3.0, 5) for a in MODELS}
    mounts = {}
    for position in POSITIONS:
        tilt = np.radians(rng.uniform(-MOUNT_PERTURBATION_DEG, MOUNT_PERTURBATION_DEG, 3))
        mounts[position] = mount_matrix(position) @ rot_z(tilt[0]) @ rot_y(tilt[1]) @ rot_x(tilt[2])
    return SubjectTraits(step_hz, amplitude, posture, mounts)


class BodyMotion:
    """Motion of all body segments during one recording, as functions of time.

    Times are seconds from the session start; every position of the recording
    evaluates the same motion, so their signals agree in time.
    """

    def __init__(self, rng: np.random.Generator, activity: str, traits: SubjectTraits):
        model = MODELS[activity]
        self.model = model
        self.scale = traits.amplitude if model.kind != "static" else 1.0
        offsets = traits.posture_deg[activity]
        self.thigh = (model.thigh[0] + offsets[0], model.thigh[1] * self.scale)
        self.shin = (model.shin[0] + offsets[1], model.shin[1] * self.scale)
        self.upperarm = (model.upperarm[0] + offsets[2], model.upperarm[1] * self.scale)
        self.forearm = (model.forearm[0] + offsets[3], model.forearm[1] * self.scale)
        self.lean = np.radians(model.lean_deg + offsets[4])

        # Gait clock: stride phase (radians) with slow, smooth tempo changes.
        step_hz = traits.step_hz[activity] * rng.uniform(0.97, 1.03)
        self.cycle_hz = step_hz / 2 if model.kind == "gait" else step_hz
        self.phase0 = rng.uniform(0, 2 * np.pi)
        self.tempo = _smooth_wobble(rng, 0.6, (0.03, 0.15))
        self.contact = rng.uniform(*JUMP_CONTACT)
        self.trunk_phase = rng.uniform(-0.3, 0.3, 3)

        # Heading: a slow meander of up to 20 deg during locomotion.
        self.heading0 = rng.uniform(0, 2 * np.pi)
        self.meander = _smooth_wobble(rng, np.radians(20.0) if model.kind != "static" else 0.0, (0.02, 0.06), 2)

        # Postural sway (pitch, roll) and breathing (chest pitch and displacement).
        self.sway_pitch = _smooth_wobble(rng, np.radians(model.sway_deg), (0.1, 0.6))
        self.sway_roll = _smooth_wobble(rng, np.radians(model.sway_deg) * 0.7, (0.1, 0.6))
        self.breath_hz = rng.uniform(0.2, 0.33)
        self.breath_m = rng.uniform(0.002, 0.004)
        self.breath_rad = np.radians(rng.uniform(0.3, 0.7))
        self.posture = rot_y(np.float64(-np.pi / 2)) if model.lying else np.eye(3)

    def phase(self, t: np.ndarray) -> np.ndarray:
        """Stride (or jump) phase in radians at times t (s)."""
        return 2 * np.pi * self.cycle_hz * t + self.phase0 + self.tempo(t)

    def _limb(self, limb: tuple[float, float], t: np.ndarray, lag: float) -> np.ndarray:
        mean, amplitude = limb
        if amplitude == 0.0:
            return np.full_like(t, mean)
        phi = self.phase(t) - lag
        return mean + amplitude * (np.sin(phi) + 0.15 * np.sin(2 * phi + 0.5))

    def frames(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (world, trunk, head, legs) rotations at times t, each (n, 3, 3).

        ``world`` turns posture-frame vectors into the world frame (heading and
        posture); the others are the trunk's, head's and legs' rotations in the posture frame.
        """
        world = rot_z(self.heading0 + self.meander(t)) @ self.posture
        sway = rot_y(self.sway_pitch(t)) @ rot_x(self.sway_roll(t))
        pitch_deg, roll_deg, yaw_deg = self.model.trunk_deg
        if self.model.kind == "static":
            oscillation = np.zeros((3, len(t)))
        else:
            phi = self.phase(t)
            step = 2 * phi if self.model.kind == "gait" else phi
            oscillation = self.scale * np.radians(np.array([pitch_deg, roll_deg, yaw_deg]))[:, None] * np.stack(
                [np.sin(step + self.trunk_phase[0]), np.sin(phi + self.trunk_phase[1]), np.sin(phi + np.pi / 2 + self.trunk_phase[2])]
            )
        lean = rot_y(np.full_like(t, self.lean))
        trunk = sway @ lean @ rot_z(oscillation[2]) @ rot_x(oscillation[1]) @ rot_y(oscillation[0])
        head = sway @ lean @ rot_z(HEAD_STABILISATION * oscillation[2]) @ rot_x(HEAD_STABILISATION * oscillation[1])
        head = head @ rot_y(HEAD_STABILISATION * oscillation[0])
        legs = sway if self.model.legs_sway else np.broadcast_to(np.eye(3), trunk.shape)
        return world, trunk, head, legs

    def pose(self, position: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the sensor's segment orientation (n, 3, 3) and position (n, 3) in meters, both in the world frame.

        The position is relative to the pelvis, whose own acceleration ``trunk_acceleration`` gives.
        """
        world, trunk, head, legs = self.frames(t)
        if position in ("waist", "chest", "head"):
            # The neck damps the trunk's oscillation, so the head also moves less.
            rotation = {"waist": trunk, "chest": trunk, "head": head}[position]
            point = _apply(rotation, np.array({"waist": WAIST_SENSOR, "chest": CHEST_SENSOR, "head": HEAD_SENSOR}[position]))
            if position == "chest":
                breath = np.sin(2 * np.pi * self.breath_hz * t)
                rotation = rotation @ rot_y(-self.breath_rad * breath)
                point = point + _apply(trunk, np.array([self.breath_m, 0.0, 0.0]) * breath[:, None])
            return world @ rotation, _apply(world, point)

        if position in ("thigh", "shin"):
            thigh = swing(self._limb(self.thigh, t, 0.0))
            if position == "thigh":
                segment, point = thigh, np.array(HIP) + _apply(thigh, np.array(THIGH_SENSOR))
            else:
                segment = swing(self._limb(self.shin, t, 0.5))
                knee = np.array(HIP) + _apply(thigh, np.array([0.0, 0.0, -THIGH_LENGTH]))
                point = knee + _apply(segment, np.array(SHIN_SENSOR))
            return world @ legs @ segment, _apply(world @ legs, point)

        # Arms swing against the leg on the same side (half a cycle apart) when walking.
        arm_lag = np.pi if self.model.kind == "gait" else 0.0
        upperarm = swing(self._limb(self.upperarm, t, arm_lag))
        if position == "upperarm":
            segment, point = upperarm, np.array(SHOULDER) + _apply(upperarm, np.array(UPPERARM_SENSOR))
        else:
            segment = swing(self._limb(self.forearm, t, arm_lag + 0.3))
            elbow = np.array(SHOULDER) + _apply(upperarm, np.array([0.0, 0.0, -UPPERARM_LENGTH]))
            point = elbow + _apply(segment, np.array(FOREARM_SENSOR))
        return world @ trunk @ segment, _apply(world @ trunk, point)

    def trunk_acceleration(self, t: np.ndarray) -> np.ndarray:
        """Return the pelvis's linear acceleration in the world frame, m/s^2, shape (n, 3)."""
        model = self.model
        body = np.zeros((len(t), 3))
        if model.kind == "gait":
            phi = self.phase(t)
            forward, lateral, vertical = (self.scale * a for a in model.trunk_acc)
            body[:, 0] = forward * np.cos(2 * phi + 1.2)
            body[:, 1] = lateral * np.cos(phi)
            body[:, 2] = vertical * (np.cos(2 * phi - np.pi + 0.3) + 0.35 * np.cos(4 * phi + 0.8))
        elif model.kind == "jump":
            # Push-off while the feet touch the ground, free fall (-g) in flight. The
            # push-off pulse is a half sine whose area cancels the flight's, so the
            # mean acceleration over a cycle is zero.
            phi = self.phase(t)
            cycle = np.mod(phi, 2 * np.pi) / (2 * np.pi)
            push = np.pi * GRAVITY_M_S2 * (1 - self.contact) / (2 * self.contact)
            body[:, 2] = np.where(cycle < self.contact, push * np.sin(np.pi * cycle / self.contact), -GRAVITY_M_S2)
            body[:, 0] = self.scale * model.trunk_acc[0] * np.cos(phi)
            body[:, 1] = self.scale * model.trunk_acc[1] * np.sin(phi)
        world, _, _, _ = self.frames(t)
        return _apply(world, body)

    def shocks(self, position: str, t: np.ndarray, axis_world: np.ndarray) -> np.ndarray:
        """Return foot-strike shocks along the segment's long axis (world frame), m/s^2, shape (n, 3).

        The same-side foot strikes when the thigh is furthest forward (stride phase
        pi/2), and the other foot half a stride later. In a jump both feet land at phase 0.
        """
        if self.model.kind == "static":
            return np.zeros((len(t), 3))
        own, other = SHOCK_WEIGHTS[position]
        strikes = ((np.pi / 2, own), (3 * np.pi / 2, other)) if self.model.kind == "gait" else ((0.0, own + other),)
        phi = self.phase(t)
        magnitude = np.zeros_like(t)
        for strike_phase, weight in strikes:
            since = np.mod(phi - strike_phase, 2 * np.pi) / (2 * np.pi * self.cycle_hz)
            magnitude += weight * np.exp(-since / SHOCK_DECAY_S) * np.cos(2 * np.pi * SHOCK_HZ * since)
        return (self.scale * self.model.shock_m_s2 * magnitude)[:, None] * axis_world


def sense(motion: BodyMotion, position: str, sensor: str, mount: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return noise-free sensor readings at times t (s), shape (n, 3).

    ``acc`` is the specific force in m/s^2 (before clipping), ``gyr`` the angular
    velocity in rad/s and ``mag`` the field in uT, all in the sensor frame.
    """
    rotation, point = motion.pose(position, t)
    if sensor == "mag":
        return _apply(mount, np.einsum("nji,j->ni", rotation, FIELD_WORLD_UT))

    before, point_before = motion.pose(position, t - DIFF_STEP_S)
    after, point_after = motion.pose(position, t + DIFF_STEP_S)
    if sensor == "gyr":
        # R^T dR/dt is the skew matrix of the angular velocity in the segment frame.
        skew = np.swapaxes(rotation, -1, -2) @ (after - before) / (2 * DIFF_STEP_S)
        omega = 0.5 * np.stack([skew[:, 2, 1] - skew[:, 1, 2], skew[:, 0, 2] - skew[:, 2, 0], skew[:, 1, 0] - skew[:, 0, 1]], -1)
        return _apply(mount, omega)

    relative = (point_after - 2 * point + point_before) / DIFF_STEP_S**2
    axis = rotation[:, :, 2]
    force = motion.trunk_acceleration(t) + relative + motion.shocks(position, t, axis) + np.array([0.0, 0.0, GRAVITY_M_S2])
    return _apply(mount, np.einsum("nji,nj->ni", rotation, force))


# --- streams and files -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceClock:
    """Timing of one position's device within a recording session."""

    start_s: float  # first sample after the session start, seconds
    offset_ms: float  # constant error of the device clock, milliseconds


def device_clocks(settings: Settings, recording: Recording) -> dict[str, DeviceClock]:
    """Draw each position's start and clock offset."""
    rng = _rng(settings, recording.subject, 2, ACTIVITIES.index(recording.activity), recording.index)
    return {
        p: DeviceClock(float(rng.uniform(0.0, DEVICE_START_MAX_S)), float(rng.uniform(-CLOCK_OFFSET_MAX_MS, CLOCK_OFFSET_MAX_MS)))
        for p in POSITIONS
    }


def simulate_stream(
    settings: Settings, recording: Recording, motion: BodyMotion, clock: DeviceClock, position: str, sensor: str, mount: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one CSV member: timestamps (n,) in epoch milliseconds and values (n, 3)."""
    rng = _rng(
        settings, recording.subject, 3, ACTIVITIES.index(recording.activity), recording.index, POSITIONS.index(position), SENSORS.index(sensor)
    )
    n = recording.seconds * settings.rate_hz
    period_s = (1.0 + rng.uniform(-RATE_ERROR_MAX, RATE_ERROR_MAX)) / settings.rate_hz
    t = clock.start_s + rng.uniform(0.0, STREAM_START_MAX_S) + np.arange(n) * period_s

    values = sense(motion, position, sensor, mount, t)
    if sensor == "acc":
        values = np.clip(values + rng.normal(0.0, ACC_NOISE_M_S2, values.shape), -ACC_LIMIT_M_S2, ACC_LIMIT_M_S2)
    elif sensor == "gyr":
        values = values + rng.uniform(-GYR_BIAS_RAD_S, GYR_BIAS_RAD_S, 3) + rng.normal(0.0, GYR_NOISE_RAD_S, values.shape)
    else:
        values = values + rng.normal(0.0, MAG_NOISE_UT, values.shape)

    # Timestamps: device clock with jitter, rounded to milliseconds, never decreasing,
    # and now and then a sample stamped with the previous sample's time.
    max_jitter = min(JITTER_MAX_MS, 250.0 / settings.rate_hz)
    jitter = np.clip(rng.normal(0.0, JITTER_MS, n), -max_jitter, max_jitter)
    stamps = np.round(recording.start_ms + t * 1000.0 + clock.offset_ms + jitter).astype(np.int64)
    repeat = np.flatnonzero(rng.random(n) < DUPLICATE_TIMESTAMP_RATE)
    repeat = repeat[repeat > 0]
    stamps[repeat] = stamps[repeat - 1]
    return np.maximum.accumulate(stamps), values


def duplicate_rows(stamps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Write DUPLICATED_ROWS consecutive rows, starting at 40 % of the member, twice each."""
    counts = np.ones(len(stamps), dtype=np.int64)
    first = int(0.4 * len(stamps))
    counts[first : first + DUPLICATED_ROWS] = 2
    return np.repeat(stamps, counts), np.repeat(values, counts, axis=0)


def format_csv(stamps: np.ndarray, values: np.ndarray, header: bool = True) -> bytes:
    """Format rows as ``id,attr_time,attr_x,attr_y,attr_z`` with ids from 1 and 6 decimals."""
    n = len(stamps)
    rows = np.empty((n, 5), dtype=object)
    rows[:, 0] = np.arange(1, n + 1).tolist()
    rows[:, 1] = stamps.tolist()
    rows[:, 2:] = values.tolist()
    body = ("%d,%d,%.6f,%.6f,%.6f\n" * n) % tuple(rows.ravel())
    return ((CSV_HEADER if header else "") + body).encode("ascii")


def light_csv(settings: Settings, recording: Recording, clock: DeviceClock, position: str) -> bytes:
    """Format a light-sensor member (lux, reported on change at about 5 Hz)."""
    rng = _rng(settings, recording.subject, 4, POSITIONS.index(position))
    gaps_s = rng.uniform(0.1, 0.3, int(recording.seconds * 5))
    t = clock.start_s + np.cumsum(gaps_s)
    t = t[t < recording.seconds]
    lux = np.clip(300.0 + np.cumsum(rng.normal(0.0, 15.0, len(t))), 5.0, None)
    stamps = np.round(recording.start_ms + t * 1000.0 + clock.offset_ms).astype(np.int64)
    lines = [f"{i},{s},{v:.1f}\n" for i, (s, v) in enumerate(zip(stamps.tolist(), lux.tolist()), start=1)]
    return (LIGHT_HEADER + "".join(lines)).encode("ascii")


def _zip_bytes(members: list[tuple[str, bytes]], start_ms: int) -> bytes:
    """Build a deflated zip of (name, content) members dated start_ms (UTC)."""
    when = dt.datetime.fromtimestamp(start_ms / 1000.0, dt.timezone.utc).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def simulate_members(settings: Settings, traits: SubjectTraits, recording: Recording, quirks: QuirkPlan) -> dict[str, list]:
    """Simulate and format every CSV member of one recording.

    Returns:
        sensor -> list of (member name, CSV bytes, row count), without the members
        that the release lacks and with the header and duplicated-row quirks applied.
    """
    subject, activity = recording.subject, recording.activity
    motion = BodyMotion(_rng(settings, subject, 5, ACTIVITIES.index(activity), recording.index), activity, traits)
    clocks = device_clocks(settings, recording)
    members = {sensor: [] for sensor in SENSORS}
    for position in POSITIONS:
        if (subject, activity, position) in quirks.missing_members:
            continue
        for sensor in SENSORS:
            stamps, values = simulate_stream(settings, recording, motion, clocks[position], position, sensor, traits.mounts[position])
            key = (subject, sensor, activity, position)
            if not recording.number and key in quirks.duplicated_rows:
                stamps, values = duplicate_rows(stamps, values)
            header = bool(recording.number) or key != quirks.headerless
            members[sensor].append((recording.member_name(sensor, position), format_csv(stamps, values, header), len(stamps)))
    return members


def write_subject(data_dir: Path, settings: Settings, subject: int, quirks: QuirkPlan, progress) -> dict:
    """Write one subject's zips into data_dir and return counts of zips, members and rows."""
    traits = subject_traits(settings, subject)
    recordings = plan_recordings(settings, subject, quirks)
    counts = {"zips": 0, "members": 0, "rows": 0}

    for activity in ACTIVITIES:
        session = [r for r in recordings if r.activity == activity]
        members = [simulate_members(settings, traits, recording, quirks) for recording in session]
        for recording_members in members:
            for entries in recording_members.values():
                counts["members"] += len(entries)
                counts["rows"] += sum(rows for _, _, rows in entries)

        # One zip per sensor. A nested activity gets one inner zip per recording;
        # otherwise the members of all recordings sit side by side.
        for sensor in SENSORS:
            if session[0].nested:
                inner = [
                    (recording.inner_zip_name(sensor), _zip_bytes([(name, csv) for name, csv, _ in entries[sensor]], recording.start_ms))
                    for recording, entries in zip(session, members)
                ]
                content = _zip_bytes(inner, session[0].start_ms)
            else:
                content = _zip_bytes([(name, csv) for entries in members for name, csv, _ in entries[sensor]], session[0].start_ms)
            (data_dir / f"{sensor}_{activity}_csv.zip").write_bytes(content)
            counts["zips"] += 1

        if subject == quirks.light_subject and activity == "walking":
            recording = session[0]
            clocks = device_clocks(settings, recording)
            light = [(f"Light_walking_{p}.csv", light_csv(settings, recording, clocks[p], p)) for p in POSITIONS]
            (data_dir / "lig_walking_csv.zip").write_bytes(_zip_bytes(light, recording.start_ms))
            counts["zips"] += 1
        progress.update(1)
    return counts


def _plain_member(sensor: str, activity: str, position: str) -> str:
    return f"{MEMBER_PREFIX[sensor]}_{activity}_{position}.csv"


def _log_quirks(quirks: QuirkPlan) -> None:
    for subject in quirks.nested_subjects:
        log.info(
            "quirk: proband%d %s zips of %s hold one inner zip per recording (%s)",
            subject, " and ".join(NESTED_ACTIVITIES), ", ".join(SENSORS), ", ".join(f"_{n}" for n in NESTED_RECORDINGS),
        )
    for subject, activity in quirks.second_recordings:
        log.info("quirk: proband%d %s zips hold a second recording whose members carry _2", subject, activity)
    for subject, activity, position in quirks.missing_members:
        log.info("quirk: proband%d %s has no %s member in the %s zips", subject, activity, position, ", ".join(SENSORS))
    log.info("quirk: proband%d has lig_walking_csv.zip (light sensor), which readers must ignore", quirks.light_subject)
    subject, sensor, activity, position = quirks.headerless
    log.info("quirk: proband%d/data/%s_%s_csv.zip member %s has no header row", subject, sensor, activity, _plain_member(sensor, activity, position))
    for subject, sensor, activity, position in quirks.duplicated_rows:
        log.info(
            "quirk: proband%d/data/%s_%s_csv.zip member %s writes %d consecutive rows twice each",
            subject, sensor, activity, _plain_member(sensor, activity, position), DUPLICATED_ROWS,
        )
    if quirks.absent:
        log.info("quirks of subjects %s are not written because those subjects are not configured", ", ".join(map(str, quirks.absent)))


# --- entry point -----------------------------------------------------------------------------


def synthesize(out_dir: Path, cfg: dict) -> None:
    """Write simulated RealWorld-HAR subjects under out_dir, one ``proband<N>/data/`` folder each.

    Args:
        out_dir: folder that receives ``proband<N>/`` folders, created if missing.
        cfg: the ``synth.realworld`` parameters; missing keys take DEFAULTS. Keys:
            seed, subjects (a count N for subjects 1..N, or a list of subject
            numbers 1-15), seconds_per_activity (length of every recording, s),
            rate_hz (nominal sample rate) and start (ISO 8601 UTC time of day 0).

    The output depends only on cfg: the same cfg gives byte-identical zips.

    Raises:
        ValueError: when a parameter is unknown or invalid.
    """
    settings = parse_settings(cfg)
    out_dir = Path(out_dir)
    quirks = plan_quirks(settings.subjects)
    log.info(
        "synthesizing %d RealWorld-HAR subjects (%s), %d s per activity at %d Hz, into %s",
        len(settings.subjects), ", ".join(map(str, settings.subjects)), settings.seconds_per_activity, settings.rate_hz, out_dir,
    )
    _log_quirks(quirks)

    totals = {"zips": 0, "members": 0, "rows": 0}
    units = len(settings.subjects) * len(ACTIVITIES)
    with logging_redirect_tqdm(), tqdm(total=units, unit="activity", desc="synth realworld", disable=None) as progress:
        for subject in settings.subjects:
            with atomic_path(out_dir / f"proband{subject}") as tmp:
                data_dir = tmp / "data"
                data_dir.mkdir(parents=True)
                counts = write_subject(data_dir, settings, subject, quirks, progress)
            for key in totals:
                totals[key] += counts[key]

    log.info(
        "wrote %d subjects, %d zips, %d CSV members, %d rows to %s; %d members left out as in the release",
        len(settings.subjects), totals["zips"], totals["members"], totals["rows"], out_dir, len(quirks.missing_members) * len(SENSORS),
    )
