"""Attributions of trained R-GenIMA models: which ROIs, genes and SNPs drive each prediction.

Every subject is explained by the model of the cross-validation fold in which it was a
**test** subject (``RUNDIR/folds.csv``), so no attribution comes from a model that saw
the subject during training; :func:`explain_run` checks this against each fold's
``predictions.csv`` before computing anything.

Methods (``METHODS``), each a score per input token, aggregated to ROIs (one token each),
SNPs (the tokens of the SNP's span) and genes (the tokens of the gene's span):

``attention``
    Attention weight from the **answer position** (where the class is read) to each
    token, averaged over heads, then over layers. Per layer: ``attention_L{l}``. Rows of
    a softmax: over ROI and prompt tokens they sum to at most 1 (the rest goes to
    [BOS], [SEP] and the question).
``rollout``
    Attention rollout (Abnar & Zuidema 2020): per layer ``A' = 0.5 * A + 0.5 * I`` with
    ``A`` the head-averaged attention, rows renormalised, multiplied through the layers
    (``A'_L ... A'_1``); the answer position's row is a probability vector over tokens.
``integrated_gradients``
    Integrated Gradients (Sundararajan et al. 2017; captum, Gauss-Legendre rule with
    ``ig_steps`` points) of the **logit of the predicted class** (``ig_target="pred"``;
    ``"true"`` takes the true class) with respect to the input embeddings (the
    ``inputs_embeds`` of the backbone). Baseline: ROI tokens are replaced by the ROI
    tokens of the *average training anatomy* (the fold's ``cube_mean`` inside each
    ROI, i.e. a standardised cube of zeros, run through the RiT and projector), prompt
    tokens by the embedding of the ``[PAD]`` token; every other token ([BOS], [SEP],
    question, padding) keeps its own embedding, so it gets no attribution. A token's
    score is the **signed sum over the hidden dimension** of its attributions (the main
    score: by completeness, the scores of a subject sum to ``logit(input) -
    logit(baseline)`` up to the convergence delta); the L2 norm over the hidden
    dimension is stored too (``integrated_gradients_l2``, sums of token norms).

A gene's span runs from its symbol to its last genotype, so it contains its SNPs' spans;
with the default tokenizer (one token per genotype, the symbol riding on the first
SNP's token) a gene's score is exactly the sum of its SNPs' scores. With a subword
tokenizer the gene span also holds the symbol and separator tokens.

ROI x gene association (``roi_gene__*``), from the attention matrices averaged over
heads and layers, both directions:

- ``gene_to_roi[r, g]``: mean over the tokens of gene ``g``'s span of their attention to
  ROI token ``r``;
- ``roi_to_gene[r, g]``: sum over gene ``g``'s span of the attention from ROI token ``r``.

With the default causal (LLaMA) backbone the ROI tokens come first, so a ROI token
cannot attend to a later gene token: ``roi_to_gene`` is structurally zero and
``gene_to_roi`` is the informative direction. A bidirectional user backbone fills both.

Sanity check (Adebayo et al. 2018, model-parameter randomisation): the same
attributions are computed with a copy of each fold model whose **trainable** parameters
are re-initialised (fresh RiT, projector and head as the constructor draws them; the
default backbone drawn afresh from its config; LoRA adapters afresh for a pretrained
backbone), keeping the frozen genotype input embeddings, the frozen pretrained weights
and the cube statistics; the randomised model explains the same class as the trained
one. ``sanity.json`` reports, per method, the Spearman rank correlation between trained
and randomised scores of each subject (median and IQR over subjects). Attributions that
reflect what the model learned should correlate weakly with those of the randomised
model. The check runs on ``sanity_subjects`` subjects (default 64, a seeded draw with
equal numbers per fold; None: all), since it costs as much per subject as the main run.

With a causal backbone, rollout is shaped by token position (every later token attends
to the earlier ones), so it can rank ROIs alike for trained and randomised models: read
its row of ``sanity.json`` before trusting it.

Cost. IG takes ``ig_steps`` forward and backward passes of the whole sequence per
subject (on the sdpa kernel; the attention pass uses eager) and dominates. Measured at
the default size (400 subjects, 765 tokens, 2 layers, ``ig_steps=32``, 64 sanity
subjects): on 2 otherwise idle CPU cores about 0.05 s per subject for attention and
0.6 s for IG, about 5 minutes in all; on one H200 GPU about 20 s. ``explain.json``
records the timings of each run.

Outputs, in ``RUNDIR/explain/<configuration>/`` (written atomically):

``attributions.npz`` (``np.load(..., allow_pickle=False)``)
    ``ptid`` (n,) str; ``label`` (n,) int, true stage index (rgenima.STAGES order NC, SMC,
    MCI, AD); ``pred`` (n,) int; ``target`` (n,) int, class whose logit IG explains;
    ``proba`` (n, 4); ``fold`` (n,) int, the fold whose model explained the subject
    (its test fold); ``roi_names`` (R,); ``gene_names`` (G,); ``snp_names`` (S,);
    ``snp_gene`` (S,); for every method ``m`` in ``METHODS``, ``integrated_gradients_l2``
    and ``attention_L{l}`` (l = 0 .. n_layers - 1): ``roi__{m}`` (n, R), ``gene__{m}``
    (n, G), ``snp__{m}`` (n, S), NaN where a subject's prompt lacks the gene or SNP;
    ``roi_gene__gene_to_roi`` and ``roi_gene__roi_to_gene`` (n, R, G); the randomised
    model's ``random__roi__{m}``, ``random__gene__{m}``, ``random__snp__{m}`` for ``m``
    in ``METHODS`` (NaN rows for subjects outside the sanity subset); the per-subject
    correlations ``sanity__{roi|gene}__{m}`` (n,), NaN outside the subset; and
    the IG bookkeeping ``ig_logit_input``, ``ig_logit_baseline``, ``ig_total`` (sum of
    all token scores) and ``ig_delta`` (captum's convergence delta), each (n,).
    An SNP-only configuration has R = 0 (``roi_names`` empty, ROI arrays of shape (n, 0)
    and (n, 0, G)); an MRI-only configuration has G = S = 0 (likewise for genes and SNPs).
``sanity.json``
    Spearman correlations trained vs randomised, per level (roi, gene) and method.
``explain.json``
    configuration, methods, ig_steps, ig_target, seed, batch size, ``seconds`` (wall
    time of the run) and ``timings`` (per phase and per subject), n_subjects
    and the digest of the inputs (checkpoints, folds, prepared data, parameters): a
    rerun with the same digest reuses the files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima import STAGES
from rgenima.fileio import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

#: Attribution methods, in the order of the output arrays.
METHODS: tuple[str, ...] = ("attention", "rollout", "integrated_gradients")
#: Bumped when the meaning of an output changes, so that cached results are recomputed.
EXPLAIN_VERSION = 1


# ---------------------------------------------------------------------------------
# Finding and loading fold models
# ---------------------------------------------------------------------------------
def find_configuration(run_dir: str | Path, configuration: str | None = None) -> str:
    """The configuration to explain: ``configuration`` if given (it must have been
    trained), else the main ``rgenima_mri+snp*`` configuration of the run (the default
    profile's ``rgenima_mri+snp`` when present, else the only ``rgenima_mri+snp__*``)."""
    models = Path(run_dir) / "models"
    trained = sorted(p.parent.name for p in models.glob("rgenima_*/training.json"))
    if configuration is not None:
        if configuration not in trained:
            raise FileNotFoundError(
                f"'configuration' must be one of the trained configurations in {models} {trained}; "
                f"got {configuration!r}."
            )
        return configuration
    main = [c for c in trained if c == "rgenima_mri+snp" or c.startswith("rgenima_mri+snp__")]
    if "rgenima_mri+snp" in main:
        return "rgenima_mri+snp"
    if len(main) == 1:
        return main[0]
    if not main:
        raise FileNotFoundError(
            f"{models}: no trained rgenima_mri+snp configuration (training.json); found {trained}. "
            "Train one with `rgenima train`, or pass --configuration."
        )
    raise ValueError(f"{models}: several rgenima_mri+snp configurations {main}; pass 'configuration'.")


def _known_fields(cls, values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _training_summary(run_dir: Path, configuration: str) -> dict:
    path = run_dir / "models" / configuration / "training.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the configuration first (`rgenima train`).")
    return json.loads(path.read_text())


def _profile(summary: dict):
    """The TrainProfile a configuration was trained with (from training.json)."""
    from rgenima.model.backbone import DefaultBackboneConfig
    from rgenima.model.rit import RiTConfig
    from rgenima.train import TrainProfile

    d = dict(summary["profile"])
    d["rit"] = RiTConfig(**_known_fields(RiTConfig, d["rit"]))
    d["backbone"] = DefaultBackboneConfig(**_known_fields(DefaultBackboneConfig, d["backbone"]))
    return TrainProfile(**_known_fields(TrainProfile, d))


def _backbone_path(run_dir: Path, summary: dict) -> Path:
    """The backbone directory recorded in training.json (relative paths may be relative
    to the directory training ran from), else the run's default backbone."""
    recorded = Path(summary.get("backbone", ""))
    candidates = [recorded] if recorded.is_absolute() else [recorded, run_dir / recorded, run_dir.parent / recorded]
    candidates.append(run_dir / "backbone" / summary["profile"]["name"])
    for path in candidates:
        if str(path) and (path / "config.json").is_file():
            return path
    raise FileNotFoundError(
        f"backbone of {summary['configuration']} not found: tried {[str(c) for c in candidates]}."
    )


def _checkpoint(run_dir: Path, configuration: str, fold: int) -> Path:
    path = run_dir / "models" / configuration / f"fold_{fold}" / "best.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: fold {fold} of {configuration} is not trained.")
    return path


def load_fold_model(run_dir: str | Path, configuration: str, fold: int, attn_implementation: str = "eager"):
    """The trained model of one cross-validation fold (``best.safetensors``), in eval mode.

    Parameters
    ----------
    run_dir : path
        Run directory (``rgenima train --out``).
    configuration : str
        Folder under ``RUNDIR/models`` (e.g. ``rgenima_mri+snp``).
    fold : int
        Outer fold; its model was trained on every other fold.
    attn_implementation : {"eager", "sdpa"}
        "eager" to get attention weights (see PITFALLS: sdpa's ``output_attentions``
        differs across transformers versions).

    Returns
    -------
    model : RGenIMAForStaging
    tokenizer : transformers.PreTrainedTokenizerFast
    """
    from safetensors.torch import load_file

    from rgenima.train import build_model

    run_dir = Path(run_dir)
    summary = _training_summary(run_dir, configuration)
    ckpt = _checkpoint(run_dir, configuration, fold)
    model, tokenizer = build_model(
        _backbone_path(run_dir, summary), _n_rois(run_dir), _cube_size(run_dir), tuple(summary["modalities"]),
        _profile(summary), int(summary.get("seed", 0)), attn_implementation=attn_implementation,
        **_model_shape(summary),
    )
    try:
        model.load_state_dict(load_file(str(ckpt)))
    except RuntimeError as exc:
        raise RuntimeError(
            f"{ckpt} does not match the current model code; retrain {configuration} (`rgenima train`). {exc}"
        ) from None
    model.eval()
    return model, tokenizer


def _n_rois(run_dir: Path) -> int:
    return len(pd.read_csv(run_dir / "prepared" / "rois.tsv", sep="\t"))


def _cube_size(run_dir: Path) -> int:
    """Edge of the prepared ROI cubes (from the first subject's file)."""
    return int(np.load(run_dir / "prepared" / "cubes" / "00000.npy", mmap_mode="r").shape[1])


def _model_shape(summary: dict) -> dict:
    """The covariates and prompt length a configuration was built with (training.json)."""
    model = summary.get("model", {})
    return {"covariates": tuple(model.get("covariates", ())), "prompt_length": int(model.get("prompt_length", 0))}


def randomized_model(run_dir: str | Path, configuration: str, model, seed: int = 0,
                     attn_implementation: str = "eager"):
    """A copy of ``model`` whose trainable parameters are freshly initialised.

    RiT, projector and head are drawn by their constructors (seeded with ``seed``); a
    default backbone (trained in full) is drawn afresh from its config; a pretrained
    backbone keeps its frozen weights and gets fresh LoRA adapters. Frozen parameters
    (the genotype input embeddings) and buffers (cube statistics) are copied from
    ``model``. The fusion gates (if any) are drawn from N(0, 1), so that the random
    model reads the genetic prompt.
    """
    from transformers import AutoModel

    from rgenima.model.backbone import is_pretrained
    from rgenima.train import build_model

    run_dir = Path(run_dir)
    summary = _training_summary(run_dir, configuration)
    backbone = _backbone_path(run_dir, summary)
    rois = model.config.rit.n_rois if model.vision_tower is not None else _n_rois(run_dir)
    fresh, _ = build_model(backbone, rois, model.config.rit.cube_size, tuple(model.config.modalities),
                           _profile(summary), seed, attn_implementation=attn_implementation,
                           **_model_shape(summary))
    if not is_pretrained(backbone):
        torch.manual_seed(seed + 1)
        lm = AutoModel.from_config(fresh.language_model.config, attn_implementation=attn_implementation)
        fresh.language_model.load_state_dict(lm.state_dict())
    trained = model.state_dict()
    requires_grad = dict(_trainable_flags(fresh))
    keep = {k: v for k, v in trained.items() if not requires_grad.get(k, False)}
    _, unexpected = fresh.load_state_dict(keep, strict=False)
    if unexpected:
        raise RuntimeError(f"randomised model: unexpected keys {unexpected}")
    if hasattr(fresh, "prompt_gate"):
        # Gates initialised at 0 would hide the prompt from the random model altogether.
        with torch.no_grad():
            fresh.prompt_gate.normal_(generator=torch.Generator().manual_seed(seed + 2))
    fresh.eval()
    return fresh


def _trainable_flags(model) -> list[tuple[str, bool]]:
    return [(n, p.requires_grad) for n, p in model.named_parameters()]


def _set_attn(model, implementation: str) -> None:
    """Switch the backbone's attention kernel ("eager" or "sdpa"); a backbone that cannot
    switch keeps its own (eager, as loaded: IG is then slower but the same)."""
    try:
        model.set_attention_implementation(implementation)
    except (ValueError, ImportError, AttributeError) as exc:
        logger.debug("backbone keeps its attention kernel (%s)", exc)


# ---------------------------------------------------------------------------------
# Held-out subjects
# ---------------------------------------------------------------------------------
def held_out_indices(run_dir: str | Path, configuration: str, subjects: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per fold, the row indices (into ``subjects``) of the fold's test subjects.

    Checks, for every fold ``k``, that the subjects with test fold ``k`` in folds.csv
    are exactly those the fold-``k`` model predicted as held out during training
    (``models/<configuration>/fold_k/predictions.csv``), hence that the model never
    trained on them (it trained on the subjects of the other folds only).
    """
    run_dir = Path(run_dir)
    folds = pd.read_csv(run_dir / "folds.csv", dtype={"PTID": str})
    fold_of = dict(zip(folds["PTID"], folds["fold"].astype(int)))
    missing = [p for p in subjects["PTID"] if p not in fold_of]
    if missing:
        raise ValueError(f"{run_dir / 'folds.csv'}: no fold for {len(missing)} subjects (e.g. {missing[:3]}).")
    fold = np.array([fold_of[p] for p in subjects["PTID"]])
    out = {}
    for k in sorted(set(fold.tolist())):
        path = run_dir / "models" / configuration / f"fold_{k}" / "predictions.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: fold {k} of {configuration} did not finish training.")
        test = set(pd.read_csv(path, dtype={"PTID": str})["PTID"])
        idx = np.flatnonzero(fold == k)
        ptids = set(subjects["PTID"].to_numpy()[idx])
        if ptids != test:
            raise ValueError(
                f"held-out check failed for fold {k}: folds.csv lists {len(ptids)} test subjects, {path} "
                f"{len(test)}; {len(ptids - test)} of them were not held out by the fold-{k} model "
                f"(e.g. {sorted(ptids - test)[:3]}). Explanations must come from a model that did not train on "
                "the subject: retrain, or restore folds.csv."
            )
        train = set(subjects["PTID"].to_numpy()[fold != k])
        assert not (ptids & train), "a subject is both a test and a training subject"
        out[k] = idx
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
# Attention and rollout
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


# ---------------------------------------------------------------------------------
# Integrated Gradients
# ---------------------------------------------------------------------------------
@torch.no_grad()
def roi_baseline_tokens(model) -> torch.Tensor | None:
    """(n_rois, hidden) ROI tokens of the average training anatomy: cubes equal to the
    fold's ``cube_mean`` (zero after standardisation) inside every ROI; None without MRI."""
    if model.vision_tower is None:
        return None
    return model.get_image_features(model.average_cubes().unsqueeze(0))[0]


@torch.no_grad()
def ig_baselines(model, inputs_embeds: torch.Tensor, input_ids: torch.Tensor,
                 prompt_mask: torch.Tensor) -> torch.Tensor:
    """The IG baseline of each sequence: average-anatomy ROI tokens, [PAD] prompt tokens
    (zeros for a backbone whose config names no pad token), every other token unchanged.
    Shape of ``inputs_embeds`` (B, L, hidden)."""
    base = inputs_embeds.clone()
    roi_tokens = roi_baseline_tokens(model)
    if roi_tokens is not None:
        roi_mask = input_ids == model.config.roi_token_id
        base[roi_mask] = roi_tokens.to(base.dtype).repeat(inputs_embeds.shape[0], 1)
    pad_id = model.language_model.config.pad_token_id
    if prompt_mask.any():
        table = model.language_model.get_input_embeddings().weight
        pad = table[pad_id] if pad_id is not None else torch.zeros_like(table[0])
        base[prompt_mask] = pad.to(base.dtype)
    return base


def integrated_gradients(model, inputs_embeds, baselines, attention_mask, answer_positions, target,
                         n_steps: int = 32, internal_batch_size: int | None = None, position_ids=None,
                         prompt_mask=None):
    """IG of ``logits[:, target]`` w.r.t. the input embeddings (captum).

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
        return model(None, mask, answer, position_ids=positions, prompt_mask=prompt, inputs_embeds=embeds).logits.float()

    ig = IntegratedGradients(forward)
    attr, delta = ig.attribute(
        inputs_embeds, baselines=baselines, target=target,
        additional_forward_args=(attention_mask, answer_positions, position_ids, prompt_mask),
        n_steps=n_steps, internal_batch_size=internal_batch_size, return_convergence_delta=True,
    )
    return attr.detach(), delta.detach()


# ---------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------
def _ig_chunk(length: int, total: int) -> int:
    """Sequences per IG forward/backward: about 48k tokens (~0.6 GB of activations for
    the default backbone), at least one."""
    return max(1, min(total, 49152 // max(length, 1)))


def explain_batch(model, batch: dict, roi_positions, gene_member, snp_member, ig_steps: int,
                  target: torch.Tensor | None = None, timings: dict | None = None) -> dict[str, np.ndarray]:
    """Every score of one batch of subjects for one model.

    Parameters
    ----------
    model : RGenIMAForStaging
        In eval mode, loaded with ``attn_implementation="eager"``.
    batch : dict of Tensor
        ``input_ids``, ``attention_mask``, ``answer_positions``, ``prompt_mask`` and
        ``cubes`` (with MRI), as rgenima.train builds them, on the model's device.
    roi_positions : Tensor of shape (R,) or None
    gene_member, snp_member : Tensor of shape (B, G, L) and (B, S, L)
        Span membership (:func:`span_membership`).
    ig_steps : int
    target : Tensor of shape (B,), optional
        Class whose logit IG explains; default: the model's predicted class.
    timings : dict, optional
        Seconds spent are added under "attention" and "integrated_gradients".

    Returns
    -------
    dict of ndarray
        ``{level}__{score}`` for level in roi, gene, snp and score in METHODS,
        ``integrated_gradients_l2``, ``attention_L{l}``; ``roi_gene__gene_to_roi``,
        ``roi_gene__roi_to_gene``; ``pred``, ``target``, ``proba`` and the IG
        bookkeeping (``ig_logit_input``, ``ig_logit_baseline``, ``ig_total``, ``ig_delta``).
    """
    timings = {} if timings is None else timings
    out: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    _set_attn(model, "eager")
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
    if n_r and gene_member.shape[1]:
        gm = gene_member / gene_member.sum(-1, keepdim=True).clamp_min(1)
        to_roi = mean[:, :, roi_positions]  # (B, L, R): attention of each token to each ROI
        from_roi = mean[:, roi_positions, :]  # (B, R, L): attention of each ROI to each token
        absent = (gene_member.sum(-1) == 0).unsqueeze(1)  # (B, 1, G)
        nan = float("nan")
        out["roi_gene__gene_to_roi"] = torch.bmm(gm, to_roi).transpose(1, 2).masked_fill(absent, nan)
        out["roi_gene__roi_to_gene"] = torch.bmm(from_roi, gene_member.transpose(1, 2)).masked_fill(absent, nan)
    else:
        out["roi_gene__gene_to_roi"] = torch.zeros(b, n_r, gene_member.shape[1])
        out["roi_gene__roi_to_gene"] = torch.zeros(b, n_r, gene_member.shape[1])
    del mean
    timings["attention"] = timings.get("attention", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    pred = logits.argmax(-1)
    target = pred if target is None else target.to(pred.device)
    rows = torch.arange(b, device=pred.device)
    embeds = res.inputs_embeds.detach()
    mask, answer = batch["attention_mask"], batch["answer_positions"]
    # Genotype tokens (those of a SNP span; not the genetic segment's closing [SEP]).
    base = ig_baselines(model, embeds, batch["input_ids"], snp_member.sum(1) > 0)
    _set_attn(model, "sdpa")  # IG needs no attention weights: the fused kernel is faster
    try:
        positions, prompt = batch.get("position_ids"), batch.get("prompt_mask")
        attr, delta = integrated_gradients(model, embeds, base, mask, answer, target, n_steps=ig_steps,
                                           internal_batch_size=_ig_chunk(length, b * ig_steps),
                                           position_ids=positions, prompt_mask=prompt)
        with torch.no_grad():
            f_base = model(None, mask, answer, position_ids=positions, prompt_mask=prompt,
                           inputs_embeds=base).logits.float()
    finally:
        _set_attn(model, "eager")
    scores["integrated_gradients"] = attr.sum(-1)
    scores["integrated_gradients_l2"] = attr.norm(dim=-1)
    out.update(ig_logit_input=logits[rows, target], ig_logit_baseline=f_base[rows, target],
               ig_total=attr.sum(dim=(1, 2)), ig_delta=delta)
    timings["integrated_gradients"] = timings.get("integrated_gradients", 0.0) + time.perf_counter() - t0

    for name, s in scores.items():
        s = s.float()
        out[f"roi__{name}"] = s[:, roi_positions] if n_r else s[:, :0]
        out[f"gene__{name}"] = _aggregate(s, gene_member)
        out[f"snp__{name}"] = _aggregate(s, snp_member)
    out["pred"], out["target"], out["proba"] = pred, target, torch.softmax(logits, -1)
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


# ---------------------------------------------------------------------------------
# Sanity check
# ---------------------------------------------------------------------------------
def rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (n, k) -> (n,),
    over the columns finite in both; NaN when fewer than 3 remain or a row is constant."""
    from scipy.stats import spearmanr

    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        ok = np.isfinite(a[i]) & np.isfinite(b[i])
        if ok.sum() < 3 or np.ptp(a[i][ok]) == 0 or np.ptp(b[i][ok]) == 0:
            continue
        out[i] = spearmanr(a[i][ok], b[i][ok]).statistic
    return out


def _summary(r: np.ndarray) -> dict:
    """Median and IQR of per-subject correlations (NaN: undefined, e.g. a constant row)."""
    ok = r[np.isfinite(r)]
    if not ok.size:
        return {"median": None, "q25": None, "q75": None, "n_subjects": 0, "n_undefined": int(r.size)}
    q25, med, q75 = np.percentile(ok, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "n_subjects": int(ok.size),
            "n_undefined": int(r.size - ok.size)}


# ---------------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------------
def _digest(run_dir: Path, configuration: str, folds: list[int], params: dict) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": EXPLAIN_VERSION}, sort_keys=True).encode())
    paths = [run_dir / "folds.csv", run_dir / "prepared" / "prepare.json",
             run_dir / "models" / configuration / "training.json"]
    paths += [_checkpoint(run_dir, configuration, k) for k in folds]
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _sanity_subset(by_fold: dict[int, np.ndarray], n: int, size: int | None, seed: int) -> np.ndarray:
    """Bool (n,): subjects of the randomisation check, drawn (seeded) in equal numbers
    from every fold; all subjects when ``size`` is None or >= n."""
    chosen = np.zeros(n, dtype=bool)
    if size is None or size >= n:
        chosen[:] = True
        return chosen
    rng = np.random.default_rng(seed)
    folds = sorted(by_fold)
    for j, k in enumerate(folds):
        m = size // len(folds) + (j < size % len(folds))
        idx = by_fold[k]
        chosen[rng.choice(idx, size=min(m, len(idx)), replace=False)] = True
    return chosen


def explain_run(
    run_dir: str | Path,
    configuration: str | None = None,
    ig_steps: int = 32,
    seed: int = 0,
    batch_size: int = 8,
    ig_target: str = "pred",
    sanity_subjects: int | None = 64,
    device: str | None = None,
    force: bool = False,
) -> Path:
    """Attributions of every subject by the model of its held-out fold.

    Parameters
    ----------
    run_dir : path
        Run directory with ``prepared/``, ``folds.csv`` and ``models/<configuration>/``.
    configuration : str, optional
        Default: the run's main ``rgenima_mri+snp*`` configuration (:func:`find_configuration`).
    ig_steps : int
        Integration points of Integrated Gradients (Gauss-Legendre).
    seed : int
        Seed of the randomised models of the sanity check (fold k uses seed + 1000 k)
        and of the sanity subset.
    batch_size : int
        Subjects per forward pass; IG runs their ``batch_size * ig_steps`` interpolated
        sequences in chunks of about 48k tokens.
    ig_target : {"pred", "true"}
        Class whose logit IG explains: the trained model's predicted class or the true
        class. The randomised model explains the same class.
    sanity_subjects : int or None
        Subjects (a seeded draw, equal numbers from every fold) explained again by the
        randomised models; the ``random__*`` arrays are NaN for the others. The check
        is a statistic over subjects (median, IQR): a subset keeps its cost, dominated
        by IG (``ig_steps`` forward and backward passes per subject), a fraction of the
        main run's. None: all subjects.
    device : str, optional
        Torch device; default CUDA when available, else CPU.
    force : bool
        Recompute even if the outputs match the inputs' digest.

    Returns
    -------
    Path
        ``RUNDIR/explain/<configuration>/`` (attributions.npz, sanity.json, explain.json).
    """
    from rgenima.model.inputs import PreparedData
    from rgenima.progress import progress_bar
    from rgenima.train import _tensors, model_sequences

    if ig_target not in ("pred", "true"):
        raise ValueError(f"'ig_target' must be one of ('pred', 'true'); got {ig_target!r}.")
    if int(ig_steps) < 1:
        raise ValueError(f"'ig_steps' must be a positive integer; got {ig_steps!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"'batch_size' must be a positive integer; got {batch_size!r}.")
    if sanity_subjects is not None and int(sanity_subjects) < 0:
        raise ValueError(f"'sanity_subjects' must be None or >= 0; got {sanity_subjects!r}.")
    run_dir = Path(run_dir)
    configuration = find_configuration(run_dir, configuration)
    out_dir = run_dir / "explain" / configuration
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t_start = time.perf_counter()
    data = PreparedData.load(run_dir / "prepared")
    by_fold = held_out_indices(run_dir, configuration, data.subjects)
    params = {"configuration": configuration, "ig_steps": int(ig_steps), "seed": int(seed), "ig_target": ig_target,
              "sanity_subjects": sanity_subjects}
    digest = _digest(run_dir, configuration, list(by_fold), params)
    if not force and (out_dir / "explain.json").is_file() and (out_dir / "attributions.npz").is_file():
        if json.loads((out_dir / "explain.json").read_text()).get("inputs_sha256") == digest:
            logger.info("%s: attributions up to date (same inputs), reused", out_dir)
            return out_dir

    summary = _training_summary(run_dir, configuration)
    modalities = tuple(summary["modalities"])
    n = len(data.subjects)
    roi_names = _str_array(data.rois["name"] if "mri" in modalities else [])
    snp_names = _str_array(data.snps["snp"] if "snp" in modalities else [])
    snp_gene = _str_array(data.snps["gene"] if "snp" in modalities else [])
    gene_names = _str_array(pd.unique(snp_gene))
    R, G, S = len(roi_names), len(gene_names), len(snp_names)
    in_sanity = _sanity_subset(by_fold, n, sanity_subjects, seed)
    results: dict[str, np.ndarray] = {}
    timings = {"attention": 0.0, "integrated_gradients": 0.0}
    random_timings = {"attention": 0.0, "integrated_gradients": 0.0}
    seq = None
    fold_of = np.full(n, -1)
    for k, idx in by_fold.items():
        model, tokenizer = load_fold_model(run_dir, configuration, k)
        rnd = randomized_model(run_dir, configuration, model, seed=seed + 1000 * k)
        for m in (model, rnd):
            m.requires_grad_(False)  # IG needs gradients w.r.t. the inputs only
            m.to(device)
        if seq is None:
            seq = model_sequences(model, tokenizer, data)
            length = seq.input_ids.shape[1]
            roi_pos = torch.from_numpy(seq.roi_positions).to(device) if seq.roi_positions is not None else None
            logger.info("%s: explaining %d subjects on %s, sequence length %d, %d ROIs, %d genes, %d SNPs",
                        configuration, n, device, length, R, G, S)
        fold_of[idx] = k
        logger.info("%s: explaining fold %d/%d (%d held-out subjects)", configuration, k + 1, len(by_fold), len(idx))
        for start in progress_bar(range(0, len(idx), batch_size), desc=f"explain fold {k + 1}/{len(by_fold)}",
                                  unit="batch", leave=False):
            sel = idx[start : start + batch_size]
            batch = _tensors(sel, seq, data, device, modalities)
            spans = [seq.spans[i] for i in sel]
            gm = torch.from_numpy(span_membership(spans, list(gene_names), "gene", length)).to(device)
            sm = torch.from_numpy(span_membership(spans, list(snp_names), "snp", length)).to(device)
            labels = torch.from_numpy(data.labels[sel]).to(device)
            parts = explain_batch(model, batch, roi_pos, gm, sm, ig_steps,
                                  target=labels if ig_target == "true" else None, timings=timings)
            _store(results, parts, sel, n)
            rows = np.flatnonzero(in_sanity[sel])
            if rows.size:  # the randomised model explains the same class as the trained one
                r = torch.from_numpy(rows).to(device)
                random_parts = explain_batch(rnd, {key: v[r] for key, v in batch.items()}, roi_pos, gm[r], sm[r],
                                             ig_steps, target=torch.from_numpy(parts["target"][rows]).to(device),
                                             timings=random_timings)
                _store(results, {f"random__{key}": v for key, v in random_parts.items()}, sel[rows], n)
        del model, rnd
    if (fold_of < 0).any():
        raise RuntimeError(f"{int((fold_of < 0).sum())} subjects were not explained")

    arrays: dict[str, np.ndarray] = {
        "ptid": _str_array(data.subjects["PTID"]),
        "label": data.labels.astype(np.int64),
        "pred": results.pop("pred").astype(np.int64),
        "target": results.pop("target").astype(np.int64),
        "proba": results.pop("proba"),
        "fold": fold_of.astype(np.int64),
        "roi_names": roi_names,
        "gene_names": gene_names,
        "snp_names": snp_names,
        "snp_gene": snp_gene,
    }
    random_keep = {f"random__{level}__{m}" for level in ("roi", "gene", "snp") for m in METHODS}
    for key in sorted(results):
        if not key.startswith("random__") or key in random_keep:
            arrays[key] = results[key]
    sanity: dict = {
        "definition": (
            "Spearman rank correlation, per subject, between the scores of the trained fold model and of a copy "
            "whose trainable parameters are re-initialised (frozen genotype embeddings, frozen pretrained weights "
            "and cube statistics kept), for the same target class; model-parameter randomisation test of "
            "Adebayo et al. 2018. Attributions that depend on what the model learned correlate weakly."),
        "n_subjects": n,
        "n_checked": int(in_sanity.sum()),
        "levels": {},
    }
    for level, size in {"roi": R, "gene": G}.items():
        sanity["levels"][level] = {}
        for m in METHODS if size else ():
            r = rowwise_spearman(arrays[f"{level}__{m}"], arrays[f"random__{level}__{m}"])
            arrays[f"sanity__{level}__{m}"] = r.astype(np.float32)
            sanity["levels"][level][m] = _summary(r[in_sanity])
    total = time.perf_counter() - t_start
    n_random = max(int(in_sanity.sum()), 1)
    timings_out = {
        "total_seconds": round(total, 2),
        "attention_seconds": round(timings["attention"], 2),
        "integrated_gradients_seconds": round(timings["integrated_gradients"], 2),
        "random_model_attention_seconds": round(random_timings["attention"], 2),
        "random_model_integrated_gradients_seconds": round(random_timings["integrated_gradients"], 2),
        "attention_seconds_per_subject": round(timings["attention"] / n, 4),
        "integrated_gradients_seconds_per_subject": round(timings["integrated_gradients"] / n, 4),
        "random_model_seconds_per_subject": round(
            (random_timings["attention"] + random_timings["integrated_gradients"]) / n_random, 4),
    }
    info = {
        "configuration": configuration,
        "methods": list(METHODS),
        "extra_scores": ["integrated_gradients_l2"] + [f"attention_L{l}" for l in range(_n_layers(arrays))],
        "ig_steps": int(ig_steps),
        "ig_method": "gausslegendre",
        "ig_target": ig_target,
        "ig_score": "signed sum over the hidden dimension (integrated_gradients); L2 norm: integrated_gradients_l2",
        "ig_baseline": {"roi": "ROI tokens of the average training anatomy (cube_mean)" if R else None,
                        "prompt": "[PAD] token embedding" if G else None,
                        "other": "unchanged (no attribution)"},
        "sanity_subjects": int(in_sanity.sum()),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "device": str(device),
        "n_subjects": n,
        "n_rois": R,
        "n_genes": G,
        "n_snps": S,
        "sequence_length": int(seq.input_ids.shape[1]),
        "folds": sorted(by_fold),
        "stages": list(STAGES),
        "torch_threads": torch.get_num_threads(),
        "seconds": timings_out["total_seconds"],
        "timings": timings_out,
        "inputs_sha256": digest,
    }
    atomic_write_bytes(out_dir / "attributions.npz", _npz_bytes(arrays))
    atomic_write_text(out_dir / "sanity.json", json.dumps(sanity, indent=1))
    atomic_write_text(out_dir / "explain.json", json.dumps(info, indent=1))
    logger.info("%s: %d subjects explained in %.1f s (attention %.3f s/subject, IG %.3f s/subject; randomised "
                "model %.1f s)", configuration, n, total, timings_out["attention_seconds_per_subject"],
                timings_out["integrated_gradients_seconds_per_subject"],
                random_timings["attention"] + random_timings["integrated_gradients"])
    return out_dir


def _store(results: dict[str, np.ndarray], parts: dict[str, np.ndarray], rows: np.ndarray, n: int) -> None:
    """Write a batch's arrays into the (n, ...) result arrays (NaN until written)."""
    for key, value in parts.items():
        if key not in results:
            results[key] = np.full((n,) + value.shape[1:], np.nan, dtype=np.float32)
        results[key][rows] = value


def _str_array(values) -> np.ndarray:
    """A fixed-width unicode array (loads without pickle), even when empty."""
    return np.array([str(v) for v in values], dtype=str)


def _n_layers(arrays: dict) -> int:
    return sum(1 for k in arrays if k.startswith("roi__attention_L"))
