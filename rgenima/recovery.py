"""Recovery of a synthetic cohort's planted truth by the attributions.

How well the attribution rankings find the genes, regions and ROI x gene pairs the
generator planted (``truth.json`` of :mod:`rgenima.data.synthetic`): AUROC, precision at k
and ranks, per method and stage (:func:`recovery`), and readable tables for the book
(:func:`recovery_tables`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.attribution_file import (
    ALL,
    CONTRAST_STAGES,
    REFERENCE_STAGE,
    Attributions,
    _group_masks,
    _mean_matrix,
    _nanmean,
)
from rgenima.errors import DataContractError


# ---------------------------------------------------------------------------------
# Recovery of planted truth (synthetic cohort)
# ---------------------------------------------------------------------------------
def _load_truth(truth: str | Path | dict) -> tuple[dict, str | None]:
    if isinstance(truth, dict):
        source = None
        data = truth
    else:
        source = str(truth)
        path = Path(truth)
        if not path.is_file():
            raise FileNotFoundError(f"truth file not found: {path}")
        data = json.loads(path.read_text())
    for key in ("causal_genes", "planted_regions", "interactions"):
        if key not in data:
            raise DataContractError(
                f"{source or 'truth'}: missing key '{key}' (expected the truth.json written by rgenima.data.synthetic)."
            )
    return data, source


def _ranks_average(scores: np.ndarray) -> np.ndarray:
    """Ranks by decreasing score, 1 = highest, ties share their average rank (NaN last)."""
    from scipy.stats import rankdata

    filled = np.where(np.isnan(scores), -np.inf, scores)
    return rankdata(-filled, method="average")


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """AUROC of ``scores`` for ``positive`` (NaN scored lowest); None if one class is empty."""
    from sklearn.metrics import roc_auc_score

    if positive.all() or not positive.any():
        return None
    finite = np.isfinite(scores)
    low = (np.min(scores[finite]) - 1.0) if finite.any() else 0.0
    return float(roc_auc_score(positive.astype(int), np.where(finite, scores, low)))


def _precision_at_k(scores: np.ndarray, positive: np.ndarray, k: int) -> float | None:
    """Expected precision of the top ``k`` under random tie-breaking (NaN scored lowest)."""
    if len(scores) < k:
        return None
    filled = np.where(np.isnan(scores), -np.inf, scores)
    threshold = np.sort(filled)[::-1][k - 1]
    above = filled > threshold
    tie = filled == threshold
    hits = positive[above].sum() + (k - above.sum()) * positive[tie].mean()
    return float(hits / k)


def _ranking_metrics(
    scores: np.ndarray, names: np.ndarray, planted: list[str], ks=(5, 10), focus: str | None = None
) -> dict[str, Any]:
    positive = np.isin(names, planted)
    ranks = _ranks_average(scores)
    out: dict[str, Any] = {"auroc": _auroc(scores, positive)}
    for k in ks:
        out[f"precision_at_{k}"] = _precision_at_k(scores, positive, k)
    out["planted_ranks"] = {str(n): float(r) for n, r in zip(names[positive], ranks[positive])}
    if focus is not None:
        out[f"{focus.lower()}_rank"] = float(ranks[names == focus][0]) if focus in names else None
    return out


def _group_mean_abs(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _nanmean(np.abs(values[mask]))


def _contrast(values: np.ndarray, masks: dict[str, np.ndarray], stage: str) -> np.ndarray:
    return _nanmean(values[masks[stage]]) - _nanmean(values[masks[REFERENCE_STAGE]])


def recovery(attributions: Attributions, truth: str | Path | dict, *, sanity: dict | None = None) -> dict:
    """How well the attributions recover the synthetic cohort's planted truth.

    Scores used for ranking (higher = more important; ties get their average rank,
    NaN ranks last):

    - ``mean_abs``: mean |attribution| over the subjects of a group (all, or a stage);
    - ``contrast``: mean attribution in the stage minus the mean in NC (signed).

    Parameters
    ----------
    attributions : Attributions
    truth : str, Path or dict
        ``truth.json`` of :mod:`rgenima.data.synthetic` (keys ``causal_genes``,
        ``causal_snps``, ``planted_regions``, ``interactions``), or its content.
    sanity : dict, optional
        Content of ``sanity.json`` (randomisation check of :mod:`rgenima.explain`); its
        ``summary`` (or the whole dict if it has none) is copied under ``"sanity"``.

    Returns
    -------
    dict
        ``{"n_subjects": {stage: int}, "truth": str | None,
        "genes": {"causal": [...], "causal_missing": [...], "n_genes": G, "methods":
        {method: {"all": M, "NC"|"SMC"|"MCI"|"AD": {"mean_abs": M, "contrast": M}}}},
        "snps": {"causal": [...], "causal_missing": [...], "n_snps": S, "methods":
        {method: {"all": M}}},
        "rois": {"n_rois": R, "methods": {method: {"SMC"|"MCI"|"AD": {"planted": [...],
        "missing": [...], "mean_abs": M, "contrast": M}}}},
        "interactions": [{"gene", "rsid", "roi", "stage", "direction", "score",
        "rank", "n_pairs", "top_percent", "in_top_5_percent", "rank_within_gene",
        "n_rois", "missing"}]`` (``missing`` is "gene" or "roi" when the pair is not in
        the arrays, and then the scores are None; ``top_percent = 100 * rank /
        n_pairs``),
        "random": {"genes": {method: {"all": M}}, "rois": {method: {stage: {"mean_abs":
        M, "contrast": M}}}},
        "sanity": dict | None}`` where a metrics dict ``M`` is ``{"auroc",
        "precision_at_5", "precision_at_10", "planted_ranks": {name: rank}}`` (gene
        metrics add ``apoe_rank``). ``auroc`` is None when no planted item (or only
        planted items) is present; ``contrast`` keys only exist for SMC, MCI, AD. A
        section is empty when its kind is absent.
    """
    truth, source = _load_truth(truth)
    masks = _group_masks(attributions.label)
    present = [s for s in STAGES if masks[s].any()]
    contrasts = [s for s in CONTRAST_STAGES if masks[s].any()] if masks[REFERENCE_STAGE].any() else []
    out: dict[str, Any] = {"n_subjects": attributions.stage_counts(), "truth": source}

    def gene_section(random: bool) -> dict:
        section: dict[str, Any] = {}
        names = attributions.names("gene")
        causal = list(truth["causal_genes"])
        for method in attributions.methods("gene", random=random):
            values = attributions.get("gene", method, random=random)
            entry: dict[str, Any] = {
                ALL: _ranking_metrics(_group_mean_abs(values, masks[ALL]), names, causal, focus="APOE")
            }
            if not random:
                for stage in present:
                    entry[stage] = {
                        "mean_abs": _ranking_metrics(_group_mean_abs(values, masks[stage]), names, causal, focus="APOE")
                    }
                    if stage in contrasts:
                        entry[stage]["contrast"] = _ranking_metrics(
                            _contrast(values, masks, stage), names, causal, focus="APOE"
                        )
            section[method] = entry
        return section

    def roi_section(random: bool) -> dict:
        section: dict[str, Any] = {}
        names = attributions.names("roi")
        for method in attributions.methods("roi", random=random):
            values = attributions.get("roi", method, random=random)
            entry = {}
            for stage in CONTRAST_STAGES:
                if not masks[stage].any():
                    continue
                planted = list(truth["planted_regions"].get(stage, []))
                item: dict[str, Any] = {}
                if not random:
                    item["planted"] = [r for r in planted if r in names]
                    item["missing"] = [r for r in planted if r not in names]
                item["mean_abs"] = _ranking_metrics(_group_mean_abs(values, masks[stage]), names, planted)
                if stage in contrasts:
                    item["contrast"] = _ranking_metrics(_contrast(values, masks, stage), names, planted)
                entry[stage] = item
            section[method] = entry
        return section

    causal_genes = list(truth["causal_genes"])
    if attributions.has("gene"):
        gene_names = set(attributions.names("gene").tolist())
        out["genes"] = {
            "causal": causal_genes,
            "causal_missing": [g for g in causal_genes if g not in gene_names],
            "n_genes": len(gene_names),
            "methods": gene_section(False),
        }
    else:
        out["genes"] = {}
    if attributions.has("snp"):
        rsids = sorted({s["rsid"] for s in truth.get("causal_snps", [])})
        snp_names = attributions.names("snp")
        methods = {}
        for method in attributions.methods("snp"):
            values = attributions.get("snp", method)
            methods[method] = {ALL: _ranking_metrics(_group_mean_abs(values, masks[ALL]), snp_names, rsids)}
        out["snps"] = {
            "causal": rsids,
            "causal_missing": [r for r in rsids if r not in set(snp_names.tolist())],
            "n_snps": int(len(snp_names)),
            "methods": methods,
        }
    else:
        out["snps"] = {}
    out["rois"] = (
        {"n_rois": len(attributions.names("roi")), "methods": roi_section(False)} if attributions.has("roi") else {}
    )
    out["interactions"] = _interaction_ranks(attributions, truth, present)
    out["random"] = {
        "genes": gene_section(True) if attributions.methods("gene", random=True) else {},
        "rois": roi_section(True) if attributions.methods("roi", random=True) else {},
    }
    out["sanity"] = sanity.get("summary", sanity) if isinstance(sanity, dict) else None
    return out


def _interaction_ranks(
    attributions: Attributions, truth: dict, stages: list[str], direction: str = "gene_to_roi"
) -> list[dict]:
    """Rank of each planted (ROI, gene) pair in each stage's mean association matrix."""
    if direction not in attributions.directions():
        return []
    values = attributions.roi_gene(direction)
    roi_names = list(attributions.names("roi"))
    gene_names = list(attributions.names("gene"))
    masks = _group_masks(attributions.label)
    n_pairs = len(roi_names) * len(gene_names)
    records = []
    for stage in [*stages, ALL]:
        matrix = _mean_matrix(values, masks[stage])
        ranks = _ranks_average(matrix.ravel()).reshape(matrix.shape)
        for inter in truth["interactions"]:
            gene = inter["gene"]
            for roi in inter.get("regions", []):
                rec: dict[str, Any] = {
                    "gene": gene,
                    "rsid": inter.get("rsid"),
                    "roi": roi,
                    "stage": stage,
                    "direction": direction,
                    "missing": None,
                }
                if gene not in gene_names or roi not in roi_names:
                    rec.update(
                        score=None,
                        rank=None,
                        n_pairs=n_pairs,
                        top_percent=None,
                        in_top_5_percent=None,
                        rank_within_gene=None,
                        n_rois=len(roi_names),
                        missing="gene" if gene not in gene_names else "roi",
                    )
                    records.append(rec)
                    continue
                i, j = roi_names.index(roi), gene_names.index(gene)
                rank = float(ranks[i, j])
                rec.update(
                    score=float(matrix[i, j]),
                    rank=rank,
                    n_pairs=n_pairs,
                    top_percent=100.0 * rank / n_pairs,
                    in_top_5_percent=bool(rank <= 0.05 * n_pairs),
                    rank_within_gene=float(_ranks_average(matrix[:, j])[i]),
                    n_rois=len(roi_names),
                )
                records.append(rec)
    return records


def recovery_tables(recovery_result: dict) -> dict[str, pd.DataFrame]:
    """Readable tables of :func:`recovery`'s result, for the book.

    Returns
    -------
    dict of DataFrame
        ``"genes"``: per method, the planted-gene AUROC, precision@5/10 and APOE's rank
        over all subjects (mean |attribution|); ``"rois"``: per method and stage, the
        planted-region AUROC of the contrast with NC and of the mean |attribution|;
        ``"interactions"``: per planted ROI x gene pair and stage, its rank and top
        percent in the association matrix.
    """
    genes = []
    for method, entry in recovery_result.get("genes", {}).get("methods", {}).items():
        m = entry.get("all", {})
        genes.append(
            {
                "method": method,
                "AUROC": m.get("auroc"),
                "precision@5": m.get("precision_at_5"),
                "precision@10": m.get("precision_at_10"),
                "APOE rank": m.get("apoe_rank"),
            }
        )
    rois = []
    for method, stages in recovery_result.get("rois", {}).get("methods", {}).items():
        for stage, entry in stages.items():
            rois.append(
                {
                    "method": method,
                    "stage": stage,
                    "n planted": len(entry.get("planted", [])),
                    "AUROC (stage - NC)": (entry.get("contrast") or {}).get("auroc"),
                    "AUROC (mean |attribution|)": (entry.get("mean_abs") or {}).get("auroc"),
                }
            )
    inter = [
        {
            k: r.get(k)
            for k in ("gene", "roi", "stage", "direction", "rank", "n_pairs", "top_percent", "in_top_5_percent")
        }
        for r in recovery_result.get("interactions", [])
    ]
    return {
        "genes": pd.DataFrame(genes, columns=["method", "AUROC", "precision@5", "precision@10", "APOE rank"]),
        "rois": pd.DataFrame(
            rois, columns=["method", "stage", "n planted", "AUROC (stage - NC)", "AUROC (mean |attribution|)"]
        ),
        "interactions": pd.DataFrame(
            inter, columns=["gene", "roi", "stage", "direction", "rank", "n_pairs", "top_percent", "in_top_5_percent"]
        ),
    }
