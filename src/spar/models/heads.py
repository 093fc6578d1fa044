"""Task heads on frozen post-fusion embeddings."""

from __future__ import annotations

import torch
from torch import nn

from spar.models.blocks import TransformerStack


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
