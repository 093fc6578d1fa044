"""Masked-reconstruction baselines on the shared backbone: AudioMAE, CAV-MAE, FreqMAE and PhyMask.

Each objective hides tokens of every modality, encodes the visible ones,
decodes all of them and scores the reconstruction of the hidden, present
tokens, as :meth:`SparModel.forward` does. The methods differ in the
target (AudioMAE), in an extra cross-modal contrastive term (CAV-MAE), in
how the reconstruction error is weighted (FreqMAE) and in which tokens are
hidden (PhyMask).

Tokens hold patches of standardised log-power spectrograms (see
``spar.data.windows``). Energies below are therefore computed in the log
domain: the mean of a token's standardised values rises with the patch's
mean log power, and differences of such means are log-power ratios in
units of the store's standard deviation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spar.models.masking import energy_coherence_mask
from spar.models.objectives.base import Objective, pooled_modality_embeddings, register
from spar.models.spar import SparModel
from spar.models.tokens import ModalityShape

log = logging.getLogger(__name__)


# --- shared steps ---------------------------------------------------------------------


def resolve_settings(name: str, defaults: dict, settings: dict) -> dict:
    """Merge ``settings`` over ``defaults``, rejecting keys that ``defaults`` does not have."""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for objective {name!r}; known settings: {sorted(defaults)}")
    merged = dict(defaults)
    merged.update(settings)
    return merged


@dataclass
class MaskedPass:
    """Tensors of one masked encode-decode pass, per modality name.

    ``tokens``: output of ``SparModel.prepare``. ``keep``: (B, L_keep) visible
    token indices. ``masks``: (B, L) bool, True where hidden. ``latent``:
    output of ``SparModel.forward_encoder``. ``signal_pred`` (B, L, token_dim)
    and ``spatial_pred`` (B, L, A; empty without spatial reconstruction).
    """

    tokens: dict
    keep: dict
    masks: dict
    latent: dict
    signal_pred: dict
    spatial_pred: dict


def node_presence(model: SparModel, tokens: dict, m: str) -> torch.Tensor:
    """Return (B, N) bool, True where node slot n of modality ``m`` has data."""
    present = tokens[m]["present"]
    return present.view(present.shape[0], model.shape.n_nodes, -1)[:, :, 0]


def masked_pass(model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None, mask_fn=None) -> MaskedPass:
    """Tokenise, mask, encode and decode a batch.

    With ``mask_fn=None`` the masks come from ``model.choose_mask`` and the
    random draws happen in the same order as in ``SparModel.forward``, so
    both see the same masks for the same generator state. Otherwise
    ``mask_fn(m, tokens_m)`` returns ``(keep_idx, mask)`` for modality ``m``.
    """
    tokens = model.prepare(batch, augment=model.training, generator=generator)
    batch_size = batch["node_id"].shape[0]
    device = batch["node_id"].device

    # masks per modality
    keep, masks = {}, {}
    for m in model.modalities:
        if mask_fn is None:
            keep[m], masks[m] = model.choose_mask(batch_size, m, mask_ratio, generator, device, node_presence(model, tokens, m))
        else:
            keep[m], masks[m] = mask_fn(m, tokens[m])

    # encode the visible tokens, then decode every token
    latent = model.forward_encoder(tokens, keep)
    signal_pred, spatial_pred = model.forward_decoders(tokens, latent, keep)
    return MaskedPass(tokens, keep, masks, latent, signal_pred, spatial_pred)


def normalized_targets(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalise each token to zero mean and unit variance over its features, like ``norm_pix_loss`` in the CAV-MAE code.

    Uses the unbiased variance and ``sqrt(var + eps)`` as the scale. Shapes:
    (B, L, F) in and out; F must be at least 2.
    """
    if x.shape[-1] < 2:
        raise ValueError(f"normalised targets need at least 2 features per token; got {x.shape[-1]}")
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def reconstruction_losses(model: SparModel, result: MaskedPass, normalize_targets: bool = False) -> dict:
    """Return the backbone's masked reconstruction terms, optionally against normalised signal targets."""
    tokens = result.tokens
    if normalize_targets:
        tokens = {m: {**t, "x": normalized_targets(t["x"].float())} for m, t in tokens.items()}
    return model.forward_loss(tokens, result.masks, result.signal_pred, result.spatial_pred)


# --- AudioMAE -------------------------------------------------------------------------


@register("audiomae")
class AudioMAE(Objective):
    """AudioMAE: masked spectrogram-patch reconstruction per modality.

    Random masking at the pipeline's mask ratio (``model.choose_mask``), and
    MSE between decoded and true patches on hidden, present tokens. With
    ``normalize_targets`` false this is exactly ``SparModel.forward``.

    Settings and defaults:
        normalize_targets (False): reconstruct each patch normalised to zero
            mean and unit variance (see :func:`normalized_targets`). Off by
            default, our choice, so the decoder reconstructs the spectrogram itself.
    """

    DEFAULTS = {"normalize_targets": False}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.settings = resolve_settings(self.name, self.DEFAULTS, settings)

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        result = masked_pass(model, batch, mask_ratio, generator)
        return reconstruction_losses(model, result, bool(self.settings["normalize_targets"]))


# --- CAV-MAE --------------------------------------------------------------------------


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Compute the symmetric InfoNCE loss between paired embeddings.

    Row i of ``a`` and row i of ``b`` form the positive pair, and every other
    row of the other tensor is a negative. Embeddings are L2-normalised, the
    logits are cosine similarities divided by ``temperature``, and the loss
    is the mean of the a-to-b and b-to-a cross entropies.

    Args:
        a, b: (S, P) embeddings of S samples.
        temperature: > 0.

    Returns:
        scalar loss; 0 when S < 2, because then there is no negative.
    """
    if a.shape != b.shape:
        raise ValueError(f"paired embeddings need equal shapes; got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        return a.new_zeros((), dtype=torch.float32)
    logits = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def unimodal_pooled_embeddings(model: SparModel, tokens: dict, keep: dict) -> dict:
    """Encode each modality's visible tokens on its own and average them.

    For modality m, every token of the other modalities is marked absent, so
    the joint encoder lets m's tokens attend only to each other. This gives
    the modality-specific streams through the shared layers that CAV-MAE
    contrasts, instead of embeddings that have already mixed modalities.

    Returns:
        modality -> (B, D) mean of the valid visible tokens, plus
        ``"_present"``: modality -> (B,) bool.
    """
    pooled, present = {}, {}
    for m in model.modalities:
        isolated = {k: t if k == m else {**t, "present": torch.zeros_like(t["present"])} for k, t in tokens.items()}
        out = pooled_modality_embeddings(model, isolated, keep)
        pooled[m] = out[m]
        present[m] = out["_present"][m]
    pooled["_present"] = present
    return pooled


@register("cav_mae")
class CAVMAE(Objective):
    """CAV-MAE: AudioMAE's reconstruction plus a contrastive term between modalities.

    For every pair of modalities, the visible tokens of each modality are
    encoded without the other modalities, mean-pooled, passed through a
    per-modality projection head and contrasted with symmetric InfoNCE across
    the samples that have both modalities. The loss is
    ``reconstruction + contrastive_weight * mean over pairs of InfoNCE``. With
    ``contrastive_weight`` 0 the contrastive branch is skipped and the loss
    equals AudioMAE's. A one-modality dataset has no pair: the term is 0 and
    a warning is logged when the objective is built.

    Settings and defaults:
        contrastive_weight (0.01): the ``contrast_loss_weight`` default of the
            CAV-MAE code (Gong et al., 2023, github.com/yuangongnd/cav-mae,
            ``src/models/cav_mae.py``).
        temperature (0.05): the value hard-coded in that code's contrastive loss.
        projection_dim (None): output size of the projection heads; None uses
            the model width. The heads (linear, GELU, linear) are our choice;
            CAV-MAE contrasts the pooled embeddings directly.
        normalize_targets (False): as for AudioMAE; our choice.

    The CAV-MAE code defaults to the one-directional InfoNCE and offers the
    symmetric one as an option; we use the symmetric one.
    """

    DEFAULTS = {"contrastive_weight": 0.01, "temperature": 0.05, "projection_dim": None, "normalize_targets": False}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.settings = resolve_settings(self.name, self.DEFAULTS, settings)
        if float(self.settings["contrastive_weight"]) < 0:
            raise ValueError(f"contrastive_weight must be >= 0; got {self.settings['contrastive_weight']}")
        if float(self.settings["temperature"]) <= 0:
            raise ValueError(f"temperature must be > 0; got {self.settings['temperature']}")

        # one projection head per modality
        width = model.cfg.dim
        projection_dim = int(self.settings["projection_dim"] or width)
        self.projectors = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, projection_dim)) for m in model.modalities}
        )
        self.pairs = [(a, b) for i, a in enumerate(model.modalities) for b in model.modalities[i + 1 :]]
        if not self.pairs:
            log.warning(
                "cav_mae: the model has one modality (%s), so the contrastive term is 0 and cav_mae trains as audiomae",
                model.modalities,
            )

    def contrastive_loss(self, model: SparModel, result: MaskedPass) -> torch.Tensor:
        """Return the mean over modality pairs of symmetric InfoNCE between projected unimodal embeddings."""
        device = result.tokens[model.modalities[0]]["x"].device
        if not self.pairs:
            return torch.zeros((), device=device)
        pooled = unimodal_pooled_embeddings(model, result.tokens, result.keep)
        present = pooled.pop("_present")
        projected = {m: self.projectors[m](z) for m, z in pooled.items()}

        # InfoNCE over the samples that have both modalities of a pair
        terms = []
        for a, b in self.pairs:
            both = present[a] & present[b]
            terms.append(symmetric_info_nce(projected[a][both], projected[b][both], float(self.settings["temperature"])))
        return torch.stack(terms).mean()

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        result = masked_pass(model, batch, mask_ratio, generator)
        losses = reconstruction_losses(model, result, bool(self.settings["normalize_targets"]))
        weight = float(self.settings["contrastive_weight"])
        if weight == 0.0:
            losses["contrastive"] = torch.zeros_like(losses["loss"])
            return losses
        losses["contrastive"] = self.contrastive_loss(model, result)
        losses["loss"] = losses["loss"] + weight * losses["contrastive"]
        return losses


# --- FreqMAE --------------------------------------------------------------------------


def band_index(shape: ModalityShape, n_nodes: int) -> torch.Tensor:
    """Return the frequency band (patch row, 0 = lowest frequencies) of each token, shape (n_nodes * m,).

    Inside a node, ``patchify`` orders patches band by band, each band over
    time, so patch p lies in band ``p // n_time_patches``.
    """
    n_bands, n_frames = shape.grid
    per_node = torch.arange(n_bands).repeat_interleave(n_frames)
    return per_node.repeat(n_nodes)


def band_weights(token_energy: torch.Tensor, present: torch.Tensor, bands: torch.Tensor, n_bands: int, sharpness: float) -> torch.Tensor:
    """Weight each frequency band by its mean energy in the batch, with mean weight 1.

    With ``e_b`` the mean token energy (mean standardised log power) of
    band b over the batch's present tokens, the weights are
    ``n_bands * softmax(sharpness * e)``. When ``sharpness`` equals the
    store's log-power standard deviation, the weights are ``n_bands`` times
    each band's share of the bands' summed geometric-mean power. A band
    with no present token gets energy 0 (the dataset mean).

    Args:
        token_energy: (B, L) energy per token.
        present: (B, L) bool.
        bands: (L,) band index per token.
        n_bands: number of bands.
        sharpness: >= 0; 0 gives every band weight 1.

    Returns:
        (n_bands,) weights with mean 1.
    """
    weight = present.to(token_energy.dtype)
    index = bands.to(token_energy.device)
    total = torch.zeros(n_bands, dtype=token_energy.dtype, device=token_energy.device).index_add(0, index, (token_energy * weight).sum(dim=0))
    count = torch.zeros(n_bands, dtype=token_energy.dtype, device=token_energy.device).index_add(0, index, weight.sum(dim=0))
    mean_energy = total / count.clamp(min=1.0)
    return n_bands * torch.softmax(sharpness * mean_energy, dim=0)


def sample_weights(sample_energy: torch.Tensor, valid: torch.Tensor, sharpness: float, min_weight: float, max_weight: float) -> torch.Tensor:
    """Weight samples by their energy relative to the batch median, clipped, with mean weight 1 over valid samples.

    A sample's raw weight is ``exp(sharpness * (s - median(s)))``, clipped to
    ``[min_weight, max_weight]``, where s is the sample's mean standardised
    log power and the median runs over valid samples. Because s is a log
    power, the raw weight is a power ratio to the median sample: louder
    samples, taken as the ones with higher SNR, count more. Invalid samples
    get weight 0.

    Args:
        sample_energy: (B,) float.
        valid: (B,) bool, False for samples without a present token.

    Returns:
        (B,) weights; the valid ones have mean 1.
    """
    if not bool(valid.any()):
        return torch.zeros_like(sample_energy)
    median = torch.quantile(sample_energy[valid], 0.5)
    raw = torch.exp(sharpness * (sample_energy - median)).clamp(min=min_weight, max=max_weight)
    raw = raw * valid.to(raw.dtype)
    return raw * valid.sum().to(raw.dtype) / raw.sum()


def weighted_masked_mse(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor, token_weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared error over the hidden tokens.

    The loss is ``sum(h * w * e) / sum(h)``, where e is the squared error
    averaged over a token's features, h marks hidden tokens and w is the
    token weight. With every weight 1 it equals the backbone's masked MSE.

    Args:
        pred, target: (B, L, F).
        hidden: (B, L) bool, True where the token is hidden and present.
        token_weight: (B, L) float.

    Returns:
        scalar loss.
    """
    per_token = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    hidden = hidden.to(per_token.dtype)
    return (per_token * token_weight.to(per_token.dtype) * hidden).sum() / hidden.sum().clamp(min=1.0)


@register("freqmae")
class FreqMAE(Objective):
    """FreqMAE: masked reconstruction with the error weighted by frequency band and by sample SNR.

    FreqMAE (Kara et al., WWW 2024) weights its loss hierarchically, to
    emphasise important frequency components and high-SNR samples. Its
    Temporal-Shifting Transformer and factorised fusion are not reproduced:
    this baseline runs on the shared backbone. The weights below are our
    reading of that loss, computed per modality from the batch's targets
    (no gradient flows through them):

    * band weight: ``n_bands * softmax(band_sharpness * e_b)``, where ``e_b``
      is band b's mean standardised log power over the batch's present
      tokens (see :func:`band_weights`);
    * sample weight: ``exp(sample_sharpness * (s_i - median s))`` clipped to
      ``[min_sample_weight, max_sample_weight]``, where ``s_i`` is the
      sample's mean standardised log power, taken as its SNR proxy (see
      :func:`sample_weights`).

    Both sets of weights have mean 1, and a token's weight is the product
    of its band's weight and its sample's weight.

    Settings and defaults (all our choice):
        band_sharpness (1.0), sample_sharpness (1.0),
        min_sample_weight (0.5), max_sample_weight (2.0).
    """

    DEFAULTS = {"band_sharpness": 1.0, "sample_sharpness": 1.0, "min_sample_weight": 0.5, "max_sample_weight": 2.0}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.settings = resolve_settings(self.name, self.DEFAULTS, settings)
        for key in ("band_sharpness", "sample_sharpness"):
            if float(self.settings[key]) < 0:
                raise ValueError(f"{key} must be >= 0; got {self.settings[key]}")
        low, high = float(self.settings["min_sample_weight"]), float(self.settings["max_sample_weight"])
        if not 0 < low <= high:
            raise ValueError(f"need 0 < min_sample_weight <= max_sample_weight; got {low} and {high}")
        for m in model.modalities:
            self.register_buffer(f"bands_{m}", band_index(model.shape.modalities[m], model.shape.n_nodes), persistent=False)

    def token_weights(self, model: SparModel, m: str, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Return the (B, L) product of band and sample weights for modality ``m``'s tokens ``x`` (B, L, F)."""
        with torch.no_grad():
            energy = x.detach().float().mean(dim=-1)
            bands = getattr(self, f"bands_{m}")
            n_bands = model.shape.modalities[m].grid[0]
            per_band = band_weights(energy, present, bands, n_bands, float(self.settings["band_sharpness"]))

            # sample energy: mean over the sample's present tokens
            weight = present.to(energy.dtype)
            count = weight.sum(dim=1)
            sample_energy = (energy * weight).sum(dim=1) / count.clamp(min=1.0)
            per_sample = sample_weights(
                sample_energy, count > 0, float(self.settings["sample_sharpness"]),
                float(self.settings["min_sample_weight"]), float(self.settings["max_sample_weight"]),
            )
            return per_sample[:, None] * per_band[bands.to(x.device)][None, :]

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        result = masked_pass(model, batch, mask_ratio, generator)
        losses = model.forward_loss(result.tokens, result.masks, result.signal_pred, result.spatial_pred)

        # replace the plain signal terms with the weighted ones
        for m in model.modalities:
            t = result.tokens[m]
            weight = self.token_weights(model, m, t["x"], t["present"])
            losses[f"signal_{m}"] = weighted_masked_mse(result.signal_pred[m], t["x"], result.masks[m] & t["present"], weight)
        losses["loss"] = sum(v for k, v in losses.items() if k != "loss")
        return losses


# --- PhyMask --------------------------------------------------------------------------


@register("phymask")
class PhyMask(Objective):
    """PhyMask: masking that prefers high-energy, cross-node coherent time-frequency patches.

    PhyMask (SenSys 2024) replaces random masking with masking
    guided by the energy of frequency components and by coherence. Our
    reading on the shared backbone gives each token the score
    ``energy_weight * z(energy) + coherence_weight * z(coherence)``. Here
    energy is the token's mean standardised log power, and coherence is its
    mean correlation with the same patch on the other present nodes. z
    standardises each term within the sample. Exactly ``round(mask_ratio * L)`` tokens
    are hidden, drawn without replacement with probability proportional to
    ``exp(score / temperature)`` (Gumbel-top-k); see
    :func:`spar.models.masking.energy_coherence_mask`. The model's own
    ``masking`` switch is not used. The loss is the backbone's masked MSE.

    Settings and defaults (all our choice):
        energy_weight (1.0), coherence_weight (0.5), temperature (1.0).
    """

    DEFAULTS = {"energy_weight": 1.0, "coherence_weight": 0.5, "temperature": 1.0}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.settings = resolve_settings(self.name, self.DEFAULTS, settings)
        if float(self.settings["temperature"]) <= 0:
            raise ValueError(f"temperature must be > 0; got {self.settings['temperature']}")

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        def mask_fn(m: str, t: dict):
            return energy_coherence_mask(
                t["x"], t["present"], model.shape.n_nodes, mask_ratio,
                float(self.settings["energy_weight"]), float(self.settings["coherence_weight"]),
                float(self.settings["temperature"]), generator,
            )

        result = masked_pass(model, batch, mask_ratio, generator, mask_fn)
        return model.forward_loss(result.tokens, result.masks, result.signal_pred, result.spatial_pred)
