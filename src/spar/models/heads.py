"""Task heads on frozen post-fusion embeddings."""

from __future__ import annotations

import torch
from torch import nn

from spar.models.blocks import TransformerStack, ensure_one_key


class TransformerHead(nn.Module):
    """Transformer layers over the embedding tokens, a masked mean over valid tokens, then a linear output.

    Input: tokens (B, L, D) and valid (B, L) bool. Output: (B, out_dim).
    """

    def __init__(self, dim: int, out_dim: int, layers: int = 1, heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.layers = TransformerStack(dim, layers, heads, mlp_ratio, dropout)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.layers(tokens, valid)
        weight = valid.unsqueeze(-1).to(x.dtype)
        pooled = (x * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        return self.out(pooled)


class LinearHead(nn.Module):
    """A linear layer on the mean of the valid embedding tokens. Output: (B, out_dim)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        weight = valid.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        return self.out(self.norm(pooled))


class SetPredictionHead(nn.Module):
    """Learned object queries that decode a set of (class, position) predictions from the embedding tokens.

    Each query passes through ``layers`` pre-norm transformer decoder layers:
    self-attention among the queries (so that two queries can learn not to
    predict the same object), cross-attention from the queries to the valid
    tokens, and an MLP. A final LayerNorm feeds a linear class layer and a
    two-layer MLP for the position.

    Input: tokens (B, L, D) and valid (B, L) bool, False for tokens that no
    query may attend to. Output: class logits (B, Q, n_classes + 1), where the
    last class is "no object", and positions (B, Q, position_dim) in the
    normalised units of the training targets.
    """

    def __init__(self, dim: int, n_classes: int, queries: int = 6, layers: int = 2, heads: int = 4,
                 mlp_ratio: float = 2.0, dropout: float = 0.0, position_dim: int = 2):
        super().__init__()
        if n_classes < 1 or queries < 1 or layers < 1:
            raise ValueError(f"a set-prediction head needs n_classes, queries and layers >= 1; got {n_classes}, {queries}, {layers}")
        self.n_classes = n_classes
        self.queries = nn.Parameter(torch.randn(queries, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.class_out = nn.Linear(dim, n_classes + 1)
        self.position_out = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, position_dim))

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # nn.TransformerDecoderLayer expects True at the keys to ignore
        ignore = ~ensure_one_key(valid)
        x = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, tokens, memory_key_padding_mask=ignore)
        x = self.norm(x)
        return self.class_out(x), self.position_out(x)
