"""R-GenIMA: ROI visual tokens and a genetic prompt read by a language model.

Reads top to bottom like transformers' modeling_llava.py: output dataclass, projector,
model (the config is :mod:`rgenima.model.configuration_rgenima`). The input sequence is::

    [BOS] [COV] x n_covariates [ROI] x n_rois [SEP] <genetic prompt tokens> [SEP] <question tokens>

``[COV]`` and ``[ROI]`` placeholders are replaced by covariate and ROI tokens
(``masked_scatter``, after checking that the counts match), the backbone runs over the
sequence, and the class is read from the hidden state at the **answer position** (the
question's last token) by a linear head over the four stages. MRI-only and SNP-only
configurations leave out the ROI tokens or the prompt.

Every token keeps the position it has in the full layout above whether or not the other
modality is present (``position_ids``, see rgenima.model.inputs.build_sequences): the
two-modality model then starts from the MRI-only model without moving any ROI token
relative to the answer (rotary positions are relative).

ROI tokens
----------
Each ROI token is the sum of a *regional-intensity token* and the RiT's visual token
behind a zero-initialised gate (Flamingo's ``tanh`` gating)::

    token_r = roi_embedding_r + m_r * intensity_direction_r + tanh(rit_gate) * projector(RiT(cube_r))

``m_r`` is the ROI's mean (normalised) intensity, standardised with the training fold's
mean and SD: what a region-based model reads. On a few hundred subjects a RiT trained
from labels alone does not find this regional summary (its tokens lose it to voxel-level
patterns that fit the training fold); with the gate the model starts from the regional
summary and the RiT adds what it can learn on top. ``intensity_tokens=False`` and
``rit_gate=False`` give the plain RiT token.

Covariate tokens
----------------
Age, sex and education enter as one token each: ``covariate_embedding_k +
z_k * covariate_direction_k``, with ``z_k`` standardised on the training fold (a missing
value is the training mean). They are the covariates every baseline uses.

Attention bias of the prompt
----------------------------
``prompt_bias`` adds a learned bias to the attention logits of every genetic-prompt token
(one value per prompt position, shared by all queries and heads), started at
``prompt_bias_init`` or from a training-fold association scan of each SNP
(:func:`rgenima.train.snp_scan_bias`).

Gated fusion
------------
With both modalities and ``prompt_gate``, every attention layer computes its output
twice, with and without the genetic segment among the keys, and returns::

    out = out_without_prompt + tanh(g_layer) * (out_with_prompt - out_without_prompt)

with ``g`` initialised at 0 (Flamingo's gated cross-attention, LLaMA-Adapter's
zero-initialised attention). The two-modality model warm-started from the MRI-only
weights therefore starts as exactly the MRI-only model, whatever the prompt bias, and the
prompt adds to it only as far as training opens the gates. The attention weights returned
for attributions are the same mixture of the two softmaxes. Both act inside the backbone's
attention layers through the kernels of :mod:`rgenima.model.key_bias_attention`.

Saving and loading
------------------
As transformers' LLaVA composes its vision and text configs, :class:`RGenIMAConfig`
holds everything needed to rebuild the model: the RiT config, the language model's own
config (``text_config``), its LoRA settings and which of its embeddings are frozen.
:meth:`RGenIMAForStaging.save_pretrained` writes ``config.json``, ``model.safetensors``
(every parameter and buffer, the training fold's input statistics included) and, when
given, the tokenizer; :meth:`RGenIMAForStaging.from_pretrained` and
:func:`rgenima.model.language_model.load_tokenizer` read them back with nothing else
(no backbone directory, no training code, no download).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from rgenima.model.configuration_rgenima import _ACTIVATIONS, CONFIG_NAME, MODEL_TYPE, WEIGHTS_NAME, RGenIMAConfig
from rgenima.model.key_bias_attention import KEY_BIAS_ATTENTION, register_key_bias_attention
from rgenima.model.language_model import _base_attention, _is_peft, language_model_from_config, text_config_of
from rgenima.model.rit import RiT, RiTConfig


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
        The embedded sequence after ROI and covariate tokens were scattered in (for
        attributions).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: tuple | None = None
    hidden_states: tuple | None = None
    inputs_embeds: torch.Tensor | None = None


class MultiModalProjector(nn.Module):
    """Visual tokens -> the language model's embedding space (LLaVA's projector).

    After LLaVA's two-layer MLP, each ROI's token is modulated by a learned per-ROI
    scale and shift (initialised to identity), so that a signal the RiT encodes along
    one direction for every ROI reaches the language model along an ROI-specific one.
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


def pool_cubes(cubes, pool: int, batch_size: int = 64):
    """Average-pool a cohort's cubes once: (n, n_rois, D, D, D) -> float32 (n, n_rois, D/pool, ...).

    The model pools its input itself; pooling all cubes before training does that work
    once instead of at every epoch (the same values, see RGenIMAForStaging.pool)."""
    import numpy as np

    n, r, d = cubes.shape[:3]
    if pool == 1:
        return np.asarray(cubes, dtype=np.float32)
    e = d // pool
    out = np.empty((n, r, e, e, e), dtype=np.float32)
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.asarray(cubes[start : start + batch_size], dtype=np.float32))
        x = F.avg_pool3d(x.reshape(-1, 1, d, d, d), pool).reshape(x.shape[0], r, e, e, e)
        out[start : start + batch_size] = x.numpy()
    return out


def regional_intensity(pooled: torch.Tensor) -> torch.Tensor:
    """Mean intensity inside each ROI: (batch, n_rois, d, d, d) -> (batch, n_rois).

    Cubes are zero outside their ROI; samples that are exactly zero are not counted.
    """
    inside = pooled != 0
    return (pooled * inside).sum((2, 3, 4)) / inside.sum((2, 3, 4)).clamp_min(1)


class RGenIMAForStaging(nn.Module):
    """R-GenIMA with a four-way stage head.

    Parameters
    ----------
    config : RGenIMAConfig
    language_model : transformers.PreTrainedModel, optional
        A base model taking ``inputs_embeds`` (see rgenima.model.backbone.load_backbone),
        possibly wrapped with LoRA already; it is wrapped here when ``config.lora`` asks
        for LoRA. Default: a fresh one built from ``config.text_config``.
    attn_implementation : {"sdpa", "eager"}
        Attention of a language model built from ``config.text_config``.
    """

    def __init__(
        self, config: RGenIMAConfig, language_model: nn.Module | None = None, attn_implementation: str = "sdpa"
    ):
        super().__init__()
        if language_model is None:
            if config.text_config is None:
                raise ValueError("RGenIMAForStaging needs a language model or a config with 'text_config'.")
            language_model = language_model_from_config(config.text_config, attn_implementation)
        elif config.text_config is None:
            config = replace(config, text_config=text_config_of(language_model))
        if config.lora is not None and not _is_peft(language_model):
            from rgenima.model.backbone import add_lora

            language_model = add_lora(language_model, **config.lora)
        if config.freeze_input_embeddings:
            # Structured genotype embeddings stay fixed (see backbone.genotype_embeddings).
            language_model.get_input_embeddings().weight.requires_grad_(False)
        self.config = config
        self.language_model = language_model
        text_hidden = language_model.config.hidden_size
        self.score = nn.Linear(text_hidden, config.n_classes)
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        self.vision_tower = self.multi_modal_projector = None
        if "mri" in config.modalities:
            rit = config.rit
            self.vision_tower = RiT(RiTConfig(**{**rit.to_dict(), "cube_size": rit.pooled_size, "input_pool": 1}))
            self.multi_modal_projector = MultiModalProjector(
                rit.hidden_size, text_hidden, config.projector_hidden_act, rit.n_rois
            )
            # Voxel-wise standardisation of the pooled cubes, fitted on the training fold
            # (fit_input_statistics): a 1-2% regional intensity loss becomes a shift of
            # about one standard deviation instead of a near-invisible rescaling.
            shape = (rit.n_rois,) + (rit.pooled_size,) * 3
            self.register_buffer("cube_mean", torch.zeros(shape))
            self.register_buffer("cube_std", torch.ones(shape))
            if config.intensity_tokens:
                self.roi_embedding = nn.Parameter(torch.randn(rit.n_rois, text_hidden) * 0.02)
                self.intensity_direction = nn.Parameter(torch.randn(rit.n_rois, text_hidden) * 0.02)
                self.register_buffer("intensity_mean", torch.zeros(rit.n_rois))
                self.register_buffer("intensity_std", torch.ones(rit.n_rois))
            if config.rit_gate:
                self.rit_gate = nn.Parameter(torch.zeros(text_hidden))
        if config.covariates:
            n = len(config.covariates)
            self.covariate_embedding = nn.Parameter(torch.randn(n, text_hidden) * 0.02)
            self.covariate_direction = nn.Parameter(torch.randn(n, text_hidden) * 0.02)
            self.register_buffer("covariate_mean", torch.zeros(n))
            self.register_buffer("covariate_std", torch.ones(n))
        if "snp" in config.modalities and config.prompt_length > 0:
            self.prompt_bias = nn.Parameter(torch.full((config.prompt_length,), float(config.prompt_bias_init)))
            if config.prompt_gate and "mri" in config.modalities:
                self.prompt_gate = nn.Parameter(torch.zeros(language_model.config.num_hidden_layers))
            self.set_attention_implementation(_base_attention(language_model))

    def set_attention_implementation(self, implementation: str) -> None:
        """Switch the backbone's attention kernel: "sdpa" (fast) or "eager" (returns
        attention weights); with a prompt bias, its key-bias variant."""
        name = implementation
        if hasattr(self, "prompt_bias"):
            register_key_bias_attention()
            name = KEY_BIAS_ATTENTION[implementation]
        self.language_model.set_attn_implementation(name)

    # -- saving and loading -------------------------------------------------------
    def save_pretrained(self, directory: str | Path, tokenizer=None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer's files.

        Parameters
        ----------
        directory : path
            Created if needed; files already there are overwritten.
        tokenizer : transformers.PreTrainedTokenizerFast, optional
            The tokenizer the model's sequences were built with (``[ROI]``/``[COV]``
            included); read back with :func:`load_tokenizer`.

        Returns
        -------
        Path
            ``directory``, loadable with :meth:`from_pretrained`.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": MODEL_TYPE, "architectures": [type(self).__name__], **self.config.to_dict()}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, attn_implementation: str = "sdpa") -> RGenIMAForStaging:
        """The model saved by :meth:`save_pretrained`, in eval mode, on the CPU.

        The language model is rebuilt from ``text_config`` (and wrapped with LoRA when
        configured) and every weight and buffer comes from ``model.safetensors``.
        Loading leaves torch's global random state as it was.

        Parameters
        ----------
        directory : path
        attn_implementation : {"sdpa", "eager"}
            "eager" to get attention weights.

        Raises
        ------
        FileNotFoundError
            Without ``config.json`` or ``model.safetensors``.
        ValueError
            On an unknown key in ``config.json`` or weights that do not fit the config.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: not a directory written by RGenIMAForStaging.save_pretrained."
                )
        config = RGenIMAConfig.from_dict(json.loads(config_path.read_text()), source=str(config_path))
        if config.text_config is None:
            raise ValueError(f"{config_path}: no 'text_config': the language model cannot be rebuilt.")
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten anyway
            model = cls(config, attn_implementation=attn_implementation)
        missing, unexpected = model.load_state_dict(load_file(str(weights_path)), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights_path} does not fit {config_path}: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}."
            )
        return model.eval()

    # -- inputs -------------------------------------------------------------------
    def pool(self, cubes: torch.Tensor) -> torch.Tensor:
        """(batch, n_rois, D, D, D) cubes -> (batch, n_rois, d, d, d), d = D // input_pool.

        Cubes already pooled (edge d, e.g. from :func:`pool_cubes`) pass through."""
        c = self.config.rit
        sizes = (c.cube_size, c.pooled_size)
        if (
            cubes.dim() != 5
            or cubes.shape[1] != c.n_rois
            or cubes.shape[2] not in sizes
            or len(set(cubes.shape[2:])) != 1
        ):
            raise ValueError(
                f"R-GenIMA expects cubes of shape (batch_size, {c.n_rois}, {c.cube_size}, {c.cube_size}, "
                f"{c.cube_size}); got {tuple(cubes.shape)}."
            )
        x = cubes.float()
        if c.input_pool > 1 and x.shape[2] == c.cube_size:
            b, r = x.shape[:2]
            x = F.avg_pool3d(x.reshape(b * r, 1, *x.shape[2:]), c.input_pool)
            x = x.reshape(b, r, c.pooled_size, c.pooled_size, c.pooled_size)
        return x

    @torch.no_grad()
    def fit_input_statistics(
        self, cubes: torch.Tensor | None = None, covariates: torch.Tensor | None = None, batch_size: int = 256
    ) -> None:
        """Fit the standardisations on the training fold.

        Parameters
        ----------
        cubes : Tensor of shape (n_subjects, n_rois, D, D, D), optional
        covariates : Tensor of shape (n_subjects, n_covariates), optional (NaN: missing)
        """
        if cubes is not None and self.vision_tower is not None:
            pooled = torch.cat([self.pool(cubes[i : i + batch_size]) for i in range(0, len(cubes), batch_size)])
            inside = pooled != 0
            count = inside.sum(0).clamp_min(1)
            mean = (pooled * inside).sum(0) / count
            std = ((((pooled - mean) * inside) ** 2).sum(0) / count).sqrt()
            floor = std[std > 0].median() if (std > 0).any() else torch.tensor(1.0)
            self.cube_mean.copy_(mean)
            self.cube_std.copy_(torch.maximum(std, 0.1 * floor))
            if self.config.intensity_tokens:
                m = regional_intensity(pooled)
                self.intensity_mean.copy_(m.mean(0))
                self.intensity_std.copy_(m.std(0).nan_to_num(1.0).clamp_min(1e-6))
        if covariates is not None and self.config.covariates:
            cov = covariates.float()
            self.covariate_mean.copy_(cov.nanmean(0).nan_to_num(0.0))
            centred = torch.where(cov.isnan(), torch.zeros_like(cov), cov - self.covariate_mean)
            n = (~cov.isnan()).sum(0).clamp_min(2)
            std = ((centred**2).sum(0) / (n - 1)).sqrt()
            self.covariate_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def average_cubes(self) -> torch.Tensor:
        """(n_rois, D, D, D): cubes of the training fold's average anatomy (its pooled mean,
        repeated to the full cube size), zero outside each ROI."""
        p = self.config.rit.input_pool
        return self.cube_mean.repeat_interleave(p, 1).repeat_interleave(p, 2).repeat_interleave(p, 3)

    def get_image_features(self, cubes: torch.Tensor) -> torch.Tensor:
        """ROI tokens: (batch_size, n_rois, D, D, D) -> (batch_size, n_rois, text_hidden_size)."""
        pooled = self.pool(cubes)
        inside = pooled != 0
        standardized = (pooled - self.cube_mean) / self.cube_std
        # Outside-ROI samples stay exactly 0 so that the RiT masks those patches.
        standardized = torch.where(inside, standardized, torch.zeros_like(standardized))
        standardized = torch.where(inside & (standardized == 0), torch.full_like(standardized, 1e-6), standardized)
        if self.vision_tower is None or self.multi_modal_projector is None:
            raise ValueError("this model reads no MRI: it has no ROI tokens.")
        tokens = self.multi_modal_projector(self.vision_tower(standardized))
        if self.config.rit_gate:
            tokens = torch.tanh(self.rit_gate) * tokens
        if self.config.intensity_tokens:
            m = (regional_intensity(pooled) - self.intensity_mean) / self.intensity_std
            tokens = tokens + self.roi_embedding + m.unsqueeze(-1) * self.intensity_direction
        return tokens

    def get_covariate_features(self, covariates: torch.Tensor) -> torch.Tensor:
        """(batch_size, n_covariates) -> (batch_size, n_covariates, text_hidden_size)."""
        z = (covariates.float() - self.covariate_mean) / self.covariate_std
        z = torch.nan_to_num(z, nan=0.0)  # a missing covariate is the training mean
        return self.covariate_embedding + z.unsqueeze(-1) * self.covariate_direction

    @staticmethod
    def _scatter(embeds: torch.Tensor, mask: torch.Tensor, features: torch.Tensor, what: str) -> torch.Tensor:
        n_placeholders = int(mask.sum())
        n_features = features.shape[0] * features.shape[1]
        if n_placeholders != n_features:
            raise ValueError(
                f"{what} features and {what.lower()} tokens do not match: tokens: {n_placeholders}, "
                f"features {n_features}"
            )
        return embeds.masked_scatter(
            mask.unsqueeze(-1).expand_as(embeds), features.reshape(-1, features.shape[-1]).to(embeds.dtype)
        )

    def embed(
        self, input_ids: torch.Tensor, cubes: torch.Tensor | None = None, covariates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token embeddings with the ``[ROI]`` and ``[COV]`` placeholders filled in."""
        embeds = self.embed_dropout(self.language_model.get_input_embeddings()(input_ids))
        roi_mask = input_ids == self.config.roi_token_id
        if self.vision_tower is None:
            if roi_mask.any():
                raise ValueError(f"{int(roi_mask.sum())} [ROI] tokens in a model configured without 'mri'.")
        else:
            if cubes is None:
                raise ValueError("this model reads MRI: 'cubes' is required.")
            embeds = self._scatter(embeds, roi_mask, self.get_image_features(cubes), "Image")
        cov_mask = input_ids == self.config.covariate_token_id
        if self.config.covariates:
            if covariates is None:
                raise ValueError("this model reads covariates: 'covariates' is required.")
            embeds = self._scatter(embeds, cov_mask, self.get_covariate_features(covariates), "Covariate")
        elif cov_mask.any():
            raise ValueError(f"{int(cov_mask.sum())} [COV] tokens in a model configured without covariates.")
        return embeds

    def key_bias(self, prompt_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(batch_size, sequence_length) attention-logit bias: the prompt's learned bias on the
        genetic segment, 0 elsewhere."""
        rank = (prompt_mask.long().cumsum(1) - 1).clamp_min(0)  # index of each token within its segment
        if prompt_mask.any() and int(rank[prompt_mask].max()) >= self.prompt_bias.shape[0]:
            raise ValueError(
                f"a genetic segment has more than {self.prompt_bias.shape[0]} tokens (the model's prompt_length)."
            )
        bias = self.prompt_bias[rank.clamp_max(self.prompt_bias.shape[0] - 1)].to(dtype)
        return torch.where(prompt_mask, bias, torch.zeros_like(bias))

    # -- forward ------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        answer_positions: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        cubes: torch.Tensor | None = None,
        covariates: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        class_weights: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        mixup: tuple[float, torch.Tensor] | None = None,
    ) -> RGenIMAOutput:
        """Stage logits.

        Parameters
        ----------
        input_ids, attention_mask : Tensor of shape (batch_size, sequence_length)
        answer_positions : Tensor of shape (batch_size,)
            Index of each sequence's answer position (right padding allowed).
        position_ids : Tensor of shape (batch_size, sequence_length), optional
            Positions in the full layout (default: 0, 1, 2, ...).
        cubes : Tensor of shape (batch_size, n_rois, D, D, D), optional
        covariates : Tensor of shape (batch_size, n_covariates), optional
        labels : Tensor of shape (batch_size,), optional
        class_weights : Tensor of shape (n_classes,), optional
        prompt_mask : Tensor of bool, shape (batch_size, sequence_length), optional
            The genetic segment (prompt tokens and closing ``[SEP]``): it gets the
            prompt's attention bias (and modality dropout during training).
        inputs_embeds : Tensor, optional
            Precomputed embeddings (bypasses ``embed``; used by Integrated Gradients).
        mixup : (float, Tensor), optional
            Training only: ``(lam, perm)`` replaces every subject's embedded sequence by
            ``lam * own + (1 - lam) * that of subject perm`` (mixup on the input
            embeddings, Zhang et al. 2018); the caller mixes the losses the same way.
            Every sequence of the batch must have the same layout.
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, cubes, covariates)
        if mixup is not None:
            lam, perm = mixup
            if not torch.equal(attention_mask, attention_mask[perm]) or not torch.equal(
                input_ids == self.config.roi_token_id, (input_ids == self.config.roi_token_id)[perm]
            ):
                raise ValueError("mixup needs sequences with the same layout in the whole batch.")
            inputs_embeds = lam * inputs_embeds + (1.0 - lam) * inputs_embeds[perm]
        if self.training and prompt_mask is not None and self.config.modality_dropout > 0 and cubes is not None:
            hide = torch.rand(prompt_mask.shape[0], 1, device=prompt_mask.device) < self.config.modality_dropout
            attention_mask = attention_mask * ~(prompt_mask & hide)
        extra = {}
        if hasattr(self, "prompt_bias") and prompt_mask is not None:
            # Read by the key-bias attention kernels (use_key_bias_attention).
            extra["key_bias"] = self.key_bias(prompt_mask, inputs_embeds.dtype)
            if hasattr(self, "prompt_gate"):
                extra.update(prompt_gate=torch.tanh(self.prompt_gate), prompt_mask=prompt_mask)
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            use_cache=False,
            **extra,
        )
        hidden = out.last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        logits = self.score(hidden[rows, answer_positions])
        loss = None
        if labels is not None:
            weight = class_weights.float() if class_weights is not None else None
            loss = F.cross_entropy(logits.float(), labels, weight=weight)
        return RGenIMAOutput(
            logits=logits,
            loss=loss,
            attentions=out.attentions if output_attentions else None,
            hidden_states=out.hidden_states if output_hidden_states else None,
            inputs_embeds=inputs_embeds,
        )
