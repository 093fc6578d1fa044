"""Readers for seismic recordings: miniSEED waveforms, station lists and event catalogs.

Every reader wraps obspy or parses plain text and returns either an
``obspy.Stream`` (waveforms) or a pandas DataFrame with one row per station,
channel or event, so the ingest steps never handle obspy's object trees. Errors
name the file that failed.

Formats:

- Waveforms: miniSEED files, and the SCEDC Open Data archive of one miniSEED
  file per channel and UTC day (``ScedcArchive``), named
  ``continuous_waveforms/YYYY/YYYY_DDD/<NET><STA><CHA><LOC>_<YYYYDDD>.ms`` with
  the station padded with ``_`` to 5 characters and the location to 2, for
  example ``CIWBM__HHZ___2019185.ms``.
- Stations: StationXML and the FDSN station text format (``|``-separated).
- Catalogs: QuakeML, SCEDC STP event lines, SCEDC catalog-search text and
  USGS ComCat CSV, all read into the same table (``CATALOG_COLUMNS``).

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
- Channel names: channels keep the codes stored in the files. Horizontal
  components are ``E``/``N`` at most stations and ``1``/``2`` at some, so a
  channel prefix such as ``HH`` selects HHE, HHN, HHZ at one station and HH1,
  HH2, HHZ at another. No reader renames or rotates 1/2 to N/E, because their
  azimuths are station metadata (``Channel.azimuth`` in StationXML) and 1 and
  2 need not point north and east.
- Depth and height: depths are km below sea level, positive down and negative
  above sea level, in every catalog format (QuakeML stores meters, the text
  formats km). ``hypocenter_enu_km`` turns a depth into a height of ``-depth``
  above sea level.
- Catalogs keep earthquakes only in the text formats: event type ``eq`` in
  the SCEDC formats and ``type == earthquake`` in ComCat. Other events (quarry
  blasts, explosions, sonic booms) are counted and logged per type. QuakeML
  events are kept whatever their type.
- Malformed catalog rows: a row with the wrong number of fields, a number or
  date that does not parse, or a coordinate out of range is skipped. The
  reader logs one warning per skipped row as ``file:line: problem`` for the
  first ``MAX_LOGGED_ROWS`` rows of a file and then only counts them. Its
  summary line per file gives the count. A file in which every data row is
  malformed raises ValueError naming the file. Station text files are
  stricter: a malformed row raises ValueError with the file, line and problem,
  because a station table with a silently missing station would shift every
  later step.
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import re
from collections import Counter, OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import lxml.etree
import numpy as np
import obspy
import pandas as pd
from pyproj import Geod
from scipy.signal import resample_poly
from tqdm import tqdm

from spar.io.geodesy import EnuFrame

log = logging.getLogger(__name__)

MINISEED_SUFFIXES = (".mseed", ".miniseed", ".ms")  # files a folder scan treats as miniSEED
QUAKEML_SUFFIXES = (".xml", ".quakeml", ".qml")  # files a folder scan treats as QuakeML
MAX_MASKED_GAP_S = 600.0  # longer gaps between traces of one channel split them instead of being masked
MAX_RESAMPLE_FACTOR = 1000  # largest up or down factor of a polyphase resampling
RATE_TOLERANCE = 1e-6  # relative difference below which two sample rates count as equal
SCEDC_CACHE_FILES = 64  # decoded day files an archive keeps in memory by default
# A miniSEED record can cross midnight, so the last samples of a day can sit in the
# next day's file. A window this close to midnight also reads the neighbouring day.
DAY_EDGE_S = 60.0
# Samples, at the lower of the two rates, read beyond each end of a window before
# resampling. resample_poly's transients reach about 10 such samples from a segment end.
RESAMPLE_PAD_SAMPLES = 20
MAX_LOGGED_ROWS = 10  # malformed catalog rows logged one by one per file; later ones are only counted

# obspy 1.5.1 raises many unrelated exception types for a file it cannot parse.
# Bad miniSEED records raise ObsPyException subclasses, and an unknown format TypeError.
# Broken XML raises ValueError or lxml's XMLSyntaxError, and XML of another schema
# AttributeError. A miniSEED file cut inside its first record raises a bare Exception
# ("Cannot open file"). Every one of them means that the file cannot be read.
_READ_ERRORS = (Exception,)

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
        ValueError: obspy cannot read a file, or a file contains text records
            instead of samples; the message names it. A file cut inside its
            last record is read up to that record, with a logged warning.
    """
    stream = obspy.Stream()
    for path in miniseed_files(paths_or_folder):
        stream += _read_miniseed(path, "")
    log.debug("read %d traces", len(stream))
    if merge:
        stream = merge_traces(stream, max_gap_s)
    stream.sort(keys=["network", "station", "location", "channel", "starttime"])
    return stream


def _read_miniseed(path: Path, kind: str) -> obspy.Stream:
    """Decode one miniSEED file and check that its samples are numbers.

    ``kind`` prefixes the path in messages, for example ``"SCEDC day file "``.

    A file whose size is not a whole number of records lost its end: its
    complete records are kept and a logged warning names the bytes left out
    (obspy 1.5.1 drops a partial last record with only a Python warning).

    Raises:
        ValueError: obspy cannot read the file, or a record contains text (ASCII
            encoding) instead of samples. The message names the file.
    """
    try:
        stream = obspy.read(str(path), format="MSEED")
    except _READ_ERRORS as err:
        raise ValueError(f"cannot read {kind}{path} as miniSEED ({type(err).__name__}: {err}); remove or replace the file") from err

    for trace in stream:
        if not np.issubdtype(trace.data.dtype, np.number):
            raise ValueError(
                f"{kind}{path}: trace {trace.id} contains {trace.data.dtype} data, not numeric samples "
                "(a miniSEED log or text channel); remove the file or list only waveform files"
            )

    # NOTE: the first record's length is taken for the whole file, so a file that mixes record lengths can get a false warning.
    record_length = stream[0].stats.mseed.record_length if stream and "mseed" in stream[0].stats else 0
    size = path.stat().st_size
    if record_length and size % record_length:
        log.warning(
            "%s%s: %d bytes are not a whole number of %d-byte records; the last %d bytes (a truncated record) were left out",
            kind, path, size, record_length, size % record_length,
        )
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
        float64 array of shape (n_samples,) in the traces' units; NaN where no
        trace has data and where a trace contains NaN or +-inf.

    Raises:
        ValueError: a trace is not sampled at ``rate_hz``.
    """
    out = np.full(int(n_samples), np.nan)
    for tr in traces:
        if abs(tr.stats.sampling_rate - rate_hz) > RATE_TOLERANCE * rate_hz:
            raise ValueError(f"trace {tr.id} is sampled at {tr.stats.sampling_rate} Hz, not {rate_hz} Hz; resample it first")
        offset = int(round((tr.stats.starttime - start) * rate_hz))
        data = np.ma.filled(np.ma.asarray(tr.data, dtype=np.float64), np.nan)
        data = np.where(np.isfinite(data), data, np.nan)  # a new array: +-inf counts as missing, like NaN
        lo, hi = max(offset, 0), min(offset + len(data), len(out))
        if lo < hi:
            out[lo:hi] = data[lo - offset : hi - offset]
    return out


# --- SCEDC Open Data archive -------------------------------------------------------------

# <NET 2><STA 5><CHA 3><LOC 2>_<YYYY><DDD>.ms, codes padded with "_" on the right
_SCEDC_NAME = re.compile(
    r"^(?P<network>[A-Z0-9_]{2})(?P<station>[A-Z0-9_]{5})(?P<channel>[A-Z0-9]{3})(?P<location>[A-Z0-9_]{2})"
    r"_(?P<year>\d{4})(?P<day_of_year>\d{3})\.ms$"
)


def _pad_code(value: str, width: int, name: str, exact: bool = False) -> str:
    """Pad a SEED code with ``_`` to ``width`` characters after checking its length and characters."""
    if not re.fullmatch(r"[A-Z0-9]*", value) or len(value) > width or (exact and len(value) != width):
        size = f"exactly {width}" if exact else f"at most {width}"
        raise ValueError(f"{name} code {value!r} is not {size} upper-case letters or digits; pass the SEED code as stored in the archive")
    return value.ljust(width, "_")


def scedc_day_path(root: str | os.PathLike, network: str, station: str, channel: str, location: str, day: datetime.date) -> Path:
    """Build the path of one channel-day file in an SCEDC Open Data archive.

    Args:
        root: the folder that contains ``continuous_waveforms``.
        network, station, channel, location: SEED codes (up to 2, 5, exactly 3
            and up to 2 characters); an empty location is written as ``__``.
        day: the UTC day.

    Returns:
        ``root/continuous_waveforms/YYYY/YYYY_DDD/<NET><STA><CHA><LOC>_<YYYYDDD>.ms``,
        for example ``CIWBM__HHZ___2019185.ms`` for CI.WBM..HHZ on 2019-07-04.

    Raises:
        ValueError: a code is too long or contains other characters than A-Z and 0-9.
    """
    if not network or not station:
        raise ValueError(f"network {network!r} and station {station!r} must not be empty")
    name = (
        _pad_code(network, 2, "network")
        + _pad_code(station, 5, "station")
        + _pad_code(channel, 3, "channel", exact=True)
        + _pad_code(location, 2, "location")
    )
    year, day_of_year = day.year, day.timetuple().tm_yday
    return Path(root) / "continuous_waveforms" / f"{year:04d}" / f"{year:04d}_{day_of_year:03d}" / f"{name}_{year:04d}{day_of_year:03d}.ms"


def parse_scedc_name(path: str | os.PathLike) -> dict:
    """Split the name of an SCEDC day file into its SEED codes and day.

    Returns:
        dict with network, station, channel and location (str, padding removed,
        so ``__`` becomes the empty location), year and day_of_year (int).

    Raises:
        ValueError: the name does not follow the layout or names a day the year does not have.
    """
    name = Path(path).name
    match = _SCEDC_NAME.match(name)
    if match is None:
        raise ValueError(
            f"file name {name!r} is not an SCEDC day file name <NET><STA padded to 5><CHA><LOC padded to 2>_<YYYYDDD>.ms "
            "such as CIWBM__HHZ___2019185.ms"
        )
    codes = {key: match[key].rstrip("_") for key in ("network", "station", "channel", "location")}
    if not codes["network"] or not codes["station"] or any("_" in codes[key] for key in ("network", "station", "location")):
        raise ValueError(f"file name {name!r} has padding inside a code; only trailing '_' pads a code")
    year, day_of_year = int(match["year"]), int(match["day_of_year"])
    days_in_year = 366 if datetime.date(year, 12, 31).timetuple().tm_yday == 366 else 365
    if not 1 <= day_of_year <= days_in_year:
        raise ValueError(f"file name {name!r} names day {day_of_year} of {year}, which has days 1 to {days_in_year}")
    return {**codes, "year": year, "day_of_year": day_of_year}


def _day_from_year_and_ordinal(year: int, day_of_year: int) -> datetime.date:
    return datetime.date(year, 1, 1) + datetime.timedelta(days=day_of_year - 1)


def _merge_single_rate_ids(stream: obspy.Stream, max_gap_s: float) -> obspy.Stream:
    """Merge the traces of every SEED id that has one sample rate and leave ids with several rates unmerged."""
    by_id: dict[str, list[obspy.Trace]] = {}
    for tr in stream:
        by_id.setdefault(tr.id, []).append(tr)
    out = obspy.Stream()
    for traces in by_id.values():
        group = obspy.Stream(traces)
        if len({float(tr.stats.sampling_rate) for tr in traces}) == 1:
            group = merge_traces(group, max_gap_s)
        out += group
    return out


def _trim_half_open(trace: obspy.Trace, start: obspy.UTCDateTime, end: obspy.UTCDateTime) -> obspy.Trace | None:
    """Return a copy of the samples of ``trace`` at times t with start <= t < end, or None when there are none.

    A sample less than a thousandth of an interval from ``start`` or ``end``
    counts as on it, so float rounding of the start time does not move a boundary sample.
    """
    rate = float(trace.stats.sampling_rate)
    tolerance = 1e-3
    first = max(0, int(np.ceil((start - trace.stats.starttime) * rate - tolerance)))
    stop = min(trace.stats.npts, int(np.ceil((end - trace.stats.starttime) * rate - tolerance)))
    if stop <= first:
        return None
    out = trace.copy()
    out.data = trace.data[first:stop].copy()
    out.stats.starttime = trace.stats.starttime + first / rate
    return out


class ScedcArchive:
    """Windows of continuous waveforms from an SCEDC Open Data archive on disk.

    The constructor scans ``root/continuous_waveforms`` once and lists every
    day file in ``self.files``, a DataFrame with columns network, station,
    location, channel, day (``datetime.date``, UTC) and path. Files whose name
    is not an SCEDC day file name, or which sit in the folder of another day,
    are skipped and counted in one log line. Files added after the scan are not seen.

    Decoded day files stay in a least-recently-used cache of ``cache_size``
    files, because events are processed in time order and many fall on the
    same day. A 100 Hz day file decodes to 8.64 million int32 samples (about
    35 MB), so the default of 64 files can take about 2.2 GB; lower
    ``cache_size`` on small machines (0 disables the cache).

    Args:
        root: the folder that contains ``continuous_waveforms``.
        cache_size: maximum number of decoded day files kept in memory.
        max_gap_s: maximum gap, seconds, that ``merge_traces`` fills with masked samples.

    Raises:
        FileNotFoundError: ``root/continuous_waveforms`` is not a folder.
    """

    def __init__(self, root: str | os.PathLike, cache_size: int = SCEDC_CACHE_FILES, max_gap_s: float = MAX_MASKED_GAP_S):
        if int(cache_size) < 0:
            raise ValueError(f"cache_size {cache_size!r} is negative; pass 0 to disable the cache or a positive number of files")
        self.root = Path(root)
        self.cache_size = int(cache_size)
        self.max_gap_s = float(max_gap_s)
        self._cache: OrderedDict[Path, obspy.Stream] = OrderedDict()
        self._hits = 0
        self._misses = 0

        folder = self.root / "continuous_waveforms"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} is not a folder; pass the folder that contains continuous_waveforms/YYYY/YYYY_DDD/ as root"
            )
        rows = []
        skipped = Counter()
        candidates = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in tqdm(candidates, desc="scan SCEDC archive", unit="file", disable=None):
            try:
                parts = parse_scedc_name(path)
            except ValueError:
                skipped["not named like an SCEDC day file"] += 1
                continue
            day = _day_from_year_and_ordinal(parts["year"], parts["day_of_year"])
            expected = scedc_day_path(self.root, parts["network"], parts["station"], parts["channel"], parts["location"], day)
            if path != expected:
                skipped["not in the folder of its day"] += 1
                log.debug("%s is not at %s; skipped", path, expected)
                continue
            rows.append({**{k: parts[k] for k in ("network", "station", "location", "channel")}, "day": day, "path": path})

        columns = ["network", "station", "location", "channel", "day", "path"]
        self.files = pd.DataFrame(rows, columns=columns).sort_values(columns[:5], kind="stable").reset_index(drop=True)
        self._by_station_day: dict[tuple[str, str, datetime.date], list[tuple[str, str, Path]]] = {}
        for row in self.files.itertuples(index=False):
            self._by_station_day.setdefault((row.network, row.station, row.day), []).append((row.location, row.channel, row.path))
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none"
        log.info(
            "scanned %s: %d day files of %d stations indexed; skipped %d files (%s)",
            folder,
            len(self.files),
            self.files[["network", "station"]].drop_duplicates().shape[0],
            sum(skipped.values()),
            reasons,
        )

    def cache_info(self) -> dict:
        """Return the cache's hits, misses, current size (files) and maximum size."""
        return {"hits": self._hits, "misses": self._misses, "size": len(self._cache), "max_size": self.cache_size}

    def _read_day(self, path: Path, codes: tuple[str, str, str, str]) -> obspy.Stream:
        """Decode one day file (through the cache) and keep its traces whose codes match the file name."""
        if path in self._cache:
            self._hits += 1
            self._cache.move_to_end(path)
            return self._cache[path]
        self._misses += 1
        if not path.is_file():
            log.warning("day file %s was removed after the archive scan; reading no data from it", path)
            return obspy.Stream()
        stream = _read_miniseed(path, "SCEDC day file ")

        expected_id = "{}.{}.{}.{}".format(*codes)
        other = [tr.id for tr in stream if tr.id != expected_id]
        if other:
            log.warning("%s: %d traces have ids %s instead of %s from the file name; ignoring them", path, len(other), sorted(set(other)), expected_id)
            stream = obspy.Stream([tr for tr in stream if tr.id == expected_id])

        if self.cache_size:
            self._cache[path] = stream
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return stream

    def window(
        self,
        network: str,
        station: str,
        channel_prefix: str,
        start: obspy.UTCDateTime,
        end: obspy.UTCDateTime,
        rate_hz: float,
        *,
        location: str | None = None,
    ) -> obspy.Stream:
        """Read the traces of one station's channels that start with ``channel_prefix`` over [start, end).

        Every day file that overlaps the window is read, so a window can span
        midnight. The traces are merged per SEED id by ``merge_traces``
        (masked samples in gaps, later trace wins in overlaps), traces at
        another rate are resampled to ``rate_hz`` by ``resample_traces``, and
        the result is cut to the samples at times ``start <= t < end``.
        Before resampling, the data are read with a margin of
        ``RESAMPLE_PAD_SAMPLES`` beyond each end, so the filter's edge
        transients fall outside the window. Channel codes are kept as stored
        (E/N or 1/2, see the module docstring).

        Args:
            network, station: SEED codes.
            channel_prefix: the start of the channel codes, for example ``"HH"``
                for HHE/HHN/HHZ or ``"HHZ"`` for one channel.
            start, end: window limits, UTC.
            rate_hz: sample rate of the returned traces, Hz.
            location: only this location code (``""`` for none); None takes every location.

        Returns:
            A stream sorted by SEED id and start time, in the units stored in
            the files. Parts of the window without data are masked inside a
            trace or lie outside every trace. The stream is empty when no day
            file of the window exists.

        Raises:
            ValueError: ``end`` is not after ``start``, ``rate_hz`` is not
                positive, or a day file cannot be decoded (the message names it).
        """
        start, end = obspy.UTCDateTime(start), obspy.UTCDateTime(end)
        if not end > start:
            raise ValueError(f"window end {end} is not after its start {start}; pass start < end")
        if not rate_hz > 0:
            raise ValueError(f"rate_hz {rate_hz!r} is not a positive sample rate in Hz")

        first_day = (start - DAY_EDGE_S).date
        last_day = (end + DAY_EDGE_S).date
        pieces = obspy.Stream()
        n_files = 0
        day = first_day
        while day <= last_day:
            for loc, channel, path in self._by_station_day.get((network, station, day), ()):
                if not channel.startswith(channel_prefix) or (location is not None and loc != location):
                    continue
                n_files += 1
                for tr in self._read_day(path, (network, station, loc, channel)):
                    pad_s = RESAMPLE_PAD_SAMPLES / min(float(tr.stats.sampling_rate), float(rate_hz))
                    piece = tr.slice(start - pad_s, end + pad_s)
                    if piece.stats.npts:
                        pieces += piece.copy()
            day += datetime.timedelta(days=1)

        stream = _merge_single_rate_ids(pieces, self.max_gap_s)
        stream, n_resampled = resample_traces(stream, rate_hz)
        for tr in stream:
            # rates within RATE_TOLERANCE were not resampled; equal rates let merge_traces join them
            tr.stats.sampling_rate = float(rate_hz)
        stream = merge_traces(stream, self.max_gap_s)

        out = obspy.Stream()
        for tr in stream:
            trimmed = _trim_half_open(tr, start, end)
            if trimmed is not None:
                out += trimmed
        out.sort(keys=["network", "station", "location", "channel", "starttime"])
        log.debug(
            "%s.%s.%s* %s - %s: %d day files, %d traces, %d segments resampled to %g Hz",
            network, station, channel_prefix, start, end, n_files, len(out), n_resampled, rate_hz,
        )
        return out


# --- stations --------------------------------------------------------------------------


def _read_inventory(path: str | os.PathLike) -> obspy.Inventory:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"StationXML file {path} not found")
    try:
        return obspy.read_inventory(str(path), format="STATIONXML")
    except _READ_ERRORS as err:
        uncoordinated = _stations_without_coordinates(path)
        if uncoordinated:
            raise ValueError(
                f"{path}: station(s) {uncoordinated} have no numeric Latitude or Longitude; "
                "add the coordinates or remove the stations from the file"
            ) from err
        raise ValueError(f"cannot read {path} as StationXML ({type(err).__name__}: {err}); remove or replace the file") from err


def _stations_without_coordinates(path: Path) -> list[str]:
    """List ``NET.STA`` of the StationXML stations that lack a finite Latitude or Longitude; empty when the XML does not parse."""
    try:
        root = lxml.etree.parse(str(path)).getroot()
    except (lxml.etree.XMLSyntaxError, OSError):
        return []
    found = []
    for network in root.iter("{*}Network"):
        for station in network.iterfind("{*}Station"):
            for tag in ("Latitude", "Longitude"):
                text = station.findtext(f"{{*}}{tag}")
                try:
                    valid = text is not None and np.isfinite(float(text))
                except ValueError:
                    valid = False
                if not valid:
                    found.append(f"{network.get('code')}.{station.get('code')}")
                    break
    return found


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


STATION_COLUMNS = ["network", "station", "latitude", "longitude", "elevation_m"]  # columns of read_stations
# FDSN station text header names (lower case) and the read_station_text columns they fill
_STATION_TEXT_FIELDS = {
    "network": "network",
    "station": "station",
    "latitude": "latitude",
    "longitude": "longitude",
    "elevation": "elevation_m",
    "sitename": "site_name",
    "starttime": "start",
    "endtime": "end",
}
_STATION_TEXT_REQUIRED = ("network", "station", "latitude", "longitude", "elevation")


def _is_xml(path: Path) -> bool:
    """Return whether the first non-blank character of the file is ``<``."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _parse_utc_timestamp(text: str) -> pd.Timestamp:
    """Parse an ISO 8601 time as UTC; a time without a zone is taken as UTC. Raises ValueError."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"invalid time {text!r} ({err})") from None
    if stamp is pd.NaT:
        raise ValueError(f"invalid time {text!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parse_coordinate(text: str, name: str, bound: float | None = None) -> float:
    """Parse a finite float, within [-bound, bound] when a bound is given. Raises ValueError naming the field."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a finite number")
    if bound is not None and abs(value) > bound:
        raise ValueError(f"{name} {value} is outside [-{bound:g}, {bound:g}] degrees")
    return value


def read_station_text(path: str | os.PathLike) -> pd.DataFrame:
    """Read a station list in the FDSN station text format.

    The first line is the header
    ``#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime``,
    and every further line is one station epoch with ``|``-separated fields in
    the header's order. Fields are stripped of surrounding spaces. Blank lines
    and later lines starting with ``#`` are skipped. SiteName, StartTime and
    EndTime may be absent from the header. Times without a zone are UTC.

    Returns:
        One row per epoch, in file order, with columns network, station,
        latitude and longitude (degrees, WGS84), elevation_m (meters above sea
        level), site_name (str, empty when absent), start and end
        (``datetime64[us, UTC]``). An empty time field gives NaT, and an empty
        end means that the epoch is open. Microsecond resolution keeps
        far-future end dates such as 2599-12-31, which nanoseconds cannot hold.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the header lacks a required column, or a row has the wrong
            number of fields or an invalid coordinate or time; the message
            names the file, the line number and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"station text file {path} not found")
    # errors="replace": a site name in another encoding must not stop the read
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()

    header_no = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_no is None or not lines[header_no].lstrip().startswith("#"):
        raise ValueError(
            f"{path}: no FDSN station text header found (expected a first line like "
            "'#Network | Station | Latitude | Longitude | Elevation | SiteName | StartTime | EndTime')"
        )
    names = [name.strip().lower() for name in lines[header_no].lstrip().lstrip("#").split("|")]
    missing = [name for name in _STATION_TEXT_REQUIRED if name not in names]
    if missing:
        raise ValueError(f"{path}:{header_no + 1}: header lacks column(s) {missing}; found {names}")

    rows = []
    for number, line in enumerate(lines[header_no + 1 :], start=header_no + 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != len(names):
            raise ValueError(f"{path}:{number}: {len(fields)} '|'-separated fields, the header has {len(names)}; fix or remove the line")
        values = dict(zip(names, fields))
        try:
            if not values["network"] or not values["station"]:
                raise ValueError("empty network or station code")
            row = {
                "network": values["network"],
                "station": values["station"],
                "latitude": _parse_coordinate(values["latitude"], "latitude", 90.0),
                "longitude": _parse_coordinate(values["longitude"], "longitude", 180.0),
                "elevation_m": _parse_coordinate(values["elevation"], "elevation"),
                "site_name": values.get("sitename", ""),
            }
            for name in ("starttime", "endtime"):
                text = values.get(name, "")
                row[_STATION_TEXT_FIELDS[name]] = _parse_utc_timestamp(text) if text else pd.NaT
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}; fix or remove the line") from None
        rows.append(row)

    table = pd.DataFrame(rows, columns=list(_STATION_TEXT_FIELDS.values()))
    for column in ("start", "end"):
        table[column] = pd.Series(table[column].tolist(), dtype="datetime64[us, UTC]", index=table.index)
    log.debug("read %d station epochs from %s", len(table), path)
    return table


def _latest_epoch_per_station(epochs: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Keep the latest epoch (by column start, NaT first) of each (network, station), in natural order of the codes."""
    table = epochs.sort_values("start", kind="stable", na_position="first")
    coords = table.groupby(["network", "station"])[["latitude", "longitude", "elevation_m"]].nunique()
    moved = coords.index[(coords > 1).any(axis=1)].tolist()
    if moved:
        log.warning("%s: stations %s have epochs with different coordinates; using the latest epoch", path, moved)
    table = table.drop_duplicates(["network", "station"], keep="last")
    order = sorted(range(len(table)), key=lambda i: (natural_key(table["network"].iat[i]), natural_key(table["station"].iat[i])))
    return table.iloc[order][STATION_COLUMNS].reset_index(drop=True)


def read_stations(path: str | os.PathLike) -> pd.DataFrame:
    """Read the station coordinates of a StationXML or FDSN station text file.

    The format is taken from the content: a file whose first non-blank
    character is ``<`` is StationXML, any other is FDSN station text
    (``read_station_text``). A station listed with several epochs keeps the
    coordinates of its latest epoch, and a warning is logged when the epochs disagree.

    Returns:
        One row per (network, station), in natural order of the codes, with
        columns network, station, latitude, longitude (degrees, WGS84) and
        elevation_m (meters above sea level).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be read in its format; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"station file {path} not found")
    if not _is_xml(path):
        epochs = read_station_text(path)
        if epochs.empty:
            log.warning("station text file %s lists no stations", path)
            return pd.DataFrame(columns=STATION_COLUMNS)
        return _latest_epoch_per_station(epochs, path)

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
                    "start": pd.Timestamp(sta.start_date.ns, unit="ns", tz="UTC") if sta.start_date is not None else pd.NaT,
                }
            )
    if not rows:
        log.warning("StationXML file %s lists no stations", path)
        return pd.DataFrame(columns=STATION_COLUMNS)
    return _latest_epoch_per_station(pd.DataFrame(rows), path)


# --- events ----------------------------------------------------------------------------

# Columns of every catalog table: event_id (str), time (datetime64[ns, UTC]), latitude and
# longitude (degrees), depth_km (km below sea level, positive down), magnitude and
# magnitude_type. A missing magnitude is NaN. The magnitude type is the file's own code
# ("l", "w", "mw", "ML"), or empty when the file gives none.
CATALOG_COLUMNS = ["event_id", "time", "latitude", "longitude", "depth_km", "magnitude", "magnitude_type"]
# Catalog formats that read_catalog accepts as fmt, with the file suffixes that select them.
CATALOG_FORMATS = {
    "quakeml": QUAKEML_SUFFIXES,
    "scedc_stp": (".stp",),
    "scedc_search": (".txt",),
    "comcat_csv": (".csv",),
}
SCEDC_EARTHQUAKE = "eq"  # SCEDC event type of earthquakes (others: qb quarry blast, sn sonic boom, nt nuclear, uk unknown)
SCEDC_NO_MAGNITUDE = "n"  # SCEDC magnitude type meaning that the event has no magnitude
COMCAT_EARTHQUAKE = "earthquake"
_COMCAT_REQUIRED = ("time", "latitude", "longitude", "depth", "mag", "magType", "id", "type")
_UNIX_EPOCH = datetime.date(1970, 1, 1)
_NS_PER_S = 1_000_000_000


def quakeml_files(paths_or_folder: PathsOrFolder) -> list[Path]:
    """List the QuakeML files of a folder (recursive, by suffix, hidden files skipped) or check a list."""
    return _list_files(paths_or_folder, QUAKEML_SUFFIXES, "QuakeML")


def _catalog_table(rows: list[dict]) -> pd.DataFrame:
    """Build a catalog table with ``CATALOG_COLUMNS`` from rows whose time is integer ns since 1970, sorted by time."""
    table = pd.DataFrame(rows, columns=CATALOG_COLUMNS)
    table["event_id"] = table["event_id"].astype(str)
    table["time"] = pd.to_datetime(table["time"].astype("int64"), unit="ns", utc=True)
    for column in ("latitude", "longitude", "depth_km", "magnitude"):
        table[column] = table[column].astype(float)
    table["magnitude_type"] = table["magnitude_type"].astype(str)
    return table.sort_values("time", kind="stable").reset_index(drop=True)


class _RowProblem(ValueError):
    """The reason why one catalog row is malformed."""


def _parse_number(text: str, name: str, bound: float | None = None) -> float:
    try:
        return _parse_coordinate(text, name, bound)
    except ValueError as err:
        raise _RowProblem(str(err)) from None


def _parse_scedc_time(date_text: str, time_text: str) -> int:
    """Convert an SCEDC date ``YYYY/MM/DD`` and UTC time ``HH:MM:SS.sss`` to ns since 1970.

    The seconds are parsed as a decimal string, so no digit is lost to float
    rounding. Seconds from 60 to 60.999 roll over into the next minute instead
    of being rejected, because a time rounded to hundredths can read 60.00.
    """
    date_match = re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", date_text)
    time_match = re.fullmatch(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{0,9}))?", time_text)
    if date_match is None or time_match is None:
        raise _RowProblem(f"invalid date or time {date_text!r} {time_text!r} (expected YYYY/MM/DD HH:MM:SS.sss)")
    try:
        day = datetime.date(*(int(part) for part in date_match.groups()))
    except ValueError as err:
        raise _RowProblem(f"invalid date {date_text!r} ({err})") from None
    hour, minute, second = (int(part) for part in time_match.groups()[:3])
    if hour > 23 or minute > 59 or second > 60:
        raise _RowProblem(f"invalid time of day {time_text!r}")
    fraction_ns = int((time_match[4] or "").ljust(9, "0"))
    seconds = (day - _UNIX_EPOCH).days * 86400 + hour * 3600 + minute * 60 + second
    return seconds * _NS_PER_S + fraction_ns


class _CatalogRows:
    """The rows of one catalog file, with the counts and log lines of the malformed-row rule."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.rows: list[dict] = []
        self.n_data_rows = 0
        self.n_malformed = 0
        self.other_types: Counter = Counter()

    def add(self, line_no: int, parse: Callable[[], tuple[dict, str]], keep_type: str) -> None:
        """Parse one data row with ``parse`` and keep it if its event type is ``keep_type``; log it when malformed."""
        self.n_data_rows += 1
        try:
            row, event_type = parse()
        except _RowProblem as problem:
            self.n_malformed += 1
            if self.n_malformed <= MAX_LOGGED_ROWS:
                log.warning("%s:%d: %s; row skipped", self.path, line_no, problem)
            return
        if event_type == keep_type:
            self.rows.append(row)
        else:
            self.other_types[event_type or "(empty)"] += 1

    def table(self) -> pd.DataFrame:
        """Log the file's summary line and return its table.

        Raises:
            ValueError: every data row of the file is malformed.
        """
        if self.n_data_rows and self.n_malformed == self.n_data_rows:
            raise ValueError(
                f"{self.path}: all {self.n_data_rows} rows are malformed for the {self.kind} format (see the warnings above); "
                "check the file's format or pass the right fmt to read_catalog"
            )
        if not self.n_data_rows:
            log.warning("%s contains no event rows", self.path)
        others = ", ".join(f"{kind} {n}" for kind, n in sorted(self.other_types.items())) or "none"
        not_shown = max(0, self.n_malformed - MAX_LOGGED_ROWS)
        log.info(
            "read %s (%s): %d earthquakes kept; skipped %d other events (%s) and %d malformed rows (%d of them not logged)",
            self.path, self.kind, len(self.rows), sum(self.other_types.values()), others, self.n_malformed, not_shown,
        )
        return _catalog_table(self.rows)


def _data_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Yield (line number, line) for the lines of a text file that are not blank and do not start with ``#``."""
    # errors="replace": a stray byte makes its row malformed instead of stopping the read
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield number, stripped


def _check_file(path: str | os.PathLike, kind: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} not found")
    return path


def _scedc_row(event_id: str, date_text: str, time_text: str, lat: str, lon: str, depth: str, mag: str, mag_type: str) -> dict:
    magnitude = _parse_number(mag, "magnitude")
    return {
        "event_id": event_id,
        "time": _parse_scedc_time(date_text, time_text),
        "latitude": _parse_number(lat, "latitude", 90.0),
        "longitude": _parse_number(lon, "longitude", 180.0),
        "depth_km": _parse_number(depth, "depth"),
        "magnitude": np.nan if mag_type == SCEDC_NO_MAGNITUDE else magnitude,
        "magnitude_type": mag_type,
    }


def read_scedc_stp(path: str | os.PathLike) -> pd.DataFrame:
    """Read the event lines of an SCEDC STP (Seismic Transfer Program) catalog.

    Each line has 10 whitespace-separated fields, for example
    ``39000008 eq l 2019/08/23,08:07:30.260 35.9885 -117.5212 1.91 1.58 l 1.0``:
    evid, event type, geographic type, UTC date and time joined by a comma,
    latitude, longitude, depth (km, positive down), magnitude, magnitude type
    and quality. Only earthquakes (event type ``eq``) are kept. Magnitude type
    ``n`` (no magnitude) gives a NaN magnitude. Blank lines and lines starting
    with ``#`` are skipped. Malformed rows follow the rule in the module docstring.

    Returns:
        A table with ``CATALOG_COLUMNS``, sorted by time; event_id is the evid.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: every data row is malformed.
    """
    path = _check_file(path, "SCEDC STP catalog")
    rows = _CatalogRows(path, "SCEDC STP")

    def parse(fields: list[str]) -> tuple[dict, str]:
        if len(fields) != 10:
            raise _RowProblem(f"{len(fields)} fields, expected 10 (evid type geotype date,time lat lon depth mag magtype quality)")
        evid, event_type, _, date_time, lat, lon, depth, mag, mag_type, _ = fields
        date_text, _, time_text = date_time.partition(",")
        return _scedc_row(evid, date_text, time_text, lat, lon, depth, mag, mag_type), event_type

    for number, line in _data_lines(path):
        rows.add(number, lambda: parse(line.split()), SCEDC_EARTHQUAKE)
    return rows.table()


def read_scedc_search(path: str | os.PathLike) -> pd.DataFrame:
    """Read the text output of the SCEDC catalog search (SCEDC format).

    Each row has 13 whitespace-separated fields: date (YYYY/MM/DD), UTC time
    (HH:MM:SS.ss), event type, geographic type, magnitude, magnitude type,
    latitude, longitude, depth (km, positive down), quality, evid, phase count
    and grams. Lines starting with ``#`` and blank lines are headers or
    comments. Only earthquakes (event type ``eq``) are kept, and magnitude type
    ``n`` gives a NaN magnitude. Malformed rows follow the rule in the module docstring.

    Returns:
        A table with ``CATALOG_COLUMNS``, sorted by time; event_id is the evid.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: every data row is malformed.
    """
    path = _check_file(path, "SCEDC catalog-search")
    rows = _CatalogRows(path, "SCEDC catalog search")

    def parse(fields: list[str]) -> tuple[dict, str]:
        if len(fields) != 13:
            raise _RowProblem(f"{len(fields)} fields, expected 13 (date time type geotype mag magtype lat lon depth quality evid nph ngrm)")
        date_text, time_text, event_type, _, mag, mag_type, lat, lon, depth, _, evid, _, _ = fields
        return _scedc_row(evid, date_text, time_text, lat, lon, depth, mag, mag_type), event_type

    for number, line in _data_lines(path):
        rows.add(number, lambda: parse(line.split()), SCEDC_EARTHQUAKE)
    return rows.table()


def read_comcat_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a USGS ComCat CSV catalog (the ``format=csv`` output of the FDSN event service).

    The header names the columns, of which time (ISO 8601, ``Z`` for UTC),
    latitude, longitude, depth (km, positive down), mag, magType, id and type
    are used. Only rows with ``type == earthquake`` are kept. An empty depth or
    mag gives NaN. Malformed rows follow the rule in the module docstring.

    Returns:
        A table with ``CATALOG_COLUMNS``, sorted by time; event_id is the ComCat id.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the header lacks a used column, or every data row is malformed.
    """
    path = _check_file(path, "ComCat CSV catalog")
    rows = _CatalogRows(path, "ComCat CSV")

    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next((row for row in reader if any(field.strip() for field in row)), None)
        if header is None:
            return rows.table()
        header = [name.strip() for name in header]
        missing = [name for name in _COMCAT_REQUIRED if name not in header]
        if missing:
            raise ValueError(f"{path}:{reader.line_num}: header lacks ComCat column(s) {missing}; found {header}")
        index = {name: header.index(name) for name in _COMCAT_REQUIRED}

        def parse(fields: list[str]) -> tuple[dict, str]:
            if len(fields) != len(header):
                raise _RowProblem(f"{len(fields)} fields, the header has {len(header)}")
            value = {name: fields[i].strip() for name, i in index.items()}
            if not value["id"]:
                raise _RowProblem("empty id")
            try:
                time_ns = _parse_utc_timestamp(value["time"]).as_unit("ns").value
            except (ValueError, OverflowError) as err:
                raise _RowProblem(str(err)) from None
            row = {
                "event_id": value["id"],
                "time": time_ns,
                "latitude": _parse_number(value["latitude"], "latitude", 90.0),
                "longitude": _parse_number(value["longitude"], "longitude", 180.0),
                "depth_km": _parse_number(value["depth"], "depth") if value["depth"] else np.nan,
                "magnitude": _parse_number(value["mag"], "mag") if value["mag"] else np.nan,
                "magnitude_type": value["magType"],
            }
            return row, value["type"]

        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            rows.add(reader.line_num, lambda: parse(fields), COMCAT_EARTHQUAKE)
    return rows.table()


def read_quakeml(path: str | os.PathLike) -> pd.DataFrame:
    """Read the events of one QuakeML file.

    Each event uses its preferred origin and magnitude, or the first listed
    when none is marked preferred. Events without an origin, or whose origin
    lacks latitude or longitude, are skipped with a warning, and so are events
    whose latitude is outside [-90, 90] or longitude outside [-180, 180]
    degrees. Events are kept whatever their event type.

    Returns:
        A table with ``CATALOG_COLUMNS``, sorted by time. event_id is the last
        ``/``-separated part of the resource id. depth_km is the QuakeML depth
        in km below sea level, so it is negative above sea level. Missing depths
        and magnitudes are NaN, and a missing magnitude type is empty.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: obspy cannot read the file as QuakeML; the message names it.
    """
    path = _check_file(path, "QuakeML")
    try:
        catalog = obspy.read_events(str(path), format="QUAKEML")
    except _READ_ERRORS as err:
        raise ValueError(f"cannot read {path} as QuakeML ({type(err).__name__}: {err}); remove or replace the file") from err

    rows = []
    n_without_origin = 0
    out_of_range = []
    for event in catalog:
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        if origin is None or origin.latitude is None or origin.longitude is None:
            n_without_origin += 1
            continue
        if not (abs(float(origin.latitude)) <= 90.0 and abs(float(origin.longitude)) <= 180.0):
            out_of_range.append(f"{event.resource_id} ({origin.latitude}, {origin.longitude})")
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
                "magnitude_type": (magnitude.magnitude_type or "") if magnitude is not None else "",
            }
        )
    if n_without_origin:
        log.warning("%s: skipped %d events without an origin or without its latitude and longitude", path, n_without_origin)
    if out_of_range:
        log.warning(
            "%s: skipped %d events whose (latitude, longitude) is outside [-90, 90] x [-180, 180] degrees: %s",
            path, len(out_of_range), out_of_range[:MAX_LOGGED_ROWS],
        )
    return _catalog_table(rows)


_CATALOG_READERS: dict[str, Callable[[str | os.PathLike], pd.DataFrame]] = {
    "quakeml": read_quakeml,
    "scedc_stp": read_scedc_stp,
    "scedc_search": read_scedc_search,
    "comcat_csv": read_comcat_csv,
}


def _detect_catalog_format(path: Path) -> str:
    """Return the catalog format of a file from its suffix, or else from its first data line.

    Raises:
        ValueError: neither the suffix nor the content matches a format.
    """
    suffix = path.suffix.lower()
    for fmt, suffixes in CATALOG_FORMATS.items():
        if suffix in suffixes:
            return fmt
    if _is_xml(path):
        return "quakeml"
    first = next(iter(_data_lines(path)), (0, ""))[1]
    fields = first.split()
    if first.lower().startswith("time,"):
        return "comcat_csv"
    if len(fields) == 10 and "," in fields[3]:
        return "scedc_stp"
    if len(fields) == 13 and "/" in fields[0]:
        return "scedc_search"
    raise ValueError(
        f"cannot detect the catalog format of {path} from its suffix or its first line {first[:80]!r}; "
        f"pass fmt= one of {sorted(CATALOG_FORMATS)}"
    )


def read_catalog(paths_or_folder: PathsOrFolder, fmt: str | None = None) -> pd.DataFrame:
    """Read the events of one or more catalog files into one table.

    Args:
        paths_or_folder: a folder, one file, or a list of files. A folder is
            scanned recursively for files with the suffixes of ``fmt``
            (``CATALOG_FORMATS``), QuakeML when ``fmt`` is None.
        fmt: ``"quakeml"``, ``"scedc_stp"``, ``"scedc_search"`` or
            ``"comcat_csv"`` for every file; None takes each file's format from
            its suffix (.xml/.quakeml/.qml, .stp, .txt, .csv) or else from its content.

    Returns:
        A table with ``CATALOG_COLUMNS``, sorted by time. When several rows
        share an event_id, the first one read is kept and the others are
        dropped with a logged count.

    Raises:
        FileNotFoundError: a listed file is missing or a folder contains no file of the format.
        ValueError: ``fmt`` is unknown, a file's format cannot be detected, a
            file cannot be read, or all rows of a file are malformed.
    """
    if fmt is not None and fmt not in CATALOG_FORMATS:
        raise ValueError(f"unknown catalog format {fmt!r}; pass one of {sorted(CATALOG_FORMATS)} or None")
    kind = fmt or "quakeml"
    files = _list_files(paths_or_folder, CATALOG_FORMATS[kind], f"{kind} catalog")

    tables = []
    for path in tqdm(files, desc="read catalogs", unit="file", disable=None):
        tables.append(_CATALOG_READERS[fmt or _detect_catalog_format(path)](path))
    tables = [table for table in tables if len(table)]
    table = pd.concat(tables, ignore_index=True) if tables else _catalog_table([])

    duplicated = table["event_id"].duplicated(keep="first")
    if duplicated.any():
        log.warning("dropped %d rows whose event_id was already read from an earlier row or file", int(duplicated.sum()))
    table = table[~duplicated].sort_values("time", kind="stable").reset_index(drop=True)
    log.info("read %d events from %d catalog files", len(table), len(files))
    return table


def events_in_region(
    catalog: pd.DataFrame, center_lat: float, center_lon: float, radius_km: float, min_magnitude: float
) -> tuple[pd.DataFrame, dict]:
    """Select the events within ``radius_km`` of a center and at or above ``min_magnitude``.

    Distances are geodesic on the WGS84 ellipsoid (``pyproj.Geod.inv``) between
    the epicenter and the center, ignoring depth. Both limits are inclusive.

    Args:
        catalog: a table with latitude, longitude and magnitude columns (``CATALOG_COLUMNS``).
        center_lat, center_lon: the center, degrees.
        radius_km: maximum epicentral distance, km.
        min_magnitude: minimum magnitude. A NaN magnitude counts as below it.

    Returns:
        The selected rows (original order, index reset) with an added column
        distance_km, and counts: total, outside_radius (farther than
        ``radius_km``, or without coordinates), below_magnitude and selected.
        An event can count in both outside_radius and below_magnitude.

    Raises:
        ValueError: the center is out of range or the radius is not positive.
    """
    for name, value, bound in (("center_lat", center_lat, 90.0), ("center_lon", center_lon, 180.0)):
        if not abs(float(value)) <= bound:
            raise ValueError(f"{name} {value!r} is outside [-{bound:g}, {bound:g}] degrees")
    if not radius_km > 0:
        raise ValueError(f"radius_km {radius_km!r} is not a positive distance in km")

    n = len(catalog)
    lat = catalog["latitude"].to_numpy(dtype=float)
    lon = catalog["longitude"].to_numpy(dtype=float)
    distance_km = np.full(n, np.nan)
    if n:
        _, _, distance_m = Geod(ellps="WGS84").inv(np.full(n, float(center_lon)), np.full(n, float(center_lat)), lon, lat)
        distance_km = np.asarray(distance_m, dtype=float) / 1000.0

    with np.errstate(invalid="ignore"):
        inside = distance_km <= radius_km
        strong = catalog["magnitude"].to_numpy(dtype=float) >= min_magnitude
    keep = inside & strong
    selected = catalog[keep].copy()
    selected["distance_km"] = distance_km[keep]
    counts = {
        "total": n,
        "outside_radius": int((~inside).sum()),
        "below_magnitude": int((~strong).sum()),
        "selected": int(keep.sum()),
    }
    log.info(
        "selected %d of %d events within %g km of (%g, %g) with magnitude >= %g; %d outside the radius, %d below the magnitude",
        counts["selected"], n, radius_km, center_lat, center_lon, min_magnitude, counts["outside_radius"], counts["below_magnitude"],
    )
    return selected.reset_index(drop=True), counts


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
