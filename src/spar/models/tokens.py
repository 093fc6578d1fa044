"""Spectrogram tokenisation and the shapes a model is built for."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ModalityShape:
    """Spectrogram shape of one modality and the patch that makes one token."""

    channels: int
    freq: int
    frames: int
    patch_freq: int
    patch_frames: int

    def __post_init__(self):
        if self.patch_freq > self.freq or self.patch_frames > self.frames:
            raise ValueError(
                f"patch ({self.patch_freq} x {self.patch_frames}) is larger than the spectrogram ({self.freq} x {self.frames})"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along frequency and along time; spectrogram edges that do not fill a patch are dropped."""
        return self.freq // self.patch_freq, self.frames // self.patch_frames

    @property
    def tokens_per_node(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def token_dim(self) -> int:
        return self.channels * self.patch_freq * self.patch_frames


@dataclass(frozen=True)
class DataShape:
    """Everything about a dataset that fixes a model's parameter shapes."""

    modalities: dict[str, ModalityShape]
    n_nodes: int  # node slots per sample
    n_global_nodes: int  # physical nodes with a structural position
    n_axes: int  # spatial position dimension d_S

    def to_dict(self) -> dict:
        return {
            "modalities": {m: asdict(s) for m, s in self.modalities.items()},
            "n_nodes": self.n_nodes,
            "n_global_nodes": self.n_global_nodes,
            "n_axes": self.n_axes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DataShape":
        return cls(
            modalities={m: ModalityShape(**s) for m, s in d["modalities"].items()},
            n_nodes=d["n_nodes"],
            n_global_nodes=d["n_global_nodes"],
            n_axes=d["n_axes"],
        )


def patchify(x: torch.Tensor, shape: ModalityShape) -> torch.Tensor:
    """Cut spectrograms into tokens.

    Args:
        x: (B, N, C, F, T) spectrograms.

    Returns:
        (B, N * m, C * pf * pt) tokens, node-major: token ``i`` belongs to node
        ``i // m`` where ``m = shape.tokens_per_node``; inside a node, patches
        run over frequency first, then time.
    """
    batch, nodes = x.shape[:2]
    gf, gt = shape.grid
    pf, pt = shape.patch_freq, shape.patch_frames
    x = x[..., : gf * pf, : gt * pt]
    x = x.reshape(batch, nodes, shape.channels, gf, pf, gt, pt)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)  # B, N, gf, gt, C, pf, pt
    return x.reshape(batch, nodes * gf * gt, shape.token_dim)


def unpatchify(tokens: torch.Tensor, shape: ModalityShape, n_nodes: int) -> torch.Tensor:
    """Invert :func:`patchify`: (B, N * m, C * pf * pt) -> (B, N, C, gf * pf, gt * pt)."""
    batch = tokens.shape[0]
    gf, gt = shape.grid
    pf, pt = shape.patch_freq, shape.patch_frames
    x = tokens.reshape(batch, n_nodes, gf, gt, shape.channels, pf, pt)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(batch, n_nodes, shape.channels, gf * pf, gt * pt)
