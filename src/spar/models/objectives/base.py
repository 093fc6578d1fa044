"""The objective interface, the objective registry and helpers shared by the objectives."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from spar.models.spar import SparModel

OBJECTIVES: dict[str, Callable[..., "Objective"]] = {}


def register(name: str):
    """Class decorator that registers an objective under ``name``."""

    def decorate(cls):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        OBJECTIVES[name] = cls
        cls.name = name
        return cls

    return decorate


class Objective(nn.Module):
    """A pretraining loss on the shared backbone, with the heads that only pretraining needs.

    Subclasses are built as ``cls(model, settings)``, where ``settings`` is the
    method's entry of ``objectives:`` in params.yaml (an empty dict when it
    has none), and implement :meth:`forward`.
    """

    name = "objective"
    # False for objectives that hide no tokens, so that a new mask ratio does not rerun them
    uses_mask_ratio = True

    def __init__(self, model: SparModel, settings: dict):
        super().__init__()
        self.settings = dict(settings)

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        """Return a dict of scalar loss tensors, with the total under ``"loss"``."""
        raise NotImplementedError


@register("masked_reconstruction")
class MaskedReconstruction(Objective):
    """SPAR's objective and its MAE relatives: the backbone's own masked signal (and spatial) reconstruction."""

    def forward(self, model: SparModel, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        return model(batch, mask_ratio, generator=generator)


def objective_class(name: str) -> type[Objective]:
    """Return the class registered as objective ``name``; raise ValueError for an unknown name."""
    if name not in OBJECTIVES:
        # the baselines' modules register their objectives when imported
        from spar.models.objectives import contrastive, reconstruction  # noqa: F401
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; registered objectives: {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def build_objective(name: str, model: SparModel, settings: dict | None = None) -> Objective:
    """Build the registered objective ``name`` for ``model``."""
    return objective_class(name)(model, settings or {})


def pooled_modality_embeddings(model: SparModel, tokens: dict, keep: dict | None = None) -> dict:
    """Encode prepared tokens and average each modality's valid post-fusion tokens.

    Args:
        model: the shared backbone.
        tokens: output of ``model.prepare``.
        keep: optional modality -> (B, L_keep) visible token indices, as for masking.

    Returns:
        modality -> (B, D) mean of the valid tokens (zeros for a sample whose
        modality has no valid token), plus ``"_present"``: modality -> (B,) bool,
        False where the modality had no valid token in the sample.
    """
    latent = model.forward_encoder(tokens, keep)
    pooled, present = {}, {}
    for m, out in latent.items():
        weight = out["valid"].unsqueeze(-1).to(out["latent"].dtype)
        count = weight.sum(dim=1)
        pooled[m] = (out["latent"] * weight).sum(dim=1) / count.clamp(min=1.0)
        present[m] = count.squeeze(-1) > 0
    pooled["_present"] = present
    return pooled
