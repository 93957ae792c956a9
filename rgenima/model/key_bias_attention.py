"""Attention kernels with a learned per-key bias, registered with transformers.

R-GenIMA's prompt bias and gated fusion (rgenima.model.modeling_rgenima) act inside every
attention layer of the backbone. The kernels here are transformers' sdpa and LLaMA's eager
attention with an additive bias on the keys of the genetic segment, and, given the
fusion gates, the gated mixture of attention with and without that segment. They are
registered as attention implementations (:data:`KEY_BIAS_ATTENTION`,
:func:`register_key_bias_attention`); the model's forward pass hands them ``key_bias``,
``prompt_gate`` and ``prompt_mask`` through the backbone's keyword arguments.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _add_key_bias(query: torch.Tensor, key: torch.Tensor, key_bias: torch.Tensor, scaling: float | None):
    """Fold an additive per-key logit bias into one extra query/key dimension.

    ``q'.k'_j * scaling = q.k_j * scaling + key_bias_j`` with ``q' = [q, 1]`` and
    ``k'_j = [k_j, key_bias_j / scaling]``: the bias then needs no (batch, heads, L, L)
    float mask, whose gradient would make attention several times slower.

    query, key : (batch, heads, L, head_dim); key_bias : (batch, L).
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    column = (key_bias / scaling).to(key.dtype)[:, None, :, None].expand(-1, key.shape[1], -1, -1)
    query = torch.cat([query, query.new_ones(*query.shape[:-1], 1)], dim=-1)
    return query, torch.cat([key, column], dim=-1), scaling


def _blocked_prompt_bias(key_bias: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """The key bias with the genetic segment hidden (-1e4: exp underflows to exactly 0)."""
    return torch.where(prompt_mask, torch.full_like(key_bias, -1e4), key_bias)


def _sdpa_with_key_bias(module, query, key, value, attention_mask, scaling, key_bias, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, scaling = _add_key_bias(query, key, key_bias, scaling)
    # Value padded to the query/key width: the fused kernels need equal widths.
    head_dim = value.shape[-1]
    value = torch.cat([value, value.new_zeros(*value.shape[:-1], 1)], dim=-1)
    out, weights = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    return out[..., :head_dim].contiguous(), weights


def _key_bias_sdpa(
    module, query, key, value, attention_mask, scaling=None, key_bias=None, prompt_gate=None, prompt_mask=None, **kwargs
):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key_bias is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    if prompt_gate is None:
        return _sdpa_with_key_bias(module, query, key, value, attention_mask, scaling, key_bias, **kwargs)
    # Gated fusion: attention without the genetic segment, plus tanh(gate) times what
    # attending to it changes (out = hidden + g * (all - hidden)).
    gate = prompt_gate[module.layer_idx]
    hidden, weights = _sdpa_with_key_bias(
        module, query, key, value, attention_mask, scaling, _blocked_prompt_bias(key_bias, prompt_mask), **kwargs
    )
    if not gate.requires_grad and float(gate) == 0.0:
        return hidden, weights  # a closed gate (inference): the prompt changes nothing
    out, weights = _sdpa_with_key_bias(module, query, key, value, attention_mask, scaling, key_bias, **kwargs)
    return hidden + gate.to(out.dtype) * (out - hidden), weights


def _key_bias_eager(
    module,
    query,
    key,
    value,
    attention_mask,
    scaling=None,
    dropout=0.0,
    key_bias=None,
    prompt_gate=None,
    prompt_mask=None,
    **kwargs,
):
    """LLaMA's eager attention (attention weights returned) with the per-key bias; with a
    prompt gate, the returned weights are the gated mixture that the output uses."""
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = getattr(module, "num_key_value_groups", 1)

    def softmax_weights(bias):
        q, k, s = (query, key, scaling) if bias is None else _add_key_bias(query, key, bias, scaling)
        s = q.shape[-1] ** -0.5 if s is None else s
        w = torch.matmul(q, repeat_kv(k, groups).transpose(2, 3)) * s
        if attention_mask is not None:
            w = w + attention_mask[:, :, :, : k.shape[-2]]
        return F.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)

    weights = softmax_weights(key_bias)
    if key_bias is not None and prompt_gate is not None:
        gate = prompt_gate[module.layer_idx].to(weights.dtype)
        hidden = softmax_weights(_blocked_prompt_bias(key_bias, prompt_mask))
        weights = hidden + gate * (weights - hidden)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, repeat_kv(value, groups)).transpose(1, 2).contiguous(), weights


#: Attention implementations of a backbone whose genetic segment gets a learned bias.
KEY_BIAS_ATTENTION = {"sdpa": "rgenima_sdpa", "eager": "rgenima_eager"}


def register_key_bias_attention() -> None:
    """Register the key-bias attention kernels with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register("rgenima_sdpa", _key_bias_sdpa)
    AttentionInterface.register("rgenima_eager", _key_bias_eager)
    AttentionMaskInterface.register("rgenima_sdpa", sdpa_mask)
    AttentionMaskInterface.register("rgenima_eager", eager_mask)
