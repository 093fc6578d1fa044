"""Contrastive pretraining baselines on the shared backbone: SimCLR, CMC, Cosmo and FOCAL.

Each objective adds only pretraining heads (projection MLPs, Cosmo's
attention fusion) to the shared :class:`~spar.models.spar.SparModel`. The
encoder that the task heads use afterwards is the backbone alone.

Views and embeddings:
    * Augmented views come from :func:`spar.models.objectives.augment.augment_batch`.
    * The fused embedding of a sample (SimCLR) is the mean over its present
      modalities of :func:`pooled_modality_embeddings`, which encodes all
      modalities together through the joint encoder.
    * A modality's own embedding (CMC, Cosmo, FOCAL) is encoded with the other
      modalities hidden from the joint encoder (``isolate_modalities``, on by
      default, see :func:`isolated_modality_embeddings`). Without that, the
      joint encoder lets every modality's tokens attend to the others, so two
      modality views could match by sharing the fused content, and a
      cross-modal contrast would no longer compare separate views.

NOTE: ``SparModel.encode`` always runs the joint encoder over all modalities
together. After CMC, Cosmo or FOCAL pretraining with isolated modalities, the
task heads therefore get embeddings from cross-modal attention that
pretraining never trained.

Every objective here needs no token mask, so ``mask_ratio`` is ignored.

Loss functions (exported for tests and reuse): :func:`nt_xent`,
:func:`info_nce`, :func:`orthogonality_loss`, :func:`temporal_ranking_loss`.
They compute in float32 with autocast disabled, because bfloat16 keeps only
about three significant digits, too few for similarities divided by a
temperature of 0.07.
"""

from __future__ import annotations

import logging
import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from spar.models.objectives.augment import AugmentSettings, augment_batch
from spar.models.objectives.base import Objective, pooled_modality_embeddings, register
from spar.models.spar import SparModel

log = logging.getLogger(__name__)


# --- loss functions -----------------------------------------------------------------


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature is {temperature}; set a positive temperature such as 0.1")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Compute SimCLR's normalized temperature-scaled cross entropy (NT-Xent) over 2B views.

    Row i of ``z1`` and row i of ``z2`` are the two views of sample i. Each of
    the 2B views is classified against the other 2B - 1 views by cosine
    similarity divided by ``temperature``, with its other view as the target.
    With B = 1 the only candidate is the positive, so the loss is 0.

    Args:
        z1, z2: (B, P) projections; they are L2-normalised here.
        temperature: positive softmax temperature.

    Returns:
        scalar mean cross entropy over the 2B views, in nats.
    """
    _check_temperature(temperature)
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] == 0:
        raise ValueError(f"nt_xent needs two (B, P) tensors of the same shape with B >= 1; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    batch = z1.shape[0]
    with torch.autocast(device_type=z1.device.type, enabled=False):
        # cosine similarity of all 2B views, without self-pairs
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.T / temperature
        self_pair = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_pair, float("-inf"))

        # the target of view i is the other view of its sample
        index = torch.arange(batch, device=z.device)
        target = torch.cat([index + batch, index])
        return F.cross_entropy(logits, target)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Compute the symmetric InfoNCE loss between two aligned batches.

    Row i of ``a`` and row i of ``b`` are a positive pair, and the other rows
    of the opposite batch are its negatives. The loss is the mean of the
    cross entropy a -> b (each row of ``a`` classifies the rows of ``b``) and
    b -> a, with cosine similarity divided by ``temperature`` as logits.

    Args:
        a, b: (B, P) embeddings; they are L2-normalised here.
        temperature: positive softmax temperature.

    Returns:
        scalar loss in nats; log(B) for embeddings that carry no information.
    """
    _check_temperature(temperature)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"info_nce needs two (B, P) tensors of the same shape with B >= 1; got {tuple(a.shape)} and {tuple(b.shape)}")
    with torch.autocast(device_type=a.device.type, enabled=False):
        logits = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T / temperature
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def orthogonality_loss(shared: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
    """Compute the mean squared cosine similarity between the rows of two (B, P) tensors.

    Row i of ``shared`` is compared with row i of ``private`` only (the same
    sample), so the loss is 0 exactly when every pair is orthogonal and
    positive otherwise, whatever the sign of the cosine. A zero row counts as
    orthogonal to everything.

    Returns:
        scalar in [0, 1].
    """
    if shared.shape != private.shape or shared.ndim != 2:
        raise ValueError(f"orthogonality_loss needs two (B, P) tensors of the same shape; got {tuple(shared.shape)} and {tuple(private.shape)}")
    with torch.autocast(device_type=shared.device.type, enabled=False):
        cosine = (F.normalize(shared.float(), dim=1) * F.normalize(private.float(), dim=1)).sum(dim=1)
        return (cosine**2).mean()


def temporal_ranking_loss(embeddings: torch.Tensor, time_s: torch.Tensor, group_index: torch.Tensor,
                          margin: float) -> torch.Tensor | None:
    """Rank embedding distances by time gaps within each group, with a hinge (margin ranking) loss.

    For each anchor window a, its nearest windows in time within the same
    group are its neighbours (several when tied), and d_near(a) is the mean
    Euclidean distance to them. Every window f of the group that is strictly
    farther in time than the neighbours gives the term
    max(0, d_near(a) - d(a, f) + margin). Windows of other groups are never
    compared.

    Args:
        embeddings: (B, P) features; distances are taken as given.
        time_s: (B,) window start times in seconds.
        group_index: (B,) int group (scene, subject or event) of each window.
        margin: how much farther, in embedding distance, a distant window
            must be than the neighbours before the term is 0.

    Returns:
        scalar mean over all (anchor, distant window) triplets, or None when
        the batch has no such triplet (no group with three windows at two
        different time gaps from some anchor).
    """
    batch = embeddings.shape[0]
    if time_s.shape != (batch,) or group_index.shape != (batch,):
        raise ValueError(f"time_s and group_index must be ({batch},) for {batch} embeddings; got {tuple(time_s.shape)} and {tuple(group_index.shape)}")
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        # pairwise distances, with an epsilon that keeps the gradient finite at distance 0
        x = embeddings.float()
        distance = torch.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(dim=-1) + 1e-12)

        # time gaps between different windows of the same group
        time_s = time_s.to(device=x.device, dtype=torch.float64)
        gap = (time_s[:, None] - time_s[None, :]).abs()
        same_group = (group_index[:, None] == group_index[None, :]).to(x.device)
        same_group &= ~torch.eye(batch, dtype=torch.bool, device=x.device)
        gap = gap.masked_fill(~same_group, float("inf"))

        # neighbours are at the anchor's smallest gap, distant windows at any larger gap
        nearest_gap = gap.min(dim=1, keepdim=True).values
        neighbour = same_group & (gap == nearest_gap)
        distant = same_group & (gap > nearest_gap)
        if not bool(distant.any()):
            return None
        near_distance = (distance * neighbour).sum(dim=1) / neighbour.sum(dim=1).clamp(min=1)

        # hinge on every (anchor, distant window) triplet
        hinge = F.relu(near_distance[:, None] - distance + margin)
        return hinge[distant].mean()


# --- helpers ------------------------------------------------------------------------


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Build a 2-layer MLP projection head (Linear, ReLU, Linear), as SimCLR's g(.)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def isolated_modality_embeddings(model: SparModel, tokens: dict) -> dict:
    """Encode each modality with the other modalities hidden from the joint encoder, then pool it.

    For modality m, the other modalities pass one token each, marked absent,
    and the joint encoder's attention ignores absent keys, so only m's tokens
    reach m's embedding. In all, that costs about one pass of the
    per-modality encoders and one shorter joint encoder pass per modality.
    A sample without modality m gets a zero embedding, marked absent.

    Args:
        model: the shared backbone.
        tokens: output of ``model.prepare``.

    Returns:
        the format of :func:`pooled_modality_embeddings`: modality -> (B, D)
        mean of its valid tokens, and ``"_present"``: modality -> (B,) bool.
    """
    pooled, present = {}, {}
    for m in model.modalities:
        visible, keep = {}, {}
        for n in model.modalities:
            batch, length = tokens[n]["present"].shape
            device = tokens[n]["present"].device
            if n == m:
                visible[n] = tokens[n]
                keep[n] = torch.arange(length, device=device).expand(batch, length)
            else:
                visible[n] = dict(tokens[n], present=torch.zeros_like(tokens[n]["present"]))
                keep[n] = torch.zeros(batch, 1, dtype=torch.long, device=device)
        out = pooled_modality_embeddings(model, visible, keep)
        pooled[m] = out[m]
        present[m] = out["_present"][m]
    pooled["_present"] = present
    return pooled


def _zero_loss(reference: torch.Tensor) -> torch.Tensor:
    """Return a float32 zero connected to ``reference``'s graph, so ``backward()`` still works."""
    return reference.float().sum() * 0.0


def _mean(values: list[torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    return torch.stack(values).mean() if values else _zero_loss(reference)


def pairwise_info_nce(embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor],
                      temperature: float) -> dict[tuple[str, str], torch.Tensor]:
    """Compute :func:`info_nce` between every pair of modalities over the samples that have both.

    A pair with fewer than two such samples has no negative and is left out
    (logged at debug level).

    Args:
        embeddings: modality -> (B, P).
        present: modality -> (B,) bool.

    Returns:
        (modality, modality) -> scalar loss, for the pairs that were computed.
    """
    losses = {}
    for m, n in combinations(sorted(embeddings), 2):
        rows = present[m] & present[n]
        if int(rows.sum()) < 2:
            log.debug("contrast %s-%s skipped: %d sample(s) have both modalities, at least 2 are needed", m, n, int(rows.sum()))
            continue
        losses[(m, n)] = info_nce(embeddings[m][rows], embeddings[n][rows], temperature)
    return losses


def _require_modalities(model: SparModel, name: str) -> None:
    """Raise ValueError for a model with fewer than two modalities."""
    if len(model.modalities) < 2:
        raise ValueError(
            f"objective {name!r} contrasts modalities with each other and needs at least two modalities; "
            f"the model has {model.modalities}. Use 'simclr' (views of the same sample) for a one-modality dataset."
        )


# --- objectives ---------------------------------------------------------------------


class ContrastiveObjective(Objective):
    """Settings handling, augmentation and view encoding shared by the contrastive objectives.

    Subclasses list every setting with its default in ``DEFAULTS``.
    ``settings`` overrides them, and its ``augment`` entry overrides the
    fields of :class:`AugmentSettings`. An unknown name raises ValueError.
    ``self.settings`` is the merged dict, with every ``augment`` field filled in.
    """

    uses_mask_ratio = False

    DEFAULTS: dict = {}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.settings = self.resolve_settings(settings)
        self.augment = AugmentSettings.from_dict(self.settings["augment"])
        self.settings["augment"] = self.augment.to_dict()
        self.temperature = float(self.settings["temperature"])
        _check_temperature(self.temperature)
        hidden_dim = self.settings["hidden_dim"]
        self.hidden_dim = model.cfg.dim if hidden_dim is None else int(hidden_dim)
        self.projection_dim = int(self.settings["projection_dim"])
        if self.hidden_dim < 1 or self.projection_dim < 1:
            raise ValueError(f"{self.name}: hidden_dim {self.hidden_dim} and projection_dim {self.projection_dim} must be positive")

    @classmethod
    def resolve_settings(cls, settings: dict | None) -> dict:
        """Merge ``settings`` over ``DEFAULTS``, raising ValueError on an unknown name or a negative weight."""
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(cls.DEFAULTS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for objective {cls.name!r}; known: {sorted(cls.DEFAULTS)}")
        merged = {**cls.DEFAULTS, **settings}
        merged["augment"] = dict(merged["augment"] or {})
        for key, value in merged.items():
            if key.endswith("_weight") and float(value) < 0:
                raise ValueError(f"{cls.name}.{key} is {value}; set a weight >= 0")
        return merged

    def view(self, model: SparModel, batch: dict, generator: torch.Generator | None) -> dict:
        """Augment ``batch`` once and tokenise it: the output of ``model.prepare``."""
        augmented = augment_batch(batch, model.modalities, self.augment, generator)
        return model.prepare(augmented, augment=model.training, generator=generator)

    def modality_embeddings(self, model: SparModel, tokens: dict) -> dict:
        """Embed each modality of one view, isolated from the others unless ``isolate_modalities`` is off."""
        if self.settings.get("isolate_modalities", True):
            return isolated_modality_embeddings(model, tokens)
        return pooled_modality_embeddings(model, tokens)


@register("simclr")
class SimCLR(ContrastiveObjective):
    """SimCLR: NT-Xent between two augmented views of the same multi-node sample.

    Each view's fused embedding (the mean over the sample's present modalities
    of the pooled post-fusion embeddings, (B, D)) passes through a 2-layer
    projection MLP. Works with any number of modalities.

    Defaults and sources:
        temperature 0.5: SimCLR (Chen et al., ICML 2020) tunes it per dataset,
            with 0.1 on ImageNet at batches of 4096 and 0.5 on CIFAR-10. We
            take the smaller-batch value because our batches have 5 to 64 windows.
        projection_dim 128: SimCLR's projection output size.
        hidden_dim None (the model width D): SimCLR's hidden layer is as wide
            as the encoder output.
        augment: the :class:`AugmentSettings` defaults.

    Returns the losses ``{"contrastive", "loss"}``.
    """

    DEFAULTS = {"temperature": 0.5, "projection_dim": 128, "hidden_dim": None, "augment": {}}

    def __init__(self, model: SparModel, settings: dict):
        super().__init__(model, settings)
        self.projector = projection_head(model.cfg.dim, self.hidden_dim, self.projection_dim)

    def fused_embedding(self, model: SparModel, tokens: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean over present modalities of the pooled embeddings (B, D), and (B,) bool: any modality present."""
        pooled = pooled_modality_embeddings(model, tokens)
        stacked = torch.stack([pooled[m] for m in model.modalities])
        weight = torch.stack([pooled["_present"][m] for m in model.modalities]).to(stacked.dtype)
        count = weight.sum(dim=0)
        fused = (stacked * weight[..., None]).sum(dim=0) / count.clamp(min=1.0)[:, None]
        return fused, count > 0

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        # two augmented views of every sample
        fused1, present1 = self.fused_embedding(model, self.view(model, batch, generator))
        fused2, present2 = self.fused_embedding(model, self.view(model, batch, generator))

        # samples with data in both views
        rows = present1 & present2
        if int(rows.sum()) == 0:
            log.debug("simclr: no sample has data in both views, so the loss is 0")
            loss = _zero_loss(fused1)
        else:
            loss = nt_xent(self.projector(fused1[rows]), self.projector(fused2[rows]), self.temperature)
        return {"contrastive": loss, "loss": loss}


@register("cmc")
class CMC(ContrastiveObjective):
    """CMC: each modality is a view, with symmetric InfoNCE between every pair of modalities.

    Each modality's pooled embedding (B, D) passes through its own 2-layer
    projection head. The loss is the mean over modality pairs (the "full
    graph" of CMC) of :func:`info_nce` on the samples that have both
    modalities. One augmented copy of the batch is encoded. A one-modality
    model raises ValueError at construction; there is no fallback, so a
    table row labelled CMC is always CMC.

    Defaults and sources:
        temperature 0.07: CMC (Tian, Krishnan and Isola, ECCV 2020) and the
            CMC baseline in Cosmo's public code (github.com/xmouyang/Cosmo).
        projection_dim 128: CMC's embedding size.
        hidden_dim None (the model width D): our choice, as for SimCLR.
        isolate_modalities True: our choice (see the module docstring).
        augment: the :class:`AugmentSettings` defaults.

    Returns one loss ``"cmc_{m}_{n}"`` per computed pair, and ``"loss"``.
    """

    DEFAULTS = {"temperature": 0.07, "projection_dim": 128, "hidden_dim": None, "isolate_modalities": True, "augment": {}}

    def __init__(self, model: SparModel, settings: dict):
        _require_modalities(model, "cmc")
        super().__init__(model, settings)
        self.projectors = nn.ModuleDict({m: projection_head(model.cfg.dim, self.hidden_dim, self.projection_dim) for m in model.modalities})

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        # one augmented view, embedded per modality
        pooled = self.modality_embeddings(model, self.view(model, batch, generator))
        projected = {m: self.projectors[m](pooled[m]) for m in model.modalities}

        # mean over modality pairs
        pairs = pairwise_info_nce(projected, pooled["_present"], self.temperature)
        losses = {f"cmc_{m}_{n}": value for (m, n), value in pairs.items()}
        losses["loss"] = _mean(list(pairs.values()), projected[model.modalities[0]])
        return losses


class AttentionFusion(nn.Module):
    """Fuse modality embeddings by one learned query attending over them (single-head attention).

    The query is a learned (P,) vector, and keys and values are linear maps
    of the modality embeddings. Absent modalities get no weight.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.query, std=0.02)

    def forward(self, embeddings: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse ``embeddings`` (B, M, P) with ``present`` (B, M) bool.

        Returns:
            fused (B, P), and attention weights (B, M) that sum to 1 over the
            present modalities (all 0 for a sample with none).
        """
        scores = self.key(embeddings) @ self.query / math.sqrt(embeddings.shape[-1])
        scores = scores.masked_fill(~present, float("-inf"))
        any_present = present.any(dim=1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~any_present, 0.0), dim=1) * any_present
        fused = (weights[..., None] * self.value(embeddings)).sum(dim=1)
        return fused, weights


@register("cosmo")
class Cosmo(ContrastiveObjective):
    """Cosmo, as we read it: CMC-style modality alignment plus contrast of an attention-fused embedding.

    Each modality's pooled embedding passes through its own projection head
    (z_m, (B, P)). The alignment term is the mean :func:`info_nce` over
    modality pairs, as in :class:`CMC`. An :class:`AttentionFusion` module
    fuses the present z_m of a sample into f (B, P), and the fusion term is
    the mean over modalities of :func:`info_nce` between f and z_m on the
    samples that have modality m. A one-modality model raises ValueError.

    Our reading: Cosmo (Ouyang et al., MobiCom 2022) pretrains with a
    fusion-based contrastive loss and trains its quality-guided attention
    fusion later, with the classifier on labelled data. Its public code
    (github.com/xmouyang/Cosmo) forms fused features as fixed convex
    combinations of two modality features (weights 0.1 to 0.9) and treats
    them as positives of one another. We instead train a learned
    attention fusion during pretraining and contrast it with each modality.
    That also covers three modalities, where fixed two-way weights do not apply.

    Defaults and sources:
        temperature 0.07: Cosmo's public code.
        projection_dim 128: Cosmo's public code (2-layer heads, 128 outputs).
        hidden_dim None (the model width D): as CMC.
        alignment_weight 1.0, fusion_weight 1.0: our choice.
        isolate_modalities True: our choice (see the module docstring).
        augment: the :class:`AugmentSettings` defaults.

    Returns the losses ``{"alignment", "fusion", "loss"}``.
    """

    DEFAULTS = {
        "temperature": 0.07, "projection_dim": 128, "hidden_dim": None, "isolate_modalities": True,
        "alignment_weight": 1.0, "fusion_weight": 1.0, "augment": {},
    }

    def __init__(self, model: SparModel, settings: dict):
        _require_modalities(model, "cosmo")
        super().__init__(model, settings)
        self.projectors = nn.ModuleDict({m: projection_head(model.cfg.dim, self.hidden_dim, self.projection_dim) for m in model.modalities})
        self.fusion = AttentionFusion(self.projection_dim)

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        # one augmented view, embedded and projected per modality
        pooled = self.modality_embeddings(model, self.view(model, batch, generator))
        present = pooled["_present"]
        projected = {m: self.projectors[m](pooled[m]) for m in model.modalities}
        reference = projected[model.modalities[0]]

        # alignment between modality pairs
        alignment = _mean(list(pairwise_info_nce(projected, present, self.temperature).values()), reference)

        # attention fusion, contrasted with each modality
        stacked = torch.stack([projected[m] for m in model.modalities], dim=1)
        fused, _ = self.fusion(stacked, torch.stack([present[m] for m in model.modalities], dim=1))
        fusion_terms = []
        for m in model.modalities:
            rows = present[m]
            if int(rows.sum()) < 2:
                log.debug("cosmo: fusion contrast with %s skipped, %d sample(s) have it", m, int(rows.sum()))
                continue
            fusion_terms.append(info_nce(fused[rows], projected[m][rows], self.temperature))
        fusion = _mean(fusion_terms, reference)

        loss = float(self.settings["alignment_weight"]) * alignment + float(self.settings["fusion_weight"]) * fusion
        return {"alignment": alignment, "fusion": fusion, "loss": loss}


@register("focal")
class FOCAL(ContrastiveObjective):
    """FOCAL: shared and private spaces per modality, an orthogonality constraint and temporal ranking.

    Two augmented views of the batch are encoded per modality. Each modality
    has a shared and a private projection head (s_m, p_m, each (B, P)). Terms:

    * shared: :func:`info_nce` between the shared parts of every pair of
      modalities, averaged over pairs and both views;
    * private: :func:`nt_xent` between the two views of each modality's
      private part, so private spaces carry information of their own;
    * orthogonality: :func:`orthogonality_loss` (mean squared cosine, per
      sample) between s_m and p_m, and between p_m and p_n of different
      modalities, averaged over all those pairs and both views;
    * temporal: :func:`temporal_ranking_loss` on each modality's
      [s_m/|s_m|, p_m/|p_m|]/sqrt(2) (unit length), averaged over modalities
      and views. It needs the batch keys ``time_s`` (B,) float seconds and
      ``group_index`` (B,) int. Without them, or without a triplet in the
      batch, the term is 0 for that batch and a debug message is logged.

    A one-modality model raises ValueError, because the shared space is
    defined by cross-modal contrast.

    What follows FOCAL (Liu et al., NeurIPS 2023) and its public code
    (github.com/tomoyoshki/focal): the four terms and their weights, the
    private-private orthogonality, and the temperature. Our reading:
    FOCAL's orthogonality loss is max(0, cos), which does not penalise
    negative cosines, and we use cos^2. FOCAL ranks mean distances within
    sequences of consecutive windows against distances between sequences,
    and we rank a window's nearest-in-time neighbours against every farther
    window of its group that happens to share the batch. We take distances
    between unit vectors, so the margin is ours.

    Defaults and sources:
        temperature 0.07: FOCAL's public configuration for its transformer
            backbone (0.5 for its DeepSense backbone).
        projection_dim 128 for each of the shared and private heads: our
            choice (FOCAL's configuration has emb_dim 256).
        hidden_dim None (the model width D): our choice.
        shared_weight 1, private_weight 1, orthogonality_weight 3,
            temporal_weight 5: FOCAL's public configuration.
        temporal_margin 0.1: our choice, on distances between unit vectors
            (at most 2); FOCAL's margin of 1 applies to unnormalised features.
        isolate_modalities True: our choice (see the module docstring).
        augment: the :class:`AugmentSettings` defaults.

    Returns the losses ``{"shared", "private", "orthogonality", "temporal", "loss"}``.
    """

    DEFAULTS = {
        "temperature": 0.07, "projection_dim": 128, "hidden_dim": None, "isolate_modalities": True,
        "shared_weight": 1.0, "private_weight": 1.0, "orthogonality_weight": 3.0, "temporal_weight": 5.0,
        "temporal_margin": 0.1, "augment": {},
    }

    def __init__(self, model: SparModel, settings: dict):
        _require_modalities(model, "focal")
        super().__init__(model, settings)
        d = model.cfg.dim
        self.shared_heads = nn.ModuleDict({m: projection_head(d, self.hidden_dim, self.projection_dim) for m in model.modalities})
        self.private_heads = nn.ModuleDict({m: projection_head(d, self.hidden_dim, self.projection_dim) for m in model.modalities})

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        modalities = model.modalities

        # two augmented views, split into shared and private parts per modality
        views = []
        for _ in range(2):
            pooled = self.modality_embeddings(model, self.view(model, batch, generator))
            views.append({
                "shared": {m: self.shared_heads[m](pooled[m]) for m in modalities},
                "private": {m: self.private_heads[m](pooled[m]) for m in modalities},
                "present": pooled["_present"],
            })
        reference = views[0]["shared"][modalities[0]]

        # shared: cross-modal contrast within each view
        shared_terms = []
        for v in views:
            shared_terms.extend(pairwise_info_nce(v["shared"], v["present"], self.temperature).values())
        shared = _mean(shared_terms, reference)

        # private: contrast of the two views of each modality
        private_terms = []
        for m in modalities:
            rows = views[0]["present"][m] & views[1]["present"][m]
            if int(rows.sum()) >= 2:
                private_terms.append(nt_xent(views[0]["private"][m][rows], views[1]["private"][m][rows], self.temperature))
        private = _mean(private_terms, reference)

        # orthogonality: shared vs private of a modality, private vs private across modalities
        orthogonal_terms = []
        for v in views:
            for m in modalities:
                rows = v["present"][m]
                if bool(rows.any()):
                    orthogonal_terms.append(orthogonality_loss(v["shared"][m][rows], v["private"][m][rows]))
            for m, n in combinations(modalities, 2):
                rows = v["present"][m] & v["present"][n]
                if bool(rows.any()):
                    orthogonal_terms.append(orthogonality_loss(v["private"][m][rows], v["private"][n][rows]))
        orthogonality = _mean(orthogonal_terms, reference)

        temporal = self.temporal_term(views, batch, reference)

        s = self.settings
        loss = (float(s["shared_weight"]) * shared + float(s["private_weight"]) * private
                + float(s["orthogonality_weight"]) * orthogonality + float(s["temporal_weight"]) * temporal)
        return {"shared": shared, "private": private, "orthogonality": orthogonality, "temporal": temporal, "loss": loss}

    def temporal_term(self, views: list[dict], batch: dict, reference: torch.Tensor) -> torch.Tensor:
        """Average :func:`temporal_ranking_loss` over modalities and views; 0 when the batch has no triplet."""
        if "time_s" not in batch or "group_index" not in batch:
            log.debug("focal: temporal term skipped, the batch has no time_s or group_index")
            return _zero_loss(reference)
        terms = []
        for v in views:
            for m, rows in v["present"].items():
                unit = torch.cat([F.normalize(v["shared"][m], dim=1), F.normalize(v["private"][m], dim=1)], dim=1) / math.sqrt(2.0)
                term = temporal_ranking_loss(unit[rows], batch["time_s"][rows], batch["group_index"][rows], float(self.settings["temporal_margin"]))
                if term is not None:
                    terms.append(term)
        if not terms:
            log.debug("focal: temporal term skipped, no group in the batch has windows at two different time gaps")
        return _mean(terms, reference)
