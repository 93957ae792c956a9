"""R-GenIMA: ROI visual tokens and a genetic prompt read by a language model.

Reads top to bottom like transformers' modeling_llava.py: output dataclass, projector,
model. The input sequence is::

    [BOS] [ROI] x n_rois [SEP] <genetic prompt tokens> [SEP] <question tokens>

``[ROI]`` placeholders are replaced by projected visual tokens from the RiT
(``masked_scatter``, after checking that the counts match), the backbone runs over the
sequence, and the class is read from the hidden state at the **answer position** (the
question's last token) by a linear head over the four stages. MRI-only and SNP-only
configurations drop the prompt or the ROI tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from rgenima import STAGES
from rgenima.model.rit import RiT, RiTConfig

MODALITIES = ("mri", "snp")


@dataclass
class RGenIMAConfig:
    """Every architecture choice of R-GenIMA; composes the RiT config.

    Parameters
    ----------
    rit : RiTConfig or dict
    modalities : tuple of str
        Any non-empty subset of ("mri", "snp").
    projector_hidden_act : str
        Activation of the two-layer projector ("gelu", "relu", "silu").
    n_classes : int
    roi_token_id : int
        Id of the ``[ROI]`` placeholder in the backbone's tokenizer.
    embed_dropout : float
        Dropout on the text token embeddings during training (the genetic prompt
        has one token per genotype: without it a small cohort is memorised).
    modality_dropout : float
        With both modalities, the probability that a training sample's genetic
        prompt is hidden from attention, so that the image pathway must learn on
        its own instead of being drowned by hundreds of genotype tokens.
    """

    rit: RiTConfig | dict = field(default_factory=RiTConfig)
    modalities: tuple[str, ...] = MODALITIES
    projector_hidden_act: str = "gelu"
    n_classes: int = len(STAGES)
    roi_token_id: int = -1
    embed_dropout: float = 0.1
    modality_dropout: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.rit, dict):
            self.rit = RiTConfig(**self.rit)
        self.modalities = tuple(self.modalities)
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"'modalities' must be a non-empty subset of {MODALITIES}; got {self.modalities!r}.")
        if self.projector_hidden_act not in _ACTIVATIONS:
            raise ValueError(
                f"'projector_hidden_act' must be one of {tuple(_ACTIVATIONS)}; got {self.projector_hidden_act!r}."
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


@dataclass
class RGenIMAOutput:
    """Output of :class:`RGenIMAForStaging`.

    Attributes
    ----------
    logits : Tensor of shape (batch_size, n_classes)
        Stage scores at the answer position (order NC, SMC, MCI, AD).
    loss : Tensor, optional
        Class-weighted cross-entropy, when labels are given.
    attentions : tuple of Tensor, optional
        Per layer, (batch_size, num_heads, sequence_length, sequence_length).
    hidden_states : tuple of Tensor, optional
        Per layer (embeddings first), (batch_size, sequence_length, hidden_size).
    inputs_embeds : Tensor of shape (batch_size, sequence_length, hidden_size)
        The embedded sequence after ROI tokens were scattered in (for attributions).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: tuple | None = None
    hidden_states: tuple | None = None
    inputs_embeds: torch.Tensor | None = None


class MultiModalProjector(nn.Module):
    """Visual tokens -> the language model's embedding space (LLaVA's projector).

    After LLaVA's two-layer MLP, each ROI's token is modulated by a learned per-ROI
    scale and shift (initialised to identity): a regional signal that the RiT encodes
    along one direction for every ROI then reaches the language model along an
    ROI-specific direction, so that pooling ROI tokens by attention can weight
    regions differently, as a linear model over regions would.
    """

    def __init__(self, vision_hidden_size: int, text_hidden_size: int, act: str = "gelu", n_rois: int = 1):
        super().__init__()
        self.linear_1 = nn.Linear(vision_hidden_size, text_hidden_size)
        self.act = _ACTIVATIONS[act]()
        self.linear_2 = nn.Linear(text_hidden_size, text_hidden_size)
        self.roi_scale = nn.Parameter(torch.zeros(n_rois, text_hidden_size))
        self.roi_shift = nn.Parameter(torch.zeros(n_rois, text_hidden_size))

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """(batch_size, n_rois, vision_hidden) -> (batch_size, n_rois, text_hidden)."""
        x = self.linear_2(self.act(self.linear_1(image_features)))
        return x * (1.0 + self.roi_scale) + self.roi_shift


class RGenIMAForStaging(nn.Module):
    """R-GenIMA with a four-way stage head.

    Parameters
    ----------
    config : RGenIMAConfig
    language_model : transformers.PreTrainedModel
        A base model taking ``inputs_embeds`` (see rgenima.model.backbone.load_backbone),
        possibly wrapped with LoRA.
    """

    def __init__(self, config: RGenIMAConfig, language_model: nn.Module):
        super().__init__()
        self.config = config
        self.language_model = language_model
        text_hidden = language_model.config.hidden_size
        self.vision_tower = RiT(config.rit) if "mri" in config.modalities else None
        self.multi_modal_projector = (
            MultiModalProjector(config.rit.hidden_size, text_hidden, config.projector_hidden_act, config.rit.n_rois)
            if "mri" in config.modalities
            else None
        )
        self.score = nn.Linear(text_hidden, config.n_classes)
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        if self.vision_tower is not None:
            # Voxel-wise standardisation of the cubes, fitted on the training fold
            # (set_cube_statistics): a 1-2% regional intensity loss becomes a shift of
            # about one standard deviation instead of a near-invisible rescaling.
            shape = (config.rit.n_rois,) + (config.rit.cube_size,) * 3
            self.register_buffer("cube_mean", torch.zeros(shape))
            self.register_buffer("cube_std", torch.ones(shape))

    @torch.no_grad()
    def set_cube_statistics(self, cubes: torch.Tensor) -> None:
        """Fit the voxel-wise standardisation on training cubes (n, n_rois, D, D, D)."""
        cubes = cubes.float()
        inside = cubes != 0
        count = inside.sum(0).clamp_min(1)
        mean = (cubes * inside).sum(0) / count
        var = (((cubes - mean) * inside) ** 2).sum(0) / count
        std = var.sqrt()
        floor = std[std > 0].median() if (std > 0).any() else torch.tensor(1.0)
        self.cube_mean.copy_(mean)
        self.cube_std.copy_(torch.maximum(std, 0.1 * floor))

    def get_image_features(self, cubes: torch.Tensor) -> torch.Tensor:
        """(batch_size, n_rois, D, D, D) -> (batch_size, n_rois, text_hidden_size)."""
        inside = cubes != 0
        standardized = (cubes.float() - self.cube_mean) / self.cube_std
        # Outside-ROI samples stay exactly 0 so that the RiT masks those patches.
        standardized = torch.where(inside, standardized, torch.zeros_like(standardized))
        standardized = torch.where(inside & (standardized == 0), torch.full_like(standardized, 1e-6), standardized)
        return self.multi_modal_projector(self.vision_tower(standardized))

    def embed(self, input_ids: torch.Tensor, cubes: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the ``[ROI]`` placeholders replaced by ROI tokens."""
        embeds = self.embed_dropout(self.language_model.get_input_embeddings()(input_ids))
        roi_mask = input_ids == self.config.roi_token_id
        n_placeholders = int(roi_mask.sum())
        if self.vision_tower is None:
            if n_placeholders:
                raise ValueError(f"{n_placeholders} [ROI] tokens in a model configured without 'mri'.")
            return embeds
        if cubes is None:
            raise ValueError("this model reads MRI: 'cubes' is required.")
        features = self.get_image_features(cubes).to(embeds.dtype)
        if n_placeholders != features.shape[0] * features.shape[1]:
            raise ValueError(
                f"Image features and image tokens do not match: tokens: {n_placeholders}, "
                f"features {features.shape[0] * features.shape[1]}"
            )
        mask = roi_mask.unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, features.reshape(-1, features.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        answer_positions: torch.Tensor,
        cubes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        class_weights: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> RGenIMAOutput:
        """Stage logits.

        Parameters
        ----------
        input_ids, attention_mask : Tensor of shape (batch_size, sequence_length)
        answer_positions : Tensor of shape (batch_size,)
            Index of each sequence's answer position (right padding allowed).
        cubes : Tensor of shape (batch_size, n_rois, D, D, D), optional
        labels : Tensor of shape (batch_size,), optional
        class_weights : Tensor of shape (n_classes,), optional
        prompt_mask : Tensor of bool, shape (batch_size, sequence_length), optional
            Genetic-prompt tokens, for modality dropout during training.
        inputs_embeds : Tensor, optional
            Precomputed embeddings (bypasses ``embed``; used by Integrated Gradients).
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, cubes)
        if self.training and prompt_mask is not None and self.config.modality_dropout > 0 and cubes is not None:
            hide = torch.rand(prompt_mask.shape[0], 1, device=prompt_mask.device) < self.config.modality_dropout
            attention_mask = attention_mask * ~(prompt_mask & hide)
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )
        hidden = out.last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        logits = self.score(hidden[rows, answer_positions])
        loss = None
        if labels is not None:
            weight = class_weights.to(logits.dtype) if class_weights is not None else None
            loss = F.cross_entropy(logits.float(), labels, weight=None if weight is None else weight.float())
        return RGenIMAOutput(
            logits=logits,
            loss=loss,
            attentions=out.attentions if output_attentions else None,
            hidden_states=out.hidden_states if output_hidden_states else None,
            inputs_embeds=inputs_embeds,
        )
