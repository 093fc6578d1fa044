"""Token masking for masked-autoencoder pretraining.

Conventions: ``mask`` is (B, L) bool with True for a hidden (masked) token;
``keep_idx`` is (B, L_keep) indices of visible tokens in ascending order, so
visible tokens keep their original order.
"""

from __future__ import annotations

import torch


def visible_count(n_tokens: int, mask_ratio: float) -> int:
    """Return how many of ``n_tokens`` stay visible: ``n_tokens - round(mask_ratio * n_tokens)``, at least 1."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1); got {mask_ratio}")
    return max(1, n_tokens - int(round(mask_ratio * n_tokens)))


def _mask_from_scores(scores: torch.Tensor, n_keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``n_keep`` tokens with the lowest score in each row."""
    keep_idx = torch.argsort(scores, dim=1)[:, :n_keep].sort(dim=1).values
    mask = torch.ones_like(scores, dtype=torch.bool)
    mask.scatter_(1, keep_idx, False)
    return keep_idx, mask


def random_mask(batch: int, n_tokens: int, mask_ratio: float, generator: torch.Generator | None = None, device=None):
    """Hide a uniformly random subset of exactly ``round(mask_ratio * n_tokens)`` tokens per sample."""
    scores = torch.rand(batch, n_tokens, generator=generator, device=device)
    return _mask_from_scores(scores, visible_count(n_tokens, mask_ratio))


def node_drop_mask(
    batch: int, n_nodes: int, tokens_per_node: int, mask_ratio: float, node_drop_ratio: float,
    generator: torch.Generator | None = None, device=None,
):
    """Hide whole nodes first (``node_drop_ratio`` of the nodes), then random tokens up to ``mask_ratio``.

    Token order is node-major: token ``i`` belongs to node ``i // tokens_per_node``.
    """
    n_tokens = n_nodes * tokens_per_node
    n_keep = visible_count(n_tokens, mask_ratio)
    node_scores = torch.rand(batch, n_nodes, generator=generator, device=device)
    n_drop = min(int(round(node_drop_ratio * n_nodes)), n_nodes - 1)
    dropped = torch.zeros(batch, n_nodes, dtype=torch.bool, device=device)
    if n_drop:
        dropped.scatter_(1, torch.argsort(node_scores, dim=1)[:, :n_drop], True)
    # dropped nodes' tokens get scores above every other token, so they are masked first
    scores = torch.rand(batch, n_tokens, generator=generator, device=device)
    scores = scores + dropped.repeat_interleave(tokens_per_node, dim=1).float() * 2.0
    return _mask_from_scores(scores, n_keep)


def node_balanced_mask(
    batch: int, n_nodes: int, tokens_per_node: int, mask_ratio: float,
    generator: torch.Generator | None = None, device=None,
):
    """Hide tokens so that every node keeps at least ``floor(n_keep / n_nodes)`` visible tokens."""
    n_tokens = n_nodes * tokens_per_node
    n_keep = visible_count(n_tokens, mask_ratio)
    share = min(n_keep // n_nodes, tokens_per_node)
    scores = torch.rand(batch, n_nodes, tokens_per_node, generator=generator, device=device)
    # each node's `share` lowest-scored tokens are guaranteed by pushing them below every other score
    rank = torch.argsort(torch.argsort(scores, dim=2), dim=2)
    scores = scores - (rank < share).float() * 2.0
    return _mask_from_scores(scores.reshape(batch, n_tokens), n_keep)
