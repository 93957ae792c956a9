"""The attribution methods on one batch of R-GenIMA inputs.

Attention and rollout, gradient-weighted relevance, Integrated Gradients, atrophy
sensitivity and occlusion (see :mod:`rgenima.attribution`). Each function takes a model
in eval mode and one batch (or its embedded input) and returns a score per input token or
per feature; the helpers at the top chunk the interpolated or occluded sequences and
switch the attention kernel a method needs.
"""

from __future__ import annotations

import torch

#: Tokens per forward or backward chunk: about 0.6 GB of activations for the default
#: backbone on CPU.
CHUNK_TOKENS = 49152


def chunk_size(length: int, total: int) -> int:
    """Sequences of ``length`` tokens per chunk (about :data:`CHUNK_TOKENS`), 1 to ``total``."""
    return max(1, min(total, CHUNK_TOKENS // max(length, 1)))


def set_attention(model, implementation: str) -> None:
    """Switch the backbone's attention kernel ("eager" or "sdpa"); a backbone that cannot
    switch keeps its own (eager, as loaded: slower, same values)."""
    try:
        model.set_attention_implementation(implementation)
    except (ValueError, ImportError, AttributeError):
        pass


def _forward_args(batch: dict) -> dict:
    return {k: batch.get(k) for k in ("attention_mask", "answer_positions", "position_ids", "prompt_mask")}


# ---------------------------------------------------------------------------------
# Attention, rollout, gradient-weighted relevance
# ---------------------------------------------------------------------------------
def answer_attention(attentions, answer_positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attention from the answer position, per layer and rolled out.

    Parameters
    ----------
    attentions : sequence of Tensor of shape (B, heads, L, L)
        One per layer, rows = queries (``output_attentions=True``, eager kernel).
    answer_positions : Tensor of shape (B,)

    Returns
    -------
    per_layer : Tensor of shape (B, n_layers, L)
        Head-averaged attention of the answer position to every token.
    rollout : Tensor of shape (B, L)
        Answer row of ``A'_L ... A'_1`` with ``A'_l = rownorm(0.5 * A_l + 0.5 * I)``
        (Abnar & Zuidema 2020); a probability vector.
    mean : Tensor of shape (B, L, L)
        Attention averaged over heads and layers (for ROI x gene blocks).
    """
    rows = torch.arange(answer_positions.shape[0], device=answer_positions.device)
    avg = [a.float().mean(dim=1) for a in attentions]  # (B, L, L) per layer
    per_layer = torch.stack([a[rows, answer_positions] for a in avg], dim=1)
    # v^T (A'_L ... A'_1) computed right to left as a row vector: O(L^2) per layer.
    v = torch.zeros_like(per_layer[:, 0])
    v[rows, answer_positions] = 1.0
    for a in reversed(avg):
        s = 0.5 * a.sum(-1) + 0.5  # row sums of 0.5 A + 0.5 I
        w = v / s
        v = 0.5 * torch.bmm(w.unsqueeze(1), a).squeeze(1) + 0.5 * w
    mean = torch.stack(avg).mean(0)
    return per_layer, v, mean


def gradient_weighted_relevance(attentions, gradients, answer_positions: torch.Tensor) -> torch.Tensor:
    """Chefer et al.'s relevance of every token for the answer position.

    Parameters
    ----------
    attentions, gradients : sequence of Tensor of shape (B, heads, L, L)
        Per layer (first to last), the attention weights and the gradient of the
        explained output with respect to them.
    answer_positions : Tensor of shape (B,)

    Returns
    -------
    Tensor of shape (B, L)
        The answer row of ``R = (I + A_bar_L) ... (I + A_bar_1)``, ``A_bar_l =
        mean_heads(max(dy/dA_l * A_l, 0))``: the relevance map of Chefer, Gur & Wolf
        (2021) built by ``R <- R + A_bar_l R`` from ``R = I``. Computed right to left as
        a row vector (O(L^2) per layer instead of O(L^3)). The answer's own entry
        includes the identity's 1.
    """
    rows = torch.arange(answer_positions.shape[0], device=answer_positions.device)
    v = torch.zeros(answer_positions.shape[0], attentions[0].shape[-1], device=attentions[0].device)
    v[rows, answer_positions] = 1.0
    for a, g in zip(reversed(attentions), reversed(gradients)):
        cam = (g.float() * a.float()).clamp_min(0).mean(dim=1)  # (B, L, L)
        v = v + torch.bmm(v.unsqueeze(1), cam).squeeze(1)
    return v


def relevance(model, batch: dict, inputs_embeds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient-weighted relevance (B, L) of ``logits[:, target]`` (eager attention)."""
    set_attention(model, "eager")
    embeds = inputs_embeds.detach().requires_grad_(True)  # puts the attention weights in the graph
    with torch.enable_grad():
        res = model(None, **_forward_args(batch), output_attentions=True, inputs_embeds=embeds)
        if not res.attentions or res.attentions[0] is None:
            raise RuntimeError("the backbone returned no attention weights: load it with attn_implementation='eager'.")
        rows = torch.arange(target.shape[0], device=target.device)
        grads = torch.autograd.grad(res.logits.float()[rows, target].sum(), res.attentions, allow_unused=True)
    grads = [torch.zeros_like(a) if g is None else g for a, g in zip(res.attentions, grads)]
    return gradient_weighted_relevance([a.detach() for a in res.attentions], grads, batch["answer_positions"])


# ---------------------------------------------------------------------------------
# Integrated Gradients
# ---------------------------------------------------------------------------------
def integrated_gradients(
    model,
    inputs_embeds,
    baselines,
    attention_mask,
    answer_positions,
    target,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    position_ids=None,
    prompt_mask=None,
):
    """IG of ``logits[:, target]`` w.r.t. the input embeddings (captum, Gauss-Legendre).

    ``position_ids`` and ``prompt_mask`` (batch_size, sequence_length), when given, are
    passed to the model as in training (layout positions, the prompt's attention bias).

    Returns
    -------
    attributions : Tensor of shape (B, L, hidden)
    delta : Tensor of shape (B,)
        captum's convergence delta ``sum(attributions) - (f(input) - f(baseline))``.
    """
    from captum.attr import IntegratedGradients

    def forward(embeds, mask, answer, positions, prompt):
        return model(
            None, mask, answer, position_ids=positions, prompt_mask=prompt, inputs_embeds=embeds
        ).logits.float()

    ig = IntegratedGradients(forward)
    attr, delta = ig.attribute(
        inputs_embeds,
        baselines=baselines,
        target=target,
        additional_forward_args=(attention_mask, answer_positions, position_ids, prompt_mask),
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return attr.detach(), delta.detach()


# ---------------------------------------------------------------------------------
# Atrophy sensitivity
# ---------------------------------------------------------------------------------
def atrophy_sensitivity(model, batch: dict, target: torch.Tensor, reference_class: int = 0) -> torch.Tensor:
    """How much a uniform loss of intensity in each ROI moves a subject from NC to its stage.

    For ``f = logit_target - logit_reference`` and the subject's cubes ``x``, the score of
    ROI ``r`` is ``-d f / d eps`` for ``x_v -> (1 + eps) x_v`` inside the ROI, i.e.
    ``-sum_{v in r} x_v df/dx_v`` (gradient x input at the voxel level, summed per ROI):
    positive when atrophy of the region (lower intensity) raises the stage against NC, the
    sign a regional signature of atrophy needs. Unlike occlusion, it keeps the direction
    of a region's effect: after intensity normalisation a model can also read *brighter*
    unaffected regions as evidence of a stage, and occlusion scores those alike.
    0 for subjects of the reference class.

    Returns
    -------
    Tensor of shape (B, n_rois)
    """
    set_attention(model, "sdpa")
    cubes = batch["cubes"].float().detach().requires_grad_(True)
    rest = {k: v for k, v in batch.items() if k != "cubes"}
    rows = torch.arange(target.shape[0], device=target.device)
    with torch.enable_grad():
        logits = model(**rest, cubes=cubes).logits.float()
        f = (logits[rows, target] - logits[:, reference_class]).sum()
        (grad,) = torch.autograd.grad(f, cubes)
    set_attention(model, "eager")
    return -(grad * cubes).sum(dim=(2, 3, 4)).detach()


# ---------------------------------------------------------------------------------
# Occlusion
# ---------------------------------------------------------------------------------
@torch.no_grad()
def occlusion_logits(
    model,
    batch: dict,
    inputs_embeds: torch.Tensor,
    reference: torch.Tensor,
    feature_mask: torch.Tensor,
    n_features: int,
) -> torch.Tensor:
    """Logits with each feature replaced by its reference, one feature at a time.

    Parameters
    ----------
    model : RGenIMAForStaging
    batch : dict of Tensor
        The batch's forward arguments (``attention_mask``, ``answer_positions``,
        ``position_ids``, ``prompt_mask``).
    inputs_embeds, reference : Tensor of shape (B, L, hidden)
        The input and its reference (:func:`reference_embeddings`).
    feature_mask : Tensor of int, shape (B, L)
        Feature index of every token (0 .. n_features - 1), -1 for tokens that are never
        replaced. A feature may cover several tokens, and any subset of subjects.
    n_features : int

    Returns
    -------
    Tensor of shape (B, n_features, n_classes)
        ``logits`` of every subject with feature ``f`` replaced. A feature a subject
        lacks gives that subject's unchanged logits.

    Notes
    -----
    Captum's ``FeatureAblation`` computes the same differences for one output column per
    subject; keeping every logit of each ablated pass gives several targets (the true
    class's log-probability and the stage-vs-NC contrast) from one set of forward passes.
    ``tests/test_attribution.py`` checks the two against each other.
    """
    set_attention(model, "sdpa")
    b, length = feature_mask.shape
    per_pass = max(1, chunk_size(length, b * n_features) // b)  # features per forward pass
    args = _forward_args(batch)
    out = []
    for start in range(0, n_features, per_pass):
        features = torch.arange(start, min(start + per_pass, n_features), device=feature_mask.device)
        p = len(features)
        replace = (feature_mask.unsqueeze(1) == features.view(1, p, 1)).unsqueeze(-1)  # (B, p, L, 1)
        x = torch.where(replace, reference.unsqueeze(1), inputs_embeds.unsqueeze(1)).reshape(b * p, length, -1)
        rep = {k: None if v is None else v.repeat_interleave(p, dim=0) for k, v in args.items()}
        out.append(model(None, inputs_embeds=x, **rep).logits.float().reshape(b, p, -1))
    set_attention(model, "eager")
    return torch.cat(out, dim=1) if out else inputs_embeds.new_zeros(b, 0, model.config.n_classes)


def occlusion_scores(
    logits: torch.Tensor, occluded: torch.Tensor, target: torch.Tensor, reference_class: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion effects from :func:`occlusion_logits`.

    Parameters
    ----------
    logits : Tensor of shape (B, C)
        Logits of the intact input.
    occluded : Tensor of shape (B, F, C)
    target : Tensor of shape (B,)
        Class explained (the true stage).
    reference_class : int
        The class of the contrast (NC).

    Returns
    -------
    log_probability : Tensor of shape (B, F)
        ``log p(target | x) - log p(target | x with f replaced)``: how much the feature
        supports the target class.
    contrast : Tensor of shape (B, F)
        Drop of the logit difference ``logit_target - logit_reference`` when the feature
        is replaced: how much the feature moves the subject from the reference stage to
        its own; 0 for subjects of the reference class.
    """
    rows = torch.arange(target.shape[0], device=target.device)
    full = torch.log_softmax(logits, -1)[rows, target]
    ablated = torch.log_softmax(occluded, -1)[rows, :, target]
    log_probability = full.unsqueeze(1) - ablated
    diff = logits[rows, target] - logits[:, reference_class]
    ablated_diff = occluded[rows, :, target] - occluded[:, :, reference_class]
    return log_probability, diff.unsqueeze(1) - ablated_diff


def roi_relevance_under_gene_occlusion(
    model,
    batch: dict,
    inputs_embeds: torch.Tensor,
    reference: torch.Tensor,
    roi_positions: torch.Tensor,
    gene_member: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """How replacing each gene changes each ROI's relevance: the ROI x gene link map.

    A ROI's relevance is its gradient x (input - reference) for the target's logit (a
    first-order occlusion estimate; sum over the hidden dimension). The link of ROI
    ``r`` and gene ``g`` is ``relevance_r(x) - relevance_r(x with g replaced)``: non-zero
    only when what the model reads from the ROI depends on the gene.

    Parameters
    ----------
    roi_positions : Tensor of shape (R,)
    gene_member : Tensor of shape (B, G, L)
        Span membership of the genes.
    target : Tensor of shape (B,)

    Returns
    -------
    Tensor of shape (B, R, G)
    """
    set_attention(model, "sdpa")
    rows = torch.arange(target.shape[0], device=target.device)
    args = _forward_args(batch)

    def roi_relevance(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logit = model(None, inputs_embeds=x, **args).logits.float()[rows, target].sum()
            (grad,) = torch.autograd.grad(logit, x)
        return (grad[:, roi_positions] * (x - reference)[:, roi_positions].detach()).sum(-1)  # (B, R)

    base = roi_relevance(inputs_embeds)
    out = torch.zeros(target.shape[0], len(roi_positions), gene_member.shape[1], device=inputs_embeds.device)
    for g in range(gene_member.shape[1]):
        replace = gene_member[:, g].unsqueeze(-1) > 0
        if not replace.any():
            continue
        out[:, :, g] = base - roi_relevance(torch.where(replace, reference, inputs_embeds))
    set_attention(model, "eager")
    return out
