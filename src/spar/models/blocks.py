"""Transformer blocks shared by every encoder, decoder and head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention`` (fused kernels on GPU)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over tokens.

        Args:
            x: (B, L, D) tokens.
            key_valid: (B, L) bool, False for tokens that no query may attend to
                (missing data). Every row needs at least one True.
        """
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if key_valid is None else key_valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: attention and MLP, each with a residual connection."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_valid)
        return x + self.mlp(self.norm2(x))


class TransformerStack(nn.Module):
    """A stack of blocks followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        if key_valid is not None:
            key_valid = ensure_one_key(key_valid)
        for block in self.blocks:
            x = block(x, key_valid)
        return self.norm(x)


def ensure_one_key(key_valid: torch.Tensor) -> torch.Tensor:
    """Let rows with no valid key attend to their first token, so no softmax row is all -inf.

    Such rows belong to samples whose visible tokens are all missing; their
    outputs are excluded from every loss, and the missing signals are zeroed
    before embedding, so the fallback cannot leak missing values.
    """
    # branch-free, so CUDA needs no device-to-host sync and torch.compile no graph break
    empty = ~key_valid.any(dim=1)
    first = torch.zeros_like(key_valid)
    first[:, 0] = True
    return key_valid | (first & empty[:, None])
