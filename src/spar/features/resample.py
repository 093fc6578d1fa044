"""Put irregularly sampled recordings on a common time grid and cut shared windows.

Phone and watch sensors such as those of RealWorld-HAR sample at a nominal rate
with jitter and gaps. ``resample_to_grid`` interpolates each recording linearly
onto regular grid times, which absorbs the jitter, and marks grid points that no
recording covers with NaN instead of inventing data. ``common_windows`` finds the
window start times that every recording of a group covers.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# A window may end this many seconds after the intersection, so that an intersection of
# k * window_s seconds in epoch-second times (rounded to about 1e-7 s) still gives k windows.
WINDOW_TOLERANCE_S = 1e-6
# Maximum number of windows that common_windows returns. A session of a few hours cut
# into windows of seconds gives thousands, so a million means times or window length in
# the wrong unit.
MAX_WINDOWS = 1_000_000


def resample_to_grid(time_s: np.ndarray, values: np.ndarray, grid_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Interpolate samples linearly onto grid times.

    A grid point is NaN when it lies before the first or after the last
    sample, or strictly between two consecutive samples that are more than
    ``max_gap_s`` apart. A grid point equal to a sample time gets that
    sample's value even next to a gap. NaN in ``values`` spreads to the grid
    points between its neighbouring samples.

    Args:
        time_s: float (n,), sample times in seconds, strictly increasing.
        values: float (n,) or (n, c), the samples.
        grid_s: float (m,), grid times in seconds (any order).
        max_gap_s: the maximum spacing of consecutive samples that is
            interpolated across, in seconds.

    Returns:
        float64 (m,) for 1-D ``values``, else (m, c).

    Raises:
        ValueError: shapes do not match, times are not finite and strictly
            increasing, or ``max_gap_s`` is not positive.
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    grid_s = np.asarray(grid_s, dtype=np.float64)
    one_channel = values.ndim == 1
    if one_channel:
        values = values[:, None]
    if time_s.ndim != 1 or values.ndim != 2 or values.shape[0] != time_s.shape[0]:
        raise ValueError(f"time_s must have shape (n,) and values (n,) or (n, c); got {time_s.shape} and {values.shape}")
    if grid_s.ndim != 1:
        raise ValueError(f"grid_s must have shape (m,); got {grid_s.shape}")
    if not max_gap_s > 0:
        raise ValueError(f"max_gap_s must be positive; got {max_gap_s}")
    if not np.isfinite(time_s).all():
        raise ValueError(f"time_s contains non-finite values at index {int(np.flatnonzero(~np.isfinite(time_s))[0])}")
    steps = np.diff(time_s)
    if (steps <= 0).any():
        index = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ValueError(
            f"time_s must be strictly increasing; sample {index} at {float(time_s[index])!r} s follows {float(time_s[index - 1])!r} s. "
            "Sort the samples and remove duplicate timestamps first"
        )

    out = np.full((grid_s.shape[0], values.shape[1]), np.nan)
    if time_s.shape[0] == 0:
        return out[:, 0] if one_channel else out

    # Index of the last sample at or before each grid point; -1 before the first sample.
    left = np.searchsorted(time_s, grid_s, side="right") - 1
    on_sample = (left >= 0) & (time_s[np.clip(left, 0, None)] == grid_s)
    between = (left >= 0) & (left < time_s.shape[0] - 1)
    gap = np.zeros(grid_s.shape[0], dtype=bool)
    gap[between] = steps[left[between]] > max_gap_s
    valid = on_sample | (between & ~gap)

    for channel in range(values.shape[1]):
        out[valid, channel] = np.interp(grid_s[valid], time_s, values[:, channel])
    return out[:, 0] if one_channel else out


def common_windows(intervals: list[tuple[float, float]], window_s: float) -> np.ndarray:
    """Return the start times of non-overlapping windows that every interval covers.

    The windows tile the intersection of the intervals from its start: window
    k starts at ``max(starts) + k * window_s`` and must end by ``min(ends)``.

    Args:
        intervals: (start, end) in seconds of each recording, start <= end.
        window_s: window length in seconds.

    Returns:
        float64 (k,), window starts in seconds; empty when the intervals do
        not overlap for at least ``window_s``.

    Raises:
        ValueError: no interval, an interval that ends before it starts, a
            window length that is not positive, or more than ``MAX_WINDOWS`` windows.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be positive; got {window_s}")
    if len(intervals) == 0:
        raise ValueError("intervals is empty; pass the (start, end) of at least one recording")
    for index, (start, end) in enumerate(intervals):
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise ValueError(f"interval {index} is ({start}, {end}); it needs finite times with start <= end")

    start = max(float(s) for s, _ in intervals)
    end = min(float(e) for _, e in intervals)
    if end <= start:
        return np.empty(0)
    count = np.floor((end - start + WINDOW_TOLERANCE_S) / window_s)
    if count > MAX_WINDOWS:
        raise ValueError(
            f"the intervals overlap from {start} to {end}, which gives {count:.3g} windows of {window_s} s, more than {MAX_WINDOWS}; "
            "check that the times are in seconds and the window length is right"
        )
    return start + np.arange(int(count)) * float(window_s)


def fill_missing(x: np.ndarray) -> int:
    """Replace NaN samples of the 1-D array ``x`` in place by linear interpolation, constant beyond the ends.

    Returns the number of samples filled. ``x`` needs at least one finite sample.
    """
    missing = np.isnan(x)
    n_missing = int(missing.sum())
    if n_missing:
        index = np.arange(len(x))
        x[missing] = np.interp(index[missing], index[~missing], x[~missing])
    return n_missing
