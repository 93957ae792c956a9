"""Stage-wise ROI and gene signatures, ROI x gene maps, and recovery of planted truth.

Reads the per-subject attributions written by :mod:`rgenima.explain`
(``RUNDIR/explain/<configuration>/attributions.npz``) and summarises them by diagnostic
stage (:data:`rgenima.STAGES`, grouped by each subject's *true* label).

Scores
------
Two summaries are computed for every attribution method (``attention``, ``rollout``,
``integrated_gradients``, ``attention_L0``, ...) and every ROI or gene:

``stage signature`` (:func:`stage_signature`), method column ``<method>``
    For each stage s in SMC, MCI, AD: ``mean(attribution | stage s) - mean(attribution
    | NC)``, the signed difference of means (NaN-aware: a subject whose value is NaN,
    e.g. a gene absent from its prompt, is left out of that feature's mean). A gene
    or ROI ranks high when the model attributes *more* to it in stage s than in NC,
    for attention (non-negative) as for integrated gradients (signed). Ranking is by
    the signed difference, never its magnitude: a region attended *less* in AD than
    in NC ranks at the bottom.
``mean level`` (:func:`mean_attribution`), method column ``<method>@mean_abs``
    For each stage NC, SMC, MCI, AD and for ``all`` subjects: the mean over subjects of
    ``|attribution|`` (for attention this is the plain mean attribution). A contrast
    with NC misses a feature that the model reads in *every* subject (APOE attended in
    NC and AD alike is informative for both); the level captures it. The magnitude
    makes integrated gradients comparable: evidence for and against a class both count
    as use of the feature.

Confidence intervals are percentile bootstrap intervals: subjects are resampled with
replacement *within* each stage group (and over all subjects for ``all``), the two
groups of a contrast independently. Resamples are drawn as multinomial counts from
``seed`` in a fixed order (NC, SMC, MCI, AD, all), so every method and both ROI and gene
tables share the same resamples, and a rerun with the same seed gives identical
intervals.

Outputs of :func:`signatures_run` (written atomically under ``RUNDIR``)
---------------------------------------------------------------------
``roi_attribution.csv`` and ``gene_attribution.csv``
    Columns exactly ``name, stage, method, score, ci_low, ci_high, rank``. Rows with
    ``method == "<m>"`` are stage signatures (stage SMC, MCI or AD); rows with ``method
    == "<m>@mean_abs"`` are mean levels (stage NC, SMC, MCI, AD or ``all``). ``rank``
    is 1..n within each (stage, method), 1 for the highest score, ties broken by name
    (the convention of :func:`rgenima.enrich.rank_genes`). A feature whose score is
    undefined (NaN in every subject of a group) is left out of that (stage, method).
    Randomised-model attributions (``random__*``) are not tabulated; they enter
    ``recovery.json``. A table without data (no ROI arrays in an SNP-only
    configuration, no gene arrays in an MRI-only one) is written with its header only.
``roi_gene.csv``
    Long format, columns ``stage, direction, roi, gene, score, rank``: for each stage
    (NC, SMC, MCI, AD, ``all``) and direction (``gene_to_roi``, ``roi_to_gene``) the
    mean over the stage's subjects of the ROI x gene association, ``rank`` 1..R*G
    within (stage, direction), 1 = strongest (highest score). A direction that is
    identically zero (``roi_to_gene`` for a causal backbone, where ROI tokens precede
    the prompt) carries no information and is omitted.
``recovery.json``
    Synthetic cohort only (written when a ``truth.json`` is found): ``configuration``,
    ``attributions`` (the npz read), ``sanity_file``, then the dict of :func:`recovery`.

This module has no CLI subcommand of its own: the explain step calls
:func:`signatures_run`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.stats import percentile_interval
from rgenima.attribution_file import (
    ALL,
    ATTRIBUTION_COLUMNS,
    CONTRAST_STAGES,
    DIRECTIONS,
    MEAN_SUFFIX,
    REFERENCE_STAGE,
    ROI_GENE_COLUMNS,
    Attributions,
    _group_masks,
    _mean_matrix,
    _nanmean,
    load_attributions,
)
from rgenima.fileio import atomic_write_text
from rgenima.recovery import recovery, recovery_tables
from rgenima.run import Run

logger = logging.getLogger(__name__)

__all__ = [
    "ALL",
    "CONTRAST_STAGES",
    "REFERENCE_STAGE",
    "ATTRIBUTION_COLUMNS",
    "ROI_GENE_COLUMNS",
    "MEAN_SUFFIX",
    "DIRECTIONS",
    "Attributions",
    "SignaturesResult",
    "load_attributions",
    "stage_signature",
    "mean_attribution",
    "attribution_table",
    "roi_gene_matrix",
    "roi_gene_table",
    "recovery",
    "recovery_tables",
    "find_truth",
    "find_attributions",
    "signatures_run",
]


# ---------------------------------------------------------------------------------
# Bootstrap helpers
# ---------------------------------------------------------------------------------
def _bootstrap_counts(label: np.ndarray, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Resample counts per group: group -> float array (n_boot, n_group), rows sum to n_group.

    Drawn in the fixed order NC, SMC, MCI, AD, all from one generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    counts = {}
    for group, mask in _group_masks(label).items():
        m = int(mask.sum())
        if m == 0 or n_boot == 0:
            counts[group] = np.zeros((n_boot, m))
        else:
            counts[group] = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64)
    return counts


def _weighted_nanmean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bootstrap means: counts (B, n) x values (n, F) -> (B, F), ignoring NaN values."""
    finite = np.isfinite(values)
    total = counts @ np.where(finite, values, 0.0)
    count = counts @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def _check_boot(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"'n_boot' must be a non-negative integer; {n_boot!r} was provided.")
    if not 0 < confidence < 1:
        raise ValueError(f"'confidence' must lie in (0, 1); {confidence!r} was provided.")


def _rank_desc(scores: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Ordinal ranks 1..n by decreasing score, ties broken by name (NaN last)."""
    key = np.where(np.isnan(scores), np.inf, -scores)
    order = np.lexsort((names.astype(str), key))
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _table(
    names: np.ndarray, stage: str, method: str, score: np.ndarray, low: np.ndarray, high: np.ndarray
) -> pd.DataFrame:
    keep = np.isfinite(score)
    names, score, low, high = names[keep], score[keep], low[keep], high[keep]
    frame = pd.DataFrame(
        {
            "name": names.astype(str),
            "stage": stage,
            "method": method,
            "score": score,
            "ci_low": low,
            "ci_high": high,
            "rank": _rank_desc(score, names),
        }
    )
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------
# Stage signatures and levels
# ---------------------------------------------------------------------------------
def stage_signature(
    attributions: Attributions,
    kind: str,
    method: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Stage signature: mean attribution in each stage minus the mean in NC.

    Parameters
    ----------
    attributions : Attributions
    kind : {'roi', 'gene', 'snp'}
    method : str
        An attribution method present for ``kind`` (see :meth:`Attributions.methods`).
    n_boot : int, default 1000
        Bootstrap resamples (within each stage group); 0 leaves the CIs NaN.
    seed : int, default 0
    confidence : float, default 0.95
        Level of the percentile interval.

    Returns
    -------
    DataFrame
        Columns :data:`ATTRIBUTION_COLUMNS`; one block per stage SMC, MCI, AD that has
        subjects (none if NC has none), ``method`` = ``method``, ``score`` in the
        attribution's units (signed difference), sorted by rank within each stage.
    """
    _check_boot(n_boot, confidence)
    values = attributions.get(kind, method)
    names = attributions.names(kind)
    masks = _group_masks(attributions.label)
    if not masks[REFERENCE_STAGE].any():
        logger.warning(
            "%s: no %s subjects; stage signatures of %s/%s skipped", attributions.path, REFERENCE_STAGE, kind, method
        )
        return pd.DataFrame(columns=list(ATTRIBUTION_COLUMNS))
    counts = _bootstrap_counts(attributions.label, n_boot, seed)
    ref = values[masks[REFERENCE_STAGE]]
    ref_mean = _nanmean(ref)
    ref_boot = _weighted_nanmean(counts[REFERENCE_STAGE], ref)
    blocks = []
    for stage in CONTRAST_STAGES:
        if not masks[stage].any():
            logger.info("no %s subjects: no %s signature", stage, stage)
            continue
        group = values[masks[stage]]
        score = _nanmean(group) - ref_mean
        low, high = percentile_interval(_weighted_nanmean(counts[stage], group) - ref_boot, confidence)
        blocks.append(_table(names, stage, method, score, low, high))
    return _concat(blocks, ATTRIBUTION_COLUMNS)


def mean_attribution(
    attributions: Attributions,
    kind: str,
    method: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean attribution magnitude, ``mean(|attribution|)``, per stage and over all subjects.

    Parameters
    ----------
    attributions, kind, method, n_boot, seed, confidence
        As :func:`stage_signature` (the same seed gives the same resamples).

    Returns
    -------
    DataFrame
        Columns :data:`ATTRIBUTION_COLUMNS`; stages NC, SMC, MCI, AD (those with
        subjects) then ``all``; ``method`` = ``method + MEAN_SUFFIX``.
    """
    _check_boot(n_boot, confidence)
    values = np.abs(attributions.get(kind, method))
    names = attributions.names(kind)
    counts = _bootstrap_counts(attributions.label, n_boot, seed)
    blocks = []
    for group, mask in _group_masks(attributions.label).items():
        if not mask.any():
            continue
        sub = values[mask]
        low, high = percentile_interval(_weighted_nanmean(counts[group], sub), confidence)
        blocks.append(_table(names, group, method + MEAN_SUFFIX, _nanmean(sub), low, high))
    return _concat(blocks, ATTRIBUTION_COLUMNS)


def attribution_table(
    attributions: Attributions,
    kind: str,
    methods: list[str] | None = None,
    *,
    include_mean: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The ``roi_attribution.csv`` / ``gene_attribution.csv`` table of one kind.

    Parameters
    ----------
    attributions : Attributions
    kind : {'roi', 'gene', 'snp'}
    methods : list of str, optional
        Default: every (non-random) method present for ``kind``.
    include_mean : bool, default True
        Append the :func:`mean_attribution` rows (``<method>@mean_abs``).
    n_boot, seed, confidence
        See :func:`stage_signature`.

    Returns
    -------
    DataFrame
        Columns :data:`ATTRIBUTION_COLUMNS`; empty (header only) if ``kind`` is absent.
    """
    if not attributions.has(kind):
        return pd.DataFrame(columns=list(ATTRIBUTION_COLUMNS))
    methods = attributions.methods(kind) if methods is None else list(methods)
    blocks = []
    for method in methods:
        blocks.append(stage_signature(attributions, kind, method, n_boot=n_boot, seed=seed, confidence=confidence))
        if include_mean:
            blocks.append(mean_attribution(attributions, kind, method, n_boot=n_boot, seed=seed, confidence=confidence))
    return _concat(blocks, ATTRIBUTION_COLUMNS)


def _concat(blocks: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    blocks = [b for b in blocks if len(b)]
    if not blocks:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(blocks, ignore_index=True)[list(columns)]


# ---------------------------------------------------------------------------------
# ROI x gene association
# ---------------------------------------------------------------------------------
def _stage_mask(attributions: Attributions, stage: str) -> np.ndarray:
    masks = _group_masks(attributions.label)
    if stage not in masks:
        raise ValueError(f"'stage' must be one of {(*STAGES, ALL)}; {stage!r} was provided.")
    return masks[stage]


def roi_gene_matrix(attributions: Attributions, stage: str = ALL, direction: str = "gene_to_roi") -> pd.DataFrame:
    """Mean ROI x gene association over the subjects of ``stage``, for heatmaps.

    Parameters
    ----------
    attributions : Attributions
    stage : {'NC', 'SMC', 'MCI', 'AD', 'all'}, default 'all'
    direction : {'gene_to_roi', 'roi_to_gene'}, default 'gene_to_roi'

    Returns
    -------
    DataFrame of shape (n_rois, n_genes)
        Index: ROI names; columns: gene names. All NaN if the stage has no subjects.
    """
    values = attributions.roi_gene(direction)
    mask = _stage_mask(attributions, stage)
    matrix = _mean_matrix(values, mask) if mask.any() else np.full(values.shape[1:], np.nan)
    return pd.DataFrame(
        matrix,
        index=pd.Index(attributions.roi_names, name="roi"),
        columns=pd.Index(attributions.gene_names, name="gene"),
    )


def roi_gene_table(attributions: Attributions, stages: tuple[str, ...] = (*STAGES, ALL)) -> pd.DataFrame:
    """The ``roi_gene.csv`` table: every stage x direction x ROI x gene.

    Parameters
    ----------
    attributions : Attributions
    stages : tuple of str, default NC, SMC, MCI, AD, 'all'
        Stages without subjects are skipped.

    Returns
    -------
    DataFrame
        Columns :data:`ROI_GENE_COLUMNS`, sorted by stage, direction, rank. Directions
        that are absent or identically zero are omitted; header only if none remains.
    """
    blocks = []
    roi_names = np.asarray(attributions.roi_names if attributions.roi_names is not None else [], dtype=str)
    gene_names = np.asarray(attributions.gene_names if attributions.gene_names is not None else [], dtype=str)
    for direction in attributions.directions():
        values = attributions.roi_gene(direction)
        finite = values[np.isfinite(values)]
        if finite.size == 0 or not np.any(finite != 0):
            logger.info(
                "%s: roi_gene__%s is identically zero or NaN (causal backbone?): omitted", attributions.path, direction
            )
            continue
        roi = np.repeat(roi_names, len(gene_names))
        gene = np.tile(gene_names, len(roi_names))
        pair_names = np.char.add(np.char.add(roi, "\t"), gene)
        for stage in stages:
            mask = _stage_mask(attributions, stage)
            if not mask.any():
                continue
            score = _mean_matrix(values, mask).ravel()
            frame = pd.DataFrame(
                {
                    "stage": stage,
                    "direction": direction,
                    "roi": roi,
                    "gene": gene,
                    "score": score,
                    "rank": _rank_desc(score, pair_names),
                }
            )
            blocks.append(frame.sort_values("rank", kind="stable"))
    table = _concat(blocks, ROI_GENE_COLUMNS)
    return table.reset_index(drop=True)


# ---------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------
def find_truth(run_dir: str | Path) -> Path | None:
    """``truth.json`` of a run's synthetic cohort, or None (real data or not found); see
    :meth:`rgenima.run.Run.truth_path`."""
    return Run(run_dir).truth_path()


def find_attributions(run_dir: str | Path, configuration: str | None = None) -> Path:
    """Path of ``RUNDIR/explain/<configuration>/attributions.npz``; see
    :meth:`rgenima.run.Run.find_attributions`."""
    return Run(run_dir).find_attributions(configuration)


@dataclass
class SignaturesResult:
    """What :func:`signatures_run` computed and wrote.

    Attributes
    ----------
    roi_attribution, gene_attribution : DataFrame
        Columns :data:`ATTRIBUTION_COLUMNS` (header only when the kind is absent).
    roi_gene : DataFrame
        Columns :data:`ROI_GENE_COLUMNS`.
    recovery : dict or None
        See :func:`recovery`; None when no truth was found.
    paths : dict of str to Path
        Files written (``recovery`` only when computed).
    """

    roi_attribution: pd.DataFrame
    gene_attribution: pd.DataFrame
    roi_gene: pd.DataFrame
    recovery: dict | None
    paths: dict[str, Path]


def signatures_run(
    run_dir: str | Path,
    configuration: str | None = None,
    truth: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    kinds: tuple[str, ...] = ("roi", "gene"),
) -> SignaturesResult:
    """Signatures, ROI x gene tables and (synthetic cohort) recovery of one run.

    Parameters
    ----------
    run_dir : str or Path
        Run directory holding ``explain/<configuration>/attributions.npz``.
    configuration : str, optional
        See :func:`find_attributions`.
    truth : str or Path, optional
        ``truth.json``. Default: found by :func:`find_truth`; if none is found the
        recovery step is skipped (real data).
    n_boot : int, default 1000
        Bootstrap resamples of subjects for the CIs.
    seed : int, default 0
    confidence : float, default 0.95
    kinds : tuple of str, default ("roi", "gene")
        Which signature tables to write; ``roi_gene.csv`` is written only with both (the
        book takes the ROI tables from the main configuration and the gene tables from
        the configuration that reads the genes, see rgenima.validation.gene_configuration).

    Returns
    -------
    SignaturesResult

    Writes (atomically) ``RUNDIR/roi_attribution.csv``, ``RUNDIR/gene_attribution.csv``,
    ``RUNDIR/roi_gene.csv`` and, with a truth, ``explain/<configuration>/recovery.json`` and
    (with the ROI tables) ``RUNDIR/recovery.json`` (see the module
    docstring for their layout).
    """
    _check_boot(n_boot, confidence)
    run = Run(run_dir)
    npz = run.find_attributions(configuration)
    truth_path = Path(truth) if truth is not None else run.truth_path()
    if truth_path is not None and not truth_path.is_file():
        raise FileNotFoundError(f"truth file not found: {truth_path}")
    attributions = load_attributions(npz)
    logger.info(
        "signatures of %s: %d subjects %s, %d bootstrap resamples (seed %d)",
        npz,
        attributions.n_subjects,
        attributions.stage_counts(),
        n_boot,
        seed,
    )

    tables = {}
    paths: dict[str, Path] = {}
    unknown = [k for k in kinds if k not in ("roi", "gene")]
    if unknown or not kinds:
        raise ValueError(f"'kinds' must be a non-empty subset of ('roi', 'gene'); got {kinds!r}.")
    for kind in ("roi", "gene"):
        if kind not in kinds:
            tables[kind] = pd.DataFrame(columns=list(ATTRIBUTION_COLUMNS))
            continue
        if attributions.has(kind):
            logger.info("%s signatures: methods %s", kind, attributions.methods(kind))
        else:
            logger.info("%s: no %s attributions; %s_attribution.csv has its header only", npz, kind, kind)
        table = attribution_table(attributions, kind, n_boot=n_boot, seed=seed, confidence=confidence)
        tables[kind] = table
        target = run.roi_attribution_csv if kind == "roi" else run.gene_attribution_csv
        paths[f"{kind}_attribution"] = atomic_write_text(target, table.to_csv(index=False, float_format="%.6g"))
        logger.info("wrote %s (%d rows)", paths[f"{kind}_attribution"], len(table))

    roi_gene = (
        roi_gene_table(attributions) if set(kinds) == {"roi", "gene"} else pd.DataFrame(columns=list(ROI_GENE_COLUMNS))
    )
    if set(kinds) == {"roi", "gene"}:
        paths["roi_gene"] = atomic_write_text(run.roi_gene_csv, roi_gene.to_csv(index=False, float_format="%.6g"))
        logger.info("wrote %s (%d rows)", paths["roi_gene"], len(roi_gene))

    result = None
    if truth_path is None:
        logger.info("no truth.json for %s (not a synthetic cohort?): recovery skipped", run.path)
    else:
        sanity_path = run.sanity_json(npz.parent.name)
        sanity = run.read_sanity(npz.parent.name)
        result = recovery(attributions, truth_path, sanity=sanity)
        result = {
            "configuration": npz.parent.name,
            "attributions": str(npz),
            "sanity_file": str(sanity_path) if sanity is not None else None,
            **result,
        }
        # RUNDIR/recovery.json belongs to the main configuration (the call with the ROI
        # tables); every call also writes its own beside its attributions.
        text = json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n"
        atomic_write_text(run.configuration_recovery_json(npz.parent.name), text)
        if "roi" in kinds:
            paths["recovery"] = atomic_write_text(run.recovery_json, text)
            logger.info("wrote %s", paths["recovery"])
    return SignaturesResult(
        roi_attribution=tables["roi"], gene_attribution=tables["gene"], roi_gene=roi_gene, recovery=result, paths=paths
    )
