"""Readers for seismic recordings: miniSEED waveforms, StationXML stations, QuakeML catalogs.

Every reader wraps obspy and returns either an ``obspy.Stream`` (waveforms) or a
pandas DataFrame with one row per station, channel or event, so the ingest
steps never handle obspy's object trees. Errors name the file that failed.

Conventions:

- Gaps and overlaps: traces of one SEED id that are at most ``max_gap_s``
  apart are merged with ``Stream.merge(method=1, fill_value=None)``. Samples
  inside a gap become masked (missing) values and are never filled with
  zeros. Traces further apart stay separate traces. Where two traces
  overlap, the samples of the trace that starts later replace those of the
  earlier one. A trace whose start time falls between the sample times of an
  earlier trace of the same id is snapped to the nearest sample by obspy.
- Resampling: ``resample_traces`` applies polyphase filtering
  (``scipy.signal.resample_poly``) to each contiguous segment, with an
  anti-alias low-pass at the lower Nyquist frequency. obspy's
  ``Trace.resample`` is not used because its default Hann window over the
  spectrum halves amplitudes at a quarter of the original rate (obspy 1.5.1).
- Depth and height: QuakeML depths are meters below sea level (negative above
  sea level). ``read_catalog`` reports ``depth_km`` with the same sign, and
  ``hypocenter_enu_km`` turns it into a height of ``-depth`` above sea level.
"""

from __future__ import annotations

import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
import obspy
import pandas as pd
from obspy.core.util.obspy_types import ObsPyException
from scipy.signal import resample_poly

from spar.io.geodesy import EnuFrame

log = logging.getLogger(__name__)

MINISEED_SUFFIXES = (".mseed", ".miniseed", ".ms")  # files a folder scan treats as miniSEED
QUAKEML_SUFFIXES = (".xml", ".quakeml", ".qml")  # files a folder scan treats as QuakeML
MAX_MASKED_GAP_S = 600.0  # longer gaps between traces of one channel split them instead of being masked
MAX_RESAMPLE_FACTOR = 1000  # largest up or down factor of a polyphase resampling
RATE_TOLERANCE = 1e-6  # relative difference below which two sample rates count as equal

# obspy raises several unrelated exception types for a file it cannot parse
# (ObsPyException subclasses for bad miniSEED records, TypeError "Unknown format",
# ValueError and lxml's XMLSyntaxError, a SyntaxError, for broken XML).
_READ_ERRORS = (ObsPyException, TypeError, ValueError, SyntaxError)

PathsOrFolder = str | os.PathLike | Iterable[str | os.PathLike]


def natural_key(text: str) -> tuple:
    """Return a sort key that orders embedded integers by value, so ``"2"`` sorts before ``"10"``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def _list_files(paths_or_folder: PathsOrFolder, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """Expand a folder (recursively, by suffix, skipping hidden files) or check a list of files."""
    if isinstance(paths_or_folder, (str, os.PathLike)):
        root = Path(paths_or_folder)
        if root.is_dir():
            files = sorted(
                p
                for p in root.rglob("*")
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            if not files:
                raise FileNotFoundError(f"no {kind} files ({', '.join(suffixes)}) found under {root}; check the folder")
            return files
        paths = [root]
    else:
        paths = [Path(p) for p in paths_or_folder]
        if not paths:
            raise FileNotFoundError(f"the list of {kind} files is empty; pass at least one file or a folder")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{kind} file(s) not found: {', '.join(missing)}")
    return paths


# --- waveforms -------------------------------------------------------------------------


def miniseed_files(paths_or_folder: PathsOrFolder) -> list[Path]:
    """List the miniSEED files of a folder (recursive, by suffix) or check an explicit list of files.

    A folder scan keeps files ending in ``MINISEED_SUFFIXES`` and skips hidden
    files and folders (such as an ``.index.h5`` beside the data). Files of an
    explicit list are taken whatever their suffix.
    """
    return _list_files(paths_or_folder, MINISEED_SUFFIXES, "miniSEED")


def read_waveforms(paths_or_folder: PathsOrFolder, *, merge: bool = True, max_gap_s: float = MAX_MASKED_GAP_S) -> obspy.Stream:
    """Read miniSEED files into one stream.

    Args:
        paths_or_folder: a folder (scanned as in ``miniseed_files``), one file, or a list of files.
        merge: merge the traces of each SEED id with ``merge_traces``. Pass False
            to resample first when one id has several sample rates.
        max_gap_s: maximum gap, seconds, that a merge fills with masked samples.

    Returns:
        The traces in the units stored in the files (no instrument response is removed), sorted by
        SEED id and start time. Merged traces hold a masked array where data are missing.

    Raises:
        FileNotFoundError: a listed file is missing or a folder contains no miniSEED file.
        ValueError: obspy cannot read a file; the message names it.
    """
    stream = obspy.Stream()
    for path in miniseed_files(paths_or_folder):
        try:
            stream += obspy.read(str(path), format="MSEED")
        except _READ_ERRORS as err:
            raise ValueError(f"cannot read {path} as miniSEED ({type(err).__name__}: {err}); remove or replace the file") from err
    log.debug("read %d traces", len(stream))
    if merge:
        stream = merge_traces(stream, max_gap_s)
    stream.sort(keys=["network", "station", "location", "channel", "starttime"])
    return stream


def merge_traces(stream: obspy.Stream, max_gap_s: float = MAX_MASKED_GAP_S) -> obspy.Stream:
    """Return a copy of ``stream`` in which touching, overlapping or nearby traces of each SEED id are merged.

    Traces of one id whose gap is at most ``max_gap_s`` seconds become one
    trace with masked samples in the gap. Overlapping samples take the values
    of the later trace, as ``Stream.merge(method=1, fill_value=None)`` does. Traces
    further apart stay separate, so event recordings days apart do not expand
    into days of masked samples.

    Raises:
        ValueError: traces of one SEED id have different sample rates; resample them first.
    """
    by_id: dict[str, list[obspy.Trace]] = {}
    for tr in stream:
        by_id.setdefault(tr.id, []).append(tr)

    mixed = {sid: sorted({float(t.stats.sampling_rate) for t in traces}) for sid, traces in by_id.items()}
    mixed = {sid: rates for sid, rates in mixed.items() if len(rates) > 1}
    if mixed:
        raise ValueError(f"traces of one SEED id have different sample rates {mixed}; call resample_traces before merging")

    merged = obspy.Stream()
    for traces in by_id.values():
        traces = sorted(traces, key=lambda t: t.stats.starttime)
        clusters = [[traces[0]]]
        cluster_end = traces[0].stats.endtime
        for tr in traces[1:]:
            if tr.stats.starttime - cluster_end <= max_gap_s:
                clusters[-1].append(tr)
                cluster_end = max(cluster_end, tr.stats.endtime)
            else:
                clusters.append([tr])
                cluster_end = tr.stats.endtime
        for cluster in clusters:
            part = obspy.Stream([t.copy() for t in cluster])
            part.merge(method=1, fill_value=None)
            merged += part
    return merged


def resample_traces(stream: obspy.Stream, rate_hz: float) -> tuple[obspy.Stream, int]:
    """Resample every trace that is not at ``rate_hz``; return a new, unmerged stream and the count resampled.

    Traces with masked gaps are split into contiguous segments first, and each
    segment is resampled on its own with ``scipy.signal.resample_poly``, so
    gaps stay gaps. The polyphase filter is a Kaiser-windowed FIR low-pass at
    the lower of the two Nyquist frequencies, which prevents aliasing when the
    rate drops. The filter treats samples beyond a segment's ends as zeros, so
    about ten input samples at each end carry edge transients.

    Raises:
        ValueError: the ratio of the two rates is no fraction with numerator
            and denominator up to ``MAX_RESAMPLE_FACTOR``.
    """
    out = obspy.Stream()
    n_resampled = 0
    target = Fraction(rate_hz).limit_denominator(MAX_RESAMPLE_FACTOR)
    for tr in stream.copy().split():
        old_rate = float(tr.stats.sampling_rate)
        if abs(old_rate - rate_hz) > RATE_TOLERANCE * rate_hz:
            ratio = (target / Fraction(old_rate).limit_denominator(MAX_RESAMPLE_FACTOR)).limit_denominator(MAX_RESAMPLE_FACTOR)
            if abs(float(ratio) * old_rate - rate_hz) > RATE_TOLERANCE * rate_hz:
                raise ValueError(
                    f"cannot resample trace {tr.id} from {old_rate} Hz to {rate_hz} Hz: the ratio needs factors above "
                    f"{MAX_RESAMPLE_FACTOR}; choose a target rate with a simpler ratio to the data rate"
                )
            log.debug("resampling %s from %g Hz to %g Hz (up %d, down %d)", tr.id, old_rate, rate_hz, ratio.numerator, ratio.denominator)
            tr.data = resample_poly(tr.data.astype(np.float64), ratio.numerator, ratio.denominator)
            tr.stats.sampling_rate = float(rate_hz)
            n_resampled += 1
        out += tr
    return out, n_resampled


def window_samples(traces: obspy.Stream | Iterable[obspy.Trace], start: obspy.UTCDateTime, n_samples: int, rate_hz: float) -> np.ndarray:
    """Cut ``n_samples`` from ``start`` out of the traces of one channel.

    Each trace is placed at the sample nearest to its start time on the grid
    that begins at ``start``, so the placement error is at most half a sample
    interval. Where traces overlap, later ones in ``traces`` overwrite earlier ones.

    Returns:
        float64 array of shape (n_samples,) in the traces' units; NaN where no trace has data.

    Raises:
        ValueError: a trace is not sampled at ``rate_hz``.
    """
    out = np.full(int(n_samples), np.nan)
    for tr in traces:
        if abs(tr.stats.sampling_rate - rate_hz) > RATE_TOLERANCE * rate_hz:
            raise ValueError(f"trace {tr.id} is sampled at {tr.stats.sampling_rate} Hz, not {rate_hz} Hz; resample it first")
        offset = int(round((tr.stats.starttime - start) * rate_hz))
        data = np.ma.filled(np.ma.asarray(tr.data, dtype=np.float64), np.nan)
        lo, hi = max(offset, 0), min(offset + len(data), len(out))
        if lo < hi:
            out[lo:hi] = data[lo - offset : hi - offset]
    return out


# --- stations --------------------------------------------------------------------------


def _read_inventory(path: str | os.PathLike) -> obspy.Inventory:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"StationXML file {path} not found")
    try:
        return obspy.read_inventory(str(path), format="STATIONXML")
    except _READ_ERRORS as err:
        raise ValueError(f"cannot read {path} as StationXML ({type(err).__name__}: {err}); remove or replace the file") from err


def read_channels(path: str | os.PathLike) -> pd.DataFrame:
    """Read the channels of a StationXML file.

    Returns:
        One row per channel epoch with columns network, station, location,
        channel, sample_rate_hz (as stated by the inventory), latitude and
        longitude (degrees), elevation_m (meters above sea level) and depth_m
        (burial depth below the surface, meters).
    """
    rows = []
    for net in _read_inventory(path):
        for sta in net:
            for cha in sta:
                rows.append(
                    {
                        "network": net.code,
                        "station": sta.code,
                        "location": cha.location_code,
                        "channel": cha.code,
                        "sample_rate_hz": float(cha.sample_rate) if cha.sample_rate is not None else np.nan,
                        "latitude": float(cha.latitude),
                        "longitude": float(cha.longitude),
                        "elevation_m": float(cha.elevation),
                        "depth_m": float(cha.depth) if cha.depth is not None else np.nan,
                    }
                )
    columns = ["network", "station", "location", "channel", "sample_rate_hz", "latitude", "longitude", "elevation_m", "depth_m"]
    return pd.DataFrame(rows, columns=columns)


def read_stations(path: str | os.PathLike) -> pd.DataFrame:
    """Read the station coordinates of a StationXML file.

    A station listed with several epochs keeps the coordinates of its latest
    epoch; a warning is logged when the epochs disagree.

    Returns:
        One row per (network, station), in natural order of the codes, with
        columns network, station, latitude, longitude (degrees, WGS84) and
        elevation_m (meters above sea level).
    """
    rows = []
    for net in _read_inventory(path):
        for sta in net:
            rows.append(
                {
                    "network": net.code,
                    "station": sta.code,
                    "latitude": float(sta.latitude),
                    "longitude": float(sta.longitude),
                    "elevation_m": float(sta.elevation),
                    "start": sta.start_date.ns if sta.start_date is not None else -1,
                }
            )
    columns = ["network", "station", "latitude", "longitude", "elevation_m"]
    if not rows:
        log.warning("StationXML file %s lists no stations", path)
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).sort_values("start")
    coords = table.groupby(["network", "station"])[["latitude", "longitude", "elevation_m"]].nunique()
    moved = coords.index[(coords > 1).any(axis=1)].tolist()
    if moved:
        log.warning("%s: stations %s have epochs with different coordinates; using the latest epoch", path, moved)
    table = table.drop_duplicates(["network", "station"], keep="last")
    order = sorted(range(len(table)), key=lambda i: (natural_key(table["network"].iat[i]), natural_key(table["station"].iat[i])))
    return table.iloc[order][columns].reset_index(drop=True)


# --- events ----------------------------------------------------------------------------


def quakeml_files(paths_or_folder: PathsOrFolder) -> list[Path]:
    """List the QuakeML files of a folder (recursive, by suffix, hidden files skipped) or check a list."""
    return _list_files(paths_or_folder, QUAKEML_SUFFIXES, "QuakeML")


def read_catalog(paths_or_folder: PathsOrFolder) -> pd.DataFrame:
    """Read the events of one or more QuakeML files.

    Each event uses its preferred origin and magnitude, or the first listed
    when none is marked preferred. Events without any origin are skipped with a warning.

    Returns:
        One row per event, sorted by time. Columns: event_id (the last
        ``/``-separated part of the resource id), time (pandas Timestamp, UTC),
        latitude and longitude (degrees), depth_km and magnitude. depth_km is
        km below sea level, so it is negative above sea level. Missing depths
        and magnitudes are NaN.
    """
    rows = []
    n_without_origin = 0
    for path in quakeml_files(paths_or_folder):
        try:
            catalog = obspy.read_events(str(path), format="QUAKEML")
        except _READ_ERRORS as err:
            raise ValueError(f"cannot read {path} as QuakeML ({type(err).__name__}: {err}); remove or replace the file") from err
        for event in catalog:
            origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
            if origin is None:
                n_without_origin += 1
                continue
            magnitude = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
            rows.append(
                {
                    "event_id": str(event.resource_id).rstrip("/").rsplit("/", 1)[-1],
                    "time": origin.time.ns,
                    "latitude": float(origin.latitude),
                    "longitude": float(origin.longitude),
                    "depth_km": float(origin.depth) / 1000.0 if origin.depth is not None else np.nan,
                    "magnitude": float(magnitude.mag) if magnitude is not None and magnitude.mag is not None else np.nan,
                }
            )
    if n_without_origin:
        log.warning("skipped %d events without an origin", n_without_origin)
    table = pd.DataFrame(rows, columns=["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"])
    table["time"] = pd.to_datetime(table["time"].astype("int64"), unit="ns", utc=True)
    return table.sort_values("time", kind="stable").reset_index(drop=True)


# --- positions -------------------------------------------------------------------------


def network_frame(stations: pd.DataFrame) -> EnuFrame:
    """Build the ENU frame whose origin is the mean latitude, longitude and elevation of the stations."""
    return EnuFrame.centered_on(stations["latitude"], stations["longitude"], stations["elevation_m"])


def station_enu_km(stations: pd.DataFrame, frame: EnuFrame) -> np.ndarray:
    """Convert station coordinates to ENU kilometers, shape (station, 3) with axes east, north, up.

    Elevations above sea level are passed to the frame as heights above the
    ellipsoid. The geoid offset is the same for stations and events, so
    relative positions are unaffected, but heights are offset from true
    ellipsoidal heights by the geoid undulation.
    """
    return frame.to_enu(stations["latitude"].to_numpy(), stations["longitude"].to_numpy(), stations["elevation_m"].to_numpy()) / 1000.0


def hypocenter_enu_km(catalog: pd.DataFrame, frame: EnuFrame) -> np.ndarray:
    """Convert event hypocenters to ENU kilometers, shape (event, 3) with axes east, north, up.

    The height of a hypocenter above sea level is ``-depth``, so ``up`` is
    ``-depth_km`` minus the frame origin's height in km (up to the Earth's
    curvature over the horizontal offset). An event above the frame origin has
    ``up > 0``. Events without a depth get NaN in all three axes.
    """
    height_m = -catalog["depth_km"].to_numpy(dtype=float) * 1000.0
    enu = frame.to_enu(catalog["latitude"].to_numpy(), catalog["longitude"].to_numpy(), np.nan_to_num(height_m)) / 1000.0
    enu[~np.isfinite(height_m)] = np.nan
    return enu
