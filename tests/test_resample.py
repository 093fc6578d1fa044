"""Resampling onto a regular grid and windows shared by several recordings."""

from __future__ import annotations

import numpy as np
import pytest

from spar.features.resample import common_windows, resample_to_grid

RATE_HZ = 50.0
SINE_HZ = 2.0
SINE_AMPLITUDE = 3.0


def fit_sine(time_s: np.ndarray, values: np.ndarray, frequencies_hz: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of a * sin + b * cos + c at each candidate frequency; return (frequency, amplitude) of the best fit."""
    best = (np.inf, 0.0, 0.0)
    centered = time_s - time_s.mean()
    for frequency in frequencies_hz:
        phase = 2 * np.pi * frequency * centered
        design = np.column_stack([np.sin(phase), np.cos(phase), np.ones_like(phase)])
        coefficients, residual, *_ = np.linalg.lstsq(design, values, rcond=None)
        error = float(residual[0]) if residual.size else float(np.sum((design @ coefficients - values) ** 2))
        if error < best[0]:
            best = (error, float(frequency), float(np.hypot(coefficients[0], coefficients[1])))
    return best[1], best[2]


@pytest.fixture
def jittered_sine():
    """10 s of a 2 Hz sine of amplitude 3 sampled at 50 Hz with +/-4 ms uniform jitter, starting at 100.0 s."""
    rng = np.random.default_rng(7)
    time_s = 100.0 + np.arange(500) / RATE_HZ + rng.uniform(-0.004, 0.004, 500)
    values = SINE_AMPLITUDE * np.sin(2 * np.pi * SINE_HZ * time_s + 0.3)
    return time_s, values


def test_fit_sine_recovers_known_sine():
    time_s = np.arange(500) / RATE_HZ
    frequency, amplitude = fit_sine(time_s, 1.5 * np.sin(2 * np.pi * 2.02 * time_s), np.arange(1.9, 2.1, 0.0005))
    assert frequency == pytest.approx(2.02, abs=0.0005)
    assert amplitude == pytest.approx(1.5, rel=1e-3)


def test_sine_keeps_frequency_and_amplitude(jittered_sine):
    time_s, values = jittered_sine
    grid = np.arange(100.02, 109.96, 1 / RATE_HZ)
    resampled = resample_to_grid(time_s, values, grid, max_gap_s=0.1)
    assert resampled.shape == grid.shape
    assert np.isfinite(resampled).all()

    frequency, amplitude = fit_sine(grid, resampled, np.arange(1.9, 2.1, 0.0005))
    assert frequency == pytest.approx(SINE_HZ, rel=0.01)
    assert amplitude == pytest.approx(SINE_AMPLITUDE, rel=0.01)


def test_sine_interpolation_error_bound(jittered_sine):
    time_s, values = jittered_sine
    grid = np.arange(100.02, 109.96, 1 / RATE_HZ)
    resampled = resample_to_grid(time_s, values, grid, max_gap_s=0.1)
    truth = SINE_AMPLITUDE * np.sin(2 * np.pi * SINE_HZ * grid + 0.3)
    # Linear interpolation errs by at most A * (2 pi f h)^2 / 8 = 0.046 for the longest step h = 28 ms.
    assert np.max(np.abs(resampled - truth)) < 0.05


def test_gap_and_edges_give_nan():
    time_s = np.concatenate([np.arange(51) * 0.02, 2.0 + np.arange(51) * 0.02])
    values = np.column_stack([10.0 * time_s, -time_s])
    grid = np.array([-0.01, 0.0, 0.51, 1.0, 1.5, 1.99, 2.0, 2.51, 3.0, 3.01])
    resampled = resample_to_grid(time_s, values, grid, max_gap_s=0.1)

    assert resampled.shape == (10, 2)
    expected = [np.nan, 0.0, 5.1, 10.0, np.nan, np.nan, 20.0, 25.1, 30.0, np.nan]
    np.testing.assert_allclose(resampled[:, 0], expected, atol=1e-9)
    np.testing.assert_allclose(resampled[:, 1], np.array(expected) / -10.0, atol=1e-9)


def test_gap_within_limit_interpolated():
    time_s = np.array([0.0, 0.02, 0.10, 0.12])
    resampled = resample_to_grid(time_s, 100.0 * time_s, np.array([0.06]), max_gap_s=0.1)
    assert resampled[0] == pytest.approx(6.0)


def test_unsorted_times_rejected():
    with pytest.raises(ValueError, match="sample 2 at 0.02 s follows 0.02 s"):
        resample_to_grid(np.array([0.0, 0.02, 0.02]), np.zeros(3), np.array([0.01]), max_gap_s=0.1)


def test_empty_recording_all_nan():
    resampled = resample_to_grid(np.empty(0), np.empty((0, 3)), np.array([0.0, 1.0]), max_gap_s=0.1)
    assert resampled.shape == (2, 3)
    assert np.isnan(resampled).all()


def test_common_windows_intersection():
    starts = common_windows([(0.0, 10.0), (2.5, 12.0), (1.0, 9.9)], window_s=2.0)
    np.testing.assert_allclose(starts, [2.5, 4.5, 6.5])


def test_common_windows_exact_fit():
    np.testing.assert_allclose(common_windows([(0.0, 6.0)], window_s=2.0), [0.0, 2.0, 4.0])
    epoch = 1_435_000_000.1
    starts = common_windows([(epoch, epoch + 6.0), (epoch - 5.0, epoch + 7.0)], window_s=2.0)
    np.testing.assert_allclose(starts - epoch, [0.0, 2.0, 4.0], atol=1e-6)


def test_common_windows_no_overlap():
    assert common_windows([(0.0, 5.0), (6.0, 10.0)], window_s=1.0).size == 0
    assert common_windows([(0.0, 5.0), (4.0, 10.0)], window_s=2.0).size == 0


def test_common_windows_invalid_input():
    with pytest.raises(ValueError, match="intervals is empty"):
        common_windows([], window_s=1.0)
    with pytest.raises(ValueError, match=r"interval 1 is \(5.0, 4.0\)"):
        common_windows([(0.0, 9.0), (5.0, 4.0)], window_s=1.0)
    with pytest.raises(ValueError, match="window_s must be positive"):
        common_windows([(0.0, 9.0)], window_s=0.0)
