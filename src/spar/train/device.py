"""GPU claiming for concurrent workflow jobs.

Snakemake counts GPUs (``resources: gpu=1``) but does not tell a job which
one it got. Each training job therefore claims a free device itself: it takes
an exclusive ``flock`` on one lock file per device and narrows
``CUDA_VISIBLE_DEVICES`` to the device it locked, so two jobs started together
land on two different GPUs.

``flock`` locks belong to the open file description, so the kernel releases
them when the process exits, also when it is killed. A lock file that a dead
job left on disk therefore blocks nothing, unless a child process that
inherited the descriptor (a forked data loader worker) is still running. Lock files sit in a subfolder per host name, because
the lock folder is often on a file system that several cluster nodes share
and each node numbers its GPUs from 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

# A job that Snakemake started with a free gpu resource normally finds a free
# lock at once. It waits only while a finished job's process is still exiting,
# or while processes outside the workflow hold devices.
DEFAULT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Claim:
    """The device a job runs on.

    Attributes:
        device: torch device string, ``"cuda:0"`` for a claimed GPU (the only
            one visible after the claim) or ``"cpu"``.
        index: integer id of the claimed GPU as listed before the claim
            (``CUDA_VISIBLE_DEVICES`` entry or CUDA index); None on CPU or when
            the entry is a UUID.
        device_id: the ``CUDA_VISIBLE_DEVICES`` value set for the job; None on CPU.
        lock_path: the held lock file; None on CPU.
    """

    device: str
    index: int | None = None
    device_id: str | None = None
    lock_path: Path | None = None


def _cuda_device_count() -> int:
    import torch

    if torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA is already initialized in this process, so CUDA_VISIBLE_DEVICES can no longer select a GPU; "
            "call claim_device before the first CUDA call"
        )
    # torch counts devices through NVML where it can, which does not initialize CUDA.
    return torch.cuda.device_count()


def _candidate_ids(n_devices: int) -> list[str]:
    """Return the ids of the devices to claim among, in order of preference."""
    if n_devices <= 0:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(n_devices)]

    # CUDA ignores a negative index and every entry after it, so "0,-1,1" is device 0 only.
    ids = []
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or re.fullmatch(r"-\d+", entry):
            break
        ids.append(entry)
    return ids[:n_devices]


def _lock_name(device_id: str) -> str:
    # UUIDs such as "GPU-1a2b..." or "MIG-..." contain only safe characters, but be strict anyway.
    return "gpu" + re.sub(r"[^A-Za-z0-9_.-]", "_", device_id) + ".lock"


def _try_lock(path: Path) -> int | None:
    """Return an open descriptor of ``path`` holding an exclusive flock, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise

    # record the holder, for the timeout message of other jobs
    os.ftruncate(fd, 0)
    os.write(fd, f"pid={os.getpid()} host={socket.gethostname()} since={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
    return fd


def _describe_holders(paths: list[Path]) -> str:
    holders = []
    for path in paths:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        holders.append(f"{path.name}: {text or 'holder unknown'}")
    return "; ".join(holders)


@contextlib.contextmanager
def claim_device(
    lock_dir: Path,
    n_devices: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> Iterator[Claim]:
    """Claim a free GPU for the duration of the block, or fall back to the CPU.

    The first device whose lock file ``lock_dir/<host>/gpu<id>.lock`` is free
    is locked, ``CUDA_VISIBLE_DEVICES`` is set to its id, and the claim's
    device is ``"cuda:0"``. If ``CUDA_VISIBLE_DEVICES`` was set before (by
    SLURM, for example), the claim is among the ids it lists. On exit, also
    on an exception, the lock is released and ``CUDA_VISIBLE_DEVICES`` gets
    its previous value back.

    Call this before the first CUDA call of the process, because CUDA reads
    ``CUDA_VISIBLE_DEVICES`` only when it initializes.

    Args:
        lock_dir: folder for the lock files; created if missing.
        n_devices: number of CUDA devices; None takes the count from torch. With 0 the job
            runs on the CPU and nothing is locked.
        timeout_s: seconds to wait for a free device.
        poll_interval_s: seconds between attempts while all devices are busy.

    Raises:
        TimeoutError: no device became free within ``timeout_s``; the message
            names the lock folder and the processes holding the locks.
        RuntimeError: CUDA is already initialized in this process.
    """
    if n_devices is None:
        n_devices = _cuda_device_count()
    elif "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("CUDA is already initialized in this process; call claim_device before the first CUDA call")
    ids = _candidate_ids(n_devices)

    if not ids:
        log.info("no CUDA device found; the job runs on CPU")
        yield Claim(device="cpu")
        return

    # take the first free lock, polling until the timeout
    host_dir = Path(lock_dir) / socket.gethostname()
    host_dir.mkdir(parents=True, exist_ok=True)
    paths = [host_dir / _lock_name(device_id) for device_id in ids]
    deadline = time.monotonic() + timeout_s
    waiting_logged = False
    fd = None
    while fd is None:
        for device_id, path in zip(ids, paths):
            fd = _try_lock(path)
            if fd is not None:
                break
        if fd is not None:
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"no free GPU among ids {ids} after {timeout_s:g} s: every lock in {host_dir} is held "
                f"({_describe_holders(paths)}). Wait for those processes, give Snakemake no more than "
                f"--resources gpu={len(ids)}, or raise the timeout"
            )
        if not waiting_logged:
            log.info("all %d GPUs (ids %s) are claimed by other jobs; waiting up to %g s for one in %s", len(ids), ids, timeout_s, host_dir)
            waiting_logged = True
        time.sleep(poll_interval_s)

    # narrow the visible devices to the claimed one
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = device_id
    claim = Claim(
        device="cuda:0",
        index=int(device_id) if device_id.isdigit() else None,
        device_id=device_id,
        lock_path=path,
    )
    log.info("claimed GPU %s (lock %s); CUDA_VISIBLE_DEVICES=%s", device_id, path, device_id)
    try:
        yield claim
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        log.info("released GPU %s", device_id)


def pick_device_string() -> str:
    """Return ``"cuda"`` when torch finds a CUDA device, else ``"cpu"``, for steps that run without a claim."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
