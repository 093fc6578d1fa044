"""SCEDC archive, station file and catalog -> the earthquake-localization tensor store.

The importer keeps every catalog event within ``radius_km`` of the region
centre and above ``min_magnitude``. For each, it cuts a window of ``window_s``
seconds, starting ``pre_origin_s`` before the origin, from every station for
two modalities: broadband velocity (``HH?``) and accelerometer (``HN?``). Each
has three components in the order E, N, Z, and channels named 1 and 2 are
taken as N and E. Each component is
linearly detrended, tapered, band-passed (zero-phase Butterworth) and turned
into a log STFT power spectrogram. A station and modality whose three
components do not all cover ``min_coverage`` of the window gets presence
False and zeros. Station positions and targets are ENU kilometers relative to
the region centre at sea level; the target is the hypocenter (east, north,
up = -depth). Windows are split by the event's year.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
from scipy.signal import butter, detrend, sosfiltfilt
from scipy.signal.windows import tukey
from tqdm import tqdm

from spar.features.resample import fill_missing
from spar.features.spectrogram import log_spectrogram
from spar.features.store import build_dataset, hash_files, signal_normalization, write_store
from spar.io import seismic
from spar.io.geodesy import EnuFrame

log = logging.getLogger(__name__)

MODALITY_CHANNELS = {"broadband": "HH", "accelerometer": "HN"}  # modality -> SEED band and instrument code
COMPONENTS = ("E", "N", "Z")
# NOTE: horizontals named 1 and 2 are used as N and E without rotating them by their azimuths.
COMPONENT_ALIASES = {"1": "N", "2": "E"}
AXIS_NAMES = ("east", "north", "up")


def _split_of(year: int, cfg: dict) -> str | None:
    if year in cfg["train_years"]:
        return "train"
    if year in cfg["val_years"]:
        return "val"
    return None


def components(stream: obspy.Stream) -> dict[str, obspy.Stream]:
    """Group traces by component E, N, Z (mapping 1 -> N and 2 -> E)."""
    out: dict[str, obspy.Stream] = {}
    for tr in stream:
        letter = tr.stats.channel[-1:].upper()
        out.setdefault(COMPONENT_ALIASES.get(letter, letter), obspy.Stream()).append(tr)
    return out


def station_window(by_component: dict, start: obspy.UTCDateTime, n: int, rate: float, sos, taper: np.ndarray,
                   min_coverage: float, counters: Counter, pad_with_zeros: bool = False) -> np.ndarray | None:
    """Clean one station's three components for one window; return (3, n) float or None when a component is too thin.

    Each component is taken from ``by_component`` (see :func:`components`) and
    checked for ``min_coverage``. Its missing samples are filled by linear
    interpolation, or with ``pad_with_zeros`` by zeros after removing the mean,
    which suits recordings shorter than the window. The component is then
    linearly detrended, tapered and band-passed with the second-order sections
    ``sos`` (zero phase).
    """
    rows = []
    for component in COMPONENTS:
        x = seismic.window_samples(by_component.get(component, ()), start, n, rate)
        if np.isfinite(x).mean() < min_coverage:
            return None
        if pad_with_zeros:
            finite = np.isfinite(x)
            counters["padded_samples"] += int((~finite).sum())
            x = np.where(finite, x - x[finite].mean(), 0.0)
        else:
            counters["filled_samples"] += fill_missing(x)
        rows.append(sosfiltfilt(sos, detrend(x, type="linear") * taper))
    return np.stack(rows)


def _station_table(path: Path, cfg: dict) -> pd.DataFrame:
    """Read the station file and keep the configured stations, in the configured order."""
    stations = seismic.read_stations(path)
    stations = stations[stations["network"] == cfg["network"]]
    by_name = {str(name): row for name, row in zip(stations["station"], stations.itertuples(index=False))}
    missing = [name for name in cfg["station_list"] if name not in by_name]
    if missing:
        log.warning("stations %s are not in %s; they are left out of the store", missing, path)
    kept = [name for name in cfg["station_list"] if name in by_name]
    if not kept:
        raise ValueError(f"none of the configured stations {cfg['station_list']} is in {path}; check ingest.ridgecrest.stations")
    return stations.set_index("station").loc[kept].reset_index()


def ingest(raw_dir: Path, out: Path, cfg: dict) -> None:
    """Read the archive under ``raw_dir`` and write the tensor store ``out``.

    Args:
        raw_dir: folder with ``continuous_waveforms/`` (SCEDC layout) and the
            station and catalog files named by ``cfg['stations']`` and ``cfg['catalog']``.
        out: Zarr store path (written atomically).
        cfg: ``ingest.ridgecrest`` of params.yaml.
    """
    raw_dir = Path(raw_dir)
    rate = float(cfg["rate_hz"])
    n = int(round(float(cfg["window_s"]) * rate))
    counters: Counter = Counter()

    # stations, catalog and archive
    stations = _station_table(raw_dir / cfg["stations"], cfg)
    catalog = seismic.read_catalog(raw_dir / cfg["catalog"])
    catalog, region_counts = seismic.events_in_region(
        catalog, cfg["center_lat"], cfg["center_lon"], cfg["radius_km"], cfg["min_magnitude"]
    )
    counters.update({f"events_{k}": v for k, v in region_counts.items()})
    catalog = catalog.assign(split=[_split_of(t.year, cfg) for t in catalog["time"]])
    counters["events_outside_split_years"] = int(catalog["split"].isna().sum())
    catalog = catalog[catalog["split"].notna()].sort_values("time").reset_index(drop=True)
    if catalog.empty:
        raise ValueError(f"no event of {raw_dir / cfg['catalog']} is inside the region and the train/val years")
    archive = seismic.ScedcArchive(raw_dir, cache_size=int(cfg["archive_cache_files"]))
    known = set(stations["station"])
    foreign = sorted(set(archive.files["station"]) - known)
    if foreign:
        log.warning("the archive has waveforms of %d stations that are not configured or not in the station file: %s", len(foreign), foreign)

    # windows: (event, station, component, sample) per modality
    low, high = cfg["bandpass_hz"]
    sos = butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    taper = tukey(n, alpha=2 * float(cfg.get("taper_fraction", 0.05)))
    waveforms = {m: np.zeros((len(catalog), len(stations), len(COMPONENTS), n), dtype=np.float32) for m in MODALITY_CHANNELS}
    present = {m: np.zeros((len(catalog), len(stations)), dtype=bool) for m in MODALITY_CHANNELS}
    for e, event in enumerate(tqdm(catalog.itertuples(index=False), total=len(catalog), desc="ingest ridgecrest", unit="event", disable=None)):
        start = obspy.UTCDateTime(event.time.to_pydatetime()) - float(cfg["pre_origin_s"])
        end = start + n / rate
        for k, station in enumerate(stations["station"]):
            for modality, band in MODALITY_CHANNELS.items():
                by_component = components(archive.window(cfg["network"], station, band, start, end, rate))
                window = station_window(by_component, start, n, rate, sos, taper, float(cfg["min_coverage"]), counters)
                if window is None:
                    counters[f"absent_{modality}"] += 1
                else:
                    waveforms[modality][e, k] = window
                    present[modality][e, k] = True

    # spectrograms, positions and targets
    signals = {}
    for modality in MODALITY_CHANNELS:
        spec = log_spectrogram(waveforms[modality], int(cfg["n_fft"]), int(cfg["hop"]), int(cfg["max_freq_bins"]))
        spec[~present[modality]] = 0.0
        signals[modality] = spec
    frame = EnuFrame(float(cfg["center_lat"]), float(cfg["center_lon"]), 0.0)
    station_km = frame.to_enu(stations["latitude"], stations["longitude"], stations["elevation_m"]) / 1000.0
    hypocenter = frame.to_enu(catalog["latitude"], catalog["longitude"], -1000.0 * catalog["depth_km"].to_numpy()) / 1000.0
    n_sample, n_node = len(catalog), len(stations)
    raw_files = [raw_dir / cfg["stations"], raw_dir / cfg["catalog"], *archive.files["path"]]
    ds = build_dataset(
        signals=signals,
        present=present,
        position=np.broadcast_to(station_km, (n_sample, n_node, 3)).copy(),
        node_id=np.broadcast_to(np.arange(n_node), (n_sample, n_node)).copy(),
        node_name=[f"{cfg['network']}.{s}" for s in stations["station"]],
        time=(catalog["time"] - pd.Timedelta(seconds=float(cfg["pre_origin_s"]))).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
        group=catalog["event_id"].astype(str),
        split=catalog["split"],
        axis_names=AXIS_NAMES,
        target=hypocenter,
        attrs={
            "dataset": "ridgecrest",
            "position_unit": "km",
            "group_kind": "event",
            "target_axis_names": list(AXIS_NAMES),
            "target_definition": "hypocenter in ENU km relative to the region centre at sea level; up = -depth",
            "enu_origin": frame.as_dict(),
            "rate_hz": rate,
            "window_s": float(cfg["window_s"]),
            "pre_origin_s": float(cfg["pre_origin_s"]),
            "bandpass_hz": [float(low), float(high)],
            "spectrogram": {"n_fft": int(cfg["n_fft"]), "hop": int(cfg["hop"]), "max_freq_bins": int(cfg["max_freq_bins"]),
                            "freq_resolution_hz": rate / int(cfg["n_fft"])},
            "channel_names": list(COMPONENTS),
            "event_magnitude": [float(m) for m in catalog["magnitude"]],
            "raw_hash": hash_files(raw_files),
        },
    )
    ds.attrs["normalization"] = signal_normalization(ds)
    write_store(ds, out)

    pairs = n_sample * n_node
    log.info(
        "ingested %d events (%d train, %d val) at %d stations; absent station-windows: broadband %d, accelerometer %d of %d; "
        "events outside the radius %d, below the magnitude %d, outside the split years %d; filled samples %d",
        n_sample, int((catalog["split"] == "train").sum()), int((catalog["split"] == "val").sum()), n_node,
        counters["absent_broadband"], counters["absent_accelerometer"], pairs,
        counters["events_outside_radius"], counters["events_below_magnitude"],
        counters["events_outside_split_years"], counters["filled_samples"],
    )
