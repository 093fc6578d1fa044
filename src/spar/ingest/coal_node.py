"""opsdata-coal-node recordings -> the coal_node tensor store.

The dataset is a 12-station, three-component geophone network above a coal
mine (network ``1``, channels ``DPE/DPN/DPZ``) with five located events.
Each event becomes one sample:

- Window: ``window_s`` seconds starting ``pre_origin_s`` before the origin
  time, cut from the merged traces of every station (the miniSEED file names
  do not match the event times, so traces are matched by their time stamps).
- Signal: per station and component (order E, N, Z), missing samples are
  linearly interpolated, the window is detrended (linear), tapered with a
  Tukey window and turned into the log STFT power of its lowest
  ``max_freq_bins`` bins. Shape (sample, node, 3, freq, frame), modality ``geophone``.
- Presence: a station is present only when each of its three components
  covers at least ``min_coverage`` of the window. An absent station gets
  presence False and a signal of zeros.
- Rate: traces are resampled to ``rate_hz`` when they differ (polyphase filter,
  see ``spar.io.seismic``). The inventory of the released dataset states
  250 Hz, but the miniSEED data are 500 Hz, so the data rate is trusted and
  the mismatch logged.
- Positions and target: ENU kilometers in a frame whose origin is the mean
  station latitude, longitude and elevation. Station ``up`` comes from the
  elevation. The target is the hypocenter with ``up = -depth`` minus the
  origin's height, so an event at the network's mean elevation has up 0 and
  deeper events have up < 0. QuakeML depths are meters below sea level and
  are negative in this dataset (the events lie above sea level).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
from scipy.signal import detrend
from scipy.signal.windows import tukey

from spar import config as config_mod
from spar.features.resample import fill_missing
from spar.features.spectrogram import frame_count, log_spectrogram
from spar.features.store import build_dataset, hash_files, signal_normalization, write_store
from spar.io import seismic

log = logging.getLogger(__name__)

PACKAGE = "opsdata_coal_node"
PACKAGE_DIST = "opsdata-coal-node"
MODALITY = "geophone"
COMPONENTS = ("E", "N", "Z")  # channel order of the signal's channel axis
AXIS_NAMES = ("east", "north", "up")
DEFAULT_MIN_COVERAGE = 0.9  # fraction of a window's samples a component needs; `min_coverage` in the config overrides it
DEFAULT_TAPER_FRACTION = 0.05  # cosine taper on each end, as a fraction of the window; `taper_fraction` overrides it


def find_dataset_dir() -> Path:
    """Locate ``coal_node/`` inside the installed opsdata-coal-node package without importing it.

    Importing the package would import obsplus, which it needs but does not declare.

    Raises:
        FileNotFoundError: the package is not installed or lacks its data folder.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {PACKAGE_DIST} is not installed, so its coal_node recordings cannot be found; "
            f"install it with `pip install {PACKAGE_DIST}` or pass --raw FOLDER with stations/, waveforms/ and events/"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "coal_node"
    if not folder.is_dir():
        raise FileNotFoundError(f"package {PACKAGE_DIST} has no data folder {folder}; reinstall it with `pip install --force-reinstall {PACKAGE_DIST}`")
    return folder


def _settings(cfg: dict) -> dict:
    """Read and check the ``ingest.coal_node`` parameters."""
    tree = {"ingest": {"coal_node": cfg}}

    def get(key, default=...):
        return config_mod.get(tree, f"ingest.coal_node.{key}", default)

    settings = {
        "rate_hz": float(get("rate_hz")),
        "pre_origin_s": float(get("pre_origin_s")),
        "window_s": float(get("window_s")),
        "n_fft": int(get("n_fft")),
        "hop": int(get("hop")),
        "max_freq_bins": int(get("max_freq_bins")),
        "min_coverage": float(get("min_coverage", DEFAULT_MIN_COVERAGE)),
        "taper_fraction": float(get("taper_fraction", DEFAULT_TAPER_FRACTION)),
    }
    settings["window_samples"] = int(round(settings["window_s"] * settings["rate_hz"]))
    if settings["rate_hz"] <= 0:
        raise config_mod.ConfigError(f"invalid ingest.coal_node.rate_hz={settings['rate_hz']}: set a positive rate in hertz")
    if settings["window_samples"] < settings["n_fft"]:
        raise config_mod.ConfigError(
            f"ingest.coal_node.window_s={settings['window_s']} gives {settings['window_samples']} samples at {settings['rate_hz']} Hz, "
            f"fewer than n_fft={settings['n_fft']}; lengthen the window or shorten n_fft"
        )
    if not 0 < settings["max_freq_bins"] <= settings["n_fft"] // 2 + 1:
        raise config_mod.ConfigError(f"invalid ingest.coal_node.max_freq_bins={settings['max_freq_bins']}: set a value in 1..{settings['n_fft'] // 2 + 1} for n_fft={settings['n_fft']}")
    if not 0 < settings["min_coverage"] <= 1:
        raise config_mod.ConfigError(f"invalid ingest.coal_node.min_coverage={settings['min_coverage']}: set a fraction in (0, 1]")
    if not 0 <= settings["taper_fraction"] <= 0.5:
        raise config_mod.ConfigError(f"invalid ingest.coal_node.taper_fraction={settings['taper_fraction']}: set a fraction in [0, 0.5]")
    return settings


def _layout(raw_dir: Path) -> dict[str, Path]:
    """Return the inventory file and the waveform and event folders of a dataset folder."""
    paths = {"inventory": raw_dir / "stations" / "inv.xml", "waveforms": raw_dir / "waveforms", "events": raw_dir / "events"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{raw_dir} is not a coal_node dataset folder: missing {', '.join(missing)}; "
            "pass the folder that holds stations/inv.xml, waveforms/ and events/"
        )
    return paths


def _rate_note(channels: pd.DataFrame, stream: obspy.Stream) -> str:
    """Compare the inventory's sample rates with the data's; log a warning and return a note when they differ."""
    inventory_rates = sorted(set(channels["sample_rate_hz"].dropna().round(6)))
    data_rates = sorted({round(float(tr.stats.sampling_rate), 6) for tr in stream})
    if inventory_rates == data_rates:
        return f"inventory and data agree on {data_rates} Hz"
    note = f"the inventory states {inventory_rates} Hz but the miniSEED traces are sampled at {data_rates} Hz; the trace rate is used"
    log.warning("%s", note)
    return note


def _select_channels(stream: obspy.Stream, network: str, station: str) -> dict[str, obspy.Stream]:
    """Split one station's traces by component letter (last character of the channel code)."""
    by_component: dict[str, obspy.Stream] = {}
    for tr in stream.select(network=network, station=station):
        by_component.setdefault(tr.stats.channel[-1:].upper(), obspy.Stream()).append(tr)
    for component, traces in by_component.items():
        ids = sorted({tr.id for tr in traces})
        if len(ids) > 1:
            raise ValueError(f"station {network}.{station} has several channels for component {component}: {ids}; keep one per component")
    return by_component


def _event_windows(catalog: pd.DataFrame, stations: pd.DataFrame, stream: obspy.Stream, settings: dict, counters: dict):
    """Cut, clean and stack the windows of every event.

    Returns:
        waveforms, float64 (event, station, component, window_samples), zeros where absent;
        present, bool (event, station).
    """
    n_event, n_station, n = len(catalog), len(stations), settings["window_samples"]
    waveforms = np.zeros((n_event, n_station, len(COMPONENTS), n))
    present = np.zeros((n_event, n_station), dtype=bool)
    taper = tukey(n, alpha=2 * settings["taper_fraction"])
    channels = [_select_channels(stream, net, sta) for net, sta in zip(stations["network"], stations["station"])]

    for e, origin in enumerate(catalog["time"]):
        start = obspy.UTCDateTime(ns=origin.value) - settings["pre_origin_s"]
        for k, by_component in enumerate(channels):
            station_ok = True
            for c, component in enumerate(COMPONENTS):
                x = seismic.window_samples(by_component.get(component, ()), start, n, settings["rate_hz"])
                coverage = np.isfinite(x).mean()
                if coverage < settings["min_coverage"]:
                    counters["missing_components"] += 1
                    station_ok = False
                    continue
                counters["filled_samples"] += fill_missing(x)
                waveforms[e, k, c] = detrend(x, type="linear") * taper
            if station_ok:
                present[e, k] = True
            else:
                waveforms[e, k] = 0.0
    return waveforms, present


def ingest(raw_dir: Path | None, out: Path, cfg: dict) -> None:
    """Read the coal_node recordings and write the tensor store ``out``.

    Args:
        raw_dir: folder with ``stations/inv.xml``, ``waveforms/*.mseed`` and
            ``events/**/*.xml``; None to use the installed opsdata-coal-node package.
        out: Zarr store to write (replaced atomically).
        cfg: the ``ingest.coal_node`` parameters: rate_hz, pre_origin_s,
            window_s, n_fft, hop, max_freq_bins, and optionally min_coverage
            and taper_fraction.
    """
    settings = _settings(cfg)
    raw_dir = Path(raw_dir) if raw_dir is not None else find_dataset_dir()
    paths = _layout(raw_dir)
    log.info("reading coal_node recordings from %s", raw_dir)

    # stations, events and traces
    stations = seismic.read_stations(paths["inventory"])
    channels = seismic.read_channels(paths["inventory"])
    event_files = seismic.quakeml_files(paths["events"])
    catalog = seismic.read_catalog(event_files)
    waveform_files = seismic.miniseed_files(paths["waveforms"])
    raw_stream = seismic.read_waveforms(waveform_files, merge=False)
    if not len(stations) or not len(catalog):
        raise ValueError(f"{raw_dir} lists {len(stations)} stations and {len(catalog)} events; the store needs at least one of each")
    rate_note = _rate_note(channels, raw_stream)

    known = set(zip(stations["network"], stations["station"]))
    unknown = sorted({f"{tr.stats.network}.{tr.stats.station}" for tr in raw_stream if (tr.stats.network, tr.stats.station) not in known})
    if unknown:
        log.warning("ignoring traces of stations missing from the inventory: %s", unknown)
    stream, n_resampled = seismic.resample_traces(raw_stream, settings["rate_hz"])
    if n_resampled:
        log.info("resampled %d of %d traces to %g Hz", n_resampled, len(raw_stream), settings["rate_hz"])
    stream = seismic.merge_traces(stream)

    # windows -> spectrograms
    counters = {"missing_components": 0, "filled_samples": 0}
    waveforms, present = _event_windows(catalog, stations, stream, settings, counters)
    n_events = len(catalog)
    keep = present.any(axis=1)
    for event_id in catalog["event_id"][~keep]:
        log.warning("event %s has no station with data in its window; skipped", event_id)
    catalog, waveforms, present = catalog[keep].reset_index(drop=True), waveforms[keep], present[keep]
    if not len(catalog):
        raise ValueError(f"no event of {raw_dir} has waveform data in its window; check that waveforms/ matches events/")
    signal = log_spectrogram(waveforms, settings["n_fft"], settings["hop"], settings["max_freq_bins"])
    signal[~present] = 0.0

    # positions and targets in a frame centered on the network
    frame = seismic.network_frame(stations)
    station_km = seismic.station_enu_km(stations, frame)
    target_km = seismic.hypocenter_enu_km(catalog, frame)
    n_sample, n_node = present.shape
    node_names = [f"{net}.{sta}" for net, sta in zip(stations["network"], stations["station"])]

    raw_files = [paths["inventory"], *waveform_files, *event_files]
    n_frames = frame_count(settings["window_samples"], settings["n_fft"], settings["hop"])
    ds = build_dataset(
        signals={MODALITY: signal},
        present={MODALITY: present},
        position=np.broadcast_to(station_km, (n_sample, n_node, 3)).copy(),
        node_id=np.broadcast_to(np.arange(n_node), (n_sample, n_node)).copy(),
        node_name=node_names,
        time=(catalog["time"] - pd.Timedelta(seconds=settings["pre_origin_s"])).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
        group=catalog["event_id"],
        split=["train"] * n_sample,
        axis_names=AXIS_NAMES,
        target=target_km,
        attrs={
            "dataset": "coal_node",
            "position_unit": "km",
            "group_kind": "event",
            "axis_names": list(AXIS_NAMES),
            "target_axis_names": list(AXIS_NAMES),
            "target_unit": "km",
            "target_definition": "hypocenter in the network ENU frame; up = -depth - enu_origin.h0_m, in km",
            "height_reference": "station elevations and -depth are heights above sea level, used as ellipsoidal heights",
            "rate_hz": settings["rate_hz"],
            "pre_origin_s": settings["pre_origin_s"],
            "window_s": settings["window_s"],
            "window_samples": settings["window_samples"],
            "min_coverage": settings["min_coverage"],
            "taper_fraction": settings["taper_fraction"],
            "spectrogram": {
                MODALITY: {
                    "n_fft": settings["n_fft"],
                    "hop": settings["hop"],
                    "max_freq_bins": settings["max_freq_bins"],
                    "n_frames": n_frames,
                    "window": "periodic Hann",
                    "scale": "natural log of STFT power of the miniSEED sample values (no instrument response removed)",
                }
            },
            "channel_names": {MODALITY: list(COMPONENTS)},
            "channel_codes": sorted({tr.stats.channel for tr in stream}),
            "freq_hz": {MODALITY: [k * settings["rate_hz"] / settings["n_fft"] for k in range(settings["max_freq_bins"])]},
            "enu_origin": frame.as_dict(),
            "source_dir": str(raw_dir),
            "source_files": [str(p.relative_to(raw_dir)) for p in raw_files],
            "sample_rate_note": rate_note,
            "event_magnitude": {eid: (None if np.isnan(m) else float(m)) for eid, m in zip(catalog["event_id"], catalog["magnitude"])},
            "raw_hash": hash_files(raw_files),
        },
    )
    ds.attrs["normalization"] = signal_normalization(ds)
    write_store(ds, out)

    log.info(
        "coal_node: %d stations, %d events, %d traces read (%d resampled); %d windows written; "
        "%d of %d station-components missing (all events), %d of %d station windows absent (written events); "
        "%d missing samples interpolated",
        len(stations),
        n_events,
        len(raw_stream),
        n_resampled,
        n_sample,
        counters["missing_components"],
        n_events * n_node * len(COMPONENTS),
        int((~present).sum()),
        n_sample * n_node,
        counters["filled_samples"],
    )
