"""Short-time Fourier transform and mel spectrograms, vectorised over leading axes.

All functions take signals of shape ``(..., n_samples)`` and return
``(..., n_freq, n_frames)``. Frames start at sample 0 and advance by ``hop``;
only frames that fit inside the signal are kept (no centre padding), so a
window of N samples gives ``1 + (N - n_fft) // hop`` frames and every frame
sees only data of its own window.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LOG_FLOOR = 1e-10  # power floor before the logarithm, so silent (zero) input stays finite


def frame_count(n_samples: int, n_fft: int, hop: int) -> int:
    """Return the number of STFT frames for a signal of ``n_samples``."""
    if n_samples < n_fft:
        raise ValueError(f"signal of {n_samples} samples is shorter than n_fft={n_fft}")
    return 1 + (n_samples - n_fft) // hop


@functools.lru_cache(maxsize=32)
def _hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann window


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Compute |STFT|^2 with a periodic Hann window.

    Args:
        x: signals, shape ``(..., n_samples)``, any real dtype.
        n_fft: FFT length in samples.
        hop: frame advance in samples.

    Returns:
        Power, float32, shape ``(..., n_fft // 2 + 1, n_frames)``.
    """
    x = np.asarray(x, dtype=np.float32)
    n_frames = frame_count(x.shape[-1], n_fft, hop)
    frames = sliding_window_view(x, n_fft, axis=-1)[..., ::hop, :][..., :n_frames, :]
    spectrum = np.fft.rfft(frames * _hann(n_fft), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return np.swapaxes(power, -1, -2)


def hz_to_mel(f_hz):
    """Convert hertz to mel (HTK formula)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=float) / 700.0)


def mel_to_hz(mel):
    """Convert mel to hertz (HTK formula)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=float) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate_hz: float, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Build triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, each with unit peak.

    Raises ValueError when a filter would cover no FFT bin, which happens when
    ``n_mels`` is too large for the frequency resolution ``sample_rate_hz / n_fft``.
    """
    nyquist = sample_rate_hz / 2.0
    if not 0.0 <= fmin_hz < fmax_hz <= nyquist:
        raise ValueError(f"mel band [{fmin_hz}, {fmax_hz}] Hz must satisfy 0 <= fmin < fmax <= Nyquist ({nyquist} Hz)")
    bin_hz = np.linspace(0.0, nyquist, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (center - lower)
    falling = (upper - bin_hz[None, :]) / (upper - center)
    filters = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(filters.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} of {n_mels} mel filters cover no FFT bin at {sample_rate_hz} Hz with n_fft={n_fft}; "
            "lower n_mels or raise n_fft"
        )
    return filters.astype(np.float32)


def log_mel_spectrogram(
    x: np.ndarray,
    sample_rate_hz: float,
    n_fft: int,
    hop: int,
    n_mels: int,
    fmin_hz: float,
    fmax_hz: float,
) -> np.ndarray:
    """Compute the natural log of mel-band power, shape ``(..., n_mels, n_frames)``, float32."""
    power = power_spectrogram(x, n_fft, hop)
    filters = mel_filterbank(float(sample_rate_hz), int(n_fft), int(n_mels), float(fmin_hz), float(fmax_hz))
    mel = np.einsum("mf,...ft->...mt", filters, power, optimize=True)
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)


def log_spectrogram(x: np.ndarray, n_fft: int, hop: int, max_bins: int | None = None) -> np.ndarray:
    """Compute the natural log of STFT power, keeping the lowest ``max_bins`` frequency bins."""
    power = power_spectrogram(x, n_fft, hop)
    if max_bins is not None:
        power = power[..., :max_bins, :]
    return np.log(np.maximum(power, LOG_FLOOR)).astype(np.float32)
