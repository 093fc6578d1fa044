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


def _present_or_all(node_present: torch.Tensor | None, batch: int, n_nodes: int, device) -> torch.Tensor:
    if node_present is None:
        return torch.ones(batch, n_nodes, dtype=torch.bool, device=device)
    if node_present.shape != (batch, n_nodes):
        raise ValueError(f"node_present must have shape {(batch, n_nodes)}; got {tuple(node_present.shape)}")
    return node_present.to(device=device, dtype=torch.bool)


def node_drop_mask(
    batch: int, n_nodes: int, tokens_per_node: int, mask_ratio: float, node_drop_ratio: float,
    generator: torch.Generator | None = None, device=None, node_present: torch.Tensor | None = None,
):
    """Hide whole nodes first, then random tokens up to ``mask_ratio``.

    Of the P present nodes of a sample, ``round(node_drop_ratio * P)`` (at most
    P - 1) are hidden entirely. ``node_present`` is (B, N) bool; None means
    every node slot has data. Token order is node-major: token ``i`` belongs
    to node ``i // tokens_per_node``.
    """
    n_tokens = n_nodes * tokens_per_node
    n_keep = visible_count(n_tokens, mask_ratio)
    present = _present_or_all(node_present, batch, n_nodes, device)

    # choose the dropped nodes among the present ones: absent nodes rank last
    node_scores = torch.rand(batch, n_nodes, generator=generator, device=device) + (~present).float() * 2.0
    n_present = present.sum(dim=1, keepdim=True)
    n_drop = torch.minimum(torch.round(node_drop_ratio * n_present.float()).long(), (n_present - 1).clamp(min=0))
    rank = torch.argsort(torch.argsort(node_scores, dim=1), dim=1)
    dropped = rank < n_drop

    # dropped nodes' tokens get scores above every other token, so they are masked first
    scores = torch.rand(batch, n_tokens, generator=generator, device=device)
    scores = scores + dropped.repeat_interleave(tokens_per_node, dim=1).float() * 2.0
    return _mask_from_scores(scores, n_keep)


def node_balanced_mask(
    batch: int, n_nodes: int, tokens_per_node: int, mask_ratio: float,
    generator: torch.Generator | None = None, device=None, node_present: torch.Tensor | None = None,
):
    """Hide tokens so that every present node keeps at least its share of the visible tokens.

    With ``n_keep`` visible tokens and P present nodes in a sample, each
    present node keeps at least ``min(floor(n_keep / P), tokens_per_node)``
    of its tokens. ``node_present`` is (B, N) bool; None means every node
    slot has data. Tokens of absent nodes carry no data and are hidden first.
    """
    n_tokens = n_nodes * tokens_per_node
    n_keep = visible_count(n_tokens, mask_ratio)
    present = _present_or_all(node_present, batch, n_nodes, device)
    share = torch.clamp(n_keep // present.sum(dim=1).clamp(min=1), max=tokens_per_node)  # (B,)

    # each present node's `share` lowest-scored tokens go below every other score,
    # and absent nodes' tokens above every other score
    scores = torch.rand(batch, n_nodes, tokens_per_node, generator=generator, device=device)
    rank = torch.argsort(torch.argsort(scores, dim=2), dim=2)
    guaranteed = (rank < share[:, None, None]) & present[:, :, None]
    scores = scores - guaranteed.float() * 2.0 + (~present)[:, :, None].float() * 2.0
    return _mask_from_scores(scores.reshape(batch, n_tokens), n_keep)


def _standardize_rows(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Shift and scale each row of ``values`` to zero mean and unit variance over its valid entries.

    A row whose valid entries are all equal (or that has fewer than two) gets
    zeros, and invalid entries get zeros. Shapes: (B, L) in, (B, L) out.
    """
    weight = valid.to(values.dtype)
    count = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (values * weight).sum(dim=1, keepdim=True) / count
    centred = (values - mean) * weight
    std = torch.sqrt((centred**2).sum(dim=1, keepdim=True) / count)
    return torch.where(std > 1e-6, centred / std.clamp(min=1e-6), torch.zeros_like(centred))


def energy_coherence_scores(
    x: torch.Tensor, present: torch.Tensor, n_nodes: int, energy_weight: float, coherence_weight: float,
) -> torch.Tensor:
    """Score every token by its energy and by its coherence with the same patch on the other nodes.

    ``x`` contains tokens of standardised log power, as ``SparModel.prepare``
    returns them. A token's energy is the mean of its features, so it rises
    with the patch's mean log power. (The mean square of standardised log
    power would also be high for near-silent patches.) A token's coherence is
    the mean Pearson correlation between its features and those of the
    same patch position on each other present node of the sample. It is 0
    when the sample has one present node. Both are standardised over the
    sample's present tokens before weighting, so the score does not depend
    on the store's normalisation constants.

    Args:
        x: (B, L, F) tokens, node-major with ``L = n_nodes * m``.
        present: (B, L) bool, False for tokens of nodes without data.
        n_nodes: node slots N.
        energy_weight, coherence_weight: factors of the two standardised terms.

    Returns:
        (B, L) float scores, 0 at absent tokens.
    """
    batch, length, n_features = x.shape
    if length % n_nodes:
        raise ValueError(f"token count {length} is not a multiple of the {n_nodes} node slots")
    x = x.detach().float()
    present = present.to(dtype=torch.bool, device=x.device)

    # energy: mean standardised log power of each token
    energy = x.mean(dim=-1)

    # coherence: mean correlation with the same patch position on the other present nodes
    per_node = x.view(batch, n_nodes, length // n_nodes, n_features)
    node_present = present.view(batch, n_nodes, -1).float().unsqueeze(-1)
    unit = torch.nn.functional.normalize(per_node - per_node.mean(dim=-1, keepdim=True), dim=-1) * node_present
    total = unit.sum(dim=1, keepdim=True)
    others = node_present.sum(dim=1, keepdim=True) - 1.0
    similarity = ((unit * total).sum(dim=-1, keepdim=True) - (unit * unit).sum(dim=-1, keepdim=True)) / others.clamp(min=1.0)
    coherence = similarity.squeeze(-1).reshape(batch, length)

    # weighted sum of the two terms, each standardised within the sample
    score = energy_weight * _standardize_rows(energy, present) + coherence_weight * _standardize_rows(coherence, present)
    return score * present.float()


def gumbel_top_k_mask(
    scores: torch.Tensor, mask_ratio: float, temperature: float, generator: torch.Generator | None = None,
    present: torch.Tensor | None = None,
):
    """Hide exactly ``round(mask_ratio * L)`` tokens per sample, drawn without replacement by score.

    Adding Gumbel noise to ``scores / temperature`` and hiding the largest
    values draws the hidden set one token at a time with probability
    proportional to ``exp(score / temperature)`` among the tokens not yet
    drawn, so tokens with higher scores are hidden more often. A lower
    temperature makes the choice more deterministic. Absent tokens (``present``
    False) carry no data and are hidden before any present token.

    Args:
        scores: (B, L) float.
        mask_ratio: fraction of tokens to hide, in [0, 1).
        temperature: softmax temperature, > 0.
        present: optional (B, L) bool; None means every token has data.

    Returns:
        keep_idx (B, L_keep) ascending and mask (B, L) bool, True where hidden.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    n_keep = visible_count(scores.shape[1], mask_ratio)
    uniform = torch.rand(scores.shape, generator=generator, device=scores.device).clamp(1e-12, 1.0 - 1e-7)
    perturbed = scores.float() / temperature - torch.log(-torch.log(uniform))
    if present is not None:
        perturbed = perturbed.masked_fill(~present.to(device=scores.device, dtype=torch.bool), float("inf"))

    # _mask_from_scores keeps the lowest values, so the largest perturbed scores are hidden
    return _mask_from_scores(perturbed, n_keep)


def energy_coherence_mask(
    x: torch.Tensor, present: torch.Tensor, n_nodes: int, mask_ratio: float, energy_weight: float = 1.0,
    coherence_weight: float = 0.5, temperature: float = 1.0, generator: torch.Generator | None = None,
):
    """Hide ``round(mask_ratio * L)`` tokens per sample, preferring high-energy, coherent patches.

    Combines :func:`energy_coherence_scores` and :func:`gumbel_top_k_mask`;
    see them for the score and the sampling. Shapes: ``x`` (B, L, F),
    ``present`` (B, L) bool. Returns keep_idx (B, L_keep) and mask (B, L).
    """
    scores = energy_coherence_scores(x, present, n_nodes, energy_weight, coherence_weight)
    return gumbel_top_k_mask(scores, mask_ratio, temperature, generator, present)
