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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima._utils.jsonsafe import json_safe
from rgenima.errors import DataContractError
from rgenima.fileio import atomic_write_text
from rgenima.run import Run

logger = logging.getLogger(__name__)

__all__ = [
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
    "find_truth",
    "find_attributions",
    "signatures_run",
]

#: Columns of ``roi_attribution.csv`` and ``gene_attribution.csv``, in order.
ATTRIBUTION_COLUMNS: tuple[str, ...] = ("name", "stage", "method", "score", "ci_low", "ci_high", "rank")
#: Columns of ``roi_gene.csv``, in order.
ROI_GENE_COLUMNS: tuple[str, ...] = ("stage", "direction", "roi", "gene", "score", "rank")
#: Suffix of the method name on mean-level rows (mean |attribution| per stage).
MEAN_SUFFIX = "@mean_abs"
#: Directions of the ROI x gene association arrays (``roi_gene__<direction>``).
DIRECTIONS: tuple[str, ...] = ("gene_to_roi", "roi_to_gene", "occlusion")
#: Reference group of the stage signatures, and the stages contrasted with it.
REFERENCE_STAGE = "NC"
CONTRAST_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s != REFERENCE_STAGE)
#: Group label of "every subject" in level tables.
ALL = "all"

_KINDS = ("roi", "gene", "snp")
_NAME_KEYS = {"roi": ("roi_names",), "gene": ("gene_names",), "snp": ("snp_names", "snp_gene")}
_SUBJECT_KEYS = ("ptid", "label", "pred", "fold")
_PREFERRED_METHODS = ("attention", "rollout", "relevance", "integrated_gradients", "occlusion", "occlusion_contrast",
                      "atrophy_sensitivity")
_RANDOM = "random__"


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------
def _method_order(method: str) -> tuple:
    if method in _PREFERRED_METHODS:
        return (0, _PREFERRED_METHODS.index(method), 0, method)
    m = re.fullmatch(r"attention_L(\d+)", method)
    if m:
        return (1, 0, int(m.group(1)), method)
    return (2, 0, 0, method)


@dataclass(frozen=True)
class Attributions:
    """Per-subject attributions of one configuration (the content of ``attributions.npz``).

    Attributes
    ----------
    path : Path
        The file read (named in every error).
    ptid : ndarray of str, shape (n_subjects,)
    label : ndarray of int, shape (n_subjects,)
        True stage index into :data:`rgenima.STAGES`.
    pred : ndarray of int, shape (n_subjects,)
    fold : ndarray of int, shape (n_subjects,)
    roi_names : ndarray of str, shape (n_rois,) or None when there are no ROI arrays
    gene_names : ndarray of str, shape (n_genes,) or None when there are no gene arrays
    snp_names, snp_gene : ndarray of str, shape (n_snps,) or None
    arrays : dict of str to ndarray
        Every attribution array by its npz key: ``roi__<method>`` (n_subjects, n_rois),
        ``gene__<method>`` (n_subjects, n_genes), ``snp__<method>`` (n_subjects, n_snps),
        ``roi_gene__<direction>`` (n_subjects, n_rois, n_genes), and ``random__``
        versions. NaN marks a missing value.
    """

    path: Path
    ptid: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    fold: np.ndarray
    roi_names: np.ndarray | None
    gene_names: np.ndarray | None
    snp_names: np.ndarray | None
    snp_gene: np.ndarray | None
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_subjects(self) -> int:
        return int(self.label.shape[0])

    @property
    def stage(self) -> np.ndarray:
        """Stage name of each subject, ndarray of str, shape (n_subjects,)."""
        return np.asarray(STAGES, dtype=object)[self.label]

    def stage_counts(self) -> dict[str, int]:
        """Subjects per stage, in :data:`STAGES` order (0 for an absent stage)."""
        return {s: int((self.label == k).sum()) for k, s in enumerate(STAGES)}

    def names(self, kind: str) -> np.ndarray:
        """Feature names of ``kind`` ('roi', 'gene' or 'snp')."""
        self._check_kind(kind)
        names = {"roi": self.roi_names, "gene": self.gene_names, "snp": self.snp_names}[kind]
        if names is None:
            raise DataContractError(
                f"{self.path}: no {kind} attributions (no '{kind}__<method>' arrays; "
                f"{'an SNP-only' if kind == 'roi' else 'an MRI-only'} configuration?)."
            )
        return names

    def has(self, kind: str) -> bool:
        """Whether any ``<kind>__<method>`` array is present."""
        self._check_kind(kind)
        return bool(self.methods(kind))

    def methods(self, kind: str, random: bool = False) -> list[str]:
        """Methods with a ``<kind>__<method>`` array (``random__<kind>__`` if ``random``),
        ordered attention, rollout, integrated_gradients, attention_L0, L1, ..., others."""
        self._check_kind(kind)
        prefix = (_RANDOM if random else "") + f"{kind}__"
        found = [k[len(prefix):] for k in self.arrays if k.startswith(prefix)]
        return sorted(found, key=_method_order)

    def get(self, kind: str, method: str, random: bool = False) -> np.ndarray:
        """Attribution array of shape (n_subjects, n_features) as float64."""
        available = self.methods(kind, random=random)
        if not self.methods(kind):
            self.names(kind)  # raises: no arrays of this kind at all
        if method not in available:
            key = (_RANDOM if random else "") + f"{kind}__{method}"
            raise DataContractError(
                f"{self.path}: no array '{key}'. 'method' must be one of {tuple(available)}; "
                f"got {method!r}."
            )
        key = (_RANDOM if random else "") + f"{kind}__{method}"
        return np.asarray(self.arrays[key], dtype=np.float64)

    def directions(self) -> list[str]:
        """Directions with a ``roi_gene__<direction>`` array."""
        return [d for d in DIRECTIONS if f"roi_gene__{d}" in self.arrays]

    def roi_gene(self, direction: str = "gene_to_roi") -> np.ndarray:
        """ROI x gene association of shape (n_subjects, n_rois, n_genes), float64."""
        if direction not in DIRECTIONS:
            raise ValueError(f"'direction' must be one of {DIRECTIONS}; {direction!r} was provided.")
        key = f"roi_gene__{direction}"
        if key not in self.arrays:
            raise DataContractError(f"{self.path}: missing array '{key}'.")
        return np.asarray(self.arrays[key], dtype=np.float64)

    def _check_kind(self, kind: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"'kind' must be one of {_KINDS}; {kind!r} was provided.")


def load_attributions(path: str | Path) -> Attributions:
    """Read and check an ``attributions.npz`` written by :mod:`rgenima.explain`.

    Parameters
    ----------
    path : str or Path
        The npz file (read with ``allow_pickle=False``: names must be stored as
        fixed-width unicode arrays, never as pickled objects).

    Returns
    -------
    Attributions

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataContractError
        If a required array is missing (the message names the file and the key), an
        array has the wrong shape, or a label is outside 0..3.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attributions file not found: {path} (run the explain step first).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays need pickle
        raise DataContractError(f"{path}: cannot be read without unpickling ({exc}); names must be "
                                "stored as unicode string arrays.") from exc
    except Exception as exc:  # noqa: BLE001 - zip/format errors
        raise DataContractError(f"{path}: not a readable npz file ({exc}).") from exc

    def need(key: str, why: str | None = None) -> np.ndarray:
        if key not in data:
            reason = f" (needed by '{why}')" if why else ""
            raise DataContractError(f"{path}: missing array '{key}'{reason}; found {sorted(data)}.")
        return data[key]

    subject = {k: need(k) for k in _SUBJECT_KEYS}
    n = subject["label"].shape[0]
    for k, v in subject.items():
        if v.ndim != 1 or v.shape[0] != n:
            raise DataContractError(f"{path}: array '{k}' must have shape ({n},) like 'label'; got {v.shape}.")
    label = subject["label"]
    if not np.issubdtype(label.dtype, np.integer):
        if np.issubdtype(label.dtype, np.floating) and np.all(np.isfinite(label)) and np.all(label == np.round(label)):
            label = label.astype(np.int64)
        else:
            raise DataContractError(f"{path}: array 'label' must hold integer stage indices; got dtype {label.dtype}.")
    bad = (label < 0) | (label >= len(STAGES))
    if bad.any():
        raise DataContractError(f"{path}: array 'label' must lie in 0..{len(STAGES) - 1} (index into "
                                f"{STAGES}); got {sorted(set(label[bad].tolist()))}.")

    names: dict[str, np.ndarray | None] = {"roi_names": None, "gene_names": None,
                                           "snp_names": None, "snp_gene": None}
    sizes: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    keys = [k for k in data if k not in _SUBJECT_KEYS and k not in names]
    for kind in _KINDS:
        users = [k for k in keys if k.startswith(f"{kind}__") or k.startswith(f"{_RANDOM}{kind}__")]
        if not users:
            continue
        for nk in _NAME_KEYS[kind]:
            names[nk] = np.asarray(need(nk, users[0])).astype(str)
        sizes[kind] = names[_NAME_KEYS[kind][0]].shape[0]
        for nk in _NAME_KEYS[kind][1:]:
            if names[nk].shape != (sizes[kind],):
                raise DataContractError(f"{path}: array '{nk}' must have shape ({sizes[kind]},) like "
                                        f"'{_NAME_KEYS[kind][0]}'; got {names[nk].shape}.")
        for k in users:
            if data[k].shape != (n, sizes[kind]):
                raise DataContractError(f"{path}: array '{k}' must have shape (n_subjects, n_{kind}s) = "
                                        f"({n}, {sizes[kind]}); got {data[k].shape}.")
            arrays[k] = data[k]
    for direction in DIRECTIONS:
        k = f"roi_gene__{direction}"
        if k not in data:
            continue
        for nk in ("roi_names", "gene_names"):
            if names[nk] is None:
                names[nk] = np.asarray(need(nk, k)).astype(str)
        shape = (n, names["roi_names"].shape[0], names["gene_names"].shape[0])
        if data[k].shape != shape:
            raise DataContractError(f"{path}: array '{k}' must have shape (n_subjects, n_rois, n_genes) = "
                                    f"{shape}; got {data[k].shape}.")
        arrays[k] = data[k]
    return Attributions(
        path=path,
        ptid=subject["ptid"].astype(str),
        label=label.astype(np.int64),
        pred=subject["pred"],
        fold=subject["fold"],
        arrays=arrays,
        **names,
    )


# ---------------------------------------------------------------------------------
# Bootstrap helpers
# ---------------------------------------------------------------------------------
def _group_masks(label: np.ndarray) -> dict[str, np.ndarray]:
    masks = {s: label == k for k, s in enumerate(STAGES)}
    masks[ALL] = np.ones(label.shape[0], dtype=bool)
    return masks


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


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN, NaN where a column has no finite value; (n, F) -> (F,)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _weighted_nanmean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bootstrap means: counts (B, n) x values (n, F) -> (B, F), ignoring NaN values."""
    finite = np.isfinite(values)
    total = counts @ np.where(finite, values, 0.0)
    count = counts @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def _percentile_ci(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column of (B, F) bootstrap values, ignoring NaN."""
    from rgenima._utils.stats import percentile_interval

    return percentile_interval(boot, confidence)


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


def _table(names: np.ndarray, stage: str, method: str, score: np.ndarray, low: np.ndarray,
           high: np.ndarray) -> pd.DataFrame:
    keep = np.isfinite(score)
    names, score, low, high = names[keep], score[keep], low[keep], high[keep]
    frame = pd.DataFrame({"name": names.astype(str), "stage": stage, "method": method, "score": score,
                          "ci_low": low, "ci_high": high, "rank": _rank_desc(score, names)})
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
        logger.warning("%s: no %s subjects; stage signatures of %s/%s skipped", attributions.path,
                       REFERENCE_STAGE, kind, method)
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
        low, high = _percentile_ci(_weighted_nanmean(counts[stage], group) - ref_boot, confidence)
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
        low, high = _percentile_ci(_weighted_nanmean(counts[group], sub), confidence)
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
            blocks.append(mean_attribution(attributions, kind, method, n_boot=n_boot, seed=seed,
                                           confidence=confidence))
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


def _mean_matrix(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NaN-aware mean over the masked subjects of (n, R, G) -> (R, G)."""
    sub = values[mask]
    return _nanmean(sub.reshape(sub.shape[0], -1)).reshape(values.shape[1:])


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
    return pd.DataFrame(matrix, index=pd.Index(attributions.roi_names, name="roi"),
                        columns=pd.Index(attributions.gene_names, name="gene"))


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
            logger.info("%s: roi_gene__%s is identically zero or NaN (causal backbone?): omitted",
                        attributions.path, direction)
            continue
        roi = np.repeat(roi_names, len(gene_names))
        gene = np.tile(gene_names, len(roi_names))
        pair_names = np.char.add(np.char.add(roi, "\t"), gene)
        for stage in stages:
            mask = _stage_mask(attributions, stage)
            if not mask.any():
                continue
            score = _mean_matrix(values, mask).ravel()
            frame = pd.DataFrame({"stage": stage, "direction": direction, "roi": roi, "gene": gene,
                                  "score": score, "rank": _rank_desc(score, pair_names)})
            blocks.append(frame.sort_values("rank", kind="stable"))
    table = _concat(blocks, ROI_GENE_COLUMNS)
    return table.reset_index(drop=True)


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
            raise DataContractError(f"{source or 'truth'}: missing key '{key}' (expected the truth.json "
                                    "written by rgenima.data.synthetic).")
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


def _ranking_metrics(scores: np.ndarray, names: np.ndarray, planted: list[str], ks=(5, 10),
                     focus: str | None = None) -> dict[str, Any]:
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
        names = attributions.gene_names
        causal = list(truth["causal_genes"])
        for method in attributions.methods("gene", random=random):
            values = attributions.get("gene", method, random=random)
            entry: dict[str, Any] = {
                ALL: _ranking_metrics(_group_mean_abs(values, masks[ALL]), names, causal, focus="APOE")}
            if not random:
                for stage in present:
                    entry[stage] = {"mean_abs": _ranking_metrics(_group_mean_abs(values, masks[stage]), names,
                                                                 causal, focus="APOE")}
                    if stage in contrasts:
                        entry[stage]["contrast"] = _ranking_metrics(_contrast(values, masks, stage), names,
                                                                    causal, focus="APOE")
            section[method] = entry
        return section

    def roi_section(random: bool) -> dict:
        section: dict[str, Any] = {}
        names = attributions.roi_names
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
        names = set(attributions.gene_names.tolist())
        out["genes"] = {"causal": causal_genes, "causal_missing": [g for g in causal_genes if g not in names],
                        "n_genes": int(len(attributions.gene_names)), "methods": gene_section(False)}
    else:
        out["genes"] = {}
    if attributions.has("snp"):
        rsids = sorted({s["rsid"] for s in truth.get("causal_snps", [])})
        names = attributions.snp_names
        methods = {}
        for method in attributions.methods("snp"):
            values = attributions.get("snp", method)
            methods[method] = {ALL: _ranking_metrics(_group_mean_abs(values, masks[ALL]), names, rsids)}
        out["snps"] = {"causal": rsids, "causal_missing": [r for r in rsids if r not in set(names.tolist())],
                       "n_snps": int(len(names)), "methods": methods}
    else:
        out["snps"] = {}
    out["rois"] = ({"n_rois": int(len(attributions.roi_names)), "methods": roi_section(False)}
                   if attributions.has("roi") else {})
    out["interactions"] = _interaction_ranks(attributions, truth, present)
    out["random"] = {"genes": gene_section(True) if attributions.methods("gene", random=True) else {},
                     "rois": roi_section(True) if attributions.methods("roi", random=True) else {}}
    out["sanity"] = (sanity.get("summary", sanity) if isinstance(sanity, dict) else None)
    return out


def _interaction_ranks(attributions: Attributions, truth: dict, stages: list[str],
                       direction: str = "gene_to_roi") -> list[dict]:
    """Rank of each planted (ROI, gene) pair in each stage's mean association matrix."""
    if direction not in attributions.directions():
        return []
    values = attributions.roi_gene(direction)
    roi_names = list(attributions.roi_names)
    gene_names = list(attributions.gene_names)
    masks = _group_masks(attributions.label)
    n_pairs = len(roi_names) * len(gene_names)
    records = []
    for stage in [*stages, ALL]:
        matrix = _mean_matrix(values, masks[stage])
        ranks = _ranks_average(matrix.ravel()).reshape(matrix.shape)
        for inter in truth["interactions"]:
            gene = inter["gene"]
            for roi in inter.get("regions", []):
                rec: dict[str, Any] = {"gene": gene, "rsid": inter.get("rsid"), "roi": roi, "stage": stage,
                                       "direction": direction, "missing": None}
                if gene not in gene_names or roi not in roi_names:
                    rec.update(score=None, rank=None, n_pairs=n_pairs, top_percent=None,
                               in_top_5_percent=None, rank_within_gene=None, n_rois=len(roi_names),
                               missing="gene" if gene not in gene_names else "roi")
                    records.append(rec)
                    continue
                i, j = roi_names.index(roi), gene_names.index(gene)
                rank = float(ranks[i, j])
                rec.update(score=float(matrix[i, j]), rank=rank, n_pairs=n_pairs,
                           top_percent=100.0 * rank / n_pairs, in_top_5_percent=bool(rank <= 0.05 * n_pairs),
                           rank_within_gene=float(_ranks_average(matrix[:, j])[i]), n_rois=len(roi_names))
                records.append(rec)
    return records


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
    logger.info("signatures of %s: %d subjects %s, %d bootstrap resamples (seed %d)", npz,
                attributions.n_subjects, attributions.stage_counts(), n_boot, seed)

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
        paths[f"{kind}_attribution"] = atomic_write_text(target,
                                                         table.to_csv(index=False, float_format="%.6g"))
        logger.info("wrote %s (%d rows)", paths[f"{kind}_attribution"], len(table))

    roi_gene = roi_gene_table(attributions) if set(kinds) == {"roi", "gene"} else \
        pd.DataFrame(columns=list(ROI_GENE_COLUMNS))
    if set(kinds) == {"roi", "gene"}:
        paths["roi_gene"] = atomic_write_text(run.roi_gene_csv,
                                              roi_gene.to_csv(index=False, float_format="%.6g"))
        logger.info("wrote %s (%d rows)", paths["roi_gene"], len(roi_gene))

    result = None
    if truth_path is None:
        logger.info("no truth.json for %s (not a synthetic cohort?): recovery skipped", run.path)
    else:
        sanity_path = run.sanity_json(npz.parent.name)
        sanity = run.read_sanity(npz.parent.name)
        result = recovery(attributions, truth_path, sanity=sanity)
        result = {"configuration": npz.parent.name, "attributions": str(npz),
                  "sanity_file": str(sanity_path) if sanity is not None else None, **result}
        # RUNDIR/recovery.json belongs to the main configuration (the call with the ROI
        # tables); every call also writes its own beside its attributions.
        text = json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n"
        atomic_write_text(run.configuration_recovery_json(npz.parent.name), text)
        if "roi" in kinds:
            paths["recovery"] = atomic_write_text(run.recovery_json, text)
            logger.info("wrote %s", paths["recovery"])
    return SignaturesResult(roi_attribution=tables["roi"], gene_attribution=tables["gene"], roi_gene=roi_gene,
                            recovery=result, paths=paths)


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
        genes.append({"method": method, "AUROC": m.get("auroc"), "precision@5": m.get("precision_at_5"),
                      "precision@10": m.get("precision_at_10"), "APOE rank": m.get("apoe_rank")})
    rois = []
    for method, stages in recovery_result.get("rois", {}).get("methods", {}).items():
        for stage, entry in stages.items():
            rois.append({"method": method, "stage": stage, "n planted": len(entry.get("planted", [])),
                         "AUROC (stage - NC)": (entry.get("contrast") or {}).get("auroc"),
                         "AUROC (mean |attribution|)": (entry.get("mean_abs") or {}).get("auroc")})
    inter = [{k: r.get(k) for k in ("gene", "roi", "stage", "direction", "rank", "n_pairs", "top_percent",
                                      "in_top_5_percent")} for r in recovery_result.get("interactions", [])]
    return {
        "genes": pd.DataFrame(genes, columns=["method", "AUROC", "precision@5", "precision@10", "APOE rank"]),
        "rois": pd.DataFrame(rois, columns=["method", "stage", "n planted", "AUROC (stage - NC)",
                                            "AUROC (mean |attribution|)"]),
        "interactions": pd.DataFrame(inter, columns=["gene", "roi", "stage", "direction", "rank", "n_pairs",
                                                     "top_percent", "in_top_5_percent"]),
    }
