"""The reference input of IG and occlusion, and closed prompts.

ROI tokens of the training fold's average anatomy, genotype tokens of the training fold's
most common genotypes (:func:`modal_genotype_ids`), every other token the subject's own
(:func:`reference_embeddings`); :func:`prompt_closed` tells a model whose genetic prompt
cannot change its output.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger("rgenima.explain")


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
