"""Which attribution method to trust: a validation table and the rule that picks one.

For every attribution method of one explained configuration, on the same held-out
subjects, :func:`validation_table` reports

- **planted genes** (synthetic cohort): AUROC of the gene ranking (mean |attribution|
  over all subjects) for the planted causal genes, and APOE's rank;
- **planted regions**: per stage (SMC, MCI, AD), AUROC of the ROI ranking by the
  stage-minus-NC contrast of the mean attribution, for the regions planted in that
  stage;
- **planted ROI x gene pairs**: for the maps a method has (``occlusion``: the occlusion
  link map, ``attention``: gene-to-ROI attention), the share of the planted pairs in the
  top 5 % of the all-subject map (ranked by mean |link|), among the pairs the model uses
  (mean |link| > 0);
- **the two randomisation tests** of Adebayo et al. (2018): the median per-subject
  Spearman correlation between the trained model's scores and those of (i) the model
  with re-initialised parameters and (ii) the model retrained on permuted labels, at
  the ROI and the gene level (``sanity.json``);

and two **univariate references** computed on the same subjects
(:mod:`rgenima.references`): the gene scan on dosages and the Welch t-test on ROI means.

The rule (:func:`choose_method`): a method *passes* when every defined median
correlation is below 0.5 (a level whose scores are constant, e.g. the genes of a model
whose prompt is closed, is undefined and does not count); among the passing methods the
one with the highest mean of the chosen recovery columns is used; ties go to the
earlier method in :data:`rgenima.explain.METHODS`. Real cohorts have no planted truth:
the rule then falls back to the passing method with the lowest median correlation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima.attribution_file import (
    ALL,
    CONTRAST_STAGES,
    REFERENCE_STAGE,
    Attributions,
    _group_masks,
    _nanmean,
)
from rgenima.recovery import _auroc, _load_truth, _ranks_average

#: Median Spearman correlation below which a method passes a randomisation test.
RANDOMISATION_THRESHOLD = 0.5
#: Map of the ROI x gene links each method is judged on.
LINK_MAPS = {"occlusion": "occlusion", "attention": "gene_to_roi"}
#: Recovery columns the rule maximises for the brain and the gene chapters.
ROI_CRITERIA = ("roi_auroc_MCI", "roi_auroc_AD")
GENE_CRITERIA = ("gene_auroc",)
REFERENCE_ROWS = {"gene": "reference: gene scan on dosages", "roi": "reference: t-test on ROI means"}


def _gene_metrics(scores: np.ndarray, names: np.ndarray, causal: list[str]) -> dict:
    positive = np.isin(names, causal)
    ranks = _ranks_average(scores)
    apoe = float(ranks[names == "APOE"][0]) if "APOE" in names else None
    varies = bool(np.nanmax(scores) > np.nanmin(scores)) if np.isfinite(scores).any() else False
    return {"gene_auroc": _auroc(scores, positive) if varies else None, "apoe_rank": apoe if varies else None}


def _pair_metrics(values: np.ndarray, roi_names: list[str], gene_names: list[str], truth: dict) -> dict:
    """Share of the used planted pairs in the top 5 % of the all-subject mean |link| map."""
    matrix = np.abs(_nanmean(values.reshape(values.shape[0], -1))).reshape(values.shape[1:])
    ranks = _ranks_average(matrix.ravel()).reshape(matrix.shape)
    n_pairs = matrix.size
    pairs, used, top = [], 0, 0
    for inter in truth["interactions"]:
        for roi in inter.get("regions", []):
            if inter["gene"] not in gene_names or roi not in roi_names:
                continue
            i, j = roi_names.index(roi), gene_names.index(inter["gene"])
            is_used = bool(np.isfinite(matrix[i, j]) and matrix[i, j] > 0)
            in_top = bool(is_used and ranks[i, j] <= 0.05 * n_pairs)
            used += is_used
            top += in_top
            pairs.append(
                {
                    "gene": inter["gene"],
                    "roi": roi,
                    "used": is_used,
                    "top_percent": float(100 * ranks[i, j] / n_pairs) if is_used else None,
                }
            )
    return {
        "pairs_used": used,
        "pairs_planted": len(pairs),
        "pairs_top5_of_used": (top / used) if used else None,
        "pairs": pairs,
    }


def _median(sanity: dict | None, section: str, level: str, method: str) -> float | None:
    entry = ((sanity or {}).get(section) or {}).get(level, {}).get(method)
    return None if not entry else entry.get("median")


def validation_table(
    attributions: Attributions,
    truth: str | dict | None,
    sanity: dict | None,
    references: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per attribution method (and per univariate reference).

    Parameters
    ----------
    attributions : Attributions
    truth : path, dict or None
        The synthetic cohort's ``truth.json``; None (real data) leaves the recovery
        columns empty.
    sanity : dict or None
        Content of ``sanity.json``.
    references : dict, optional
        :func:`rgenima.references.reference_scores` on the same subjects.

    Returns
    -------
    DataFrame
        Columns ``method``, ``gene_auroc``, ``apoe_rank``, ``roi_auroc_<stage>`` (SMC,
        MCI, AD), ``pairs_used``, ``pairs_planted``, ``pairs_top5_of_used``,
        ``rho_parameters_roi``, ``rho_parameters_gene``, ``rho_labels_roi``,
        ``rho_labels_gene`` (median Spearman correlations) and ``passes_randomisation``
        (None for the references).
    """
    data = _load_truth(truth)[0] if truth is not None else None
    masks = _group_masks(attributions.label)
    methods = [
        m
        for m in dict.fromkeys(attributions.methods("roi") + attributions.methods("gene"))
        if not m.startswith("attention_L") and m != "integrated_gradients_l2"
    ]
    rows = []
    for method in methods:
        row: dict = {"method": method}
        if data is not None and method in attributions.methods("gene"):
            values = attributions.get("gene", method)
            row.update(
                _gene_metrics(_nanmean(np.abs(values[masks[ALL]])), attributions.gene_names, list(data["causal_genes"]))
            )
        if data is not None and method in attributions.methods("roi"):
            values = attributions.get("roi", method)
            for stage in CONTRAST_STAGES:
                if masks[stage].any() and masks[REFERENCE_STAGE].any():
                    contrast = _nanmean(values[masks[stage]]) - _nanmean(values[masks[REFERENCE_STAGE]])
                    planted = np.isin(attributions.roi_names, data["planted_regions"].get(stage, []))
                    row[f"roi_auroc_{stage}"] = _auroc(contrast, planted)
        direction = LINK_MAPS.get(method)
        if data is not None and direction in attributions.directions():
            row.update(
                {
                    k: v
                    for k, v in _pair_metrics(
                        attributions.roi_gene(direction),
                        list(attributions.names("roi")),
                        list(attributions.names("gene")),
                        data,
                    ).items()
                    if k != "pairs"
                }
            )
        medians = {}
        for section, key in (("levels", "parameters"), ("label_randomisation", "labels")):
            for level in ("roi", "gene"):
                medians[f"rho_{key}_{level}"] = _median(sanity, section, level, method)
        row.update(medians)
        defined = [v for v in medians.values() if v is not None]
        row["passes_randomisation"] = bool(defined) and all(v < RANDOMISATION_THRESHOLD for v in defined)
        rows.append(row)
    if references is not None and data is not None:
        gene = references.get("gene")
        if gene is not None and len(gene):
            rows.append(
                {
                    "method": REFERENCE_ROWS["gene"],
                    **_gene_metrics(
                        gene["all"].to_numpy(dtype=float), gene.index.to_numpy().astype(str), list(data["causal_genes"])
                    ),
                }
            )
        roi = references.get("roi")
        if roi is not None and len(roi):
            row = {"method": REFERENCE_ROWS["roi"]}
            names = roi.index.to_numpy().astype(str)
            for stage in CONTRAST_STAGES:
                if stage in roi:
                    row[f"roi_auroc_{stage}"] = _auroc(
                        roi[stage].to_numpy(dtype=float), np.isin(names, data["planted_regions"].get(stage, []))
                    )
            rows.append(row)
    columns = [
        "method",
        "gene_auroc",
        "apoe_rank",
        *[f"roi_auroc_{s}" for s in CONTRAST_STAGES],
        "pairs_used",
        "pairs_planted",
        "pairs_top5_of_used",
        "rho_parameters_roi",
        "rho_parameters_gene",
        "rho_labels_roi",
        "rho_labels_gene",
        "passes_randomisation",
    ]
    return pd.DataFrame(rows, columns=columns)


def choose_method(table: pd.DataFrame, criteria: tuple[str, ...]) -> tuple[str | None, str]:
    """The method the signature chapters use, by the rule of the module docstring.

    Returns
    -------
    method : str or None
        None when no method passes both randomisation tests.
    reason : str
        One sentence that the chapter prints.
    """
    methods = table[~table["method"].str.startswith("reference")]
    passing = methods[methods["passes_randomisation"].map(lambda v: v is True or v == True)]  # noqa: E712
    if passing.empty:
        return None, "no method passes both randomisation tests (median Spearman rho < 0.5)."
    scores = passing[list(criteria)].astype(float)
    if scores.notna().any(axis=None):
        mean = scores.mean(axis=1, skipna=True)
        best = passing.loc[mean.fillna(-np.inf).idxmax()]
        return str(best["method"]), (
            f"{best['method']} passes both randomisation tests and has the highest mean "
            f"{' / '.join(criteria)} ({mean.max():.3f}) of the {len(passing)} passing methods."
        )
    rho = passing.filter(like="rho_").astype(float).max(axis=1)
    best = passing.loc[rho.idxmin()]
    return str(best["method"]), (
        f"no planted truth: {best['method']} is the passing method with the lowest "
        f"median correlation with the randomised models ({rho.min():.2f})."
    )


__all__ = ["choose_method", "gene_configuration", "reads_prompt", "validate_run", "validation_table"]


# ---------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------
def reads_prompt(run_dir, configuration: str) -> bool:
    """Whether any fold model of ``configuration`` lets its genetic prompt change its output
    (a fold whose fusion gates are all closed does not; a model without gates does)."""
    from safetensors import safe_open

    from rgenima.run import FoldDir, Run

    folds = sorted(Run(run_dir).model_dir(configuration).glob("fold_*"))
    for path in (FoldDir(f).best for f in folds):
        if not path.is_file():  # an unfinished fold
            continue
        with safe_open(str(path), "pt") as f:
            if "prompt_gate" not in f.keys() or bool((f.get_tensor("prompt_gate") != 0).any()):
                return True
    return False


def gene_configuration(run_dir, main: str) -> str:
    """The configuration whose gene attributions the gene chapters explain: ``main`` when
    its prompt is open in some fold (:func:`reads_prompt`), else the SNP-only
    configuration of the same profile (``rgenima_mri+snp__x`` -> ``rgenima_snp__x``)."""
    from rgenima.run import Run

    if "snp" not in main.split("__")[0] or reads_prompt(run_dir, main):
        return main
    snp_only = main.replace("rgenima_mri+snp", "rgenima_snp", 1)
    if not Run(run_dir).training_json(snp_only).is_file():
        raise FileNotFoundError(
            f"every fold of {main} kept its prompt closed and {snp_only} is not trained: "
            "no model of this run uses the genes."
        )
    return snp_only


def validate_run(run_dir, configuration: str, truth=None) -> pd.DataFrame:
    """:func:`validation_table` of an explained configuration, with the univariate
    references on the same subjects; written to ``explain/<configuration>/validation.csv``."""
    from rgenima.fileio import atomic_write_text
    from rgenima.references import reference_scores
    from rgenima.run import Run
    from rgenima.signatures import load_attributions

    run = Run(run_dir)
    attributions = load_attributions(run.find_attributions(configuration))
    references = reference_scores(run.prepared, attributions.ptid) if truth is not None else None
    table = validation_table(attributions, truth, run.read_sanity(configuration), references)
    atomic_write_text(run.validation_csv(configuration), table.to_csv(index=False, float_format="%.6g"))
    return table
