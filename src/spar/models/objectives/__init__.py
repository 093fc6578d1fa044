"""Pretraining objectives on the shared SPAR backbone.

Every method of the tables trains the same :class:`spar.models.spar.SparModel`
(tokeniser, per-modality encoders, joint encoder). A method differs only in its
objective: which tokens it hides, what it reconstructs or contrasts, and the
small heads (projectors, decoders) that exist only during pretraining. After
pretraining, every method's encoder produces post-fusion embeddings of the same
shape through ``SparModel.encode``, so the task heads are shared.

An objective is an ``nn.Module`` whose parameters (projection heads and the
like) are optimised together with the backbone and saved in resume
checkpoints. Its ``forward(model, batch, mask_ratio, generator)`` returns a
dict of scalar loss terms, with their weighted sum under ``"loss"``.
"""

from __future__ import annotations

from spar.models.objectives.base import OBJECTIVES, Objective, build_objective, pooled_modality_embeddings

__all__ = ["OBJECTIVES", "Objective", "build_objective", "pooled_modality_embeddings"]
