"""Simulated vehicle scenes written in the M3N-VC public release layout.

``synthesize`` writes one folder per scene with the same parquet files, column
names and types as the real release, so the importer reads simulated and real
scenes with the same code. Every node carries a microphone and a geophone.

Physics, per run and node:

* Vehicles drive along a track (a closed loop, or back and forth along a road)
  with a smoothly varying speed of 3-12 m/s. The true track is evaluated at every
  sample time, and the GPS file samples it at 1 Hz with correlated noise of a few meters.
* Sources: engine orders (rotation frequency tied to speed through a gear model,
  class-specific order amplitudes), tyre noise, and a seismic source (road
  roughness through class-specific axle and suspension resonances, scaled by the
  vehicle's mass).
* Propagation: the signal received at time t left the vehicle at the retarded time
  tau with ``tau + r(tau) / c = t``, so delay and Doppler shift follow from the
  geometry. Spreading is 1/r (air, c = 343 m/s) or 1/sqrt(r) (surface waves, a
  few hundred m/s per scene), with r >= 1 m, and frequency-dependent attenuation.
* Each node has a fixed random gain and frequency response, and the geophone's
  ground coupling depends on the terrain under the node.
* Coloured background noise on every node, wind gusts on the microphones (strong
  in i29) and rain hiss in h24.

Deliberate defects, which the importer must handle:

* Early end: in the first configured scene, the first test run, both recordings of
  the scene's second node stop ``min(8 s, 25 % of the run)`` before the run ends.
* Gap: in the last configured scene, the first training run, the geophone file of
  the scene's last node lacks ``min(4 s, 20 % of the run)`` of samples starting at
  40 % of the run.

Conventions of this simulator beyond the real release:

* Run ids are unique across all configured scenes and count up from 1 in the order
  of ``cfg["scenes"]``.
* Two-vehicle runs (scene i22) have one GPS file with an extra ``label`` column
  that names the vehicle of each row. Rows are sorted by time and, within one
  time, by the order of the vehicles in the run label. Their distance files hold
  the distance to the nearer vehicle.
* Distance files are computed from the noisy GPS fixes, not from the true track.
* Each scene folder is written as a whole and then renamed into place, so a
  previous folder of the same scene is replaced completely.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import fft as sp_fft
from scipy import interpolate, signal
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from spar.files import atomic_path
from spar.io.geodesy import EnuFrame

log = logging.getLogger(__name__)

# --- constants of the release format -------------------------------------------------------

VEHICLE_CLASSES = ("cx30", "gle350", "mustang", "miata")
BACKGROUND = "background"
GEOPHONE_CHANNEL = "SH3"

RUN_IDS_SCHEMA = pa.schema(
    [
        ("run_id", pa.int64()),
        ("label", pa.string()),
        ("set", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("end_time", pa.timestamp("us", tz="UTC")),
        ("length", pa.duration("us")),
    ]
)
SENSOR_LOCATION_SCHEMA = pa.schema(
    [
        ("sensor_id", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("terrain", pa.string()),
    ]
)
GEO_SCHEMA = pa.schema([("timestamp", pa.float64()), ("channel", pa.string()), ("samples", pa.int64())])
MIC_SCHEMA = pa.schema([("timestamp", pa.float64()), ("samples", pa.int64())])
GPS_SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("us")),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("elevation", pa.float64()),
    ]
)
GPS_TWO_VEHICLE_SCHEMA = GPS_SCHEMA.append(pa.field("label", pa.string()))
DISTANCE_SCHEMA = pa.schema([("time", pa.timestamp("us")), ("distance", pa.float64())])

# --- physical constants of the simulator -------------------------------------------------

SOUND_SPEED_M_S = 343.0
MIN_DISTANCE_M = 1.0  # spreading is evaluated at no less than this source-node distance
AIR_ATTENUATION_NP_PER_M_HZ = 7e-6  # excess attenuation (air and ground): about 3 dB at 100 m and 500 Hz
MIC_COUNTS_PER_UNIT = 20000.0  # 1 unit is the pressure of an average engine at 1 m
GEO_COUNTS_PER_UNIT = 4000.0
MIC_COUNT_LIMIT = (-32768, 32767)
SPEED_RANGE_M_S = (3.0, 12.0)
TURN_SPEED_M_S = 2.0  # speed at the end points of a back-and-forth road
GPS_NOISE_M = 2.0  # standard deviation per horizontal axis of the correlated GPS error
GPS_NOISE_CORRELATION = 0.9  # AR(1) coefficient between successive 1 Hz fixes
SITE_ELEVATION_M = 221.0
PREROLL_S = 0.5  # simulated before the run starts and dropped, so filters start settled
CONTROL_RATE_HZ = 20.0  # rate of the speed integration, with smooth interpolation in between
EARLY_END_MAX_S = 8.0
GAP_MAX_S = 4.0


@dataclass(frozen=True)
class VehicleClass:
    """Acoustic and seismic signature of one vehicle model.

    Attributes:
        rotation_hz: engine rotation frequency range (low gear start, top of gear), Hz.
        orders: amplitude of engine orders 1, 2, ... relative to the loudest order.
        engine_level: engine loudness at 1 m, in units of an average engine.
        tyre_level: tyre and road noise at 1 m and 8 m/s, same units.
        mass_t: vehicle mass in tonnes, which scales the seismic amplitude.
        resonances: (frequency Hz, quality factor, weight) of axle and suspension modes.
    """

    rotation_hz: tuple[float, float]
    orders: tuple[float, ...]
    engine_level: float
    tyre_level: float
    mass_t: float
    resonances: tuple[tuple[float, float, float], ...]


# Four-cylinder engines radiate mostly even orders (two firings per rotation). The V8
# adds strong odd low orders (rumble) and a dominant fourth order.
CLASSES = {
    "cx30": VehicleClass(
        (20.0, 50.0),
        (0.10, 1.00, 0.15, 0.55, 0.08, 0.30, 0.05, 0.18, 0.03, 0.10, 0.02, 0.06),
        1.0, 0.35, 1.45, ((11.0, 4.0, 1.0), (31.0, 3.0, 0.6)),
    ),
    "gle350": VehicleClass(
        (18.0, 45.0),
        (0.08, 0.85, 0.10, 0.40, 0.05, 0.20, 0.04, 0.12, 0.05, 0.35, 0.03, 0.05),
        0.8, 0.50, 2.20, ((9.0, 4.0, 1.0), (26.0, 3.0, 0.7), (48.0, 5.0, 0.3)),
    ),
    "mustang": VehicleClass(
        (16.0, 48.0),
        (0.45, 0.80, 0.35, 1.00, 0.25, 0.50, 0.15, 0.55, 0.10, 0.20, 0.05, 0.15),
        1.8, 0.40, 1.75, ((12.0, 4.0, 1.0), (37.0, 3.0, 0.5)),
    ),
    "miata": VehicleClass(
        (26.0, 70.0),
        (0.05, 0.70, 0.08, 0.65, 0.06, 0.55, 0.05, 0.40, 0.04, 0.30, 0.03, 0.20),
        1.1, 0.25, 1.05, ((15.0, 4.0, 1.0), (46.0, 3.0, 0.6)),
    ),
}
GEAR_SPEEDS_M_S = (0.0, 4.5, 8.5, 13.0)  # upshift points of the gear model
SEISMIC_ENGINE_COUPLING = 0.12  # engine orders 1-2 that reach the ground, relative to the road excitation

# Ground coupling of a geophone by terrain: (resonance Hz, quality factor, gain).
# Stiff surfaces pass the whole band, while soft soil couples through a low, sharp resonance.
TERRAIN_COUPLING = {
    "asphalt_road": (90.0, 0.9, 1.0),
    "concrete": (95.0, 0.8, 1.05),
    "road_curb": (70.0, 1.2, 0.9),
    "gravel": (45.0, 2.0, 0.8),
    "dirt": (35.0, 2.5, 0.7),
    "grass": (25.0, 3.0, 0.55),
}


@dataclass(frozen=True)
class SceneSpec:
    """Fixed description of one scene.

    Attributes:
        sensor_ids: node ids as in the release (``rs<m>``, not contiguous).
        terrain: terrain under each node.
        layout_enu: node positions (east, north) in meters from ``origin``, or None
            when ``layout_geodetic`` gives the coordinates.
        layout_geodetic: node (latitude, longitude) in degrees, or None.
        origin: (latitude, longitude) of the ENU origin in degrees, or None to center
            the frame on the nodes.
        track: track vertices (east, north) in meters in the scene's ENU frame.
        closed: True for a loop, False for a road driven back and forth.
        classes: vehicle classes present.
        vehicles_per_run: 1, or 2 for the scene with two vehicles at once.
        seismic_speed_m_s: surface-wave speed.
        seismic_q: quality factor of the surface-wave attenuation.
        wind: wind noise level on the microphones (1 is a moderate breeze).
        rain: whether rain hiss is added.
    """

    sensor_ids: tuple[str, ...]
    terrain: tuple[str, ...]
    layout_enu: tuple[tuple[float, float], ...] | None
    layout_geodetic: tuple[tuple[float, float], ...] | None
    origin: tuple[float, float] | None
    track: tuple[tuple[float, float], ...]
    closed: bool
    classes: tuple[str, ...]
    vehicles_per_run: int
    seismic_speed_m_s: float
    seismic_q: float
    wind: float
    rain: bool


_H08_LAYOUT = ((-30.0, -4.0), (0.0, 3.0), (28.0, -3.0), (-20.0, 15.0), (15.0, 18.0), (0.0, 32.0))
# h24 redeploys the h08 node set with every node moved by a few meters.
_H24_OFFSETS = ((2.1, -1.4), (-1.8, 2.6), (3.0, 0.9), (-2.4, -2.2), (1.2, 3.1), (-3.3, 1.5))
_H08_TRACK = ((-45.0, -9.0), (45.0, -9.0), (45.0, 38.0), (-45.0, 38.0))

SCENES = {
    "h08": SceneSpec(
        ("rs1", "rs2", "rs3", "rs5", "rs6", "rs8"),
        ("road_curb", "asphalt_road", "road_curb", "gravel", "gravel", "asphalt_road"),
        _H08_LAYOUT, None, (40.0913, -88.2155),
        _H08_TRACK, True, VEHICLE_CLASSES, 1, 250.0, 20.0, 0.3, False,
    ),
    "h24": SceneSpec(
        ("rs1", "rs2", "rs3", "rs5", "rs6", "rs8"),
        ("road_curb", "asphalt_road", "road_curb", "gravel", "gravel", "asphalt_road"),
        tuple((x + dx, y + dy) for (x, y), (dx, dy) in zip(_H08_LAYOUT, _H24_OFFSETS)), None, (40.0880, -88.2205),
        _H08_TRACK, True, VEHICLE_CLASSES, 1, 250.0, 20.0, 0.5, True,
    ),
    # s31 uses the node coordinates of the real release.
    "s31": SceneSpec(
        ("rs1", "rs2", "rs5", "rs6", "rs7", "rs8"),
        ("dirt", "gravel", "dirt", "grass", "gravel", "dirt"),
        None,
        (
            (40.096379, -88.224714), (40.096373, -88.225168), (40.096089, -88.224689),
            (40.096109, -88.225360), (40.096668, -88.224669), (40.096638, -88.225354),
        ),
        None,
        ((-45.0, 8.0), (45.0, 8.0), (45.0, -45.0), (-45.0, -45.0)), True, VEHICLE_CLASSES, 1, 180.0, 15.0, 0.4, False,
    ),
    "a06": SceneSpec(
        ("rs2", "rs3", "rs4", "rs6", "rs7", "rs9"),
        ("asphalt_road", "road_curb", "asphalt_road", "road_curb", "asphalt_road", "grass"),
        ((-28.0, -10.0), (5.0, -12.0), (30.0, -9.0), (-30.0, 12.0), (2.0, 14.0), (29.0, 11.0)), None, (40.0985, -88.2130),
        ((-50.0, -4.0), (0.0, 2.0), (50.0, -3.0)), False, ("cx30", "gle350", "miata"), 1, 300.0, 25.0, 0.3, False,
    ),
    "i29": SceneSpec(
        ("rs1", "rs2", "rs4", "rs5", "rs6", "rs7", "rs9", "rs10"),
        ("concrete", "concrete", "grass", "concrete", "grass", "concrete", "road_curb", "concrete"),
        ((-35.0, -15.0), (-12.0, -20.0), (12.0, -16.0), (36.0, -14.0), (-34.0, 16.0), (-10.0, 19.0), (14.0, 15.0), (36.0, 18.0)),
        None, (40.0852, -88.2270),
        ((-48.0, -30.0), (48.0, -30.0), (48.0, 30.0), (-48.0, 30.0)), True, VEHICLE_CLASSES, 1, 350.0, 25.0, 3.0, False,
    ),
    "i22": SceneSpec(
        ("rs1", "rs3", "rs4", "rs5", "rs6", "rs7", "rs8", "rs10"),
        ("concrete", "concrete", "road_curb", "concrete", "concrete", "road_curb", "concrete", "grass"),
        ((-30.0, -20.0), (-5.0, -26.0), (24.0, -22.0), (33.0, 2.0), (18.0, 24.0), (-6.0, 26.0), (-31.0, 16.0), (2.0, 1.0)),
        None, (40.0935, -88.2330),
        ((-42.0, -12.0), (-22.0, -34.0), (22.0, -34.0), (44.0, -12.0), (44.0, 12.0), (22.0, 34.0), (-22.0, 34.0), (-42.0, 12.0)),
        True, ("cx30", "mustang", "miata"), 2, 350.0, 25.0, 0.4, False,
    ),
}


# --- configuration and run plan -----------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated ``synth.m3nvc`` parameters."""

    seed: int
    scenes: tuple[str, ...]
    train_run_s: int
    test_run_s: int
    mic_rate_hz: int
    geo_rate_hz: int
    start_us: int  # first run's start, microseconds since the Unix epoch (UTC)


@dataclass(frozen=True)
class RunPlan:
    """One run of one scene, with times in microseconds since the Unix epoch (UTC)."""

    run_id: int
    scene: str
    index: int  # position of the run within its scene, used to seed its random numbers
    label: str
    split: str
    vehicles: tuple[str, ...]
    start_us: int
    length_s: int

    @property
    def end_us(self) -> int:
        return self.start_us + self.length_s * 1_000_000


def _require_int(cfg: dict, key: str, minimum: int) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or float(value) != int(value):
        raise ValueError(f"synth.m3nvc.{key} must be a whole number, got {value!r}; fix it in params.yaml")
    if int(value) < minimum:
        raise ValueError(f"synth.m3nvc.{key} must be at least {minimum}, got {value!r}; fix it in params.yaml")
    return int(value)


def parse_settings(cfg: dict) -> Settings:
    """Validate the ``synth.m3nvc`` mapping and return it as ``Settings``.

    Raises:
        ValueError: naming the key, the invalid value and the accepted values.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"synth.m3nvc must be a mapping, got {type(cfg).__name__}")
    missing = [k for k in ("seed", "scenes", "train_run_s", "test_run_s", "mic_rate_hz", "geo_rate_hz", "start") if k not in cfg]
    if missing:
        raise ValueError(f"synth.m3nvc is missing {', '.join(missing)}; add them to params.yaml")

    scenes = cfg["scenes"]
    if isinstance(scenes, str) or not isinstance(scenes, (list, tuple)) or not scenes:
        raise ValueError(f"synth.m3nvc.scenes must be a non-empty list of scene names, got {scenes!r}")
    unknown = [s for s in scenes if s not in SCENES]
    if unknown:
        raise ValueError(f"synth.m3nvc.scenes contains unknown scenes {unknown}; known scenes: {', '.join(SCENES)}")
    if len(set(scenes)) != len(scenes):
        raise ValueError(f"synth.m3nvc.scenes lists a scene twice: {scenes}")

    try:
        start = dt.datetime.fromisoformat(str(cfg["start"]))
    except ValueError as err:
        raise ValueError(f"synth.m3nvc.start {cfg['start']!r} is not an ISO 8601 time such as 2023-06-12T15:00:00Z") from err
    if start.tzinfo is None:
        raise ValueError(f"synth.m3nvc.start {cfg['start']!r} has no time zone; append Z for UTC")
    start_us = (start - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)

    return Settings(
        seed=_require_int(cfg, "seed", 0),
        scenes=tuple(scenes),
        train_run_s=_require_int(cfg, "train_run_s", 2),
        test_run_s=_require_int(cfg, "test_run_s", 2),
        mic_rate_hz=_require_int(cfg, "mic_rate_hz", 400),
        geo_rate_hz=_require_int(cfg, "geo_rate_hz", 50),
        start_us=start_us,
    )


def scene_code(scene: str) -> int:
    """Return a stable integer for a scene name, used to seed its random numbers."""
    return zlib.crc32(scene.encode("ascii"))


def _rng(settings: Settings, *keys: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, *keys])


def run_labels(spec: SceneSpec) -> list[tuple[str, tuple[str, ...]]]:
    """Return (label, vehicles) of the vehicle runs of one scene, in recording order."""
    if spec.vehicles_per_run == 1:
        return [(c, (c,)) for c in spec.classes]
    pairs = [(a, b) for i, a in enumerate(spec.classes) for b in spec.classes[i + 1 :]]
    return [("+".join(p), p) for p in pairs]


def plan_runs(settings: Settings) -> list[RunPlan]:
    """Lay out every run of every scene in time.

    Scene k starts k days after ``start``. Inside a scene the training runs come
    first (vehicles, then background), then the test runs in the same order, each
    starting 3-8 s after the previous one ends.
    """
    runs: list[RunPlan] = []
    run_id = 1
    for k, scene in enumerate(settings.scenes):
        spec = SCENES[scene]
        rng = _rng(settings, scene_code(scene), 0)
        order = [(split, label, vehicles) for split in ("train", "test") for label, vehicles in [*run_labels(spec), (BACKGROUND, ())]]
        start_us = settings.start_us + k * 86_400 * 1_000_000
        for index, (split, label, vehicles) in enumerate(order):
            length_s = settings.train_run_s if split == "train" else settings.test_run_s
            runs.append(RunPlan(run_id, scene, index, label, split, vehicles, start_us, length_s))
            start_us += (length_s + int(rng.integers(3, 9))) * 1_000_000
            run_id += 1
    return runs


def early_end_target(runs: list[RunPlan]) -> tuple[int, int, float]:
    """Return (run_id, node index, seconds cut) of the node whose recording ends early."""
    first_scene = runs[0].scene
    run = next(r for r in runs if r.scene == first_scene and r.split == "test")
    return run.run_id, 1, min(EARLY_END_MAX_S, 0.25 * run.length_s)


def gap_target(runs: list[RunPlan]) -> tuple[int, int, float, float]:
    """Return (run_id, node index, gap start s, gap length s) of the geophone gap."""
    last_scene = runs[-1].scene
    run = next(r for r in runs if r.scene == last_scene and r.split == "train")
    return run.run_id, len(SCENES[last_scene].sensor_ids) - 1, 0.4 * run.length_s, min(GAP_MAX_S, 0.2 * run.length_s)


# --- geometry and motion -------------------------------------------------------------------


@dataclass
class SceneGeometry:
    """Node positions of one scene in its ENU frame."""

    frame: EnuFrame
    nodes_enu: np.ndarray  # (n_nodes, 2) east, north in meters
    latitude: np.ndarray  # (n_nodes,) degrees
    longitude: np.ndarray  # (n_nodes,) degrees


def scene_geometry(spec: SceneSpec) -> SceneGeometry:
    """Build the ENU frame and both coordinate forms of the nodes of a scene."""
    if spec.layout_geodetic is not None:
        lat_lon = np.asarray(spec.layout_geodetic, dtype=float)
        frame = EnuFrame.centered_on(lat_lon[:, 0], lat_lon[:, 1])
        nodes = frame.to_enu(lat_lon[:, 0], lat_lon[:, 1])[:, :2]
        return SceneGeometry(frame, nodes, lat_lon[:, 0], lat_lon[:, 1])
    frame = EnuFrame(*spec.origin)
    nodes = np.asarray(spec.layout_enu, dtype=float)
    geodetic = frame.to_geodetic(nodes[:, 0], nodes[:, 1])
    return SceneGeometry(frame, nodes, geodetic[:, 0], geodetic[:, 1])


def _chaikin(points: np.ndarray, closed: bool, iterations: int = 3) -> np.ndarray:
    """Round the corners of a polyline by repeated corner cutting (1/4 and 3/4 points)."""
    for _ in range(iterations):
        ends = np.roll(points, -1, axis=0) if closed else points[1:]
        starts = points if closed else points[:-1]
        cut = np.empty((2 * len(starts), 2))
        cut[0::2] = 0.75 * starts + 0.25 * ends
        cut[1::2] = 0.25 * starts + 0.75 * ends
        points = cut if closed else np.vstack([points[:1], cut, points[-1:]])
    return points


class Track:
    """A drivable path: a closed loop, or an open road driven back and forth.

    The corners of the vertex polygon are rounded, and ``scale`` shrinks or grows it
    about the vertices' mean. Positions are parameterised by the path coordinate
    ``u`` in meters along the path, 0 <= u <= length.
    """

    def __init__(self, vertices, closed: bool, scale: float = 1.0):
        vertices = np.asarray(vertices, dtype=float)
        centre = vertices.mean(axis=0)
        points = _chaikin(centre + scale * (vertices - centre), closed)
        if closed:
            points = np.vstack([points, points[:1]])
        self.closed = closed
        self.points = points
        self.cumulative = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
        self.length = float(self.cumulative[-1])

    def position(self, u: np.ndarray) -> np.ndarray:
        """Return (east, north) in meters, shape ``u.shape + (2,)``, for path coordinates u."""
        u = np.mod(u, self.length) if self.closed else np.clip(u, 0.0, self.length)
        east = np.interp(u, self.cumulative, self.points[:, 0])
        north = np.interp(u, self.cumulative, self.points[:, 1])
        return np.stack([east, north], axis=-1)


def _speed_profile(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Return a smooth cruising speed in m/s at times t (s), inside SPEED_RANGE_M_S."""
    mean = rng.uniform(6.0, 9.0)
    slow = rng.uniform(1.5, 3.0) * np.sin(2 * np.pi * t / rng.uniform(20.0, 40.0) + rng.uniform(0, 2 * np.pi))
    fast = rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * t / rng.uniform(7.0, 13.0) + rng.uniform(0, 2 * np.pi))
    return np.clip(mean + slow + fast, *SPEED_RANGE_M_S)


def drive(rng: np.random.Generator, track: Track, t0: float, t1: float, reverse: bool = False):
    """Integrate one vehicle's motion along a track.

    On an open road the vehicle slows to TURN_SPEED_M_S over the last 15 m before
    each end point and turns around there.

    Args:
        rng: random numbers for the start point and the speed profile.
        track: path to follow.
        t0, t1: time span in seconds relative to the run start.
        reverse: drive a loop in the negative direction.

    Returns:
        ``(path, speed)``: callables of time (s) that return the path coordinate u (m)
        and the speed (m/s), smooth in between the CONTROL_RATE_HZ integration steps.
    """
    t = np.arange(t0, t1 + 2.0 / CONTROL_RATE_HZ, 1.0 / CONTROL_RATE_HZ)
    cruise = _speed_profile(rng, t)
    u = np.empty_like(t)
    speed = np.empty_like(t)
    u[0] = rng.uniform(0.0, track.length)
    direction = -1.0 if reverse else 1.0
    step = 1.0 / CONTROL_RATE_HZ
    for i in range(len(t)):
        v = cruise[i]
        if not track.closed:
            to_end = track.length - u[i] if direction > 0 else u[i]
            v = max(v * min(to_end / 15.0, 1.0), TURN_SPEED_M_S)
        speed[i] = v
        if i + 1 < len(t):
            u[i + 1] = u[i] + direction * v * step
            if not track.closed and not 0.0 <= u[i + 1] <= track.length:
                u[i + 1] = np.clip(u[i + 1], 0.0, track.length)
                direction = -direction
    return interpolate.PchipInterpolator(t, u), interpolate.PchipInterpolator(t, speed)


# --- filters --------------------------------------------------------------------------------


def _resonator(f_hz: float, q: float, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass biquad with unit gain and zero phase at f_hz."""
    return signal.iirpeak(min(f_hz, 0.45 * rate_hz), q, fs=rate_hz)


def _peaking_sos(f_hz: float, gain_db: float, q: float, rate_hz: float) -> np.ndarray:
    """Peaking equaliser: the input plus (gain - 1) times a resonator at f_hz."""
    b, a = _resonator(f_hz, q, rate_hz)
    gain = 10 ** (gain_db / 20)
    return signal.tf2sos(a + (gain - 1.0) * b, a)


def _low_shelf_sos(f_hz: float, gain_db: float, rate_hz: float) -> np.ndarray:
    """First-order low shelf: the input plus (gain - 1) times its low-passed copy."""
    b, a = signal.butter(1, f_hz, btype="low", fs=rate_hz)
    gain = 10 ** (gain_db / 20)
    return signal.tf2sos(a + (gain - 1.0) * b, a)


def _resonant_lowpass_sos(f_hz: float, q: float, rate_hz: float) -> np.ndarray:
    """Second-order low-pass with quality factor q (bilinear transform, pre-warped at f_hz)."""
    f_hz = min(f_hz, 0.45 * rate_hz)
    w0 = 2 * rate_hz * np.tan(np.pi * f_hz / rate_hz)
    b, a = signal.bilinear([w0**2], [1.0, w0 / q, w0**2], fs=rate_hz)
    return signal.tf2sos(b, a)


@dataclass
class NodeResponse:
    """Fixed per-node sensor response: filters (second-order sections) and gains."""

    mic_sos: np.ndarray
    mic_gain: float
    geo_sos: np.ndarray
    geo_gain: float
    wind_exposure: float


def node_response(rng: np.random.Generator, terrain: str, mic_rate: float, geo_rate: float) -> NodeResponse:
    """Draw one node's microphone and geophone responses.

    The microphone gets a 20-40 Hz high-pass, a random resonance (80-600 Hz, +/-6 dB)
    and a random tilt (low shelf at 200 Hz, +/-4 dB). The geophone gets a 4.5 Hz
    high-pass (the sensor's natural frequency), the terrain's coupling resonance and
    a random resonance (8-60 Hz, +/-5 dB).
    """
    if terrain not in TERRAIN_COUPLING:
        raise ValueError(f"terrain {terrain!r} has no ground coupling model; known: {', '.join(TERRAIN_COUPLING)}")
    mic_sos = np.vstack(
        [
            signal.butter(2, rng.uniform(20.0, 40.0), btype="high", fs=mic_rate, output="sos"),
            _peaking_sos(np.exp(rng.uniform(np.log(80.0), np.log(600.0))), rng.uniform(-6, 6), rng.uniform(1, 3), mic_rate),
            _low_shelf_sos(200.0, rng.uniform(-4, 4), mic_rate),
        ]
    )
    coupling_hz, coupling_q, coupling_gain = TERRAIN_COUPLING[terrain]
    geo_sos = np.vstack(
        [
            signal.butter(2, 4.5, btype="high", fs=geo_rate, output="sos"),
            _resonant_lowpass_sos(coupling_hz, coupling_q, geo_rate),
            _peaking_sos(np.exp(rng.uniform(np.log(8.0), np.log(60.0))), rng.uniform(-5, 5), rng.uniform(1, 3), geo_rate),
        ]
    )
    return NodeResponse(
        mic_sos=mic_sos,
        mic_gain=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))),
        geo_sos=geo_sos,
        geo_gain=coupling_gain * float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))),
        wind_exposure=float(rng.uniform(0.6, 1.4)),
    )


def split_bands(x: np.ndarray, rate_hz: float, edges_hz, top_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a signal into frequency bands whose sum is the signal.

    Args:
        x: signal, shape (n,).
        rate_hz: sample rate.
        edges_hz: inner band edges, increasing.
        top_hz: highest frequency the signal contains, which sets the top band's centre.

    Returns:
        ``(bands, centers)``: shape (n_bands, n) and the bands' geometric centre
        frequencies in Hz (the lowest band's centre is half its upper edge).
    """
    n_fft = sp_fft.next_fast_len(len(x), real=True)
    spectrum = sp_fft.rfft(x, n_fft)
    freqs = sp_fft.rfftfreq(n_fft, 1.0 / rate_hz)
    bounds = np.concatenate([[0.0], edges_hz, [np.inf]])
    masks = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in zip(bounds[:-1], bounds[1:])])
    bands = sp_fft.irfft(spectrum * masks, n_fft, axis=-1)[:, : len(x)]
    centers = np.array([np.sqrt(max(lo, hi / 4) * min(hi, top_hz)) for lo, hi in zip(bounds[:-1], bounds[1:])])
    return bands, centers


# --- sources ---------------------------------------------------------------------------------


@dataclass
class VehicleSource:
    """Signals a vehicle emits, sampled on emission-time grids (seconds from run start).

    Acoustic quantities are on ``t_air`` and seismic ones on ``t_ground``. Positions
    are on both grids, shape (n, 2) in meters. Amplitudes are in pressure or ground
    motion units at 1 m from the vehicle.
    """

    t_air: np.ndarray
    pos_air: np.ndarray
    phase: np.ndarray  # engine rotation phase, radians
    rotation_hz: np.ndarray
    loudness: np.ndarray  # engine amplitude at 1 m, so order k has amplitude loudness * orders[k - 1]
    orders: np.ndarray  # (n_orders,) relative amplitude of engine orders 1, 2, ...
    order_limit_hz: float  # orders fade out over the last 10 % below this frequency (anti-aliasing)
    tyre_bands: np.ndarray  # (n_bands, n) tyre noise at 1 m
    tyre_centers_hz: np.ndarray
    t_ground: np.ndarray
    pos_ground: np.ndarray
    seismic_bands: np.ndarray  # (n_bands, n) ground motion at 1 m
    seismic_centers_hz: np.ndarray


def _rotation_frequency(vehicle: VehicleClass, speed: np.ndarray) -> np.ndarray:
    """Return the engine rotation frequency in Hz, which rises with speed inside each gear and drops at upshifts."""
    edges = np.asarray(GEAR_SPEEDS_M_S)
    gear = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, len(edges) - 2)
    fraction = np.clip((speed - edges[gear]) / (edges[gear + 1] - edges[gear]), 0.0, 1.0)
    low, high = vehicle.rotation_hz
    return low + (high - low) * (0.25 + 0.75 * fraction)


def vehicle_source(
    rng: np.random.Generator, vehicle: VehicleClass, path, speed_fn, track: Track, t0: float, t1: float, settings: Settings
) -> VehicleSource:
    """Compute one vehicle's emitted signals between t0 and t1 (seconds from run start).

    The acoustic grid runs at twice the microphone rate, the seismic grid at four
    times the geophone rate, so interpolating at retarded times loses little.
    """
    air_rate = 2.0 * settings.mic_rate_hz
    air_limit = 0.45 * settings.mic_rate_hz
    t_air = np.arange(t0, t1, 1.0 / air_rate)
    speed = speed_fn(t_air)
    accel = speed_fn.derivative()(t_air)

    # Engine: the rotation follows the gear model with a slight throttle wobble.
    rotation = _rotation_frequency(vehicle, speed) * (1.0 + 0.02 * np.sin(2 * np.pi * 0.7 * t_air + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(rotation) / air_rate
    load = np.clip(0.6 + 0.3 * accel, 0.3, 1.2)  # louder under acceleration
    loudness = vehicle.engine_level * load * np.sqrt(rotation / 30.0)

    # Tyres: band-limited noise that grows with the square of the speed.
    tyre = rng.standard_normal(len(t_air))
    tyre = signal.sosfilt(signal.butter(2, [150.0, air_limit], btype="band", fs=air_rate, output="sos"), tyre)
    tyre *= vehicle.tyre_level * (speed / 8.0) ** 2 / np.std(tyre)
    tyre_bands, tyre_centers = split_bands(tyre, air_rate, [150.0, 300.0, 500.0], air_limit)

    # Ground: road roughness through the axle and suspension resonances, plus engine orders 1-2.
    ground_rate = 4.0 * settings.geo_rate_hz
    ground_limit = 0.45 * settings.geo_rate_hz
    t_ground = np.arange(t0, t1, 1.0 / ground_rate)
    roughness = rng.standard_normal(len(t_ground))
    seismic = np.zeros_like(roughness)
    for f_hz, q, weight in vehicle.resonances:
        b, a = _resonator(f_hz, q, ground_rate)
        seismic += weight * signal.lfilter(b, a, roughness)
    seismic *= vehicle.mass_t * (speed_fn(t_ground) / 8.0) / np.std(seismic)
    ground_phase = np.interp(t_ground, t_air, phase)
    ground_rotation = np.interp(t_ground, t_air, rotation)
    for order in (1, 2):
        below_limit = order * ground_rotation < ground_limit
        seismic += SEISMIC_ENGINE_COUPLING * vehicle.mass_t * np.sin(order * ground_phase) * below_limit
    seismic = signal.sosfilt(signal.butter(2, [3.0, ground_limit], btype="band", fs=ground_rate, output="sos"), seismic)
    seismic_bands, seismic_centers = split_bands(seismic, ground_rate, [6.0, 10.0, 16.0, 25.0, 40.0, 64.0], ground_limit)

    return VehicleSource(
        t_air=t_air,
        pos_air=track.position(path(t_air)),
        phase=phase,
        rotation_hz=rotation,
        loudness=loudness,
        orders=np.asarray(vehicle.orders),
        order_limit_hz=air_limit,
        tyre_bands=tyre_bands,
        tyre_centers_hz=tyre_centers,
        t_ground=t_ground,
        pos_ground=track.position(path(t_ground)),
        seismic_bands=seismic_bands,
        seismic_centers_hz=seismic_centers,
    )


# --- propagation ---------------------------------------------------------------------------


class GridSampler:
    """Linear interpolation at fixed query times on a uniform grid, reusable for many signals.

    Args:
        t_grid: uniform, increasing grid times in seconds, shape (m,).
        tau: query times in seconds inside the grid, any shape.
    """

    def __init__(self, t_grid: np.ndarray, tau: np.ndarray):
        position = (tau - t_grid[0]) / (t_grid[1] - t_grid[0])
        if position.min() < 0 or position.max() > len(t_grid) - 1:
            raise ValueError(f"query times {tau.min():.3f}-{tau.max():.3f} s leave the source grid {t_grid[0]:.3f}-{t_grid[-1]:.3f} s")
        self.index = np.minimum(position.astype(np.int64), len(t_grid) - 2)
        self.weight = position - self.index

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Interpolate values of shape (..., m) at the query times and return shape (..., *tau.shape)."""
        below = np.take(values, self.index, axis=-1)
        return below + self.weight * (np.take(values, self.index + 1, axis=-1) - below)


def retarded_time(t: np.ndarray, t_grid: np.ndarray, pos_grid: np.ndarray, node: np.ndarray, speed_m_s: float):
    """Solve tau + r(tau) / c = t for the emission time tau of every receive time t.

    Fixed-point iteration: each step shrinks the error by the factor v / c (below 0.07
    here), so four steps reach about 10 microseconds.

    Args:
        t: receive times in seconds, shape (n,).
        t_grid, pos_grid: source positions (m) on a uniform time grid, shapes (m,) and (m, 2).
        node: receiver (east, north) in meters.
        speed_m_s: propagation speed.

    Returns:
        ``(sampler, r)``: a GridSampler at the emission times, and the source-node
        distances in meters (at least MIN_DISTANCE_M), shape (n,).
    """
    tau = t
    for _ in range(4):
        east, north = GridSampler(t_grid, tau)(pos_grid.T)
        r = np.maximum(np.hypot(east - node[0], north - node[1]), MIN_DISTANCE_M)
        tau = t - r / speed_m_s
    return GridSampler(t_grid, tau), r


def received_sound(source: VehicleSource, node: np.ndarray, t: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Return the sound pressure that reaches ``node`` at times t (s), before the sensor response.

    Pressure units: 1 is the pressure of an average engine at 1 m.
    """
    at_emission, r = retarded_time(t, source.t_air, source.pos_air, node, SOUND_SPEED_M_S)
    phase = at_emission(source.phase)
    rotation = at_emission(source.rotation_hz)

    # Order k is Im(w**k * c_k) with w = exp(-alpha f r + i phase), so its attenuation
    # exp(-alpha k f r) and phase k * phase come from one complex exponential and a product.
    n_orders = len(source.orders)
    orders = np.arange(1, n_orders + 1)[:, None]
    w = np.exp(-AIR_ATTENUATION_NP_PER_M_HZ * rotation * r + 1j * phase)
    powers = np.cumprod(np.broadcast_to(w, (n_orders, len(w))), axis=0)
    taper = np.clip((source.order_limit_hz - orders * rotation) / (0.1 * source.order_limit_hz), 0.0, 1.0)
    weights = (source.orders * np.exp(1j * phases))[:, None] * taper
    pressure = at_emission(source.loudness) * np.einsum("kn,kn->n", weights, powers).imag

    tyre_loss = np.exp(-AIR_ATTENUATION_NP_PER_M_HZ * source.tyre_centers_hz[:, None] * r)
    pressure += np.einsum("bn,bn->n", at_emission(source.tyre_bands), tyre_loss)
    return pressure / r


def received_ground_motion(source: VehicleSource, node: np.ndarray, t: np.ndarray, speed_m_s: float, q: float) -> np.ndarray:
    """Return the surface-wave ground motion that reaches ``node`` at times t (s), before the sensor response."""
    at_emission, r = retarded_time(t, source.t_ground, source.pos_ground, node, speed_m_s)
    loss = np.exp(-np.pi * source.seismic_centers_hz[:, None] * r / (q * speed_m_s))
    return np.einsum("bn,bn->n", at_emission(source.seismic_bands), loss) / np.sqrt(r)


# --- noise -----------------------------------------------------------------------------------


def coloured_noise(rng: np.random.Generator, n: int, rate_hz: float, corner_hz: float) -> np.ndarray:
    """Return n samples of unit-RMS noise, roughly 1/f between corner_hz and 64 * corner_hz.

    The noise is the sum of three one-pole low-passes of white noise, at corner_hz,
    8 * corner_hz and 64 * corner_hz, plus a little white noise.
    """
    white = rng.standard_normal((3, n))
    out = np.zeros(n)
    for i, f_hz in enumerate((corner_hz, 8 * corner_hz, 64 * corner_hz)):
        pole = np.exp(-2 * np.pi * min(f_hz, 0.4 * rate_hz) / rate_hz)
        out += signal.lfilter([1.0 - pole], [1.0, -pole], white[i]) / np.sqrt((1.0 - pole) / (1.0 + pole))
    out += 0.3 * rng.standard_normal(n)
    return out / np.std(out)


def gust_envelope(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Return a positive, slowly varying wind strength (mean about 1) at times t (s), with gusts every few seconds."""
    coarse_t = np.arange(t[0] - 1.0, t[-1] + 2.0, 0.1)
    slow = signal.lfilter([0.05], [1.0, -0.95], rng.standard_normal(len(coarse_t)))
    slow /= np.std(slow)
    return np.interp(t, coarse_t, np.exp(0.6 * slow - 0.18))


def microphone_noise(rng: np.random.Generator, t: np.ndarray, rate_hz: float, spec: SceneSpec, exposure: float) -> np.ndarray:
    """Return ambient sound, wind noise and (in rain) hiss at one microphone, in pressure units."""
    n = len(t)
    noise = 0.004 * coloured_noise(rng, n, rate_hz, 10.0)

    wind = signal.sosfilt(signal.butter(2, 30.0, btype="low", fs=rate_hz, output="sos"), rng.standard_normal(n))
    noise += 0.01 * spec.wind * exposure * gust_envelope(rng, t) * wind / np.std(wind)

    if spec.rain:
        hiss = signal.sosfilt(signal.butter(2, 400.0, btype="high", fs=rate_hz, output="sos"), rng.standard_normal(n))
        drops = (rng.random(n) < 150.0 / rate_hz) * rng.exponential(1.0, n)
        drops = signal.sosfilt(signal.butter(2, [0.25 * rate_hz, 0.4 * rate_hz], btype="band", fs=rate_hz, output="sos"), drops)
        noise += 0.006 * hiss / np.std(hiss) + 0.004 * drops / max(np.std(drops), 1e-12)
    return noise


def geophone_noise(rng: np.random.Generator, t: np.ndarray, rate_hz: float, spec: SceneSpec) -> np.ndarray:
    """Return ground noise at one geophone (coloured, plus ground shaken by wind), in ground motion units."""
    n = len(t)
    noise = 0.01 * coloured_noise(rng, n, rate_hz, 2.0)
    sway = signal.sosfilt(signal.butter(2, 8.0, btype="low", fs=rate_hz, output="sos"), rng.standard_normal(n))
    noise += 0.003 * spec.wind * gust_envelope(rng, t) * sway / np.std(sway)
    if spec.rain:
        noise += 0.004 * rng.standard_normal(n)
    return noise


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RunSignals:
    """Simulated recordings of one run.

    Attributes:
        mic: (n_nodes, length_s * mic_rate) microphone counts (int16 range).
        geo: (n_nodes, length_s * geo_rate) geophone counts.
        gps: per vehicle, (length_s, 2) noisy east, north in meters at whole seconds.
    """

    mic: np.ndarray
    geo: np.ndarray
    gps: list[np.ndarray]


def simulate_run(run: RunPlan, settings: Settings, geometry: SceneGeometry, responses: list[NodeResponse]) -> RunSignals:
    """Simulate every node of one run. The module docstring describes the physics."""
    spec = SCENES[run.scene]
    code = scene_code(run.scene)
    nodes = geometry.nodes_enu
    preroll_mic = round(PREROLL_S * settings.mic_rate_hz)
    preroll_geo = round(PREROLL_S * settings.geo_rate_hz)
    t_mic = np.arange(-preroll_mic, run.length_s * settings.mic_rate_hz) / settings.mic_rate_hz
    t_geo = np.arange(-preroll_geo, run.length_s * settings.geo_rate_hz) / settings.geo_rate_hz

    # Sources. A second vehicle drives the other way on an inner lane (the track scaled
    # by 0.8 about its centre), so the two never collide. Emission starts early enough
    # for the farthest track point to reach every node before the pre-roll.
    tracks = [Track(spec.track, spec.closed, scale=1.0 if v == 0 else 0.8) for v in range(len(run.vehicles))]
    reach = max((np.max(np.linalg.norm(tr.points[:, None, :] - nodes[None, :, :], axis=-1)) for tr in tracks), default=0.0)
    t0 = -PREROLL_S - reach / min(SOUND_SPEED_M_S, spec.seismic_speed_m_s) - 0.5
    t1 = run.length_s + 1.0
    sources, phases, gps = [], [], []
    for v, (name, track) in enumerate(zip(run.vehicles, tracks)):
        rng = _rng(settings, code, run.index, 1, v)
        path, speed = drive(rng, track, t0, t1, reverse=(v == 1))
        sources.append(vehicle_source(rng, CLASSES[name], path, speed, track, t0, t1, settings))
        phases.append(rng.uniform(0, 2 * np.pi, len(CLASSES[name].orders)))
        gps.append(_gps_track(rng, track.position(path(np.arange(run.length_s, dtype=float)))))

    # Receivers. The microphones are simulated directly at mic_rate_hz.
    # NOTE: the release decimated 16 kHz audio without an anti-alias filter, and this simulator does not reproduce that aliasing.
    mic = np.empty((len(nodes), run.length_s * settings.mic_rate_hz), dtype=np.int64)
    geo = np.empty((len(nodes), run.length_s * settings.geo_rate_hz), dtype=np.int64)
    for i, (node, response) in enumerate(zip(nodes, responses)):
        rng = _rng(settings, code, run.index, 2, i)

        sound = microphone_noise(rng, t_mic, settings.mic_rate_hz, spec, response.wind_exposure)
        for source, phase in zip(sources, phases):
            sound += received_sound(source, node, t_mic, phase)
        sound = response.mic_gain * signal.sosfilt(response.mic_sos, sound)
        sound += 0.0005 * rng.standard_normal(len(sound))  # electronic self-noise
        counts = np.rint(sound[preroll_mic:] * MIC_COUNTS_PER_UNIT)
        mic[i] = np.clip(counts, *MIC_COUNT_LIMIT).astype(np.int64)

        motion = geophone_noise(rng, t_geo, settings.geo_rate_hz, spec)
        for source in sources:
            motion += received_ground_motion(source, node, t_geo, spec.seismic_speed_m_s, spec.seismic_q)
        motion = response.geo_gain * signal.sosfilt(response.geo_sos, motion)
        motion += 0.002 * rng.standard_normal(len(motion))
        geo[i] = np.rint(motion[preroll_geo:] * GEO_COUNTS_PER_UNIT).astype(np.int64)
    return RunSignals(mic, geo, gps)


def _gps_track(rng: np.random.Generator, true_enu: np.ndarray) -> np.ndarray:
    """Add correlated AR(1) GPS error (GPS_NOISE_M per axis) to true positions, shape (n, 2) m."""
    rho = GPS_NOISE_CORRELATION
    before = rng.standard_normal((1, 2)) * GPS_NOISE_M  # error one second before the first fix (stationary start)
    white = rng.standard_normal(true_enu.shape) * GPS_NOISE_M * np.sqrt(1.0 - rho**2)
    error, _ = signal.lfilter([1.0], [1.0, -rho], white, axis=0, zi=rho * before)
    return true_enu + error


# --- writing ---------------------------------------------------------------------------------


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a table with zstd, with compact encodings for regular timestamps and samples."""
    encodings = {}
    for name in table.column_names:
        if name == "timestamp":
            encodings[name] = "BYTE_STREAM_SPLIT"
        elif name == "samples":
            encodings[name] = "DELTA_BINARY_PACKED"
    dictionary = [n for n in table.column_names if n not in encodings]
    pq.write_table(table, path, compression="zstd", compression_level=9, use_dictionary=dictionary, column_encoding=encodings or None)


def _utc_us(values_us) -> pa.Array:
    return pa.array(np.asarray(values_us, dtype=np.int64), type=pa.int64()).cast(pa.timestamp("us"))


def write_scene(scene_dir: Path, runs: list[RunPlan], settings: Settings, all_runs: list[RunPlan], progress: tqdm) -> dict[str, int]:
    """Simulate and write every file of one scene into scene_dir, and return counts of files and samples.

    ``all_runs`` is the plan of every configured scene, which decides which run carries
    the deliberate early end and gap.
    """
    scene = runs[0].scene
    spec = SCENES[scene]
    geometry = scene_geometry(spec)
    code = scene_code(scene)
    responses = [
        node_response(_rng(settings, code, 10_000, i), terrain, settings.mic_rate_hz, settings.geo_rate_hz)
        for i, terrain in enumerate(spec.terrain)
    ]
    early_run, early_node, early_s = early_end_target(all_runs)
    gap_run, gap_node, gap_start_s, gap_s = gap_target(all_runs)
    counts = {"files": 0, "samples": 0}

    def emit(table: pa.Table, name: str) -> None:
        write_parquet(table, scene_dir / name)
        counts["files"] += 1

    # Run table and node locations.
    start = np.array([r.start_us for r in runs])
    end = np.array([r.end_us for r in runs])
    emit(
        pa.table(
            [
                pa.array([r.run_id for r in runs], pa.int64()),
                pa.array([r.label for r in runs], pa.string()),
                pa.array([r.split for r in runs], pa.string()),
                _utc_us(start).cast(pa.timestamp("us", tz="UTC")),
                _utc_us(end).cast(pa.timestamp("us", tz="UTC")),
                pa.array(end - start, pa.int64()).cast(pa.duration("us")),
            ],
            schema=RUN_IDS_SCHEMA,
        ),
        "run_ids.parquet",
    )
    emit(
        pa.table([list(spec.sensor_ids), geometry.latitude, geometry.longitude, list(spec.terrain)], schema=SENSOR_LOCATION_SCHEMA),
        "sensor_location.parquet",
    )

    for run in runs:
        progress.set_postfix_str(f"{scene} run {run.run_id} {run.label}")
        signals = simulate_run(run, settings, geometry, responses)

        # Sensor recordings, with the deliberate early end and gap.
        for i, sensor in enumerate(spec.sensor_ids):
            number = sensor.removeprefix("rs")
            mic_index = np.arange(signals.mic.shape[1])
            geo_index = np.arange(signals.geo.shape[1])
            if run.run_id == early_run and i == early_node:
                mic_index = mic_index[: round((run.length_s - early_s) * settings.mic_rate_hz)]
                geo_index = geo_index[: round((run.length_s - early_s) * settings.geo_rate_hz)]
                log.info("%s run %d %s: recording ends %.1f s early (deliberate defect)", scene, run.run_id, sensor, early_s)
            if run.run_id == gap_run and i == gap_node:
                lo, hi = round(gap_start_s * settings.geo_rate_hz), round((gap_start_s + gap_s) * settings.geo_rate_hz)
                geo_index = np.concatenate([geo_index[:lo], geo_index[hi:]])
                log.info("%s run %d %s: geophone gap of %.1f s at %.1f s (deliberate defect)", scene, run.run_id, sensor, gap_s, gap_start_s)

            geo_times = run.start_us / 1e6 + geo_index / settings.geo_rate_hz
            emit(
                pa.table(
                    [geo_times, pa.array([GEOPHONE_CHANNEL] * len(geo_index), pa.string()), signals.geo[i, geo_index]],
                    schema=GEO_SCHEMA,
                ),
                f"run{run.run_id}_rs{number}_geo.parquet",
            )
            mic_times = run.start_us / 1e6 + mic_index / settings.mic_rate_hz
            emit(pa.table([mic_times, signals.mic[i, mic_index]], schema=MIC_SCHEMA), f"run{run.run_id}_rs{number}_mic.parquet")
            counts["samples"] += len(geo_index) + len(mic_index)

        # GPS and distances (vehicle runs only).
        if run.vehicles:
            _write_gps_and_distances(run, settings, geometry, signals.gps, emit)
        progress.update(1)
    return counts


def _write_gps_and_distances(run: RunPlan, settings: Settings, geometry: SceneGeometry, gps: list[np.ndarray], emit) -> None:
    """Write run<n>_gps.parquet and one run<n>_rs<m>_dis.parquet per node from the noisy fixes."""
    spec = SCENES[run.scene]
    n = run.length_s
    times_us = run.start_us + np.arange(n, dtype=np.int64) * 1_000_000
    elevation_rng = _rng(settings, scene_code(run.scene), run.index, 3)

    columns = {"time": [], "latitude": [], "longitude": [], "elevation": [], "label": []}
    for fixes, name in zip(gps, run.vehicles):
        height = SITE_ELEVATION_M + 0.02 * fixes[:, 0] + elevation_rng.normal(0.0, 3.0, n)
        geodetic = geometry.frame.to_geodetic(fixes[:, 0], fixes[:, 1])
        columns["time"].append(times_us)
        columns["latitude"].append(geodetic[:, 0])
        columns["longitude"].append(geodetic[:, 1])
        columns["elevation"].append(height)
        columns["label"].append(np.full(n, name, dtype=object))
    merged = {key: np.stack(values, axis=1).reshape(-1) for key, values in columns.items()}  # time-major

    arrays = [_utc_us(merged["time"]), merged["latitude"], merged["longitude"], merged["elevation"]]
    if len(run.vehicles) == 1:
        emit(pa.table(arrays, schema=GPS_SCHEMA), f"run{run.run_id}_gps.parquet")
    else:
        emit(pa.table([*arrays, pa.array(merged["label"], pa.string())], schema=GPS_TWO_VEHICLE_SCHEMA), f"run{run.run_id}_gps.parquet")

    for sensor, node in zip(spec.sensor_ids, geometry.nodes_enu):
        distance = np.min([np.hypot(*(fixes - node).T) for fixes in gps], axis=0)
        emit(pa.table([_utc_us(times_us), distance], schema=DISTANCE_SCHEMA), f"run{run.run_id}_{sensor}_dis.parquet")


# --- entry point -----------------------------------------------------------------------------


def synthesize(out_dir: Path, cfg: dict) -> None:
    """Write simulated M3N-VC scenes under out_dir, one folder per scene.

    Args:
        out_dir: folder that receives ``<scene>/`` folders, created if missing.
        cfg: the ``synth.m3nvc`` parameters (seed, scenes, train_run_s, test_run_s,
            mic_rate_hz, geo_rate_hz, start).

    The output depends only on cfg: the same cfg gives the same parquet contents.

    Raises:
        ValueError: when a parameter is missing or invalid.
    """
    settings = parse_settings(cfg)
    out_dir = Path(out_dir)
    runs = plan_runs(settings)
    log.info("synthesizing %d M3N-VC scenes (%d runs) into %s", len(settings.scenes), len(runs), out_dir)

    totals = {"files": 0, "samples": 0}
    with logging_redirect_tqdm(), tqdm(total=len(runs), unit="run", desc="synth m3nvc", disable=None) as progress:
        for scene in settings.scenes:
            scene_runs = [r for r in runs if r.scene == scene]
            with atomic_path(out_dir / scene) as tmp:
                tmp.mkdir()
                counts = write_scene(tmp, scene_runs, settings, runs, progress)
            for key in totals:
                totals[key] += counts[key]

    log.info(
        "wrote %d scenes, %d runs, %d files, %d samples (microphone and geophone) to %s",
        len(settings.scenes), len(runs), totals["files"], totals["samples"], out_dir,
    )
