"""Attributions of trained R-GenIMA models: which ROIs, genes and SNPs drive each prediction.

Every subject is explained by the model of the cross-validation fold in which it was a
**test** subject (``RUNDIR/folds.csv``), so no attribution comes from a model that saw
the subject during training; :func:`explain_run` checks this against each fold's
``predictions.csv`` before computing anything. The methods themselves live in
:mod:`rgenima.attribution`; this module runs them over a run's folds, aggregates them and
checks them.

Methods (``METHODS``). Token-level scores are aggregated to ROIs (one token each), SNPs
(the tokens of the SNP's span) and genes (the tokens of the gene's span); feature-level
ones are computed per ROI and per gene directly. The explained class (``ig_target``) is
the subject's **true stage** by default.

``attention``
    Raw attention from the **answer position** (where the class is read) to each token,
    averaged over heads, then over layers (per layer: ``attention_L{l}``): where the
    model reads, not how a token changes its answer.
``rollout``
    Attention rollout (Abnar & Zuidema 2020): per layer ``A' = 0.5 * A + 0.5 * I``, rows
    renormalised, multiplied through the layers; the answer's row. With a causal
    backbone it is shaped by token position and fails the randomisation tests.
``relevance``
    Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021) of the explained
    class's logit.
``integrated_gradients``
    Integrated Gradients (captum, Gauss-Legendre, ``ig_steps`` points) of the explained
    class's logit w.r.t. the input embeddings, from the reference input; a token's score
    is the signed sum over the hidden dimension (completeness: a subject's scores sum to
    ``logit(input) - logit(reference)`` up to the convergence delta); the L2 norm is
    stored as ``integrated_gradients_l2``.
``occlusion``
    Per ROI and gene: ``log p(class | x) - log p(class | x with the feature replaced by
    its reference)``.
``occlusion_contrast``
    Per ROI and gene: the drop of ``logit_class - logit_NC`` when the feature is
    replaced (0 for NC subjects): how much it moves the subject from NC to its stage.
``atrophy_sensitivity``
    Per ROI only: the rise of ``logit_class - logit_NC`` per unit relative loss of
    intensity in the ROI (voxel-level gradient x input summed over the ROI, sign flipped;
    0 for NC subjects). It keeps the direction of a region's effect, which occlusion
    loses once intensities are normalised (an unaffected region is relatively brighter in
    AD, and a model may read that too).

The **reference input** of IG and occlusion (:func:`rgenima.attribution.reference_embeddings`):
ROI tokens of the fold's average training anatomy (its ``cube_mean``), genotype tokens of
the training fold's most common genotype at every SNP (:func:`modal_genotype_ids`), every
other token unchanged.

A gene's span runs from its symbol to its last genotype, so it contains its SNPs' spans;
with the default tokenizer a gene's token-level score is exactly the sum of its SNPs'.

**Closed prompts.** A two-modality fold model whose fusion gates are all exactly closed
(:func:`prompt_closed`, e.g. a fold that kept its MRI-only start) cannot be changed by its
genetic prompt: it is explained on the sequences without the genetic segment (the same
outputs, the positions follow the full layout), and every gene- and SNP-level array,
including the raw-attention ROI x gene maps, is exactly 0 for it.

ROI x gene arrays (``roi_gene__*``, (n, R, G)):

- ``gene_to_roi[r, g]``: mean over gene ``g``'s tokens of their raw attention to ROI ``r``
  (heads and layers averaged); ``roi_to_gene[r, g]`` the reverse direction, structurally
  zero with a causal backbone (ROI tokens come first);
- ``occlusion[r, g]``: the change of ROI ``r``'s relevance (gradient x (input - reference)
  of the explained logit) when gene ``g`` is replaced by its reference
  (:func:`rgenima.attribution.roi_relevance_under_gene_occlusion`): non-zero only when
  what the model reads from the ROI depends on the gene. G + 1 forward and backward
  passes per subject, so it is computed on ``link_subjects`` subjects (NaN for others).

Sanity checks: the two randomisation tests of Adebayo et al. 2018, on the same target
class. *Model-parameter randomisation*: each fold model with its trainable parameters
re-initialised (:func:`randomized_model`), on ``sanity_subjects`` subjects drawn equally
from every fold. *Label randomisation*: fold 0 retrained from scratch on permuted labels
(:func:`label_randomised_model`), on up to ``sanity_subjects`` of fold 0's held-out
subjects. ``sanity.json`` reports, per method and level, the median and IQR over subjects
of the Spearman correlation between trained and randomised scores (``levels`` and
``label_randomisation``); a constant row (e.g. the contrast of an NC subject) gives no
correlation.

Cost (default cohort, 400 subjects, 2 CPU cores; ``benchmarks/bench_explain.py`` measures
it): the main pass over every method is about 1 min for the two-modality model whose
prompt is closed and about 5 min for the SNP-only model (768 and 647 tokens); the
randomisation checks, dominated by occlusion on the randomised models, add about 5 and
3 min. ``explain.json`` records the timings of each run.

Outputs, in ``RUNDIR/explain/<configuration>/`` (written atomically):

``attributions.npz`` (``np.load(..., allow_pickle=False)``)
    ``ptid`` (n,) str; ``label`` (n,) int, true stage index (rgenima.STAGES order NC, SMC,
    MCI, AD); ``pred`` (n,) int; ``target`` (n,) int, the explained class; ``proba``
    (n, 4); ``fold`` (n,) int, the fold whose model explained the subject; ``roi_names``
    (R,); ``gene_names`` (G,); ``snp_names`` (S,); ``snp_gene`` (S,); ``roi__{m}`` (n, R)
    for every method; ``gene__{m}`` (n, G) for every method but ``atrophy_sensitivity``;
    ``snp__{m}`` (n, S) for the token-level methods, ``integrated_gradients_l2`` and
    ``attention_L{l}``; NaN where a subject's prompt lacks the gene or SNP; the ROI x gene
    arrays; ``random__{level}__{m}`` and ``label_random__{level}__{m}`` (NaN outside the
    checked subjects) and the per-subject correlations ``sanity__{level}__{m}`` and
    ``sanity_label__{level}__{m}``; the IG bookkeeping ``ig_logit_input``,
    ``ig_logit_baseline``, ``ig_total``, ``ig_delta``, each (n,). An SNP-only
    configuration has R = 0; an MRI-only one G = S = 0.
``sanity.json``
    The two randomisation tests, per level (roi, gene) and method, and the permuted-label
    model's training record.
``explain.json``
    configuration, methods, settings, ``closed_prompt_folds``, ``seconds`` and
    ``timings`` (per method and per subject), n_subjects and the digest of the inputs
    (checkpoints, folds, prepared data, parameters): a rerun with the same digest reuses
    the files.
``label_randomised/fold_0/``
    The permuted-label model (reused while its seed is unchanged).
"""

from __future__ import annotations

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
from rgenima.attribution import (
    explain_batch,
    modal_dosage,
    modal_genotype_ids,
    prompt_closed,
    span_membership,
)
from rgenima.attribution_file import METHODS
from rgenima.fileio import atomic_write_bytes, atomic_write_text
from rgenima.fold_models import (
    _checkpoint,
    _training_summary,
    find_configuration,
    label_randomised_model,
    load_fold_model,
    randomized_model,
)
from rgenima.run import Run

logger = logging.getLogger(__name__)

__all__ = [
    "EXPLAIN_VERSION",
    "METHODS",
    "ROI_ONLY_METHODS",
    "explain_batch",
    "explain_run",
    "find_configuration",
    "held_out_indices",
    "label_randomised_model",
    "load_fold_model",
    "modal_dosage",
    "modal_genotype_ids",
    "prompt_closed",
    "randomized_model",
    "rowwise_spearman",
    "span_membership",
]

#: Methods scored on ROIs only (no gene or SNP arrays).
ROI_ONLY_METHODS: tuple[str, ...] = ("atrophy_sensitivity",)
#: Bumped when the meaning of an output changes, so that cached results are recomputed.
EXPLAIN_VERSION = 3


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
    folds = pd.read_csv(Run(run_dir).folds_csv, dtype={"PTID": str})
    fold_of = dict(zip(folds["PTID"], folds["fold"].astype(int)))
    missing = [p for p in subjects["PTID"] if p not in fold_of]
    if missing:
        raise ValueError(f"{run_dir / 'folds.csv'}: no fold for {len(missing)} subjects (e.g. {missing[:3]}).")
    fold = np.array([fold_of[p] for p in subjects["PTID"]])
    out = {}
    for k in sorted(set(fold.tolist())):
        path = Run(run_dir).fold_predictions_csv(configuration, k)
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
    return {
        "median": float(med),
        "q25": float(q25),
        "q75": float(q75),
        "n_subjects": int(ok.size),
        "n_undefined": int(r.size - ok.size),
    }


# ---------------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------------
def _digest(run_dir: Path, configuration: str, folds: list[int], params: dict) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": EXPLAIN_VERSION}, sort_keys=True).encode())
    paths = [
        Run(run_dir).folds_csv,
        Run(run_dir).prepare_json,
        Run(run_dir).training_json(configuration),
    ]
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


def _explain_rows(
    model,
    tokenizer,
    rows: np.ndarray,
    data,
    modalities,
    names: dict,
    ig_steps: int,
    ig_target: str,
    batch_size: int,
    device,
    cache: dict,
    train_idx: np.ndarray,
    links: bool,
    timings: dict,
    desc: str,
    target: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every score of ``rows`` by one model, batched; arrays of shape (len(rows), ...).

    A model whose prompt is closed (:func:`prompt_closed`) is run on the sequences
    without the genetic segment (the same outputs, the positions follow the full
    layout) and its gene and SNP scores are set to exactly 0 where the subject has the
    gene or SNP (NaN where not), as its prompt cannot change its output.
    """
    from rgenima.model.inputs import batch_tensors, build_sequences, model_sequences
    from rgenima.progress import progress_bar

    closed = prompt_closed(model)
    if "full" not in cache:
        cache["full"] = model_sequences(model, tokenizer, data)
    if closed and "closed" not in cache:  # the same layout without the genetic segment
        cache["closed"] = build_sequences(
            tokenizer, data.prompts, data.cubes.shape[1], ("mri",), n_covariates=len(model.config.covariates)
        )
    full = cache["full"]
    seq = cache["closed" if closed else "full"]
    reference_ids = modal_genotype_ids(tokenizer, seq, data, train_idx)
    length = seq.input_ids.shape[1]
    roi_pos = torch.from_numpy(seq.roi_positions).to(device) if seq.roi_positions is not None else None
    gene_names, snp_names = list(names["gene"]), list(names["snp"])
    parts_all: dict[str, list] = {}
    last_log = time.perf_counter()
    for start in progress_bar(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False):
        if time.perf_counter() - last_log > 30:  # a line in the run log at least every half minute
            logger.info("%s: %d of %d subjects", desc, start, len(rows))
            last_log = time.perf_counter()
        sel = rows[start : start + batch_size]
        batch = batch_tensors(sel, seq, data, device, modalities)
        spans = [seq.spans[i] for i in sel]
        gm = torch.from_numpy(span_membership(spans, gene_names, "gene", length)).to(device)
        sm = torch.from_numpy(span_membership(spans, snp_names, "snp", length)).to(device)
        if target is not None:
            tgt = torch.from_numpy(target[start : start + batch_size]).to(device)
        else:
            tgt = torch.from_numpy(data.labels[sel]).to(device) if ig_target == "true" else None
        parts = explain_batch(
            model,
            batch,
            roi_pos,
            gm,
            sm,
            ig_steps,
            target=tgt,
            reference_ids=torch.from_numpy(reference_ids[sel]).to(device),
            links=links,
            timings=timings,
        )
        if closed:  # the prompt cannot change the output: genes and SNPs score exactly 0
            full_spans = [full.spans[i] for i in sel]
            present = {
                level: span_membership(full_spans, level_names, level, full.input_ids.shape[1]).sum(-1) > 0
                for level, level_names in (("gene", gene_names), ("snp", snp_names))
            }
            for k in list(parts):
                level = k.split("__")[0]
                if level in present:
                    parts[k] = np.where(present[level], 0.0, np.nan).astype(np.float32)
                elif level == "roi_gene":
                    shape = (len(sel), parts[k].shape[1], len(gene_names))
                    parts[k] = np.where(present["gene"][:, None, :], 0.0, np.nan).astype(np.float32) * np.ones(shape)
        for k, v in parts.items():
            parts_all.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts_all.items()}


def explain_run(
    run_dir: str | Path,
    configuration: str | None = None,
    ig_steps: int = 32,
    seed: int = 0,
    batch_size: int = 8,
    ig_target: str = "true",
    sanity_subjects: int | None = 64,
    label_randomisation: bool = True,
    link_subjects: int | None = 64,
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
        Seed of the randomised models (fold k uses seed + 1000 k), of the label
        permutation and of the checked subsets.
    batch_size : int
        Subjects per forward pass; IG and occlusion run their interpolated or occluded
        sequences in chunks of about 48k tokens.
    ig_target : {"true", "pred"}
        Class explained by relevance, IG and occlusion: the true stage (default) or the
        trained model's predicted class. The randomised models explain the same class.
    sanity_subjects : int or None
        Subjects (a seeded draw, equal numbers from every fold) explained again by the
        parameter-randomised models; also the number of fold-0 subjects explained by
        the label-randomised model. None: all.
    label_randomisation : bool
        Retrain fold 0 on permuted labels and compare (:func:`label_randomised_model`).
    link_subjects : int or None
        Subjects (seeded, equal numbers per fold) of the occlusion ROI x gene link map
        (``roi_gene__occlusion``, NaN for the others); None: all. Skipped (0) for a
        model whose prompt is closed.
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

    if ig_target not in ("pred", "true"):
        raise ValueError(f"'ig_target' must be one of ('pred', 'true'); got {ig_target!r}.")
    if int(ig_steps) < 1:
        raise ValueError(f"'ig_steps' must be a positive integer; got {ig_steps!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"'batch_size' must be a positive integer; got {batch_size!r}.")
    for name, value in (("sanity_subjects", sanity_subjects), ("link_subjects", link_subjects)):
        if value is not None and int(value) < 0:
            raise ValueError(f"'{name}' must be None or >= 0; got {value!r}.")
    run_dir = Path(run_dir)
    configuration = find_configuration(run_dir, configuration)
    run = Run(run_dir)
    out_dir = run.explain_dir(configuration)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t_start = time.perf_counter()
    data = PreparedData.load(run.prepared)
    by_fold = held_out_indices(run_dir, configuration, data.subjects)
    params = {
        "configuration": configuration,
        "ig_steps": int(ig_steps),
        "seed": int(seed),
        "ig_target": ig_target,
        "sanity_subjects": sanity_subjects,
        "label_randomisation": bool(label_randomisation),
        "link_subjects": link_subjects,
    }
    digest = _digest(run_dir, configuration, list(by_fold), params)
    if not force and run.explain_json(configuration).is_file() and run.attributions_npz(configuration).is_file():
        if json.loads(run.explain_json(configuration).read_text()).get("inputs_sha256") == digest:
            logger.info("%s: attributions up to date (same inputs), reused", out_dir)
            return out_dir

    summary = _training_summary(run_dir, configuration)
    modalities = tuple(summary["modalities"])
    n = len(data.subjects)
    roi_names = _str_array(data.rois["name"] if "mri" in modalities else [])
    snp_names = _str_array(data.snps["snp"] if "snp" in modalities else [])
    snp_gene = _str_array(data.snps["gene"] if "snp" in modalities else [])
    gene_names = _str_array(pd.unique(snp_gene))
    names = {"gene": gene_names, "snp": snp_names}
    R, G, S = len(roi_names), len(gene_names), len(snp_names)
    in_sanity = _sanity_subset(by_fold, n, sanity_subjects, seed)
    in_links = _sanity_subset(by_fold, n, link_subjects, seed + 1)
    results: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    random_timings: dict[str, float] = {}
    label_timings: dict[str, float] = {}
    fold_of = np.full(n, -1)
    closed_folds = []
    cache: dict = {}
    logger.info("%s: explaining %d subjects on %s, %d ROIs, %d genes, %d SNPs", configuration, n, device, R, G, S)
    common = {
        "data": data,
        "modalities": modalities,
        "names": names,
        "ig_steps": ig_steps,
        "ig_target": ig_target,
        "batch_size": batch_size,
        "device": device,
    }
    for k, idx in by_fold.items():
        model, tokenizer = load_fold_model(run_dir, configuration, k)
        rnd = randomized_model(run_dir, configuration, model, seed=seed + 1000 * k)
        for m in (model, rnd):
            m.requires_grad_(False)  # the attributions need gradients w.r.t. the inputs only
            m.to(device)
        train_idx = np.setdiff1d(np.arange(n), idx)
        closed = prompt_closed(model)
        if closed:
            closed_folds.append(k)
        fold_of[idx] = k
        logger.info(
            "%s: explaining fold %d/%d (%d held-out subjects%s)",
            configuration,
            k + 1,
            len(by_fold),
            len(idx),
            "; prompt closed: genes score 0" if closed else "",
        )
        for rows, links in ((idx[in_links[idx]], True), (idx[~in_links[idx]], False)):
            if rows.size:
                parts = _explain_rows(
                    model,
                    tokenizer,
                    rows,
                    cache=cache,
                    train_idx=train_idx,
                    links=links,
                    timings=timings,
                    desc=f"explain fold {k + 1}/{len(by_fold)}",
                    **common,
                )
                _store(results, parts, rows, n)
        rows = idx[in_sanity[idx]]
        if rows.size:  # the randomised model explains the same class as the trained one
            logger.info(
                "%s: fold %d/%d, randomised model on %d subjects (parameter randomisation)",
                configuration,
                k + 1,
                len(by_fold),
                rows.size,
            )
            parts = _explain_rows(
                rnd,
                tokenizer,
                rows,
                cache=cache,
                train_idx=train_idx,
                links=False,
                timings=random_timings,
                desc=f"randomised model {k + 1}/{len(by_fold)}",
                target=results["target"][rows].astype(np.int64),
                **common,
            )
            _store(results, {f"random__{key}": v for key, v in parts.items()}, rows, n)
        del model, rnd
    if (fold_of < 0).any():
        raise RuntimeError(f"{int((fold_of < 0).sum())} subjects were not explained")

    label_info = None
    if label_randomisation:
        first = min(by_fold)
        idx = by_fold[first]
        size = len(idx) if sanity_subjects is None else min(int(sanity_subjects), len(idx))
        rows = np.sort(np.random.default_rng(seed + 2).choice(idx, size=size, replace=False))
        t0 = time.perf_counter()
        lab, label_info = label_randomised_model(run_dir, configuration, first, seed)
        lab.requires_grad_(False)
        lab.to(device)
        _, tokenizer = load_fold_model(run_dir, configuration, first)
        train_idx = np.setdiff1d(np.arange(n), idx)
        logger.info(
            "%s: permuted-label model of fold %d on %d subjects (label randomisation)",
            configuration,
            first + 1,
            rows.size,
        )
        parts = _explain_rows(
            lab,
            tokenizer,
            rows,
            cache=cache,
            train_idx=train_idx,
            links=False,
            timings=label_timings,
            desc="label-randomised model",
            target=results["target"][rows].astype(np.int64),
            **common,
        )
        _store(results, {f"label_random__{key}": v for key, v in parts.items()}, rows, n)
        label_info = {**label_info, "n_checked": int(size), "seconds_with_training": round(time.perf_counter() - t0, 2)}

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
    methods = _methods(results)
    keep = {
        f"{prefix}{level}__{m}"
        for prefix in ("random__", "label_random__")
        for level in ("roi", "gene", "snp")
        for m in methods
    }
    for key in sorted(results):
        if not key.startswith(("random__", "label_random__")) or key in keep:
            arrays[key] = results[key]
    sanity: dict = {
        "definition": (
            "Spearman rank correlation, per subject, between the scores of the trained fold model and of (i) a copy "
            "whose trainable parameters are re-initialised (frozen genotype embeddings, frozen pretrained weights "
            "and cube statistics kept; model-parameter randomisation) and (ii) the fold-0 model retrained from "
            "scratch on permuted labels (label randomisation), for the same target class: the two randomisation "
            "tests of Adebayo et al. 2018. Attributions that depend on what the model learned correlate weakly."
        ),
        "n_subjects": n,
        "n_checked": int(in_sanity.sum()),
        "levels": {},
        "label_randomisation": {},
        "label_randomisation_model": label_info,
    }
    for level, size in {"roi": R, "gene": G}.items():
        sanity["levels"][level] = {}
        sanity["label_randomisation"][level] = {}
        for m in methods if size else ():
            if f"{level}__{m}" not in arrays:  # a ROI-only method
                continue
            r = rowwise_spearman(arrays[f"{level}__{m}"], arrays[f"random__{level}__{m}"])
            arrays[f"sanity__{level}__{m}"] = r.astype(np.float32)
            sanity["levels"][level][m] = _summary(r[in_sanity])
            if label_info is not None:
                r = rowwise_spearman(arrays[f"{level}__{m}"], arrays[f"label_random__{level}__{m}"])
                arrays[f"sanity_label__{level}__{m}"] = r.astype(np.float32)
                sanity["label_randomisation"][level][m] = _summary(
                    r[np.isfinite(arrays[f"label_random__{level}__{m}"]).any(1)]
                )
    total = time.perf_counter() - t_start
    timings_out = {"total_seconds": round(total, 2)}
    for label, table, count in (
        ("", timings, n),
        ("random_model_", random_timings, max(int(in_sanity.sum()), 1)),
        ("label_random_model_", label_timings, max((label_info or {}).get("n_checked", 1), 1)),
    ):
        for method, seconds in table.items():
            timings_out[f"{label}{method}_seconds"] = round(seconds, 2)
            timings_out[f"{label}{method}_seconds_per_subject"] = round(seconds / count, 4)
    if label_info is not None:
        timings_out["label_random_model_training_seconds"] = label_info.get("seconds")
    info = {
        "configuration": configuration,
        "methods": list(methods),
        "extra_scores": ["integrated_gradients_l2"] + [f"attention_L{l}" for l in range(_n_layers(arrays))],
        "ig_steps": int(ig_steps),
        "ig_method": "gausslegendre",
        "ig_target": ig_target,
        "ig_score": "signed sum over the hidden dimension (integrated_gradients); L2 norm: integrated_gradients_l2",
        "reference": {
            "roi": "ROI tokens of the average training anatomy (cube_mean)" if R else None,
            "gene": "the training fold's most common genotype at every SNP" if G else None,
            "other": "unchanged (no attribution)",
        },
        "closed_prompt_folds": closed_folds,
        "sanity_subjects": int(in_sanity.sum()),
        "link_subjects": int(in_links.sum()) if R and G and len(closed_folds) < len(by_fold) else 0,
        "label_randomisation": label_info,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "device": str(device),
        "n_subjects": n,
        "n_rois": R,
        "n_genes": G,
        "n_snps": S,
        "sequence_length": int(cache["full"].input_ids.shape[1]),
        "folds": sorted(by_fold),
        "stages": list(STAGES),
        "torch_threads": torch.get_num_threads(),
        "seconds": timings_out["total_seconds"],
        "timings": timings_out,
        "inputs_sha256": digest,
    }
    atomic_write_bytes(run.attributions_npz(configuration), _npz_bytes(arrays))
    atomic_write_text(run.sanity_json(configuration), json.dumps(sanity, indent=1))
    atomic_write_text(run.explain_json(configuration), json.dumps(info, indent=1))
    logger.info(
        "%s: %d subjects explained in %.1f s (%s)",
        configuration,
        n,
        total,
        ", ".join(f"{m} {s:.0f} s" for m, s in timings.items()),
    )
    return out_dir


def _methods(results: dict) -> tuple[str, ...]:
    """The methods present, in :data:`METHODS` order."""
    return tuple(m for m in METHODS if f"roi__{m}" in results or f"gene__{m}" in results)


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
