"""Pretraining methods by name: a table row is ``method=<name>`` in params.yaml.

Every method shares the backbone of :class:`spar.models.spar.SparModel`. A
method fixes some of its switches. Ablations of SPAR set the same switches
from the ``model:`` section of params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str
    description: str
    overrides: dict = field(default_factory=dict)  # ModelConfig fields that the method fixes
    pretrain_overrides: dict = field(default_factory=dict)  # pretrain settings that the method fixes


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
        overrides={
            "spatial_embedding": False,
            "structural_embedding": False,
            "spatial_reconstruction": False,
            "geometric_augmentation": False,
            "node_slot_embedding": True,
        },
    ),
    "spar_untrained": MethodSpec(
        name="spar_untrained",
        family="control",
        description="SPAR's architecture with random weights (no pretraining): shows what pretraining adds",
        pretrain_overrides={"epochs": 0},
    ),
}


def model_config_for(method: str, model_params: dict):
    """Build the ModelConfig of ``method`` from the ``model:`` section of params.yaml."""
    from spar.models.spar import ModelConfig

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; registered methods: {sorted(METHODS)}")
    merged = dict(model_params)
    merged.update(METHODS[method].overrides)
    return ModelConfig.from_dict(merged)
