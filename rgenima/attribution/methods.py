"""Token-level attribution methods for one batch of R-GenIMA inputs.

Each function takes a model in eval mode and one batch as rgenima.train builds it
(``input_ids``, ``attention_mask``, ``answer_positions``, ``position_ids``,
``prompt_mask``, ``cubes``, ``covariates``) and returns a score per input token or per
feature; :mod:`rgenima.explain` aggregates them to ROIs, genes and SNPs, runs them on the
held-out subjects of every fold and checks them.

Methods
-------
Raw attention and rollout (:func:`answer_attention`)
    What the answer position attends to, and Abnar & Zuidema's rollout. Attention
    weights say where information is *read*, not how it changes the prediction (Jain &
    Wallace 2019): they are kept as what they are.
Gradient-weighted relevance (:func:`gradient_weighted_relevance`)
    Chefer, Gur & Wolf (CVPR 2021; the gradient-weighted rule of their ICCV 2021
    follow-up for self-attention): per layer ``A_bar = mean_heads((dy/dA * A)^+)``,
    ``R = I``, ``R <- R + A_bar R`` from the first layer to the last; a token's score is
    the answer position's row of ``R``.
Integrated Gradients (:func:`integrated_gradients`)
    Of one output per subject (the true class's logit by default) with respect to the
    input embeddings, from the reference input of :func:`reference_embeddings`.
Atrophy sensitivity (:func:`atrophy_sensitivity`)
    The derivative of the stage-vs-NC logit difference with respect to a uniform
    intensity loss in each ROI: which regions' atrophy drives a subject's stage.
Occlusion (:func:`occlusion_logits`)
    The logits when one feature (the token of one ROI, the tokens of one gene) is
    replaced by its reference: the training fold's average anatomy for a ROI, the
    training fold's most common genotypes for a gene. Every output of the ablated
    forward pass is kept, so one pass gives both the change of the true class's
    log-probability and of the stage-vs-NC logit difference.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

logger = logging.getLogger("rgenima.explain")

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
# Reference input
# ---------------------------------------------------------------------------------
@torch.no_grad()
def roi_baseline_tokens(model) -> torch.Tensor | None:
    """(n_rois, hidden) ROI tokens of the average training anatomy: cubes equal to the
    fold's ``cube_mean`` (zero after standardisation) inside every ROI; None without MRI."""
    if model.vision_tower is None:
        return None
    return model.get_image_features(model.average_cubes().unsqueeze(0))[0]


@torch.no_grad()
def reference_embeddings(model, batch: dict, reference_ids: torch.Tensor) -> torch.Tensor:
    """The reference input of IG and occlusion, (B, L, hidden).

    ROI tokens are those of the average training anatomy (:func:`roi_baseline_tokens`);
    every other token is embedded from ``reference_ids``, the input ids with each
    subject's genotype tokens replaced by the training fold's most common genotypes
    (rgenima.explain.modal_genotype_ids); covariate and text tokens are the subject's own.
    """
    embeds = model.embed(reference_ids, batch.get("cubes"), batch.get("covariates"))
    roi_tokens = roi_baseline_tokens(model)
    if roi_tokens is not None:
        roi_mask = reference_ids == model.config.roi_token_id
        embeds[roi_mask] = roi_tokens.to(embeds.dtype).repeat(embeds.shape[0], 1)
    return embeds


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


# ---------------------------------------------------------------------------------
# Token maps: which tokens belong to which ROI, gene and SNP
# ---------------------------------------------------------------------------------
def span_membership(spans_per_subject, names: list[str], kind: str, length: int) -> np.ndarray:
    """(n, len(names), length) 0/1 float32 matrix: token t belongs to span ``names[j]``."""
    index = {n: j for j, n in enumerate(names)}
    out = np.zeros((len(spans_per_subject), len(names), length), dtype=np.float32)
    for i, spans in enumerate(spans_per_subject):
        for s in spans:
            if s.kind != kind:
                continue
            if s.name not in index:
                raise ValueError(f"{kind} {s.name!r} of a prompt is not in the prepared SNP table (snps.tsv).")
            out[i, index[s.name], s.start : s.end] = 1.0
    return out


def _aggregate(scores: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """(B, L) token scores, (B, K, L) membership -> (B, K) span sums, NaN for absent spans."""
    out = torch.bmm(member, scores.unsqueeze(-1)).squeeze(-1)
    return torch.where(member.sum(-1) > 0, out, torch.full_like(out, float("nan")))


# ---------------------------------------------------------------------------------
# Reference genotypes and closed prompts
# ---------------------------------------------------------------------------------
def modal_dosage(dosage: np.ndarray) -> np.ndarray:
    """(n_snps,) most common dosage (0, 1 or 2) of each SNP over the given subjects'
    (n_subjects, n_snps) calls, missing calls ignored; ties go to the lower dosage."""
    counts = np.stack([(np.round(dosage) == d).sum(0) for d in (0, 1, 2)])
    return counts.argmax(0).astype(np.float32)


def modal_genotype_ids(tokenizer, seq, data, train_idx: np.ndarray) -> np.ndarray:
    """Input ids with every genotype replaced by the training subjects' most common one.

    The reference of a gene for IG and occlusion: the prompt a subject would have with the
    training fold's modal genotype at every SNP (:func:`modal_dosage`), token for token. A
    SNP whose modal tokens differ in number from the subject's (a subword tokenizer can
    split genotypes unevenly) gets ``[PAD]`` tokens instead.

    Returns
    -------
    ndarray of shape (n_subjects, sequence_length)
    """
    from rgenima.data.prompt import build_prompt, prompt_layout, token_spans

    ids = seq.input_ids.copy()
    if not any(s.kind == "snp" for spans in seq.spans for s in spans):
        return ids
    order = [sp["name"] for sp in data.prompts[0]["spans"] if sp["kind"] == "gene"]
    prompt = build_prompt(modal_dosage(data.dosage[train_idx]), data.snps, prompt_layout(data.snps, order))
    enc = tokenizer(prompt.text, add_special_tokens=False, return_offsets_mapping=True)
    modal = {
        s.name: enc["input_ids"][s.start : s.end]
        for s in token_spans(enc["offset_mapping"], prompt.spans)
        if s.kind == "snp"
    }
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    uneven = 0
    for i, spans in enumerate(seq.spans):
        for s in spans:
            if s.kind == "snp" and s.name in modal:
                tokens = modal[s.name]
                if len(tokens) == s.end - s.start:
                    ids[i, s.start : s.end] = tokens
                else:
                    ids[i, s.start : s.end] = pad
                    uneven += 1
    if uneven:
        logger.info("%d SNP spans tokenised unevenly: their reference is [PAD]", uneven)
    return ids


def prompt_closed(model) -> bool:
    """Whether the genetic prompt cannot change the model's output: a two-modality model
    whose fusion gates are all exactly closed (tanh(g) = 0, e.g. a fold that kept its
    MRI-only start). Its genes and SNPs get an attribution of exactly 0."""
    gate = getattr(model, "prompt_gate", None)
    return gate is not None and bool((torch.tanh(gate.detach()) == 0).all())


# ---------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------
def _feature_mask(length: int, roi_positions, gene_member: torch.Tensor) -> torch.Tensor:
    """(B, L) feature index of every token: ROI r -> r, gene g -> R + g, other -> -1."""
    b, n_genes = gene_member.shape[0], gene_member.shape[1]
    mask = torch.full((b, length), -1, dtype=torch.long, device=gene_member.device)
    n_r = 0 if roi_positions is None else len(roi_positions)
    if n_r:
        mask[:, roi_positions] = torch.arange(n_r, device=mask.device)
    if n_genes:
        in_gene = gene_member.sum(1) > 0
        mask = torch.where(in_gene, n_r + gene_member.argmax(1), mask)
    return mask


def explain_batch(
    model,
    batch: dict,
    roi_positions,
    gene_member,
    snp_member,
    ig_steps: int,
    target: torch.Tensor | None = None,
    reference_ids: torch.Tensor | None = None,
    links: bool = False,
    timings: dict | None = None,
) -> dict[str, np.ndarray]:
    """Every score of one batch of subjects for one model.

    Parameters
    ----------
    model : RGenIMAForStaging
        In eval mode, loaded with ``attn_implementation="eager"``.
    batch : dict of Tensor
        ``input_ids``, ``attention_mask``, ``answer_positions``, ``position_ids``,
        ``prompt_mask`` and ``cubes`` (with MRI), as rgenima.train builds them, on the
        model's device.
    roi_positions : Tensor of shape (R,) or None
    gene_member, snp_member : Tensor of shape (B, G, L) and (B, S, L)
        Span membership (:func:`span_membership`).
    ig_steps : int
    target : Tensor of shape (B,), optional
        Class explained by relevance, IG and occlusion; default: the predicted class.
    reference_ids : Tensor of shape (B, L), optional
        Input ids of the reference (:func:`modal_genotype_ids`); default ``input_ids``.
    links : bool
        Also compute the occlusion ROI x gene link map (``roi_gene__occlusion``; G + 1
        forward and backward passes per subject).
    timings : dict, optional
        Seconds spent are added under each method's name.

    Returns
    -------
    dict of ndarray
        ``{level}__{score}`` for level in roi, gene, snp and the token-level scores
        (``attention``, ``rollout``, ``relevance``, ``integrated_gradients``,
        ``integrated_gradients_l2``, ``attention_L{l}``); ``roi__`` and ``gene__`` for
        the feature-level ``occlusion`` and ``occlusion_contrast``; the ROI x gene
        arrays; ``pred``, ``target``, ``proba`` and the IG bookkeeping.
    """
    timings = {} if timings is None else timings

    def tick(name: str, t0: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    out: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    set_attention(model, "eager")
    with torch.no_grad():
        res = model(**batch, output_attentions=True)
    if not res.attentions or res.attentions[0] is None:
        raise RuntimeError("the backbone returned no attention weights: load it with attn_implementation='eager'.")
    per_layer, rollout, mean = answer_attention(res.attentions, batch["answer_positions"])
    res.attentions = None
    logits = res.logits.float()
    b, length = batch["input_ids"].shape
    scores = {f"attention_L{l}": per_layer[:, l] for l in range(per_layer.shape[1])}
    scores["attention"] = per_layer.mean(1)
    scores["rollout"] = rollout
    n_r = 0 if roi_positions is None else len(roi_positions)
    n_g = gene_member.shape[1]
    if n_r and n_g:
        gm = gene_member / gene_member.sum(-1, keepdim=True).clamp_min(1)
        to_roi = mean[:, :, roi_positions]  # (B, L, R): attention of each token to each ROI
        from_roi = mean[:, roi_positions, :]  # (B, R, L): attention of each ROI to each token
        absent = (gene_member.sum(-1) == 0).unsqueeze(1)  # (B, 1, G)
        nan = float("nan")
        out["roi_gene__gene_to_roi"] = torch.bmm(gm, to_roi).transpose(1, 2).masked_fill(absent, nan)
        out["roi_gene__roi_to_gene"] = torch.bmm(from_roi, gene_member.transpose(1, 2)).masked_fill(absent, nan)
    else:
        out["roi_gene__gene_to_roi"] = torch.zeros(b, n_r, n_g)
        out["roi_gene__roi_to_gene"] = torch.zeros(b, n_r, n_g)
    del mean
    tick("attention", t0)

    pred = logits.argmax(-1)
    target = pred if target is None else target.to(pred.device)
    rows = torch.arange(b, device=pred.device)
    embeds = res.inputs_embeds.detach()

    t0 = time.perf_counter()
    scores["relevance"] = relevance(model, batch, embeds, target)
    tick("relevance", t0)

    t0 = time.perf_counter()
    reference = reference_embeddings(model, batch, batch["input_ids"] if reference_ids is None else reference_ids)
    set_attention(model, "sdpa")  # IG needs no attention weights: the fused kernel is faster
    try:
        mask, answer = batch["attention_mask"], batch["answer_positions"]
        positions, prompt = batch.get("position_ids"), batch.get("prompt_mask")
        attr, delta = integrated_gradients(
            model,
            embeds,
            reference,
            mask,
            answer,
            target,
            n_steps=ig_steps,
            internal_batch_size=chunk_size(length, b * ig_steps),
            position_ids=positions,
            prompt_mask=prompt,
        )
        with torch.no_grad():
            f_base = model(
                None, mask, answer, position_ids=positions, prompt_mask=prompt, inputs_embeds=reference
            ).logits.float()
    finally:
        set_attention(model, "eager")
    scores["integrated_gradients"] = attr.sum(-1)
    scores["integrated_gradients_l2"] = attr.norm(dim=-1)
    out.update(
        ig_logit_input=logits[rows, target],
        ig_logit_baseline=f_base[rows, target],
        ig_total=attr.sum(dim=(1, 2)),
        ig_delta=delta,
    )
    tick("integrated_gradients", t0)

    t0 = time.perf_counter()
    occluded = occlusion_logits(
        model, batch, embeds, reference, _feature_mask(length, roi_positions, gene_member), n_r + n_g
    )
    log_probability, contrast = occlusion_scores(logits, occluded, target)
    gene_absent = gene_member.sum(-1) == 0  # (B, G)
    for name, value in (("occlusion", log_probability), ("occlusion_contrast", contrast)):
        out[f"roi__{name}"] = value[:, :n_r]
        out[f"gene__{name}"] = value[:, n_r:].masked_fill(gene_absent, float("nan"))
    tick("occlusion", t0)
    if n_r:  # ROI level only: the cubes carry the intensities
        t0 = time.perf_counter()
        out["roi__atrophy_sensitivity"] = atrophy_sensitivity(model, batch, target)
        tick("atrophy_sensitivity", t0)
    if links:
        t0 = time.perf_counter()
        if n_r and n_g:
            link = roi_relevance_under_gene_occlusion(
                model, batch, embeds, reference, roi_positions, gene_member, target
            )
            out["roi_gene__occlusion"] = link.masked_fill(gene_absent.unsqueeze(1), float("nan"))
        else:
            out["roi_gene__occlusion"] = torch.zeros(b, n_r, n_g)
        tick("links", t0)

    for name, s in scores.items():
        s = s.float()
        out[f"roi__{name}"] = s[:, roi_positions] if n_r else s[:, :0]
        out[f"gene__{name}"] = _aggregate(s, gene_member)
        out[f"snp__{name}"] = _aggregate(s, snp_member)
    out["pred"], out["target"], out["proba"] = pred, target, torch.softmax(logits, -1)
    return {k: v.detach().cpu().numpy() for k, v in out.items()}
