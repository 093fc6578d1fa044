"""The tensor store: one Zarr (format 3) store per dataset with a fixed schema.

Dimensions are ``sample``, ``node`` (slots of the sensor layout, padded to the
largest layout of the dataset), ``axis`` (coordinate axes of positions),
``global_node`` (every physical node of the dataset) and, per modality ``m``,
``{m}_channel``, ``{m}_freq`` and ``{m}_frame``.

| variable          | dims                                        | meaning                                        |
| ----------------- | ------------------------------------------- | ---------------------------------------------- |
| ``signal_{m}``    | sample, node, {m}_channel, {m}_freq, {m}_frame | log spectrogram; zeros where not present    |
| ``present_{m}``   | sample, node                                | False where the node has no data in the window |
| ``position``      | sample, node, axis                          | ENU coordinates in ``attrs['position_unit']``  |
| ``node_id``       | sample, node                                | index into ``node_name``; -1 for an empty slot |
| ``node_name``     | global_node                                 | physical node names, such as ``h24/rs1``       |
| ``label``         | sample                                      | index into ``class_name``; -1 when unlabeled   |
| ``class_name``    | class                                       | class names                                    |
| ``target``        | sample, target_axis                         | location target, NaN when there is none        |
| ``objects``       | sample, object, field                       | class index and location of each object        |
| ``object_count``  | sample                                      | number of valid rows of ``objects``            |

Coordinates on ``sample``: ``time`` (window start, UTC), ``group`` (scene,
subject or event the window comes from) and ``split`` (``train``, ``test`` or
``val``). Attributes record sample rates, window length, spectrogram settings,
units, per-modality normalisation statistics and a hash of the raw inputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import xarray as xr
from zarr.codecs import ZstdCodec

from spar.files import atomic_path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SPLITS = ("train", "test", "val")
SHARD_SAMPLES = 4096  # samples per shard file; a demo store is a handful of files
CHUNK_SAMPLES = 64  # samples per compressed chunk inside a shard, the unit the loader reads


def _strings(values: Iterable[str]) -> np.ndarray:
    # Variable-length UTF-8 has a Zarr v3 specification; numpy's fixed-width '<U' has none.
    return np.array([str(v) for v in values], dtype=object)


def build_dataset(
    *,
    signals: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    position: np.ndarray,
    node_id: np.ndarray,
    node_name: Iterable[str],
    time: np.ndarray,
    group: Iterable[str],
    split: Iterable[str],
    axis_names: Iterable[str],
    label: np.ndarray | None = None,
    class_name: Iterable[str] = (),
    target: np.ndarray | None = None,
    objects: np.ndarray | None = None,
    object_count: np.ndarray | None = None,
    attrs: Mapping | None = None,
) -> xr.Dataset:
    """Assemble the arrays of one dataset into an ``xarray.Dataset`` with the store schema.

    Args:
        signals: modality name -> spectrograms, shape (sample, node, channel, freq, frame).
        present: modality name -> bool, shape (sample, node).
        position: float, shape (sample, node, axis); NaN for empty slots.
        node_id: int, shape (sample, node); -1 for empty slots.
        node_name: names of the physical nodes that ``node_id`` indexes.
        time: datetime64, shape (sample,): window start in UTC.
        group, split: one string per sample.
        axis_names: names of the position axes, for example ``("east", "north")``.
        label: int, shape (sample,), or None.
        class_name: class names that ``label`` indexes.
        target: float, shape (sample, target_axis), or None.
        objects: float, shape (sample, object, 3) with fields (class, east, north), or None.
        object_count: int, shape (sample,), or None.
        attrs: dataset attributes (JSON-serialisable).
    """
    n_sample, n_node = node_id.shape
    axis_names = list(axis_names)
    data_vars: dict[str, tuple] = {}
    modalities = sorted(signals)
    if sorted(present) != modalities:
        raise ValueError(f"signals and present name different modalities: {modalities} vs {sorted(present)}")
    for m in modalities:
        sig = np.asarray(signals[m])
        if sig.ndim != 5 or sig.shape[:2] != (n_sample, n_node):
            raise ValueError(f"signal_{m} has shape {sig.shape}; expected ({n_sample}, {n_node}, channel, freq, frame)")
        pres = np.asarray(present[m], dtype=bool)
        if pres.shape != (n_sample, n_node):
            raise ValueError(f"present_{m} has shape {pres.shape}; expected ({n_sample}, {n_node})")
        data_vars[f"signal_{m}"] = (("sample", "node", f"{m}_channel", f"{m}_freq", f"{m}_frame"), sig.astype(np.float32))
        data_vars[f"present_{m}"] = (("sample", "node"), pres)
    if position.shape != (n_sample, n_node, len(axis_names)):
        raise ValueError(f"position has shape {position.shape}; expected ({n_sample}, {n_node}, {len(axis_names)})")
    data_vars["position"] = (("sample", "node", "axis"), position.astype(np.float32))
    data_vars["node_id"] = (("sample", "node"), node_id.astype(np.int32))
    data_vars["node_name"] = (("global_node",), _strings(node_name))
    data_vars["label"] = (("sample",), (np.full(n_sample, -1) if label is None else np.asarray(label)).astype(np.int16))
    data_vars["class_name"] = (("class",), _strings(class_name))
    if target is not None:
        data_vars["target"] = (("sample", "target_axis"), np.asarray(target, dtype=np.float32))
    if objects is not None:
        data_vars["objects"] = (("sample", "object", "field"), np.asarray(objects, dtype=np.float32))
        data_vars["object_count"] = (("sample",), np.asarray(object_count, dtype=np.int16))

    split = _strings(split)
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split names {unknown}; use {SPLITS}")
    coords = {
        "time": ("sample", np.asarray(time, dtype="datetime64[ns]")),
        "group": ("sample", _strings(group)),
        "split": ("sample", split),
        "axis": ("axis", _strings(axis_names)),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(dict(attrs or {}))
    ds.attrs["schema_version"] = SCHEMA_VERSION
    ds.attrs["modalities"] = modalities
    return ds


def signal_normalization(ds: xr.Dataset, split: str = "train") -> dict[str, dict[str, float]]:
    """Compute mean and standard deviation of each modality's present spectrogram values in ``split``.

    The loader standardises signals with these numbers, so they come from the
    training split only and are stored with the data.
    """
    stats = {}
    in_split = np.asarray(ds["split"].values == split)
    for m in ds.attrs["modalities"]:
        sig = ds[f"signal_{m}"].values[in_split]
        pres = ds[f"present_{m}"].values[in_split]
        values = sig[pres]
        if values.size == 0:
            raise ValueError(f"no present {m} data in split {split!r}; cannot compute normalisation statistics")
        stats[m] = {"mean": float(values.mean()), "std": float(values.std() + 1e-6)}
    return stats


def hash_files(paths: Iterable[str | os.PathLike]) -> str:
    """Return a SHA-256 over the names and sizes of the raw inputs.

    Contents are not read, so hashing gigabytes of raw files stays instant, and
    modification times are left out, so rebuilding the same files gives the same
    store. DVC and Snakemake track the contents themselves.
    """
    digest = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        digest.update(f"{p.parent.name}/{p.name}:{p.stat().st_size}\n".encode())
    return digest.hexdigest()


def write_store(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` as a sharded, zstd-compressed Zarr v3 store, atomically.

    Sample-indexed variables are chunked by ``CHUNK_SAMPLES`` samples inside
    shards of ``SHARD_SAMPLES`` samples, so each variable is one file per
    shard rather than one file per chunk.
    """
    validate_dataset(ds)
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype == object or var.dtype.kind in "UT":
            continue
        shape = var.shape
        if var.dims and var.dims[0] == "sample":
            chunks = (min(CHUNK_SAMPLES, shape[0]),) + shape[1:]
            shards = (max(chunks[0], min(SHARD_SAMPLES, shape[0])),) + shape[1:]
            shards = ((shards[0] + chunks[0] - 1) // chunks[0] * chunks[0],) + shards[1:]
        else:
            chunks = shards = shape
        if 0 in shape:
            continue
        encoding[name] = {"chunks": chunks, "shards": shards, "compressors": [ZstdCodec(level=3)]}
    with atomic_path(path) as tmp:
        ds.to_zarr(tmp, mode="w", zarr_format=3, encoding=encoding, consolidated=False)
    log.info("wrote %s: %d samples, %d node slots, modalities %s", path, ds.sizes["sample"], ds.sizes["node"], ds.attrs["modalities"])


REQUIRED_VARIABLES = ("position", "node_id", "node_name", "label", "class_name")
REQUIRED_COORDS = ("time", "group", "split")


def validate_dataset(ds: xr.Dataset, source: str = "dataset") -> None:
    """Check ``ds`` against the store schema; raise ValueError naming every problem found."""
    problems = []
    if ds.attrs.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {ds.attrs.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    modalities = ds.attrs.get("modalities")
    if not modalities:
        problems.append("attribute 'modalities' is missing or empty")
        modalities = []
    for name in REQUIRED_VARIABLES:
        if name not in ds.variables:
            problems.append(f"variable {name!r} is missing")
    for name in REQUIRED_COORDS:
        if name not in ds.coords:
            problems.append(f"coordinate {name!r} is missing")
    for m in modalities:
        for name, dims in (
            (f"signal_{m}", ("sample", "node", f"{m}_channel", f"{m}_freq", f"{m}_frame")),
            (f"present_{m}", ("sample", "node")),
        ):
            if name not in ds.variables:
                problems.append(f"variable {name!r} is missing")
            elif ds[name].dims != dims:
                problems.append(f"{name} has dims {ds[name].dims}, expected {dims}")
    if "position" in ds.variables and ds["position"].dims != ("sample", "node", "axis"):
        problems.append(f"position has dims {ds['position'].dims}, expected ('sample', 'node', 'axis')")
    if "position_unit" not in ds.attrs:
        problems.append("attribute 'position_unit' is missing")
    if problems:
        raise ValueError(f"{source} does not match the spar store schema: " + "; ".join(problems))


def open_store(path: str | os.PathLike) -> xr.Dataset:
    """Open a tensor store lazily and check it against the schema."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tensor store {path} does not exist; run `spar ingest` to create it")
    with warnings.catch_warnings():
        # Snakemake puts a .snakemake_timestamp file into directory outputs; Zarr warns about the stranger
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        ds = xr.open_zarr(path, consolidated=False, zarr_format=3)
    validate_dataset(ds, source=str(path))
    return ds
