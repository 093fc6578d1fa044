"""The tensor store's file layout and WindowData's reading of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from xarray.backends.zarr import ZarrArrayWrapper

from spar.data.windows import WindowData
from spar.features.store import CHUNK_SAMPLES, build_dataset, open_store, write_store

N_NODES = 3
CHANNELS, FREQS, FRAMES = 1, 4, 5
NORMALIZATION = {"acoustic": {"mean": 0.5, "std": 2.0}}


def make_arrays(n_samples: int, seed: int = 0) -> dict:
    """Build the in-memory arrays of a one-modality store with ``n_samples`` windows.

    Every third window is a test window and the rest are training windows, so a
    split selects samples that are not contiguous. Node 2 is absent in every
    fifth window.
    """
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_samples, N_NODES, CHANNELS, FREQS, FRAMES)).astype(np.float32)
    present = np.ones((n_samples, N_NODES), dtype=bool)
    present[::5, 2] = False
    position = rng.uniform(-50.0, 50.0, size=(n_samples, N_NODES, 2)).astype(np.float32)
    position[::5, 2] = np.nan
    node_id = np.tile(np.arange(N_NODES, dtype=np.int32), (n_samples, 1))
    node_id[::5, 2] = -1
    split = np.where(np.arange(n_samples) % 3 == 2, "test", "train")
    return {
        "signal": signal,
        "present": present,
        "position": position,
        "node_id": node_id,
        "label": (np.arange(n_samples) % 4).astype(np.int16),
        "target": rng.uniform(-10.0, 10.0, size=(n_samples, 2)).astype(np.float32),
        "time": np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(n_samples) * np.timedelta64(2, "s"),
        "group": np.array(["g0" if i < n_samples // 2 else "g1" for i in range(n_samples)]),
        "split": split,
    }


def write_test_store(path: Path, arrays: dict) -> Path:
    """Write ``arrays`` as a tensor store at ``path`` with write_store."""
    ds = build_dataset(
        signals={"acoustic": arrays["signal"]},
        present={"acoustic": arrays["present"]},
        position=arrays["position"],
        node_id=arrays["node_id"],
        node_name=[f"n{i}" for i in range(N_NODES)],
        time=arrays["time"],
        group=arrays["group"],
        split=arrays["split"],
        axis_names=("east", "north"),
        label=arrays["label"],
        class_name=["a", "b", "c", "d"],
        target=arrays["target"],
        attrs={"position_unit": "m", "normalization": NORMALIZATION},
    )
    write_store(ds, path)
    return path


def count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[int, tuple[Path, dict]]:
    """Two stores, of 100 and 1000 windows (2 and 16 chunks of CHUNK_SAMPLES windows)."""
    root = tmp_path_factory.mktemp("stores")
    built = {}
    for n in (100, 1000):
        arrays = make_arrays(n, seed=n)
        built[n] = (write_test_store(root / f"s{n}.zarr", arrays), arrays)
    return built


def test_store_file_count_bounded(stores):
    small, _ = stores[100]
    large, _ = stores[1000]
    ds = open_store(large)
    n_arrays = len(ds.variables)

    assert 1000 // CHUNK_SAMPLES > 10
    assert count_files(small) == count_files(large)
    # one zarr.json per array plus the group's, and one shard file per non-empty array
    assert count_files(large) <= 2 * n_arrays + 1


def test_loader_opens_store_once(stores, monkeypatch):
    path, _ = stores[1000]
    opened = []
    real_open_zarr = xr.open_zarr

    def counting_open_zarr(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("store"))
        return real_open_zarr(*args, **kwargs)

    monkeypatch.setattr(xr, "open_zarr", counting_open_zarr)
    data = WindowData.from_store(path, split="train")
    assert opened == [path]

    for _ in data.batches(batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)):
        pass
    assert len(opened) == 1


def record_reads(path: Path, monkeypatch, **selection) -> list[tuple[str, str]]:
    """Load ``path`` with WindowData.from_store and list (array name, xarray indexer type) of every Zarr read."""
    reads = []
    real_getitem = ZarrArrayWrapper.__getitem__

    def recording_getitem(self, key):
        reads.append((self.get_array().basename, type(key).__name__))
        return real_getitem(self, key)

    monkeypatch.setattr(ZarrArrayWrapper, "__getitem__", recording_getitem)
    WindowData.from_store(path, **selection)
    monkeypatch.setattr(ZarrArrayWrapper, "__getitem__", real_getitem)
    return reads


def test_loader_reads_each_array_once(stores, monkeypatch):
    small = Counter(name for name, _ in record_reads(stores[100][0], monkeypatch, split="train"))
    large_reads = record_reads(stores[1000][0], monkeypatch, split="train")
    large = Counter(name for name, _ in large_reads)

    for name in ("signal_acoustic", "present_acoustic", "position", "node_id", "label", "target"):
        assert large[name] == 1, name
    # the number of reads does not grow with the number of windows
    assert small == large


def test_loader_reads_sample_ranges(stores, monkeypatch):
    reads = record_reads(stores[1000][0], monkeypatch, split="train")

    # A range of samples decodes each chunk once. An index array would go
    # through Zarr's orthogonal selection, which is many times slower.
    for name, indexer in reads:
        assert indexer == "BasicIndexer", name


def expected_batch(arrays: dict, index: np.ndarray) -> dict[str, np.ndarray]:
    """Compute by hand what the loader yields for the store windows ``index``."""
    stats = NORMALIZATION["acoustic"]
    signal = (arrays["signal"][index] - stats["mean"]) / stats["std"]
    signal *= arrays["present"][index][:, :, None, None, None]
    return {
        "sample": index.astype(np.int64),
        "signal_acoustic": signal,
        "present_acoustic": arrays["present"][index],
        "position": np.nan_to_num(arrays["position"][index], nan=0.0),
        "node_id": arrays["node_id"][index].astype(np.int64),
        "label": arrays["label"][index].astype(np.int64),
        "target": arrays["target"][index],
        "time_s": 2.0 * index,
        "group_index": (index >= 500).astype(np.int64),
    }


@pytest.mark.parametrize("selection", [{"split": "train"}, {"split": "test", "group": "g1"}, {}])
def test_loader_batches_match_arrays(stores, selection):
    path, arrays = stores[1000]
    select = np.ones(1000, dtype=bool)
    if "split" in selection:
        select &= arrays["split"] == selection["split"]
    if "group" in selection:
        select &= arrays["group"] == selection["group"]
    index = np.flatnonzero(select)

    data = WindowData.from_store(path, **selection)
    generator = torch.Generator().manual_seed(3)
    order = torch.randperm(len(index), generator=torch.Generator().manual_seed(3)).numpy()
    batches = list(data.batches(batch_size=100, shuffle=True, generator=generator))

    assert len(data) == index.size
    assert [len(b["sample"]) for b in batches[:-1]] == [100] * (len(batches) - 1)
    for i, batch in enumerate(batches):
        expected = expected_batch(arrays, index[order[i * 100 : (i + 1) * 100]])
        assert sorted(batch) == sorted(expected)
        for name, values in expected.items():
            got = batch[name].numpy()
            assert got.dtype == values.dtype, name
            assert got.tobytes() == values.tobytes(), name


def test_loader_matches_lazy_indexing(stores):
    path, arrays = stores[1000]
    index = np.flatnonzero(arrays["split"] == "test")
    lazy = open_store(path).isel(sample=index)

    data = WindowData.from_store(path, split="test")

    for name in ("present_acoustic", "node_id", "label", "target"):
        assert np.array_equal(data.tensors[name].numpy(), lazy[name].values.astype(data.tensors[name].numpy().dtype)), name
    stats = NORMALIZATION["acoustic"]
    signal = (lazy["signal_acoustic"].values - stats["mean"]) / stats["std"]
    signal *= lazy["present_acoustic"].values[:, :, None, None, None]
    assert data.tensors["signal_acoustic"].numpy().tobytes() == signal.tobytes()
    assert list(data.group) == [str(g) for g in lazy["group"].values.tolist()]
