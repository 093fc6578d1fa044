"""Tests of spar.train.device with fake device counts; no GPU is needed."""

import fcntl
import logging
import multiprocessing
import os
import socket

import pytest

from spar.train.device import claim_device

# generous bounds that only stop a hung test; no assert depends on them
WAIT_S = 60


def _hold_claim(lock_dir, n_devices, results, release):
    """Child process: claim a device, report it, and hold it until ``release`` is set."""
    with claim_device(lock_dir, n_devices=n_devices, timeout_s=WAIT_S, poll_interval_s=0.05) as claim:
        results.put((claim.index, claim.device, os.environ["CUDA_VISIBLE_DEVICES"]))
        release.wait(WAIT_S)


@pytest.fixture(autouse=True)
def no_visible_devices_variable(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_two_processes_get_different_devices(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    release = context.Event()
    children = [context.Process(target=_hold_claim, args=(tmp_path, 2, results, release)) for _ in range(2)]
    for child in children:
        child.start()

    try:
        claims = sorted(results.get(timeout=WAIT_S) for _ in children)
        assert claims == [(0, "cuda:0", "0"), (1, "cuda:0", "1")]

        # a third claim while both are held times out, naming the lock folder and the holders
        with pytest.raises(TimeoutError, match="no free GPU") as info:
            with claim_device(tmp_path, n_devices=2, timeout_s=0.2, poll_interval_s=0.05):
                pass
        assert str(tmp_path) in str(info.value)
        assert "gpu0.lock: pid=" in str(info.value)
    finally:
        release.set()
        for child in children:
            child.join(WAIT_S)

    assert [child.exitcode for child in children] == [0, 0]
    # the children exited, so device 0 is free again
    with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
        assert claim.index == 0


def test_claim_in_same_process_blocks_second_claim(tmp_path):
    with claim_device(tmp_path, n_devices=1, timeout_s=0.1) as first:
        assert first.index == 0
        with pytest.raises(TimeoutError, match=str(tmp_path)):
            with claim_device(tmp_path, n_devices=1, timeout_s=0.1, poll_interval_s=0.05):
                pass


def test_claim_released_after_exception(tmp_path):
    with pytest.raises(RuntimeError, match="training failed"):
        with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
            assert claim.index == 0
            raise RuntimeError("training failed")

    with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
        assert claim.index == 0
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_claim_sets_and_restores_visible_devices(tmp_path):
    with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert claim.device == "cuda:0"
        assert claim.lock_path == tmp_path / socket.gethostname() / "gpu0.lock"
        assert claim.lock_path.exists()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_claim_among_preset_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")

    with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
        assert claim.index == 3
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"

    # another job has locked device 3, so the claim moves on to 5
    busy = tmp_path / socket.gethostname() / "gpu3.lock"
    with busy.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with claim_device(tmp_path, n_devices=2, timeout_s=0.1) as claim:
            assert claim.index == 5
            assert claim.lock_path.name == "gpu5.lock"
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_claim_uuid_visible_device(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2c1a")

    with claim_device(tmp_path, n_devices=1, timeout_s=0.1) as claim:
        assert claim.index is None
        assert claim.device_id == "GPU-8f2c1a"
        assert claim.device == "cuda:0"


def test_negative_visible_entry_ends_list(tmp_path, monkeypatch):
    # CUDA ignores "-1" and everything after it, so only device 0 is a candidate
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")

    with claim_device(tmp_path, n_devices=3, timeout_s=0.1) as claim:
        assert claim.index == 0
        with pytest.raises(TimeoutError):
            with claim_device(tmp_path, n_devices=3, timeout_s=0.1, poll_interval_s=0.05):
                pass


def test_cpu_when_no_devices(tmp_path, caplog):
    lock_dir = tmp_path / "locks"
    with caplog.at_level(logging.INFO, logger="spar.train.device"):
        with claim_device(lock_dir, n_devices=0) as claim:
            assert claim.device == "cpu"
            assert claim.index is None
            assert claim.lock_path is None
            assert "CUDA_VISIBLE_DEVICES" not in os.environ

    assert not lock_dir.exists()
    assert "runs on CPU" in caplog.text


def test_cpu_when_visible_devices_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")

    with claim_device(tmp_path, n_devices=2) as claim:
        assert claim.device == "cpu"
