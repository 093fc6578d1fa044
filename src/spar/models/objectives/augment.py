"""Seeded augmentations of a batch for the contrastive objectives.

Every function takes a ``torch.Generator`` (or None for torch's global
generator) and returns new tensors, so the input batch is never modified.
Signals are standardised, so 0 is the mean value of every bin, and absent
nodes are zero. Each augmentation keeps absent nodes zero and absent.

Shapes: B samples, N node slots, C channels, F frequency bins (1 for raw
signals), T time frames or samples. ``signal`` is (B, N, C, F, T) and
``present`` is (B, N) bool.

Default strengths follow the augmentation settings of FOCAL's public code
(github.com/tomoyoshki/focal, src/data/MOD.yaml: scaling std 0.2, jitter
0.2, time and frequency masks with ratio 0.3 applied with probability 0.5),
except the node dropout rate, which is our choice (see
:class:`AugmentSettings`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch


@dataclass(frozen=True)
class AugmentSettings:
    """Strengths of the batch augmentations; a zero disables that augmentation.

    Attributes:
        gain_std: standard deviation of the log gain. Each (sample, node) is
            scaled by exp(gain_std * n) with n ~ N(0, 1), so 0.2 gives gains
            of about 0.82 to 1.22 at one standard deviation.
        noise_std: standard deviation of additive Gaussian noise, in units of
            the standardised signal.
        time_mask_ratio: widest time mask as a fraction of the T frames.
        time_mask_prob: probability that a (sample, node) gets a time mask.
        freq_mask_ratio: widest frequency mask as a fraction of the F bins.
        freq_mask_prob: probability that a (sample, node) gets a frequency mask.
        node_dropout: probability that a present node is dropped from the view.
            The default 0.25 equals the backbone's ``node_drop_ratio`` default,
            our choice because none of the four baseline papers has multi-node inputs.
    """

    gain_std: float = 0.2
    noise_std: float = 0.2
    time_mask_ratio: float = 0.3
    time_mask_prob: float = 0.5
    freq_mask_ratio: float = 0.3
    freq_mask_prob: float = 0.5
    node_dropout: float = 0.25

    def __post_init__(self):
        for name in ("gain_std", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} is {getattr(self, name)}; set a standard deviation >= 0")
        for name in ("time_mask_ratio", "time_mask_prob", "freq_mask_ratio", "freq_mask_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} is {getattr(self, name)}; set a fraction between 0 and 1")
        if not 0.0 <= self.node_dropout < 1.0:
            raise ValueError(f"augment.node_dropout is {self.node_dropout}; set a probability in [0, 1)")

    @classmethod
    def from_dict(cls, values: dict | None) -> "AugmentSettings":
        """Build the settings from a dict of overrides, rejecting unknown names."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown augmentation setting(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(shape: tuple, generator: torch.Generator | None, device) -> torch.Tensor:
    """Draw U[0, 1) float32 values on the generator's device, then move them to ``device``."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _normal(shape: tuple, generator: torch.Generator | None, device) -> torch.Tensor:
    """Draw N(0, 1) float32 values on the generator's device, then move them to ``device``."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def random_gain(signal: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each (sample, node) of ``signal`` (B, N, C, F, T) by a log-normal gain exp(std * N(0, 1)).

    One gain per node covers all its channels, bins and frames. Absent nodes
    are zero and stay zero.
    """
    if std == 0:
        return signal.clone()
    batch, nodes = signal.shape[:2]
    gain = torch.exp(std * _normal((batch, nodes), generator, signal.device)).to(signal.dtype)
    return signal * gain[:, :, None, None, None]


def additive_noise(signal: torch.Tensor, present: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, std^2) noise to every value of the present nodes of ``signal`` (B, N, C, F, T).

    ``present`` is (B, N) bool. Absent nodes get no noise and stay zero.
    """
    if std == 0:
        return signal.clone()
    noise = std * _normal(tuple(signal.shape), generator, signal.device).to(signal.dtype)
    return signal + noise * present[:, :, None, None, None].to(signal.dtype)


def band_mask(batch: int, nodes: int, size: int, max_ratio: float, prob: float,
              generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Draw one contiguous band per (sample, node) along an axis of ``size`` bins, as in SpecAugment.

    With probability ``prob`` a (sample, node) gets a band whose width is
    uniform over 0..floor(max_ratio * size) bins and whose start is uniform
    over the positions where it fits. Otherwise its band is empty, and an
    axis of one bin (the frequency axis of a raw signal) is never masked
    unless ``max_ratio`` is 1.

    Returns:
        (B, N, size) bool, True inside the band.
    """
    max_width = int(max_ratio * size)
    apply, width_draw, start_draw = _uniform((3, batch, nodes), generator, device)
    width = torch.floor(width_draw * (max_width + 1)).long()
    width = torch.where(apply < prob, width, torch.zeros_like(width))
    start = torch.floor(start_draw * (size - width + 1)).long()
    index = torch.arange(size, device=device)
    return (index >= start[..., None]) & (index < (start + width)[..., None])


def time_mask(signal: torch.Tensor, max_ratio: float, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set one band of time frames (the last axis of ``signal`` (B, N, C, F, T)) to 0, the standardised mean.

    The band is shared by all channels and frequency bins of a node (see :func:`band_mask`).
    """
    batch, nodes = signal.shape[:2]
    mask = band_mask(batch, nodes, signal.shape[-1], max_ratio, prob, generator, signal.device)
    return signal.masked_fill(mask[:, :, None, None, :], 0.0)


def frequency_mask(signal: torch.Tensor, max_ratio: float, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set one band of frequency bins (axis -2 of ``signal`` (B, N, C, F, T)) to 0, the standardised mean.

    The band is shared by all channels and frames of a node (see :func:`band_mask`).
    """
    batch, nodes = signal.shape[:2]
    mask = band_mask(batch, nodes, signal.shape[-2], max_ratio, prob, generator, signal.device)
    return signal.masked_fill(mask[:, :, None, :, None], 0.0)


def node_dropout(present: dict[str, torch.Tensor], rate: float, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Drop random nodes from a view by marking them absent.

    One draw per (sample, node slot) drops that node in every modality, as
    when a whole sensor node fails. A modality that has present nodes in a
    sample keeps at least one of them: if every one was drawn, one of them,
    chosen at random, is restored. Absent nodes stay absent.

    Args:
        present: modality -> (B, N) bool.
        rate: probability that a node is dropped, in [0, 1).

    Returns:
        modality -> (B, N) bool, a subset of ``present``.
    """
    if not present:
        return {}
    if rate == 0:
        return {m: p.clone() for m, p in present.items()}
    first = next(iter(present.values()))
    batch, nodes = first.shape
    dropped = _uniform((batch, nodes), generator, first.device) < rate
    modalities = sorted(present)
    restore_score = _uniform((len(modalities), batch, nodes), generator, first.device)

    out = {}
    for k, m in enumerate(modalities):
        # drop the drawn nodes
        kept = present[m] & ~dropped

        # restore one random present node where the drop removed them all
        emptied = present[m].any(dim=1) & ~kept.any(dim=1)
        score = restore_score[k].masked_fill(~present[m], -1.0)
        restored = torch.zeros_like(kept)
        restored[torch.arange(batch, device=first.device), score.argmax(dim=1)] = True
        out[m] = kept | (restored & emptied[:, None])
    return out


def augment_batch(batch: dict, modalities: list[str], settings: AugmentSettings,
                  generator: torch.Generator | None = None) -> dict:
    """Return an augmented copy of ``batch`` without modifying the input dict or its tensors.

    Per modality, in this order: random gain, additive noise, time mask,
    frequency mask. Then node dropout over all modalities, and finally absent
    nodes are zeroed. Only ``signal_{m}`` and ``present_{m}`` change; the
    other entries are shared with the input.

    Args:
        batch: a batch of ``spar.data.windows.WindowData.batches`` with
            ``signal_{m}`` (B, N, C, F, T) and ``present_{m}`` (B, N).
        modalities: the modalities to augment.
        settings: augmentation strengths.
        generator: source of randomness; a given seed gives the same output.
    """
    out = dict(batch)
    for m in modalities:
        if f"signal_{m}" not in batch or f"present_{m}" not in batch:
            raise KeyError(f"batch has no signal_{m} or present_{m}; batch keys: {sorted(batch)}")

    # signal transforms, one modality at a time
    for m in modalities:
        signal, present = batch[f"signal_{m}"], batch[f"present_{m}"]
        signal = random_gain(signal, settings.gain_std, generator)
        signal = additive_noise(signal, present, settings.noise_std, generator)
        signal = time_mask(signal, settings.time_mask_ratio, settings.time_mask_prob, generator)
        signal = frequency_mask(signal, settings.freq_mask_ratio, settings.freq_mask_prob, generator)
        out[f"signal_{m}"] = signal

    # node dropout, shared by the modalities
    present = node_dropout({m: batch[f"present_{m}"] for m in modalities}, settings.node_dropout, generator)

    # absent and dropped nodes carry no values
    for m in modalities:
        out[f"present_{m}"] = present[m]
        out[f"signal_{m}"] = out[f"signal_{m}"] * present[m][:, :, None, None, None].to(out[f"signal_{m}"].dtype)
    return out
