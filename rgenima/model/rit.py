"""RiT: the ROI-wise vision transformer.

Each atlas ROI arrives as a cube of ``cube_size``³ samples (see rgenima.data.mri). The
cube is cut into non-overlapping 3-D patches of ``patch_size``³, each patch is embedded
linearly, a position embedding (patch index) and an ROI-identity embedding are added,
and a class token runs with the patches through a transformer encoder shared by all
ROIs. The class token's output is the ROI's **visual token**.

Patches that lie entirely outside the ROI (all zeros, since cubes are masked to their
ROI) are masked out of attention, so the visual token depends only on ROI voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class RiTConfig:
    """Architecture of the ROI-wise vision transformer.

    Parameters
    ----------
    n_rois : int
        Number of ROIs (atlas regions), i.e. of visual tokens per subject.
    cube_size : int
        Edge of each ROI cube, in samples.
    input_pool : int
        Average-pooling factor applied to the cube before patching (1: none). Pooling
        averages voxel noise away while keeping regional intensity, which is what
        atrophy changes; it must divide ``cube_size``.
    patch_size : int
        Edge of each 3-D patch on the pooled cube; must divide ``cube_size // input_pool``.
    hidden_size : int
        Width of the encoder (and of the visual tokens).
    num_layers, num_heads, intermediate_size : int
        Transformer encoder depth, attention heads and feed-forward width.
    dropout : float
    """

    n_rois: int = 120
    cube_size: int = 16
    input_pool: int = 2
    patch_size: int = 4
    hidden_size: int = 32
    num_layers: int = 1
    num_heads: int = 2
    intermediate_size: int = 64
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.input_pool < 1 or self.cube_size % self.input_pool:
            raise ValueError(
                f"'input_pool' must divide 'cube_size'; got input_pool={self.input_pool}, cube_size={self.cube_size}."
            )
        if self.pooled_size % self.patch_size:
            raise ValueError(
                f"'patch_size' must divide 'cube_size // input_pool'; got patch_size={self.patch_size}, "
                f"cube_size // input_pool={self.pooled_size}."
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"'hidden_size' must be a multiple of 'num_heads'; got {self.hidden_size} and {self.num_heads}."
            )

    @property
    def pooled_size(self) -> int:
        return self.cube_size // self.input_pool

    @property
    def patches_per_roi(self) -> int:
        return (self.pooled_size // self.patch_size) ** 3

    def to_dict(self) -> dict:
        return asdict(self)


def patchify(cubes: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut cubes into non-overlapping patches.

    Parameters
    ----------
    cubes : Tensor of shape (batch_size, n_rois, D, D, D)

    Returns
    -------
    Tensor of shape (batch_size, n_rois, (D // p)**3, p**3)
    """
    b, r = cubes.shape[0], cubes.shape[1]
    p, n = patch_size, cubes.shape[2] // patch_size
    x = cubes.reshape(b, r, n, p, n, p, n, p)
    x = x.permute(0, 1, 2, 4, 6, 3, 5, 7)
    return x.reshape(b, r, n**3, p**3)


class RiT(nn.Module):
    """ROI-wise vision transformer: ROI cubes -> one visual token per ROI."""

    def __init__(self, config: RiTConfig):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = nn.Linear(c.patch_size**3, c.hidden_size)
        self.position_embed = nn.Parameter(torch.zeros(c.patches_per_roi, c.hidden_size))
        self.roi_embed = nn.Embedding(c.n_rois, c.hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(c.hidden_size))
        layer = nn.TransformerEncoderLayer(
            d_model=c.hidden_size,
            nhead=c.num_heads,
            dim_feedforward=c.intermediate_size,
            dropout=c.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.hidden_size)
        nn.init.normal_(self.position_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.roi_embed.weight, std=0.02)

    def forward(self, cubes: torch.Tensor) -> torch.Tensor:
        """Visual tokens.

        Parameters
        ----------
        cubes : Tensor of shape (batch_size, n_rois, cube_size, cube_size, cube_size)

        Returns
        -------
        Tensor of shape (batch_size, n_rois, hidden_size)
        """
        c = self.config
        if cubes.dim() != 5 or cubes.shape[1] != c.n_rois or tuple(cubes.shape[2:]) != (c.cube_size,) * 3:
            raise ValueError(
                f"RiT expects cubes of shape (batch_size, {c.n_rois}, {c.cube_size}, {c.cube_size}, "
                f"{c.cube_size}); got {tuple(cubes.shape)}."
            )
        b, r = cubes.shape[:2]
        x = cubes.float()
        if c.input_pool > 1:
            x = nn.functional.avg_pool3d(x.reshape(b * r, 1, *x.shape[2:]), c.input_pool)
            x = x.reshape(b, r, c.pooled_size, c.pooled_size, c.pooled_size)
        patches = patchify(x, c.patch_size)  # (b, r, n_p, p^3)
        outside = (patches == 0).all(dim=-1)  # (b, r, n_p): patch has no ROI voxel
        tokens = self.patch_embed(patches) + self.position_embed
        roi = self.roi_embed.weight[None, :, None, :]  # (1, r, 1, h)
        cls = (self.cls_token + roi).expand(b, r, 1, c.hidden_size)
        x = torch.cat([cls, tokens + roi], dim=2).reshape(b * r, 1 + c.patches_per_roi, c.hidden_size)
        mask = torch.cat([torch.zeros(b, r, 1, dtype=torch.bool, device=cubes.device), outside], dim=2)
        x = self.encoder(x, src_key_padding_mask=mask.reshape(b * r, -1))
        return self.norm(x[:, 0]).reshape(b, r, c.hidden_size)
