"""A Ridgecrest-trained encoder and localization head applied to the coal-mine recordings.

The coal-node events go through the readers and window processing of the
Ridgecrest branch: resampled to the Ridgecrest rate, cut with its window,
detrended, tapered, band-passed and turned into the same spectrograms, and
standardised with the Ridgecrest store's statistics. The geophones (velocity
sensors) fill the broadband modality; the accelerometer modality is absent.
The recordings are shorter than the window, so samples beyond them are zeros,
and a station needs only ``min_coverage`` of the window.

The coal stations are placements the model never saw, so each gets the
structural position of a Ridgecrest station drawn at random (seeded), as the
SPAR paper does for unseen placements. The head predicts a hypocenter
relative to the centre of the network it was trained on. The catalog
hypocenter is expressed the same way for the coal network, in kilometers.
Nothing here is fitted to the coal data, and the errors say how far the
model transfers to a 3 km mine network from an 80 km regional one.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import torch
from scipy.signal import butter
from scipy.signal.windows import tukey

from spar.config import get
from spar.features.spectrogram import log_spectrogram
from spar.features.store import open_store
from spar.files import atomic_path
from spar.ingest.coal_node import find_dataset_dir
from spar.ingest.ridgecrest import MODALITY_CHANNELS, components, station_window
from spar.io import seismic
from spar.models.heads import TransformerHead
from spar.train import checkpoint as checkpoint_io
from spar.train.device import claim_device
from spar.train.finetune import pool_token_groups

log = logging.getLogger(__name__)

GEOPHONE_MODALITY = "broadband"  # the coal geophones record ground velocity, as the HH channels do


def _coal_windows(raw_dir: Path, ingest_cfg: dict, transfer_cfg: dict):
    """Return (catalog, stations, waveforms (event, station, 3, n), present (event, station)) in the Ridgecrest processing."""
    rate = float(ingest_cfg["rate_hz"])
    n = int(round(float(ingest_cfg["window_s"]) * rate))
    stations = seismic.read_stations(raw_dir / "stations" / "inv.xml")
    catalog = seismic.read_catalog(seismic.quakeml_files(raw_dir / "events")).sort_values("time").reset_index(drop=True)
    stream, _ = seismic.resample_traces(seismic.read_waveforms(raw_dir / "waveforms", merge=False), rate)
    stream = seismic.merge_traces(stream)

    low, high = ingest_cfg["bandpass_hz"]
    sos = butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    taper = tukey(n, alpha=2 * float(ingest_cfg.get("taper_fraction", 0.05)))
    counters: Counter = Counter()
    waveforms = np.zeros((len(catalog), len(stations), 3, n), dtype=np.float32)
    present = np.zeros((len(catalog), len(stations)), dtype=bool)
    for e, origin in enumerate(catalog["time"]):
        start = obspy.UTCDateTime(origin.to_pydatetime()) - float(transfer_cfg["pre_origin_s"])
        for k, (network, station) in enumerate(zip(stations["network"], stations["station"])):
            by_component = components(stream.select(network=network, station=station))
            window = station_window(by_component, start, n, rate, sos, taper, float(transfer_cfg["min_coverage"]), counters, pad_with_zeros=True)
            if window is not None:
                waveforms[e, k] = window
                present[e, k] = True
    log.info("cut %d coal-node events at %d stations: %d of %d station-windows present, %d samples zero-padded",
             len(catalog), len(stations), int(present.sum()), present.size, counters["padded_samples"])
    return catalog, stations, waveforms, present


def transfer_coal_node(checkpoint: Path, head_path: Path, reference_store: Path, out: Path, tree: dict, raw_dir: Path | None = None) -> None:
    """Predict the coal-node hypocenters with a Ridgecrest encoder and head; write a CSV of catalog vs predicted positions."""
    ingest_cfg = get(tree, "ingest.ridgecrest")
    transfer_cfg = get(tree, "transfer.coal_node")
    raw_dir = Path(raw_dir) if raw_dir is not None else find_dataset_dir()
    catalog, stations, waveforms, present = _coal_windows(raw_dir, ingest_cfg, transfer_cfg)

    # inputs in the layout and scale the Ridgecrest model was trained on
    reference = open_store(reference_store)
    norm = reference.attrs["normalization"]
    n_event, n_station = present.shape
    spectrogram = log_spectrogram(waveforms, int(ingest_cfg["n_fft"]), int(ingest_cfg["hop"]), int(ingest_cfg["max_freq_bins"]))
    frame = seismic.network_frame(stations)
    station_km = seismic.station_enu_km(stations, frame)
    catalog_km = seismic.hypocenter_enu_km(catalog, frame)
    rng = np.random.default_rng(int(transfer_cfg["seed"]))
    drawn = rng.integers(0, reference.sizes["global_node"], size=n_station)
    batch = {"position": torch.from_numpy(np.broadcast_to(station_km, (n_event, n_station, 3)).astype(np.float32).copy()),
             "node_id": torch.from_numpy(np.broadcast_to(drawn, (n_event, n_station)).copy()).long()}
    for modality in MODALITY_CHANNELS:
        stats = norm[modality]
        if modality == GEOPHONE_MODALITY:
            signal = (spectrogram - stats["mean"]) / stats["std"] * present[:, :, None, None, None]
            modality_present = present
        else:
            signal = np.zeros_like(spectrogram)
            modality_present = np.zeros_like(present)
        batch[f"signal_{modality}"] = torch.from_numpy(signal.astype(np.float32))
        batch[f"present_{modality}"] = torch.from_numpy(modality_present)

    # frozen encoder, pooled node tokens, trained head
    torch.set_num_threads(int(get(tree, "pretrain.threads", 1)))
    with claim_device(Path(get(tree, "gpu.lock_dir"))) as claim:
        model, ckpt = checkpoint_io.load_model(checkpoint, device=claim.device)
        head_state = torch.load(head_path, map_location=claim.device, weights_only=False)
        head = TransformerHead(head_state["dim"], head_state["out_dim"], layers=head_state["layers"],
                               heads=head_state["heads"], mlp_ratio=head_state["mlp_ratio"]).to(claim.device).eval()
        head.load_state_dict(head_state["state_dict"])
        tokens, valid = model.encode({k: v.to(claim.device) for k, v in batch.items()})
        groups = model.token_groups(n_station).numpy()
        pooled, pooled_valid = pool_token_groups(tokens.float().cpu().numpy(), valid.cpu().numpy(), groups)
        with torch.no_grad():
            scaled = head(pooled.to(claim.device), pooled_valid.to(claim.device)).float().cpu().numpy()
    predicted_km = scaled * np.asarray(head_state["target_std"]) + np.asarray(head_state["target_mean"])

    error_km = np.linalg.norm(predicted_km - catalog_km, axis=1)
    table = pd.DataFrame({
        "event_id": catalog["event_id"],
        "origin_time": catalog["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "magnitude": catalog["magnitude"],
        "stations_present": present.sum(axis=1),
        "catalog_east_km": catalog_km[:, 0], "catalog_north_km": catalog_km[:, 1], "catalog_up_km": catalog_km[:, 2],
        "pred_east_km": predicted_km[:, 0], "pred_north_km": predicted_km[:, 1], "pred_up_km": predicted_km[:, 2],
        "error_km": error_km,
    })
    with atomic_path(out, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.3f")
    log.info("coal-node hypocenters from the Ridgecrest %s seed %d model: mean 3-D error %.2f km (median %.2f) over %d events; wrote %s",
             ckpt["method"], ckpt["seed"], float(error_km.mean()), float(np.median(error_km)), len(table), out)
