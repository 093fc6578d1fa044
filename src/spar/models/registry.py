"""Pretraining methods by name: a table row is ``method=<name>`` in params.yaml.

Every method shares the backbone of :class:`spar.models.spar.SparModel`. A
method fixes some of its switches. Ablations of SPAR set the same switches
from the ``model:`` section of params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field


DEFAULT_OBJECTIVE = "masked_reconstruction"  # the backbone's own loss: SPAR's, or the MAE's without its placement parts


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str
    description: str
    overrides: dict = field(default_factory=dict)  # ModelConfig fields that the method fixes
    pretrain_overrides: dict = field(default_factory=dict)  # pretrain settings that the method fixes
    objective: str = DEFAULT_OBJECTIVE  # registered name in spar.models.objectives


# The baselines see no placement: no spatial or structural embedding, no spatial decoder,
# no geometric augmentation. Each node slot gets a fixed sine-cosine embedding instead,
# as a sequence model gives its positions.
BASELINE_BACKBONE = {
    "spatial_embedding": False,
    "structural_embedding": False,
    "spatial_reconstruction": False,
    "geometric_augmentation": False,
    "node_slot_embedding": True,
}


def _baseline(name: str, family: str, description: str) -> MethodSpec:
    return MethodSpec(name=name, family=family, description=description, overrides=BASELINE_BACKBONE, objective=name)


METHODS: dict[str, MethodSpec] = {
    "spar": MethodSpec(
        name="spar",
        family="masked reconstruction",
        description="SPAR: spatial and structural embeddings, geometric augmentation, signal and spatial decoders",
    ),
    "mae": MethodSpec(
        name="mae",
        family="masked reconstruction",
        description="plain masked autoencoder: signal reconstruction only, node-slot positions instead of placement",
        overrides=BASELINE_BACKBONE,
    ),
    "spar_untrained": MethodSpec(
        name="spar_untrained",
        family="control",
        description="SPAR's architecture with random weights (no pretraining): shows what pretraining adds",
        pretrain_overrides={"epochs": 0},
    ),
    "simclr": _baseline("simclr", "contrastive", "two augmented views of each multi-node sample, NT-Xent on the fused embedding"),
    "cmc": _baseline("cmc", "contrastive", "one view per modality, pairwise InfoNCE between modalities"),
    "cosmo": _baseline("cosmo", "contrastive", "cross-modal contrast plus an attention fusion contrasted with every modality"),
    "focal": _baseline("focal", "contrastive",
                       "shared and private spaces per modality: cross-modal contrast, orthogonality, temporal constraint"),
    "audiomae": _baseline("audiomae", "masked reconstruction", "spectrogram-patch masked autoencoder per modality"),
    "cav_mae": _baseline("cav_mae", "masked reconstruction", "masked autoencoder plus cross-modal contrast of pooled embeddings"),
    "freqmae": _baseline("freqmae", "masked reconstruction",
                         "masked autoencoder with the loss weighted toward informative frequency bands and high-SNR samples"),
    "phymask": _baseline("phymask", "masked reconstruction", "masked autoencoder whose mask prefers high-energy, coherent patches"),
}


def model_config_for(method: str, model_params: dict):
    """Build the ModelConfig of ``method`` from the ``model:`` section of params.yaml."""
    from spar.models.spar import ModelConfig

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; registered methods: {sorted(METHODS)}")
    merged = dict(model_params)
    merged.update(METHODS[method].overrides)
    return ModelConfig.from_dict(merged)
