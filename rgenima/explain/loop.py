"""The explain run: every subject explained by its held-out fold model, then checked.

:func:`explain_run` loops over the folds of a run (and over the parameter- and
label-randomised models), explains the held-out subjects in batches
(:func:`_explain_rows`) and writes ``attributions.npz``, ``sanity.json`` and
``explain.json``; the outputs are described in :mod:`rgenima.explain`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rgenima import STAGES
from rgenima.attribution import (
    explain_batch,
    modal_genotype_ids,
    prompt_closed,
    span_membership,
)
from rgenima.explain.held_out import held_out_indices
from rgenima.explain.outputs import _digest, _methods, _n_layers, _npz_bytes, _store, _str_array
from rgenima.explain.sanity import _sanity_subset, _summary, rowwise_spearman
from rgenima.fileio import atomic_write_bytes, atomic_write_text
from rgenima.fold_models import (
    _training_summary,
    find_configuration,
    label_randomised_model,
    load_fold_model,
    randomized_model,
)
from rgenima.run import Run

logger = logging.getLogger("rgenima.explain")


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
    common: dict[str, Any] = {
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
