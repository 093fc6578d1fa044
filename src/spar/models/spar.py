"""SPAR: placement-aware masked autoencoding over multi-node, multi-modal tokens.

One class covers SPAR, its ablations and the plain masked autoencoder
baseline; each is a set of switches of :class:`ModelConfig` (see
``spar.models.registry``).

Shapes used throughout (per modality k):
    B batch, N node slots, m_k tokens per node, L_k = N * m_k tokens,
    D model width, A spatial axes (2 or 3).
    ``present``: (B, L_k) bool, False where the node has no data.
    ``mask``: (B, L_k) bool, True where the token is hidden from the encoder.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from spar.models.blocks import TransformerStack
from spar.models.masking import node_balanced_mask, node_drop_mask, random_mask
from spar.models.tokens import DataShape, patchify

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    dim: int = 64
    heads: int = 4
    mlp_ratio: float = 2.0
    modality_layers: int = 2  # per-modality encoder depth
    joint_layers: int = 1  # fusion encoder depth over all modalities
    decoder_dim: int = 32
    decoder_layers: int = 1
    structural_dim: int = 8  # d_R, size of each node's learnable structural position
    dropout: float = 0.0
    spatial_embedding: bool = True  # add sp_embed(normalised position) to every token
    structural_embedding: bool = True  # add st_embed(structural position) to every token
    spatial_reconstruction: bool = True  # spatial decoder and its loss term
    geometric_augmentation: bool = True  # random rotation + translation of positions, pretraining only
    translation_std: float = 0.5  # std of the random translation, in normalised position units
    node_slot_embedding: bool = False  # learned embedding per node slot: the plain MAE's sequence position
    masking: str = "random"  # random | node_drop | node_balanced
    node_drop_ratio: float = 0.25  # fraction of nodes hidden first by node_drop masking

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def normalize_positions(position: torch.Tensor, node_valid: torch.Tensor) -> torch.Tensor:
    """Shift each sample's node positions to zero mean and scale them to unit variance.

    The scale is one number per sample (the root mean square over valid nodes
    and axes), so the layout's shape and angles are kept.

    Args:
        position: (B, N, A); values of invalid slots are ignored.
        node_valid: (B, N) bool.

    Returns:
        (B, N, A) normalised positions, zeros at invalid slots.
    """
    weight = node_valid.unsqueeze(-1).to(position.dtype)
    count = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
    position = torch.where(node_valid.unsqueeze(-1), position, torch.zeros_like(position))
    mean = (position * weight).sum(dim=1, keepdim=True) / count
    centred = (position - mean) * weight
    var = (centred**2).sum(dim=(1, 2), keepdim=True) / (count * position.shape[-1])
    scale = torch.sqrt(var)
    scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))  # a single node stays at the origin
    return centred / scale


def augment_positions(position: torch.Tensor, node_valid: torch.Tensor, translation_std: float, generator=None) -> torch.Tensor:
    """Rotate each sample's layout about the vertical axis by a uniform random angle, then translate it.

    The first two axes are east and north; a third (up) axis is translated
    but not rotated. One rotation and one translation per sample, shared by
    all its nodes, so pairwise node distances are unchanged.
    """
    batch, _, n_axes = position.shape
    angle = torch.rand(batch, generator=generator, device=position.device) * (2 * math.pi)
    cos, sin = torch.cos(angle), torch.sin(angle)
    east, north = position[..., 0], position[..., 1]
    rotated = torch.stack([cos[:, None] * east - sin[:, None] * north, sin[:, None] * east + cos[:, None] * north], dim=-1)
    if n_axes > 2:
        rotated = torch.cat([rotated, position[..., 2:]], dim=-1)
    shift = torch.randn(batch, 1, n_axes, generator=generator, device=position.device) * translation_std
    out = rotated + shift
    return torch.where(node_valid.unsqueeze(-1), out, torch.zeros_like(out))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the tokens where ``weight`` is True (features averaged per token)."""
    per_token = ((pred - target) ** 2).mean(dim=-1)
    weight = weight.to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp(min=1.0)


def sincos_embedding(n_positions: int, dim: int) -> torch.Tensor:
    """Return the fixed 1-D sine-cosine embedding of positions 0..n-1, shape (n_positions, dim)."""
    half = dim // 2
    frequency = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float32) / half))
    angle = torch.arange(n_positions, dtype=torch.float32)[:, None] * frequency[None, :]
    out = torch.zeros(n_positions, dim)
    out[:, :half] = torch.sin(angle)
    out[:, half : 2 * half] = torch.cos(angle)
    return out


class ModalityEmbedding(nn.Module):
    """The linear embeddings of one modality: signal, spatial, structural, patch and slot positions."""

    def __init__(self, cfg: ModelConfig, token_dim: int, tokens_per_node: int, n_nodes: int, n_global_nodes: int, n_axes: int):
        super().__init__()
        d = cfg.dim
        self.sig_embed = nn.Linear(token_dim, d)
        self.sp_embed = nn.Linear(n_axes, d) if cfg.spatial_embedding else None
        self.structural_position = nn.Embedding(n_global_nodes, cfg.structural_dim) if cfg.structural_embedding else None
        self.st_embed = nn.Linear(cfg.structural_dim, d) if cfg.structural_embedding else None
        self.patch_pos = nn.Parameter(torch.zeros(1, 1, tokens_per_node, d))
        # fixed sine-cosine embedding of the slot index, as MAE uses for sequence positions
        self.register_buffer("slot_pos", sincos_embedding(n_nodes, d).view(1, n_nodes, 1, d) if cfg.node_slot_embedding else None)
        nn.init.trunc_normal_(self.patch_pos, std=0.02)
        if self.structural_position is not None:
            nn.init.normal_(self.structural_position.weight, std=1.0)
        self.tokens_per_node = tokens_per_node

    def placement(self, position_tok: torch.Tensor, node_tok: torch.Tensor, spatial: bool = True) -> torch.Tensor:
        """Return sp_embed(S) + st_embed(R) + patch and slot positions, (B, L, D); ``spatial=False`` leaves out sp_embed."""
        batch, length = node_tok.shape
        n_nodes = length // self.tokens_per_node
        out = self.patch_pos.expand(batch, n_nodes, -1, -1)
        if self.slot_pos is not None:
            out = out + self.slot_pos[:, :n_nodes]
        out = out.reshape(batch, length, -1)
        if spatial and self.sp_embed is not None:
            out = out + self.sp_embed(position_tok)
        return out + self.structural(node_tok)

    def structural(self, node_tok: torch.Tensor) -> torch.Tensor:
        """Return st_embed(R[node]) for each token, or 0 without structural embedding."""
        if self.st_embed is None:
            return torch.zeros((), device=node_tok.device)
        return self.st_embed(self.structural_position(node_tok))


class SparModel(nn.Module):
    """Per-modality encoders, a joint encoder, and signal and spatial decoders."""

    def __init__(self, cfg: ModelConfig, shape: DataShape):
        super().__init__()
        self.cfg = cfg
        self.shape = shape
        self.modalities = sorted(shape.modalities)
        d, dd = cfg.dim, cfg.decoder_dim

        self.embed = nn.ModuleDict()
        self.encoders = nn.ModuleDict()
        self.modality_embed = nn.ParameterDict()
        self.decoder_patch_pos = nn.ParameterDict()
        self.signal_heads = nn.ModuleDict()
        self.spatial_heads = nn.ModuleDict()
        for m in self.modalities:
            ms = shape.modalities[m]
            self.embed[m] = ModalityEmbedding(cfg, ms.token_dim, ms.tokens_per_node, shape.n_nodes, shape.n_global_nodes, shape.n_axes)
            self.encoders[m] = TransformerStack(d, cfg.modality_layers, cfg.heads, cfg.mlp_ratio, cfg.dropout)
            self.modality_embed[m] = nn.Parameter(torch.zeros(1, 1, d))
            self.decoder_patch_pos[m] = nn.Parameter(torch.zeros(1, 1, ms.tokens_per_node, dd))
            self.signal_heads[m] = nn.Linear(dd, ms.token_dim)
            if cfg.spatial_reconstruction:
                self.spatial_heads[m] = nn.Linear(dd, shape.n_axes)
            nn.init.trunc_normal_(self.modality_embed[m], std=0.02)
            nn.init.trunc_normal_(self.decoder_patch_pos[m], std=0.02)
        self.joint_encoder = TransformerStack(d, cfg.joint_layers, cfg.heads, cfg.mlp_ratio, cfg.dropout)

        self.signal_mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.signal_decoder_embed = nn.Linear(d, dd)
        self.signal_decoder = TransformerStack(dd, cfg.decoder_layers, max(1, cfg.heads // 2), cfg.mlp_ratio, cfg.dropout)
        if cfg.spatial_reconstruction:
            self.spatial_mask_token = nn.Parameter(torch.zeros(1, 1, d))
            self.spatial_decoder_embed = nn.Linear(d, dd)
            self.spatial_decoder = TransformerStack(dd, cfg.decoder_layers, max(1, cfg.heads // 2), cfg.mlp_ratio, cfg.dropout)
        nn.init.trunc_normal_(self.signal_mask_token, std=0.02)
        if cfg.spatial_reconstruction:
            nn.init.trunc_normal_(self.spatial_mask_token, std=0.02)

        n_params = sum(p.numel() for p in self.parameters())
        log.info("SparModel: %.2fM parameters, modalities %s, %d node slots", n_params / 1e6, self.modalities, shape.n_nodes)

    # --- inputs ---------------------------------------------------------------------

    def prepare(self, batch: dict, augment: bool, generator=None) -> dict:
        """Tokenise signals and broadcast placement information to tokens.

        Returns per modality ``m`` a dict with ``x`` (B, L, token_dim; zeros where
        absent), ``present`` (B, L), ``position`` (B, L, A) normalised (and
        augmented) positions, ``node`` (B, L) global node ids.
        """
        node_valid = batch["node_id"] >= 0
        position = normalize_positions(batch["position"], node_valid)
        if augment and self.cfg.geometric_augmentation:
            position = augment_positions(position, node_valid, self.cfg.translation_std, generator)
        node = batch["node_id"].clamp(min=0).long()

        out = {}
        for m in self.modalities:
            ms = self.shape.modalities[m]
            m_tok = ms.tokens_per_node
            present_node = batch[f"present_{m}"] & node_valid
            signal = batch[f"signal_{m}"] * present_node[:, :, None, None, None].to(batch[f"signal_{m}"].dtype)
            out[m] = {
                "x": patchify(signal, ms),
                "present": present_node.repeat_interleave(m_tok, dim=1),
                "position": position.repeat_interleave(m_tok, dim=1),
                "node": node.repeat_interleave(m_tok, dim=1),
            }
        return out

    def choose_mask(self, batch_size: int, m: str, mask_ratio: float, generator=None, device=None, node_present=None):
        """Draw the mask of modality ``m`` with the configured strategy; returns (keep_idx, mask).

        ``node_present`` (B, N) bool marks the nodes that have data, for the node-level strategies.
        """
        n_nodes, m_tok = self.shape.n_nodes, self.shape.modalities[m].tokens_per_node
        if self.cfg.masking == "random":
            return random_mask(batch_size, n_nodes * m_tok, mask_ratio, generator, device)
        if self.cfg.masking == "node_drop":
            return node_drop_mask(batch_size, n_nodes, m_tok, mask_ratio, self.cfg.node_drop_ratio, generator, device, node_present)
        if self.cfg.masking == "node_balanced":
            return node_balanced_mask(batch_size, n_nodes, m_tok, mask_ratio, generator, device, node_present)
        raise ValueError(f"unknown masking strategy {self.cfg.masking!r}; use random, node_drop or node_balanced")

    # --- encoder --------------------------------------------------------------------

    def forward_encoder(self, tokens: dict, keep: dict | None) -> dict:
        """Encode visible tokens per modality, then fuse all modalities.

        Args:
            tokens: output of :meth:`prepare`.
            keep: modality -> (B, L_keep) indices of visible tokens, or None to encode every token.

        Returns:
            modality -> {"latent": (B, L_keep, D) post-fusion embeddings, "valid": (B, L_keep) bool}.
        """
        encoded, valid = [], []
        for m in self.modalities:
            t = tokens[m]
            emb = self.embed[m]
            x = emb.sig_embed(t["x"]) + emb.placement(t["position"], t["node"])
            present = t["present"]
            if keep is not None:
                idx = keep[m]
                x = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
                present = torch.gather(present, 1, idx)
            encoded.append(self.encoders[m](x, present) + self.modality_embed[m])
            valid.append(present)

        # joint encoder over the concatenation of all modalities
        lengths = [e.shape[1] for e in encoded]
        fused = self.joint_encoder(torch.cat(encoded, dim=1), torch.cat(valid, dim=1))
        return {m: {"latent": z, "valid": v} for m, z, v in zip(self.modalities, fused.split(lengths, dim=1), valid)}

    # --- decoders -------------------------------------------------------------------

    def _decode(self, latent: dict, fill: dict, keep: dict, tokens: dict, embed: nn.Linear, decoder: nn.Module) -> dict:
        """Scatter post-fusion embeddings into full token sequences, fill masked slots, run a decoder."""
        sequences, lengths = [], []
        for m in self.modalities:
            full = fill[m].clone()
            idx = keep[m].unsqueeze(-1).expand(-1, -1, full.shape[-1])
            full = full.scatter(1, idx, latent[m]["latent"].to(full.dtype))
            n_nodes = self.shape.n_nodes
            pos = self.decoder_patch_pos[m].expand(full.shape[0], n_nodes, -1, -1).reshape(full.shape[0], -1, self.cfg.decoder_dim)
            sequences.append(embed(full) + pos)
            lengths.append(full.shape[1])
        valid = torch.cat([tokens[m]["present"] for m in self.modalities], dim=1)
        decoded = decoder(torch.cat(sequences, dim=1), valid)
        return dict(zip(self.modalities, decoded.split(lengths, dim=1)))

    def forward_decoders(self, tokens: dict, latent: dict, keep: dict) -> tuple[dict, dict]:
        """Reconstruct signals and, with spatial reconstruction, positions of every token.

        Masked slots of the signal decoder carry the placement of the hidden
        token (sp_embed + st_embed). Masked slots of the spatial decoder carry
        its signal and structure (sig_embed + st_embed).
        """
        signal_fill, spatial_fill = {}, {}
        for m in self.modalities:
            t, emb = tokens[m], self.embed[m]
            signal_fill[m] = self.signal_mask_token + emb.placement(t["position"], t["node"])
            if self.cfg.spatial_reconstruction:
                # masked slots carry no spatial embedding: their positions are what the decoder predicts
                no_space = emb.placement(t["position"], t["node"], spatial=False)
                spatial_fill[m] = self.spatial_mask_token + emb.sig_embed(t["x"]) + no_space

        decoded = self._decode(latent, signal_fill, keep, tokens, self.signal_decoder_embed, self.signal_decoder)
        signal_pred = {m: self.signal_heads[m](decoded[m]) for m in self.modalities}
        spatial_pred = {}
        if self.cfg.spatial_reconstruction:
            decoded = self._decode(latent, spatial_fill, keep, tokens, self.spatial_decoder_embed, self.spatial_decoder)
            spatial_pred = {m: self.spatial_heads[m](decoded[m]) for m in self.modalities}
        return signal_pred, spatial_pred

    # --- loss -----------------------------------------------------------------------

    def forward_loss(self, tokens: dict, masks: dict, signal_pred: dict, spatial_pred: dict) -> dict:
        """Sum over modalities of MSE on masked, present tokens, for signals and positions."""
        losses = {}
        for m in self.modalities:
            weight = masks[m] & tokens[m]["present"]
            losses[f"signal_{m}"] = masked_mse(signal_pred[m].float(), tokens[m]["x"].float(), weight)
            if self.cfg.spatial_reconstruction:
                losses[f"spatial_{m}"] = masked_mse(spatial_pred[m].float(), tokens[m]["position"].float(), weight)
        losses["loss"] = sum(losses.values())
        return losses

    def forward(self, batch: dict, mask_ratio: float, generator: torch.Generator | None = None) -> dict:
        """Compute one pretraining step's losses for a batch (see ``spar.data.windows`` for the batch keys)."""
        tokens = self.prepare(batch, augment=self.training, generator=generator)
        batch_size = batch["node_id"].shape[0]
        device = batch["node_id"].device
        keep, masks = {}, {}
        for m in self.modalities:
            node_present = tokens[m]["present"].view(batch_size, self.shape.n_nodes, -1)[:, :, 0]
            keep[m], masks[m] = self.choose_mask(batch_size, m, mask_ratio, generator, device, node_present)
        latent = self.forward_encoder(tokens, keep)
        signal_pred, spatial_pred = self.forward_decoders(tokens, latent, keep)
        return self.forward_loss(tokens, masks, signal_pred, spatial_pred)

    @torch.no_grad()
    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the post-fusion embeddings of every token, for frozen-encoder fine-tuning.

        Returns:
            tokens (B, sum_k L_k, D) in modality order ``self.modalities``, and
            valid (B, sum_k L_k) bool (False where the node has no data).
        """
        tokens = self.prepare(batch, augment=False)
        latent = self.forward_encoder(tokens, keep=None)
        z = torch.cat([latent[m]["latent"] for m in self.modalities], dim=1)
        valid = torch.cat([latent[m]["valid"] for m in self.modalities], dim=1)
        return z, valid

    def token_groups(self, n_nodes: int | None = None) -> torch.Tensor:
        """Return the (modality, node slot) group of each token of :meth:`encode`, shape (sum_k L_k,).

        Group ``k * N + n`` contains the tokens of node slot ``n`` in modality ``k``,
        where N is ``n_nodes`` (default: the node slots the model was built for).
        """
        n_nodes = self.shape.n_nodes if n_nodes is None else n_nodes
        groups = []
        for k, m in enumerate(self.modalities):
            m_tok = self.shape.modalities[m].tokens_per_node
            groups.append(k * n_nodes + torch.arange(n_nodes).repeat_interleave(m_tok))
        return torch.cat(groups)

    def config_dict(self) -> dict:
        return {"model": asdict(self.cfg), "shape": self.shape.to_dict()}
