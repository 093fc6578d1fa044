"""Simulated Ridgecrest-area earthquakes written in the SCEDC release formats.

``synthesize`` writes event-triggered recordings of the 16 CI stations of the
SPAR paper's network, the station metadata and the event catalog, in the layouts
that the Southern California Earthquake Data Center publishes, so that one
importer reads simulated and real files with the same code.

Layout under ``out_dir``:

* ``continuous_waveforms/YYYY/YYYY_DDD/<NET><STA_><CHA><LOC>_<YYYYDDD>.ms``, with the
  station code padded with ``_`` to 5 characters and the empty location code
  written as ``__`` (for example ``CIWBM__HHZ___2021185.ms``). Each file contains one
  channel and one UTC day as miniSEED (int32 counts, Steim-2, 512-byte records).
  The data are not continuous. Each recorded earthquake adds a segment from
  ``origin - segment_before_s`` to ``origin + segment_after_s``, segments of one
  day are separate traces, and segments that overlap in time at one station are
  simulated as one longer record. A segment that crosses midnight is split
  between the two day files.
* ``stations/ci_stations.txt`` (FDSN station text) and ``stations/ci_stations.xml``
  (StationXML with channel azimuths, dips, sample rates and overall sensitivities).
* ``catalog/scedc.stp`` (SCEDC STP event lines, ascending time) and
  ``catalog/comcat.csv`` (USGS ComCat CSV, descending time as ComCat returns it).
  Both list the same earthquakes and quarry blasts. Quarry blasts appear in the
  catalogs only, and no waveform segment is written for them.

Physics of each earthquake:

* Origin times form a Poisson process over each configured year. Epicenters lie
  within ``radius_km`` of the center, most of them (``fault_fraction``) in a zone
  striking N40W through the center, the trend of the 2019 Ridgecrest sequence,
  and the rest uniformly over the disc. Depths follow a Beta(2, 3) law over
  0 to ``depth_max_km``, and magnitudes a truncated Gutenberg-Richter law.
* P and S travel times come from a 1-D layered crust (Vp 5.5, 6.3 and 6.7 km/s
  over a 7.8 km/s mantle from 32 km, Vp/Vs 1.73).
* Each body wave has a Brune omega-squared displacement spectrum with seismic
  moment ``10 ** (1.5 M + 9.1)`` N m and a corner frequency set by a 5 MPa stress
  drop. The P corner is 1.5 times the S corner. Geometric spreading is 1/r,
  anelastic attenuation is ``exp(-pi f t / Q)`` with Q = 900 for P and 600 for S,
  and every station has a fixed site amplification, spectral tilt and kappa.
* Waveforms follow the stochastic method: Gaussian noise under a Saragoni-Hart
  envelope that starts at the arrival, shaped in the frequency domain by the
  minimum-phase (causal) filter with the spectrum's magnitude. P is polarised
  along the ray's horizontal direction and mostly vertical, while S is mostly
  horizontal with a random polarisation.
* HH channels record ground velocity at 6.3e8 counts per m/s, and HN
  channels record acceleration with 5.35e4 counts per m/s^2. Both saturate at
  the 24-bit limit of +/-8388607 counts. Background noise is a microseism peak
  near 0.18 Hz, site noise over 1-20 Hz and digitiser noise on HH, and
  self-noise of about 1.5 counts on HN. Small events therefore hardly show on HN.
* A station records an event only when the event's predicted S peak on its HH
  horizontals, divided by the station's 1-20 Hz noise level, reaches a detection
  threshold. The threshold is calibrated on a reference population of events
  drawn from the configuration's laws, so that about ``missing_target_fraction``
  of station-event pairs are missing. Weak, distant events are missed most.

Deliberate real-world variants, which the importer must handle:

* Station WRC2 records its horizontals as HH1 (azimuth 27 degrees) and HH2
  (117 degrees) instead of HHN and HHE. The StationXML states both azimuths.
* Station CLC records its HN channels at twice ``rate_hz`` (200 Hz by default).
* One day file contains an extra trace that repeats 10 s of its samples from the
  origin time on, so the two traces overlap with identical samples. It is the HHZ
  file of the first recorded earthquake at the nearest station that records it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
from obspy.core.inventory import Channel, Equipment, InstrumentSensitivity, Inventory, Network, Response, Site, Station
from pyproj import Geod
from scipy import fft as sp_fft
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from spar.files import atomic_path, write_text
from spar.io.geodesy import EnuFrame

log = logging.getLogger(__name__)

# --- release format and station metadata -----------------------------------------------------

STATION_TABLE = "ridgecrest_stations.csv"  # in the spar.io package: network, station, latitude, longitude, elevation_m
NETWORK = "CI"
LOCATION = ""
HORIZONTAL_CODES = (("N", 0.0), ("E", 90.0))  # (component letter, azimuth in degrees clockwise from north)
HH12_STATION = "WRC2"  # records horizontals as HH1 and HH2
HH1_AZIMUTH_DEG = 27.0  # HH2 points 90 degrees clockwise of HH1
HN_FAST_STATION = "CLC"  # records HN channels at HN_FAST_FACTOR times rate_hz
HN_FAST_FACTOR = 2
DUPLICATE_CHANNEL = "HHZ"
DUPLICATE_LENGTH_S = 10.0
MSEED_RECORD_BYTES = 512
STATION_START = obspy.UTCDateTime(2000, 1, 1)  # start of every station and channel epoch
RIDGECREST_CITY = (35.6225, -117.6709)  # latitude, longitude of the town, for ComCat place names
COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
FIRST_EVID = 40_000_001
UPDATED_DELAY_S = 2 * 86_400  # ComCat "updated" time after the origin time

# --- physics of the simulator ------------------------------------------------------------

LAYER_TOP_KM = (0.0, 5.5, 16.0, 32.0)  # depth below sea level of each layer's top (the first layer extends upward)
LAYER_VP_KM_S = (5.5, 6.3, 6.7, 7.8)
VP_VS = 1.73
DENSITY_KG_M3 = 2700.0
STRESS_DROP_PA = 5.0e6
P_CORNER_RATIO = 1.5  # P corner frequency over S corner frequency
RADIATION_P = 0.52  # radiation pattern coefficients averaged over the focal sphere
RADIATION_S = 0.63
RADIATION_SCATTER = 0.4  # standard deviation of the natural log of each station-event radiation factor
FREE_SURFACE = 2.0
Q_P = 900.0
Q_S = 600.0
MIN_DISTANCE_KM = 1.0  # spreading is evaluated at no less than this hypocentral distance
PATH_DURATION_S_PER_KM = (0.025, 0.05)  # P and S: duration added per km of hypocentral distance
P_COMPONENTS = (0.35, 0.94)  # P amplitude on the horizontal (along the ray) and vertical axes
S_COMPONENTS = (0.95, 0.30)  # S amplitude on the horizontal (random polarisation) and vertical axes
SARAGONI_HART = (0.2, 0.05)  # envelope peak at 20 % of its window, 5 % of the peak at the window's end
FAULT_STRIKE_DEG = 320.0  # N40W
FAULT_HALF_LENGTH_KM = 35.0
FAULT_WIDTH_KM = 2.0  # standard deviation across strike
DEPTH_BETA = (2.0, 3.0)
SITE_AMPLIFICATION_MEDIAN = 2.0  # generic amplification of rock sites by the shallow low-velocity crust
SITE_AMPLIFICATION_SCATTER = 0.35  # standard deviation of the natural log of the site amplification
SITE_TILT_SCATTER = 0.25  # standard deviation of the spectral slope exponent at 5 Hz
SITE_REFERENCE_HZ = 5.0
SITE_TILT_MIN_HZ = 0.5  # the tilt is held constant below this frequency
KAPPA_RANGE_S = (0.015, 0.045)

HH_GAIN = 6.3e8  # counts per m/s
HN_GAIN = 5.35e4  # counts per m/s^2
COUNT_LIMIT = 2**23 - 1  # 24-bit digitiser
HH_SITE_NOISE_COUNTS = 6.0  # median rms of the 1-20 Hz site noise
HH_MICROSEISM_COUNTS = 150.0  # median rms of the microseism peak
MICROSEISM_HZ = (0.18, 0.06)  # centre and standard deviation of the microseism peak
SITE_NOISE_BAND_HZ = (1.0, 20.0)
HH_DIGITIZER_COUNTS = 1.0
HN_NOISE_COUNTS = 1.5
NOISE_SCATTER = 0.35  # standard deviation of the natural log of each station's noise levels
EXPONENT_FLOOR = 200.0  # exp(-200) is about 1e-87, so products of such factors stay normal floating-point numbers
FFT_PAD_S = 10.0  # zero padding that keeps the spectral shaping from wrapping around a record

CALIBRATION_EVENTS = 2000  # reference events that calibrate the detection threshold
CALIBRATION_CHUNK = 250  # events per step of the vectorised peak prediction
RVT_FREQUENCIES = 128  # log-spaced frequencies of the peak prediction

# Keys of independent random streams, so that every quantity depends only on the
# seed and its own indices, not on the order of computation.
_CATALOG, _STATIONS, _PAIRS, _CALIBRATION, _SIGNAL, _NOISE, _BLASTS = range(1, 8)

DEFAULTS = {
    "seed": 2019,
    "years": [2021, 2022],
    "events_per_year": 120,
    "magnitude_min": 0.0,
    "magnitude_max": 5.0,
    "b_value": 1.0,
    "center_lat": 35.9,
    "center_lon": -117.6,
    "radius_km": 80.0,
    "depth_max_km": 20.0,
    "rate_hz": 100,
    "segment_before_s": 10.0,
    "segment_after_s": 40.0,
    "missing_target_fraction": 0.2,
    "quarry_blasts_per_year": 3,
    "fault_fraction": 0.8,
}


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated ``synth.ridgecrest`` parameters, with units in the names and angles in degrees."""

    seed: int
    years: tuple[int, ...]
    events_per_year: float
    magnitude_min: float
    magnitude_max: float
    b_value: float
    center_lat: float
    center_lon: float
    radius_km: float
    depth_max_km: float
    rate_hz: int
    segment_before_s: float
    segment_after_s: float
    missing_target_fraction: float
    quarry_blasts_per_year: int
    fault_fraction: float


def _number(cfg: dict, key: str, low: float, high: float, *, whole: bool = False, low_open: bool = False) -> float:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"synth.ridgecrest.{key} must be a finite number, got {value!r}; fix it in params.yaml")
    if whole and float(value) != int(value):
        raise ValueError(f"synth.ridgecrest.{key} must be a whole number, got {value!r}; fix it in params.yaml")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"synth.ridgecrest.{key} must be in {bracket}{low}, {high}], got {value!r}; fix it in params.yaml")
    return int(value) if whole else float(value)


def parse_settings(cfg: dict) -> Settings:
    """Validate the ``synth.ridgecrest`` mapping, fill missing keys from ``DEFAULTS`` and return ``Settings``.

    Raises:
        ValueError: naming the key, the invalid value and the accepted values.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"synth.ridgecrest must be a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"synth.ridgecrest has unknown keys {unknown}; known keys: {', '.join(DEFAULTS)}")
    missing = [key for key in DEFAULTS if key not in cfg]
    if missing:
        log.debug("synth.ridgecrest: using defaults for %s", ", ".join(missing))
    cfg = {**DEFAULTS, **cfg}

    years = cfg["years"]
    if isinstance(years, (str, bytes)) or not isinstance(years, (list, tuple)) or not years:
        raise ValueError(f"synth.ridgecrest.years must be a non-empty list of years, got {years!r}; fix it in params.yaml")
    for year in years:
        if isinstance(year, bool) or not isinstance(year, int) or not 1970 <= year <= 2100:
            raise ValueError(f"synth.ridgecrest.years contains {year!r}; each year must be a whole number in [1970, 2100]")
    if len(set(years)) != len(years):
        raise ValueError(f"synth.ridgecrest.years lists a year twice: {years}")

    settings = Settings(
        seed=_number(cfg, "seed", 0, 2**63 - 1, whole=True),
        years=tuple(sorted(years)),
        events_per_year=_number(cfg, "events_per_year", 0.0, 1e5, low_open=True),
        magnitude_min=_number(cfg, "magnitude_min", -3.0, 9.0),
        magnitude_max=_number(cfg, "magnitude_max", -3.0, 9.0),
        b_value=_number(cfg, "b_value", 0.0, 3.0, low_open=True),
        center_lat=_number(cfg, "center_lat", -90.0, 90.0),
        center_lon=_number(cfg, "center_lon", -180.0, 180.0),
        radius_km=_number(cfg, "radius_km", 0.0, 500.0, low_open=True),
        depth_max_km=_number(cfg, "depth_max_km", 0.0, 100.0, low_open=True),
        rate_hz=_number(cfg, "rate_hz", 20, 1000, whole=True),
        segment_before_s=_number(cfg, "segment_before_s", 0.0, 3600.0),
        segment_after_s=_number(cfg, "segment_after_s", 0.0, 3600.0, low_open=True),
        missing_target_fraction=_number(cfg, "missing_target_fraction", 0.0, 0.95),
        quarry_blasts_per_year=_number(cfg, "quarry_blasts_per_year", 0, 1000, whole=True),
        fault_fraction=_number(cfg, "fault_fraction", 0.0, 1.0),
    )
    if settings.magnitude_min >= settings.magnitude_max:
        raise ValueError(
            f"synth.ridgecrest.magnitude_min ({settings.magnitude_min}) must be below magnitude_max "
            f"({settings.magnitude_max}); fix them in params.yaml"
        )
    return settings


def read_station_table() -> pd.DataFrame:
    """Read the packaged table of the 16 CI stations.

    Returns:
        One row per station with columns network, station (str), latitude and
        longitude (degrees, WGS84) and elevation_m (meters above sea level).
    """
    with resources.files("spar.io").joinpath(STATION_TABLE).open("r", encoding="ascii") as handle:
        table = pd.read_csv(handle, dtype={"network": str, "station": str})
    expected = ["network", "station", "latitude", "longitude", "elevation_m"]
    if list(table.columns) != expected:
        raise ValueError(f"spar/io/{STATION_TABLE} has columns {list(table.columns)}, expected {expected}; restore the file")
    return table


# --- velocity model and source spectrum -------------------------------------------------------


def layer_of(depth_km) -> np.ndarray:
    """Return the index of the velocity layer that contains each depth (km below sea level)."""
    return np.searchsorted(np.asarray(LAYER_TOP_KM[1:]), np.asarray(depth_km, dtype=float), side="right")


def travel_times(source_depth_km, receiver_depth_km, distance_km) -> tuple[np.ndarray, np.ndarray]:
    """Compute P and S travel times in seconds along straight source-receiver rays.

    Each ray's slowness is the average of the layers' slownesses, weighted by the
    share of the ray's depth range inside each layer. A horizontal ray takes the
    slowness of the layer that contains it. Arguments broadcast against each other.

    NOTE: straight rays ignore refraction, so beyond the crossover distance the
    real first arrival (a head wave along a faster layer) comes earlier than these times.

    Args:
        source_depth_km: source depth, km below sea level.
        receiver_depth_km: receiver depth, km below sea level (negative above sea level).
        distance_km: straight-line source-receiver distance, km.

    Returns:
        ``(p_s, s_s)``: arrays of the broadcast shape.
    """
    source, receiver, distance = np.broadcast_arrays(
        np.asarray(source_depth_km, dtype=float), np.asarray(receiver_depth_km, dtype=float), np.asarray(distance_km, dtype=float)
    )
    top = np.array([-np.inf, *LAYER_TOP_KM[1:]])
    bottom = np.array([*LAYER_TOP_KM[1:], np.inf])
    shallow = np.minimum(source, receiver)[..., None]
    deep = np.maximum(source, receiver)[..., None]
    span = deep - shallow

    overlap = np.clip(np.minimum(deep, bottom) - np.maximum(shallow, top), 0.0, None)
    horizontal = span < 1e-9
    share = np.where(horizontal, 0.0, overlap / np.where(horizontal, 1.0, span))
    flat_layer = layer_of(shallow[..., 0])
    share = np.where(horizontal, np.arange(len(LAYER_TOP_KM)) == flat_layer[..., None], share)

    p_slowness = (share / np.asarray(LAYER_VP_KM_S)).sum(axis=-1)
    p_s = distance * p_slowness
    return p_s, p_s * VP_VS


def seismic_moment(magnitude) -> np.ndarray:
    """Return the seismic moment in N m of moment magnitudes (``log10 M0 = 1.5 M + 9.1``)."""
    return 10.0 ** (1.5 * np.asarray(magnitude, dtype=float) + 9.1)


def corner_frequency(moment_n_m, shear_velocity_km_s) -> np.ndarray:
    """Return Brune's S corner frequency in Hz for a moment (N m) and source shear velocity (km/s).

    The source radius is ``(7 M0 / (16 stress_drop)) ** (1/3)`` and the corner
    frequency ``2.34 beta / (2 pi radius)``.
    """
    radius_m = (7.0 * np.asarray(moment_n_m, dtype=float) / (16.0 * STRESS_DROP_PA)) ** (1.0 / 3.0)
    return 2.34 * np.asarray(shear_velocity_km_s, dtype=float) * 1000.0 / (2.0 * np.pi * radius_m)


def displacement_spectrum(
    f_hz, moment_n_m, corner_hz, distance_km, travel_s, q, velocity_km_s, radiation, site_amplification, site_tilt, kappa_s
) -> np.ndarray:
    """Return the Fourier amplitude of one body wave's ground displacement at a station, in m s.

    All arguments broadcast against each other. ``radiation`` includes the
    average radiation coefficient and any per-pair factor, and ``velocity_km_s`` is
    the wave's speed at the source.
    """
    f = np.asarray(f_hz, dtype=float)
    distance_m = np.maximum(distance_km, MIN_DISTANCE_KM) * 1000.0
    velocity_m_s = np.asarray(velocity_km_s, dtype=float) * 1000.0
    level = radiation * FREE_SURFACE * moment_n_m / (4.0 * np.pi * DENSITY_KG_M3 * velocity_m_s**3 * distance_m)
    source = 1.0 / (1.0 + (f / corner_hz) ** 2)
    path = np.exp(-np.pi * f * travel_s / q)
    site = site_amplification * (np.maximum(f, SITE_TILT_MIN_HZ) / SITE_REFERENCE_HZ) ** site_tilt * np.exp(-np.pi * kappa_s * f)
    return level * source * path * site


def minimum_phase(amplitude: np.ndarray, n_fft: int) -> np.ndarray:
    """Return the minimum-phase spectrum whose magnitude is ``amplitude`` (homomorphic method).

    The real cepstrum of ``log(amplitude)`` is folded onto positive quefrencies,
    which makes the filter causal with its energy as early as the magnitude
    allows. The spectrum of a causal source and attenuation filter is close to
    minimum phase, so waveforms start at their arrival time instead of leaking
    ahead of it as a zero-phase filter would.

    Args:
        amplitude: positive one-sided magnitude, shape (n_fft // 2 + 1,).
        n_fft: length of the transform that ``amplitude`` belongs to.
    """
    cepstrum = sp_fft.irfft(np.log(amplitude), n_fft)
    folded = np.zeros(n_fft)
    half = (n_fft + 1) // 2
    folded[0] = cepstrum[0]
    folded[1:half] = 2.0 * cepstrum[1:half]
    if n_fft % 2 == 0:
        folded[half] = cepstrum[half]
    return np.exp(sp_fft.rfft(folded))


def saragoni_hart(t_s: np.ndarray, duration_s) -> np.ndarray:
    """Return the Saragoni-Hart envelope at times after the onset (zero before it), peak value 1.

    The window lasts twice ``duration_s``. The envelope peaks at 20 % of the
    window and falls to 5 % of the peak at its end, then keeps decaying.
    """
    epsilon, eta = SARAGONI_HART
    b = -epsilon * np.log(eta) / (1.0 + epsilon * (np.log(epsilon) - 1.0))
    c = b / epsilon
    x = np.clip(np.asarray(t_s, dtype=float) / (2.0 * duration_s), 0.0, None)
    # the floor on the exponent keeps values far from subnormal numbers, which slow down the FFTs
    return (np.e / epsilon) ** b * x**b * np.exp(np.maximum(-c * x, -EXPONENT_FLOOR))


# --- stations, events and detection --------------------------------------------------------------


@dataclass(frozen=True)
class StationSites:
    """Fixed properties of each station, arrays of shape (station,)."""

    amplification: np.ndarray
    tilt: np.ndarray  # exponent of the spectral slope about SITE_REFERENCE_HZ
    kappa_s: np.ndarray
    hh_site_noise_counts: np.ndarray  # rms of the 1-20 Hz site noise on each HH channel
    hh_microseism_counts: np.ndarray
    hn_noise_counts: np.ndarray


def station_sites(seed: int, n_stations: int) -> StationSites:
    """Draw the site terms and noise levels of ``n_stations`` stations."""
    rng = np.random.default_rng([seed, _STATIONS])
    return StationSites(
        amplification=SITE_AMPLIFICATION_MEDIAN * np.exp(rng.normal(0.0, SITE_AMPLIFICATION_SCATTER, n_stations)),
        tilt=rng.normal(0.0, SITE_TILT_SCATTER, n_stations),
        kappa_s=rng.uniform(*KAPPA_RANGE_S, n_stations),
        hh_site_noise_counts=HH_SITE_NOISE_COUNTS * np.exp(rng.normal(0.0, NOISE_SCATTER, n_stations)),
        hh_microseism_counts=HH_MICROSEISM_COUNTS * np.exp(rng.normal(0.0, NOISE_SCATTER, n_stations)),
        hn_noise_counts=HN_NOISE_COUNTS * np.exp(rng.normal(0.0, 0.5 * NOISE_SCATTER, n_stations)),
    )


def gutenberg_richter(rng: np.random.Generator, n: int, magnitude_min: float, magnitude_max: float, b_value: float) -> np.ndarray:
    """Draw n magnitudes from a Gutenberg-Richter law truncated to [magnitude_min, magnitude_max] (inverse CDF)."""
    u = rng.uniform(0.0, 1.0, n)
    span = 1.0 - 10.0 ** (-b_value * (magnitude_max - magnitude_min))
    return magnitude_min - np.log10(1.0 - u * span) / b_value


def draw_epicenters(rng: np.random.Generator, n: int, settings: Settings) -> np.ndarray:
    """Draw n epicenters in the simulation frame, shape (n, 2): east and north in km from the center.

    A share ``fault_fraction`` lies in the fault zone (uniform along strike within
    FAULT_HALF_LENGTH_KM, Gaussian across strike), the rest uniformly over the disc.
    Points outside ``radius_km`` are drawn again.
    """
    strike = np.deg2rad(FAULT_STRIKE_DEG)
    along_unit = np.array([np.sin(strike), np.cos(strike)])
    across_unit = np.array([np.cos(strike), -np.sin(strike)])
    half_length = min(FAULT_HALF_LENGTH_KM, settings.radius_km)
    points = np.empty((n, 2))
    todo = np.arange(n)
    while todo.size:
        on_fault = rng.uniform(0.0, 1.0, todo.size) < settings.fault_fraction
        along = rng.uniform(-half_length, half_length, todo.size)
        across = rng.normal(0.0, FAULT_WIDTH_KM, todo.size)
        radius = settings.radius_km * np.sqrt(rng.uniform(0.0, 1.0, todo.size))
        azimuth = rng.uniform(0.0, 2.0 * np.pi, todo.size)
        fault_points = along[:, None] * along_unit + across[:, None] * across_unit
        disc_points = np.stack([radius * np.sin(azimuth), radius * np.cos(azimuth)], axis=1)
        points[todo] = np.where(on_fault[:, None], fault_points, disc_points)
        todo = todo[np.hypot(*points[todo].T) > settings.radius_km]
    return points


@dataclass(frozen=True)
class PairTerms:
    """Random factors of each station-event pair, arrays of shape (event, station)."""

    p_radiation: np.ndarray  # P radiation factor, including RADIATION_P
    s_radiation: np.ndarray
    p_sign: np.ndarray  # +1 or -1: first-motion polarity of P
    s_polarisation_rad: np.ndarray  # S horizontal direction, counterclockwise from the ray's horizontal direction
    s_vertical_sign: np.ndarray


def draw_pair_terms(rng: np.random.Generator, shape: tuple[int, int]) -> PairTerms:
    """Draw radiation factors and polarisations for every station-event pair."""
    return PairTerms(
        p_radiation=RADIATION_P * np.exp(rng.normal(0.0, RADIATION_SCATTER, shape)),
        s_radiation=RADIATION_S * np.exp(rng.normal(0.0, RADIATION_SCATTER, shape)),
        p_sign=rng.choice([-1.0, 1.0], shape),
        s_polarisation_rad=rng.uniform(0.0, 2.0 * np.pi, shape),
        s_vertical_sign=rng.choice([-1.0, 1.0], shape),
    )


@dataclass(frozen=True)
class RayGeometry:
    """Source-station geometry, arrays of shape (event, station)."""

    distance_km: np.ndarray  # hypocentral distance
    radial_east: np.ndarray  # horizontal unit vector from epicenter to station, east component
    radial_north: np.ndarray
    p_travel_s: np.ndarray
    s_travel_s: np.ndarray


def ray_geometry(frame: EnuFrame, stations: pd.DataFrame, latitude, longitude, depth_km) -> RayGeometry:
    """Compute distances, ray directions and travel times from hypocenters to stations."""
    station_enu = frame.to_enu(stations["latitude"].to_numpy(), stations["longitude"].to_numpy(), stations["elevation_m"].to_numpy()) / 1000.0
    depth_km = np.asarray(depth_km, dtype=float)
    event_enu = frame.to_enu(np.asarray(latitude, dtype=float), np.asarray(longitude, dtype=float), -1000.0 * depth_km) / 1000.0
    offset = station_enu[None, :, :] - event_enu[:, None, :]
    distance = np.linalg.norm(offset, axis=-1)
    horizontal = np.hypot(offset[..., 0], offset[..., 1])
    safe = np.where(horizontal > 1e-6, horizontal, 1.0)
    radial_east = np.where(horizontal > 1e-6, offset[..., 0] / safe, 0.0)
    radial_north = np.where(horizontal > 1e-6, offset[..., 1] / safe, 1.0)
    receiver_depth = -stations["elevation_m"].to_numpy(dtype=float) / 1000.0
    p_s, s_s = travel_times(depth_km[:, None], receiver_depth[None, :], distance)
    return RayGeometry(distance, radial_east, radial_north, p_s, s_s)


def wave_parameters(magnitude, depth_km) -> dict[str, np.ndarray]:
    """Return moment (N m), P and S corner frequencies (Hz) and source velocities (km/s) per event."""
    vp = np.asarray(LAYER_VP_KM_S)[layer_of(depth_km)]
    moment = seismic_moment(magnitude)
    s_corner = corner_frequency(moment, vp / VP_VS)
    return {"moment": moment, "s_corner": s_corner, "p_corner": P_CORNER_RATIO * s_corner, "vp": vp, "vs": vp / VP_VS}


def wave_durations(corner_hz, distance_km, wave: int) -> np.ndarray:
    """Return the envelope duration in seconds of P (wave 0) or S (wave 1): source plus path duration."""
    return 1.0 / corner_hz + PATH_DURATION_S_PER_KM[wave] * distance_km


def predicted_s_peak_snr(
    magnitude, depth_km, geometry: RayGeometry, pairs: PairTerms, sites: StationSites, rate_hz: float
) -> np.ndarray:
    """Predict each pair's S peak on an HH horizontal over the station's site noise rms, shape (event, station).

    Random vibration theory: the rms is ``sqrt(m0 / T)`` for the spectral moment
    ``m0 = 2 * integral |V(f)|^2 df`` of the velocity spectrum and the S duration
    T, and the peak is that rms times ``sqrt(2 ln(2 f_z T))``, where f_z is the
    rms frequency ``sqrt(m2 / m0) / (2 pi)``. The integrals run from 0.05 Hz to Nyquist.
    """
    f = np.geomspace(0.05, rate_hz / 2.0, RVT_FREQUENCIES)
    source = wave_parameters(magnitude, depth_km)
    out = np.empty(geometry.distance_km.shape)
    for lo in range(0, len(out), CALIBRATION_CHUNK):
        rows = slice(lo, lo + CALIBRATION_CHUNK)
        event = {key: value[rows, None, None] for key, value in source.items()}
        distance = geometry.distance_km[rows]
        spectrum = displacement_spectrum(
            f, event["moment"], event["s_corner"], distance[..., None], geometry.s_travel_s[rows, :, None], Q_S, event["vs"],
            pairs.s_radiation[rows, :, None] * S_COMPONENTS[0], sites.amplification[None, :, None], sites.tilt[None, :, None],
            sites.kappa_s[None, :, None],
        )
        velocity = 2.0 * np.pi * f * spectrum * HH_GAIN
        m0 = 2.0 * np.trapezoid(velocity**2, f, axis=-1)
        m2 = 2.0 * np.trapezoid((2.0 * np.pi * f * velocity) ** 2, f, axis=-1)
        duration = wave_durations(source["s_corner"][rows, None], distance, 1)
        rms_hz = np.sqrt(m2 / m0) / (2.0 * np.pi)
        peak = np.sqrt(2.0 * np.log(np.maximum(2.0 * rms_hz * duration, np.e))) * np.sqrt(m0 / duration)
        out[rows] = peak / sites.hh_site_noise_counts[None, :]
    return out


@dataclass
class EventPlan:
    """Every simulated event and what each station records.

    Attributes:
        catalog: one row per event (earthquakes and quarry blasts), sorted by time.
            Columns: evid (int), event_type ("eq" or "qb"), time_ms (int,
            milliseconds since 1970-01-01 UTC), latitude and longitude (degrees),
            depth_km (below sea level), magnitude and magnitude_type ("l" local,
            "w" moment). Values are rounded as the catalogs print them, and the
            waveforms use the rounded values.
        quakes: row numbers of the earthquakes in ``catalog``, shape (event,).
            The arrays below have one row per earthquake in this order.
        stations: the station table (``read_station_table``).
        distance_km: hypocentral distance, shape (event, station).
        p_travel_s, s_travel_s: travel times, shape (event, station).
        snr: predicted S peak over the station's site noise, shape (event, station).
        recorded: whether the station records the event, shape (event, station).
        threshold_snr: the calibrated detection threshold on ``snr``.
        geometry, pairs, sites: ray directions, per-pair radiation and
            polarisation, and station site terms and noise levels, which the
            waveform simulation uses.
    """

    catalog: pd.DataFrame
    quakes: np.ndarray
    stations: pd.DataFrame
    distance_km: np.ndarray
    p_travel_s: np.ndarray
    s_travel_s: np.ndarray
    snr: np.ndarray
    recorded: np.ndarray
    threshold_snr: float
    geometry: RayGeometry
    pairs: PairTerms
    sites: StationSites

    @cached_property
    def earthquakes(self) -> pd.DataFrame:
        """The catalog rows of the earthquakes, in the order of the arrays' rows."""
        return self.catalog.iloc[self.quakes].reset_index(drop=True)


def _year_bounds_ms(year: int) -> tuple[int, int]:
    return obspy.UTCDateTime(year, 1, 1).ns // 1_000_000, obspy.UTCDateTime(year + 1, 1, 1).ns // 1_000_000


def _hypocenters(rng: np.random.Generator, n: int, settings: Settings, frame: EnuFrame) -> dict[str, np.ndarray]:
    """Draw n earthquakes' rounded latitude, longitude, depth_km and magnitude."""
    epicenters = draw_epicenters(rng, n, settings)
    geodetic = frame.to_geodetic(1000.0 * epicenters[:, 0], 1000.0 * epicenters[:, 1]).reshape(n, 3)
    return {
        "latitude": np.round(geodetic[:, 0], 4),
        "longitude": np.round(geodetic[:, 1], 4),
        "depth_km": np.round(settings.depth_max_km * rng.beta(*DEPTH_BETA, n), 2),
        "magnitude": np.round(gutenberg_richter(rng, n, settings.magnitude_min, settings.magnitude_max, settings.b_value), 2),
    }


def _draw_catalog(settings: Settings, frame: EnuFrame) -> pd.DataFrame:
    """Draw the earthquakes (Poisson in time) and quarry blasts of every configured year."""
    rng = np.random.default_rng([settings.seed, _CATALOG])
    times = []
    for year in settings.years:
        start_ms, end_ms = _year_bounds_ms(year)
        times.append(rng.integers(start_ms, end_ms, rng.poisson(settings.events_per_year)))
    quake_times = np.sort(np.concatenate(times)).astype(np.int64)
    quakes = pd.DataFrame({"event_type": "eq", "time_ms": quake_times, **_hypocenters(rng, len(quake_times), settings, frame)})

    # Quarry blasts: daytime (16-24 h UTC is 8-16 h Pacific standard time) at two
    # fixed quarry sites, shallow and small.
    blast_rng = np.random.default_rng([settings.seed, _BLASTS])
    sites = frame.to_geodetic(*(1000.0 * draw_epicenters(blast_rng, 2, settings).T)).reshape(2, 3)
    blast_times = []
    for year in settings.years:
        start_ms, end_ms = _year_bounds_ms(year)
        days = blast_rng.integers(0, (end_ms - start_ms) // 86_400_000, settings.quarry_blasts_per_year)
        seconds = blast_rng.uniform(16 * 3600, 24 * 3600, settings.quarry_blasts_per_year)
        blast_times.append(start_ms + days * 86_400_000 + np.round(seconds * 1000.0).astype(np.int64))
    blast_times = np.concatenate(blast_times).astype(np.int64)
    site_index = np.arange(len(blast_times)) % 2
    blasts = pd.DataFrame(
        {
            "event_type": "qb",
            "time_ms": blast_times,
            "latitude": np.round(sites[site_index, 0], 4),
            "longitude": np.round(sites[site_index, 1], 4),
            "depth_km": np.round(blast_rng.uniform(0.0, 1.0, len(blast_times)), 2),
            "magnitude": np.round(blast_rng.uniform(1.0, 2.2, len(blast_times)), 2),
        }
    )

    catalog = pd.concat([quakes, blasts], ignore_index=True).sort_values("time_ms", kind="stable").reset_index(drop=True)
    catalog.insert(0, "evid", FIRST_EVID + np.arange(len(catalog), dtype=np.int64))
    catalog["magnitude_type"] = np.where(catalog["magnitude"] >= 4.0, "w", "l")
    return catalog


def calibrate_threshold(settings: Settings, frame: EnuFrame, stations: pd.DataFrame, sites: StationSites) -> float:
    """Return the SNR below which ``missing_target_fraction`` of reference station-event pairs fall.

    The reference events are drawn from the configured laws with their own random
    stream, so the threshold depends on the configuration but not on the simulated catalog.
    """
    if settings.missing_target_fraction == 0.0:
        return 0.0
    rng = np.random.default_rng([settings.seed, _CALIBRATION])
    reference = _hypocenters(rng, CALIBRATION_EVENTS, settings, frame)
    geometry = ray_geometry(frame, stations, reference["latitude"], reference["longitude"], reference["depth_km"])
    pairs = draw_pair_terms(rng, geometry.distance_km.shape)
    snr = predicted_s_peak_snr(reference["magnitude"], reference["depth_km"], geometry, pairs, sites, settings.rate_hz)
    return float(np.quantile(snr, settings.missing_target_fraction))


def plan_events(cfg: dict | Settings) -> EventPlan:
    """Draw the catalog, the station-event geometry and which stations record which earthquake.

    This is everything ``synthesize`` decides before it simulates waveforms, and it
    takes well under a second, so tests and checks can inspect large catalogs.

    Args:
        cfg: the ``synth.ridgecrest`` parameters, or parsed ``Settings``.
    """
    settings = cfg if isinstance(cfg, Settings) else parse_settings(cfg)
    stations = read_station_table()
    frame = EnuFrame(settings.center_lat, settings.center_lon, 0.0)
    sites = station_sites(settings.seed, len(stations))
    catalog = _draw_catalog(settings, frame)
    quakes = np.flatnonzero(catalog["event_type"].to_numpy() == "eq")
    rows = catalog.iloc[quakes]

    geometry = ray_geometry(frame, stations, rows["latitude"], rows["longitude"], rows["depth_km"])
    pairs = draw_pair_terms(np.random.default_rng([settings.seed, _PAIRS]), geometry.distance_km.shape)
    snr = predicted_s_peak_snr(rows["magnitude"].to_numpy(), rows["depth_km"].to_numpy(), geometry, pairs, sites, settings.rate_hz)
    threshold = calibrate_threshold(settings, frame, stations, sites)
    return EventPlan(
        catalog=catalog,
        quakes=quakes,
        stations=stations,
        distance_km=geometry.distance_km,
        p_travel_s=geometry.p_travel_s,
        s_travel_s=geometry.s_travel_s,
        snr=snr,
        recorded=snr >= threshold,
        threshold_snr=threshold,
        geometry=geometry,
        pairs=pairs,
        sites=sites,
    )


# --- channels and records --------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a station."""

    code: str
    rate_hz: int
    acceleration: bool  # True for HN (m/s^2), False for HH (m/s)
    azimuth_deg: float  # clockwise from north, ignored for vertical channels
    dip_deg: float  # -90 for vertical (up), 0 for horizontal
    gain: float  # counts per m/s or m/s^2


def station_channels(station: str, rate_hz: int) -> list[ChannelSpec]:
    """List a station's six channels: HH then HN, vertical first, with the deliberate variants."""
    channels = []
    for band, acceleration, gain in (("HH", False, HH_GAIN), ("HN", True, HN_GAIN)):
        rate = rate_hz * HN_FAST_FACTOR if acceleration and station == HN_FAST_STATION else rate_hz
        if band == "HH" and station == HH12_STATION:
            horizontals = (("1", HH1_AZIMUTH_DEG), ("2", HH1_AZIMUTH_DEG + 90.0))
        else:
            horizontals = HORIZONTAL_CODES
        channels.append(ChannelSpec(f"{band}Z", rate, acceleration, 0.0, -90.0, gain))
        channels += [ChannelSpec(f"{band}{letter}", rate, acceleration, azimuth, 0.0, gain) for letter, azimuth in horizontals]
    return channels


@dataclass(frozen=True)
class Record:
    """One station's continuous record around one or more overlapping event segments."""

    station: int
    start_ms: int  # time of the first sample, milliseconds since 1970-01-01 UTC
    n_samples: int  # at rate_hz
    quakes: tuple[int, ...]  # rows of the plan's event arrays


def plan_records(plan: EventPlan, settings: Settings) -> list[Record]:
    """Merge each station's recorded event segments that overlap in time into records, sorted by start time."""
    before_ms = round(1000.0 * settings.segment_before_s)
    after_ms = round(1000.0 * settings.segment_after_s)
    times = plan.earthquakes["time_ms"].to_numpy()
    records = []
    for station in range(len(plan.stations)):
        current: list[int] = []
        start = end = 0
        for q in np.flatnonzero(plan.recorded[:, station]):
            if current and times[q] - before_ms <= end:
                current.append(int(q))
                end = max(end, times[q] + after_ms)
                continue
            if current:
                records.append(Record(station, start, round((end - start) * settings.rate_hz / 1000.0), tuple(current)))
            current, start, end = [int(q)], int(times[q] - before_ms), int(times[q] + after_ms)
        if current:
            records.append(Record(station, start, round((end - start) * settings.rate_hz / 1000.0), tuple(current)))
    return sorted(records, key=lambda r: (r.start_ms, r.station))


def _unit_rms_shape(shape: np.ndarray, n_fft: int) -> np.ndarray:
    """Scale a one-sided amplitude shape so that white noise filtered by it has unit variance."""
    power = shape[0] ** 2 + 2.0 * np.sum(shape[1:] ** 2) - (shape[-1] ** 2 if n_fft % 2 == 0 else 0.0)
    return shape / np.sqrt(power / n_fft)


def _event_motion(
    record: Record, q: int, plan: EventPlan, settings: Settings, f: np.ndarray, n_fft: int, n_signal: int, rate_hz: float
) -> np.ndarray:
    """Return one earthquake's ground velocity at one station as DFT coefficients, shape (3, f.size) for east, north, up.

    The coefficients are the continuous Fourier transform divided by the sample
    interval, so ``irfft(..., n_fft)`` gives m/s at ``rate_hz``. The envelopes end
    after ``n_signal`` samples, so the zero padding beyond keeps the spectral
    shaping of a late wave from wrapping around to the record's start.
    """
    s = record.station
    geometry, pairs, sites = plan.geometry, plan.pairs, plan.sites
    row = plan.earthquakes.iloc[q]
    source = wave_parameters(row["magnitude"], row["depth_km"])
    origin_s = (int(row["time_ms"]) - record.start_ms) / 1000.0
    distance = geometry.distance_km[q, s]
    radial = np.array([geometry.radial_east[q, s], geometry.radial_north[q, s]])
    transverse = np.array([radial[1], -radial[0]])
    angle = pairs.s_polarisation_rad[q, s]
    s_horizontal = np.cos(angle) * radial + np.sin(angle) * transverse

    p_factors = pairs.p_sign[q, s] * np.array([*(P_COMPONENTS[0] * radial), P_COMPONENTS[1]])
    s_factors = np.array([*(S_COMPONENTS[0] * s_horizontal), S_COMPONENTS[1] * pairs.s_vertical_sign[q, s]])
    waves = (
        (geometry.p_travel_s[q, s], source["p_corner"], Q_P, source["vp"], pairs.p_radiation[q, s], p_factors),
        (geometry.s_travel_s[q, s], source["s_corner"], Q_S, source["vs"], pairs.s_radiation[q, s], s_factors),
    )

    rng = np.random.default_rng([settings.seed, _SIGNAL, q, s])
    t = np.arange(n_signal) / rate_hz
    motion = np.zeros((3, f.size), dtype=complex)
    for wave, (travel, corner, q_factor, velocity, radiation, factors) in enumerate(waves):
        envelope = saragoni_hart(t - origin_s - travel, wave_durations(corner, distance, wave))
        noise = sp_fft.rfft(rng.standard_normal(n_signal) * envelope, n_fft)
        noise /= np.sqrt(np.mean(np.abs(noise) ** 2))
        displacement = minimum_phase(
            displacement_spectrum(
                f, source["moment"], corner, distance, travel, q_factor, velocity, radiation,
                sites.amplification[s], sites.tilt[s], sites.kappa_s[s],
            ),
            n_fft,
        )
        motion += factors[:, None] * (noise * 2j * np.pi * f * displacement * rate_hz)
    return motion


def simulate_record(record: Record, plan: EventPlan, settings: Settings, channels: list[ChannelSpec]) -> dict[str, np.ndarray]:
    """Simulate one record on every channel of its station.

    Returns:
        Channel code -> int32 counts, shape (n_samples * channel rate / rate_hz,).
    """
    s = record.station
    sites = plan.sites
    factor = max(ch.rate_hz for ch in channels) // settings.rate_hz
    pad = round(FFT_PAD_S * settings.rate_hz)
    n_fft_low = sp_fft.next_fast_len(record.n_samples + pad, real=True)
    n_fft = factor * n_fft_low
    rate_high = factor * settings.rate_hz
    f = sp_fft.rfftfreq(n_fft, 1.0 / rate_high)
    n_signal = factor * (record.n_samples + pad // 2)

    # ground velocity of every earthquake in the record
    motion = np.zeros((3, f.size), dtype=complex)
    for q in record.quakes:
        motion += _event_motion(record, q, plan, settings, f, n_fft, n_signal, rate_high)

    # project on each channel, add noise, convert to counts
    rng = np.random.default_rng([settings.seed, _NOISE, s, record.start_ms])
    out = {}
    for ch in channels:
        step = rate_high // ch.rate_hz
        n_channel_fft = n_fft // step
        n_channel = record.n_samples * ch.rate_hz // settings.rate_hz
        f_channel = f[: n_channel_fft // 2 + 1]
        if ch.dip_deg == -90.0:
            axis = np.array([0.0, 0.0, 1.0])
        else:
            azimuth = np.deg2rad(ch.azimuth_deg)
            axis = np.array([np.sin(azimuth), np.cos(azimuth), 0.0])
        # an explicit sum instead of a matrix product: BLAS threads slow down small products on a busy machine
        spectrum = (axis[:, None] * motion[:, : f_channel.size]).sum(axis=0) / step
        if ch.acceleration:
            spectrum = spectrum * (2j * np.pi * f_channel)
        spectrum = spectrum * ch.gain

        white = sp_fft.rfft(rng.standard_normal(n_channel_fft))
        if ch.acceleration:
            shape = np.full(f_channel.size, sites.hn_noise_counts[s])
        else:
            centre, width = MICROSEISM_HZ
            low, high = SITE_NOISE_BAND_HZ
            microseism = np.exp(np.maximum(-0.5 * ((f_channel - centre) / width) ** 2, -EXPONENT_FLOOR))
            site_noise = (f_channel / low) ** 2 / (1.0 + (f_channel / low) ** 2) / (1.0 + (f_channel / high) ** 4)
            shape = (
                sites.hh_microseism_counts[s] * _unit_rms_shape(microseism, n_channel_fft)
                + sites.hh_site_noise_counts[s] * _unit_rms_shape(site_noise, n_channel_fft)
                + HH_DIGITIZER_COUNTS
            )
        counts = sp_fft.irfft(spectrum + white * shape, n_channel_fft)[:n_channel]
        out[ch.code] = np.clip(np.rint(counts), -COUNT_LIMIT, COUNT_LIMIT).astype(np.int32)
    return out


# --- waveform files ----------------------------------------------------------------------------


def day_file_name(station: str, channel: str, day: obspy.UTCDateTime, network: str = NETWORK, location: str = LOCATION) -> str:
    """Return the SCEDC file name of one channel-day, for example ``CIWBM__HHZ___2021185.ms``."""
    return f"{network}{station.ljust(5, '_')}{channel}{location.ljust(2, '_')}_{day.year:04d}{day.julday:03d}.ms"


def day_folder(day: obspy.UTCDateTime) -> str:
    """Return the folder of one day relative to ``continuous_waveforms``, for example ``2021/2021_185``."""
    return f"{day.year:04d}/{day.year:04d}_{day.julday:03d}"


NS_PER_DAY = 86_400 * 10**9


def split_at_midnight(start_ns: int, data: np.ndarray, rate_hz: float) -> list[tuple[int, int, np.ndarray]]:
    """Split samples at UTC day boundaries.

    Returns:
        ``(day number since 1970-01-01, start time in ns, samples)`` per piece. A
        piece contains the samples whose times fall inside its day.
    """
    pieces = []
    first = 0
    while first < len(data):
        time_ns = start_ns + round(first * 1e9 / rate_hz)
        day = time_ns // NS_PER_DAY
        last = min(len(data), math.ceil(((day + 1) * NS_PER_DAY - start_ns) * rate_hz / 1e9))
        pieces.append((day, time_ns, data[first:last]))
        first = last
    return pieces


class DayWriter:
    """Collect traces per day and channel, and write each day's files once no later record can add to it."""

    def __init__(self, root: Path):
        self.root = root
        self.pending: dict[int, dict[tuple[str, str], list[obspy.Trace]]] = {}
        self.counts = {"files": 0, "traces": 0, "samples": 0, "bytes": 0, "days": 0}

    def add(self, station: str, channel: str, start_ns: int, data: np.ndarray, rate_hz: float) -> list[obspy.Trace]:
        """Split one record of one channel at midnight, queue the pieces and return them as traces."""
        traces = []
        for day, time_ns, piece in split_at_midnight(start_ns, data, rate_hz):
            header = {
                "network": NETWORK, "station": station, "location": LOCATION, "channel": channel,
                "sampling_rate": float(rate_hz), "starttime": obspy.UTCDateTime(ns=time_ns),
            }
            trace = obspy.Trace(np.ascontiguousarray(piece), header=header)
            self.pending.setdefault(day, {}).setdefault((station, channel), []).append(trace)
            traces.append(trace)
        return traces

    def queue(self, day: int, trace: obspy.Trace) -> None:
        """Queue an extra trace for a day file."""
        self.pending.setdefault(day, {}).setdefault((trace.stats.station, trace.stats.channel), []).append(trace)

    def flush_before(self, day: int | None) -> None:
        """Write every queued day before ``day`` (all days when None)."""
        for pending_day in sorted(d for d in self.pending if day is None or d < day):
            files = self.pending.pop(pending_day)
            date = obspy.UTCDateTime(ns=pending_day * NS_PER_DAY)
            folder = self.root / day_folder(date)
            folder.mkdir(parents=True, exist_ok=True)
            for (station, channel), traces in sorted(files.items()):
                path = folder / day_file_name(station, channel, date)
                obspy.Stream(traces).write(str(path), format="MSEED", encoding="STEIM2", reclen=MSEED_RECORD_BYTES)
                self.counts["files"] += 1
                self.counts["traces"] += len(traces)
                self.counts["samples"] += sum(len(t.data) for t in traces)
                self.counts["bytes"] += path.stat().st_size
            self.counts["days"] += 1


def duplicate_target(plan: EventPlan) -> tuple[int, int] | None:
    """Return (earthquake row, station) of the deliberate duplicate: the first earthquake's nearest recording station."""
    for q in range(len(plan.quakes)):
        stations = np.flatnonzero(plan.recorded[q])
        if stations.size:
            return q, int(stations[np.argmin(plan.distance_km[q, stations])])
    return None


def write_waveforms(root: Path, plan: EventPlan, settings: Settings) -> dict[str, int]:
    """Simulate every record, write the day files under root and return counts for the summary line."""
    records = plan_records(plan, settings)
    codes = plan.stations["station"].tolist()
    channels = {code: station_channels(code, settings.rate_hz) for code in codes}
    duplicate = duplicate_target(plan)
    writer = DayWriter(root)
    clipped = 0

    with logging_redirect_tqdm(), tqdm(total=len(records), unit="record", desc="synth ridgecrest", disable=None) as progress:
        for record in records:
            writer.flush_before((record.start_ms * 1_000_000) // NS_PER_DAY)
            station = codes[record.station]
            data = simulate_record(record, plan, settings, channels[station])
            for ch in channels[station]:
                clipped += int(np.any(np.abs(data[ch.code]) >= COUNT_LIMIT))
                traces = writer.add(station, ch.code, record.start_ms * 1_000_000, data[ch.code], ch.rate_hz)
                if duplicate is not None and ch.code == DUPLICATE_CHANNEL and record.station == duplicate[1] and duplicate[0] in record.quakes:
                    _queue_duplicate(writer, traces, plan, duplicate[0], ch.rate_hz)
            progress.update(1)
    writer.flush_before(None)
    return {**writer.counts, "records": len(records), "clipped": clipped}


def _queue_duplicate(writer: DayWriter, traces: list[obspy.Trace], plan: EventPlan, q: int, rate_hz: float) -> None:
    """Queue a copy of DUPLICATE_LENGTH_S of samples from the origin time on, inside the piece that contains the origin."""
    origin = obspy.UTCDateTime(ns=int(plan.earthquakes["time_ms"].iat[q]) * 1_000_000)
    for trace in traces:
        if trace.stats.starttime <= origin <= trace.stats.endtime:
            first = int(round((origin - trace.stats.starttime) * rate_hz))
            last = min(len(trace.data), first + round(DUPLICATE_LENGTH_S * rate_hz))
            copy = trace.copy()
            copy.data = trace.data[first:last].copy()
            copy.stats.starttime = trace.stats.starttime + first / rate_hz
            writer.queue(copy.stats.starttime.ns // NS_PER_DAY, copy)
            log.info(
                "variant: %s contains a duplicate trace of %d samples from %s, which overlaps the original samples",
                day_file_name(trace.stats.station, trace.stats.channel, trace.stats.starttime), last - first, copy.stats.starttime,
            )
            return


# --- station and catalog files -------------------------------------------------------------------


def station_text(stations: pd.DataFrame) -> str:
    """Format the stations in the FDSN station text format (level station)."""
    lines = ["#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime"]
    for row in stations.itertuples(index=False):
        lines.append(
            f"{row.network}|{row.station}|{row.latitude:.5f}|{row.longitude:.5f}|{row.elevation_m:.1f}|"
            f"{row.station} (spar simulation)|{STATION_START.strftime('%Y-%m-%dT%H:%M:%S')}|"
        )
    return "\n".join(lines) + "\n"


def station_inventory(stations: pd.DataFrame, settings: Settings) -> Inventory:
    """Build the StationXML inventory: stations, channels with orientation and rate, overall sensitivities."""
    network_stations = []
    for row in stations.itertuples(index=False):
        channels = []
        for ch in station_channels(row.station, settings.rate_hz):
            units = ("M/S**2", "Acceleration in meters per second squared") if ch.acceleration else ("M/S", "Velocity in meters per second")
            sensitivity = InstrumentSensitivity(
                value=ch.gain, frequency=1.0, input_units=units[0], output_units="COUNTS",
                input_units_description=units[1], output_units_description="Digital counts",
            )
            channels.append(
                Channel(
                    code=ch.code, location_code=LOCATION, latitude=row.latitude, longitude=row.longitude,
                    elevation=row.elevation_m, depth=0.0, azimuth=ch.azimuth_deg if ch.dip_deg == 0.0 else 0.0,
                    dip=ch.dip_deg, sample_rate=float(ch.rate_hz), start_date=STATION_START,
                    sensor=Equipment(type="accelerometer" if ch.acceleration else "broadband seismometer"),
                    response=Response(instrument_sensitivity=sensitivity),
                )
            )
        network_stations.append(
            Station(
                code=row.station, latitude=row.latitude, longitude=row.longitude, elevation=row.elevation_m,
                site=Site(name=f"{row.station} (spar simulation)"), start_date=STATION_START, channels=channels,
            )
        )
    # A fixed creation time keeps the file identical between runs with the same settings.
    created = obspy.UTCDateTime(settings.years[-1] + 1, 1, 1)
    return Inventory(networks=[Network(code=NETWORK, stations=network_stations)], source="spar synth ridgecrest", created=created)


def _utc(time_ms: int) -> obspy.UTCDateTime:
    return obspy.UTCDateTime(ns=int(time_ms) * 1_000_000)


def _iso_ms(time: obspy.UTCDateTime) -> str:
    """Format a time as ComCat does, for example ``2021-07-04T12:34:56.789Z``."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S')}.{time.microsecond // 1000:03d}Z"


def stp_text(catalog: pd.DataFrame) -> str:
    """Format the catalog as SCEDC STP event lines, ascending time."""
    lines = []
    for row in catalog.itertuples(index=False):
        time = _utc(row.time_ms)
        stamp = f"{time.strftime('%Y/%m/%d,%H:%M:%S')}.{time.microsecond // 1000:03d}"
        lines.append(
            f"{row.evid} {row.event_type} l {stamp} {row.latitude:.4f} {row.longitude:.4f} "
            f"{row.depth_km:.2f} {row.magnitude:.2f} {row.magnitude_type} 1.0"
        )
    return "".join(line + "\n" for line in lines)


def azimuthal_gap_deg(azimuths_deg: np.ndarray) -> float:
    """Return the largest angle in degrees between neighbouring azimuths (360 for fewer than two)."""
    if len(azimuths_deg) < 2:
        return 360.0
    ordered = np.sort(np.mod(azimuths_deg, 360.0))
    return float(np.max(np.diff(np.append(ordered, ordered[0] + 360.0))))


def comcat_csv(plan: EventPlan) -> str:
    """Format the catalog as a ComCat CSV, descending time.

    nst and gap count the stations that record each earthquake, and stay empty
    for quarry blasts, which have no waveforms. dmin is the epicentral distance
    to the nearest station in degrees. rms stays empty because the simulation has no picks to fit.
    """
    geod = Geod(ellps="WGS84")
    catalog = plan.catalog
    stations = plan.stations
    row_of_quake = {int(row): i for i, row in enumerate(plan.quakes)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", "latitude", "longitude", "depth", "mag", "magType", "nst", "gap", "dmin", "rms", "net", "id", "updated", "place", "type"])
    for index in range(len(catalog) - 1, -1, -1):
        row = catalog.iloc[index]
        n_stations = len(stations)
        azimuths, _, distances_m = geod.inv(
            np.full(n_stations, row["longitude"]), np.full(n_stations, row["latitude"]),
            stations["longitude"].to_numpy(), stations["latitude"].to_numpy(),
        )
        dmin_deg = float(np.min(distances_m)) / 111_195.0  # meters per degree on a sphere of radius 6371 km
        nst = gap = ""
        if row["event_type"] == "eq":
            recorded = plan.recorded[row_of_quake[index]]
            nst = str(int(recorded.sum()))
            gap = f"{azimuthal_gap_deg(np.asarray(azimuths)[recorded]):.0f}"
        city_azimuth, _, city_m = geod.inv(RIDGECREST_CITY[1], RIDGECREST_CITY[0], row["longitude"], row["latitude"])
        direction = COMPASS[int(np.floor(np.mod(city_azimuth, 360.0) / 22.5 + 0.5)) % 16]
        time = _utc(row["time_ms"])
        writer.writerow(
            [
                _iso_ms(time),
                f"{row['latitude']:.4f}", f"{row['longitude']:.4f}", f"{row['depth_km']:.2f}", f"{row['magnitude']:.2f}",
                f"m{row['magnitude_type']}", nst, gap, f"{dmin_deg:.5f}", "", "ci", f"ci{row['evid']}",
                _iso_ms(time + UPDATED_DELAY_S),
                f"{city_m / 1000.0:.0f} km {direction} of Ridgecrest, CA",
                "earthquake" if row["event_type"] == "eq" else "quarry blast",
            ]
        )
    return buffer.getvalue()


# --- entry point -----------------------------------------------------------------------------


def _log_variants(plan: EventPlan, settings: Settings) -> None:
    codes = plan.stations["station"].tolist()
    for station, text in (
        (HH12_STATION, f"records horizontals as HH1 and HH2 (azimuth {HH1_AZIMUTH_DEG:g} and {HH1_AZIMUTH_DEG + 90:g} degrees)"),
        (HN_FAST_STATION, f"records HN channels at {settings.rate_hz * HN_FAST_FACTOR} Hz"),
    ):
        n_recorded = int(plan.recorded[:, codes.index(station)].sum())
        log.info("variant: station %s %s, and it records %d earthquakes", station, text, n_recorded)


def synthesize(out_dir: Path, cfg: dict) -> None:
    """Write simulated Ridgecrest-area waveforms, stations and catalogs in the SCEDC layout under out_dir.

    Args:
        out_dir: folder that receives ``continuous_waveforms/``, ``stations/`` and
            ``catalog/``, created if missing.
        cfg: the ``synth.ridgecrest`` parameters. Missing keys take ``DEFAULTS``.

    The output depends only on cfg: the same cfg gives byte-identical files. Each
    of the three folders' files is replaced as a whole, so a previous run's waveform
    files do not survive.

    Raises:
        ValueError: when a parameter is invalid.
    """
    settings = parse_settings(cfg)
    out_dir = Path(out_dir)
    plan = plan_events(settings)
    n_pairs = plan.recorded.size
    n_missing = int(n_pairs - plan.recorded.sum())
    log.info(
        "synthesizing %d earthquakes and %d quarry blasts (%s) at %d stations into %s; detection threshold: S peak %.2f times "
        "the site noise rms, calibrated for %.0f %% missing pairs",
        len(plan.quakes), len(plan.catalog) - len(plan.quakes), ", ".join(map(str, settings.years)), len(plan.stations),
        out_dir, plan.threshold_snr, 100.0 * settings.missing_target_fraction,
    )
    _log_variants(plan, settings)
    if len(plan.quakes) == 0:
        log.warning("no earthquakes were drawn for %s, so no waveform file is written; raise events_per_year", settings.years)

    with atomic_path(out_dir / "continuous_waveforms") as tmp:
        tmp.mkdir()
        counts = write_waveforms(tmp, plan, settings)

    write_text(out_dir / "stations" / "ci_stations.txt", station_text(plan.stations))
    with atomic_path(out_dir / "stations" / "ci_stations.xml") as tmp:
        station_inventory(plan.stations, settings).write(str(tmp), format="STATIONXML")
    write_text(out_dir / "catalog" / "scedc.stp", stp_text(plan.catalog))
    write_text(out_dir / "catalog" / "comcat.csv", comcat_csv(plan))

    log.info(
        "wrote %d day files (%d traces, %d samples, %.1f MB) on %d days from %d station records; skipped %d of %d station-event "
        "pairs (%.1f %%) below the detection threshold; %d channel records reached the 24-bit limit; quarry blasts are in "
        "the catalogs only; output in %s",
        counts["files"], counts["traces"], counts["samples"], counts["bytes"] / 1e6, counts["days"], counts["records"],
        n_missing, n_pairs, 100.0 * n_missing / max(n_pairs, 1), counts["clipped"], out_dir,
    )
