"""Every attribution score of one batch, aggregated to ROIs, genes and SNPs.

:func:`explain_batch` runs every method of :mod:`rgenima.attribution.methods` on one batch
and sums token-level scores over the token spans of each gene and SNP
(:func:`span_membership`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rgenima.attribution.methods import (
    answer_attention,
    atrophy_sensitivity,
    chunk_size,
    integrated_gradients,
    occlusion_logits,
    occlusion_scores,
    relevance,
    roi_relevance_under_gene_occlusion,
    set_attention,
)
from rgenima.attribution.reference_input import reference_embeddings


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
