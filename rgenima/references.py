"""Univariate reference rankings of ROIs and genes, for validating attributions.

Every attribution method of the explain step ranks ROIs and genes per stage. The
attribution-validation table compares those rankings with the plain univariate
associations computed here, on the **same subjects** (those explained).

ROI score (:func:`roi_t_scores`)
    Per ROI and stage ``s`` in SMC, MCI, AD: Welch's t statistic of the ROI mean
    intensity, **NC minus stage** (``scipy.stats.ttest_ind(nc, stage,
    equal_var=False)``). Atrophy, a lower intensity in the stage, gives a positive
    score. NaN when NC or the stage has fewer than 2 subjects (or both groups are
    constant). Every ROI is measured on every subject, so the t statistics of one
    column share their sample sizes and are comparable as they are.

Gene score (:func:`snp_scan_scores`, :func:`gene_scan_scores`)
    Per SNP, missing dosages (NaN) are dropped for that SNP only. The score is
    ``-log10 p`` of

    ``all``
        the **Kruskal-Wallis H** test of dosage across the stages (those with at
        least 2 non-missing dosages; at least 2 such stages, else NaN). Kruskal-Wallis
        rather than one-way ANOVA: a dosage is a 0/1/2 count, far from normal, and its
        variance depends on the allele frequency, which differs between stages exactly
        when the SNP is associated, so ANOVA's equal-variance assumption fails under
        the alternative it is meant to detect. H uses ranks (with scipy's tie
        correction), so neither assumption is needed.
    ``SMC``, ``MCI``, ``AD``
        the two-sided **Welch t** test of dosage, stage vs NC (``|t|``: a risk and a
        protective allele count alike). NaN when either group has fewer than 2
        non-missing dosages or both are constant.

    ``-log10 p`` rather than the statistic: missing calls give every SNP its own
    sample sizes, hence its own degrees of freedom, and ``-log10 p`` puts all SNPs on
    one scale; for a fixed df it is monotone in the statistic, so nothing else
    changes. It is computed from the distributions' log survival functions, so a very
    strong association gives a large finite score, never ``inf`` from ``p == 0``.

    A gene's score is the **maximum over its SNPs** (NaN SNPs ignored; NaN when all
    are NaN), the usual gene-level "min p" summary. It is not corrected for the
    number of SNPs, so a gene with many SNPs tends to score higher under the null;
    ``n_snps`` is reported with it so that a reader can see this.

:func:`reference_scores` computes both on a prepared run (``rgenima prepare``),
restricted to the subjects explained.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rgenima import STAGES

__all__ = [
    "REFERENCE_STAGES",
    "cube_roi_means",
    "gene_scan_scores",
    "reference_scores",
    "roi_t_scores",
    "snp_scan_scores",
]

#: The stages compared with NC, in the order of the score columns.
REFERENCE_STAGES: tuple[str, ...] = tuple(STAGES[1:])

_LOG10 = np.log(10.0)


# ---------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------
def _check_labels(labels, n: int, other: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels: expected shape ({n},) to match the rows of {other}, got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"labels: expected integer stage indices 0..{len(STAGES) - 1}, got dtype {labels.dtype}")
    if labels.size and (
        not np.all(np.isfinite(labels))
        or np.any(labels != np.round(labels))
        or labels.min() < 0
        or labels.max() >= len(STAGES)
    ):
        bad = sorted({str(v) for v in labels if v not in range(len(STAGES))})
        raise ValueError(
            f"labels: expected stage indices 0..{len(STAGES) - 1} ({', '.join(STAGES)}), found {', '.join(bad[:5])}"
        )
    return labels.astype(np.int64)


def _check_matrix(x, name: str, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_subjects, {what}), got shape {x.shape}")
    return x


def _check_names(names, n: int, name: str, other: str) -> list:
    names = list(names)
    if len(names) != n:
        raise ValueError(f"{name}: expected {n} names to match the columns of {other}, got {len(names)}")
    return names


# ---------------------------------------------------------------------------------
# Tests, vectorised over columns
# ---------------------------------------------------------------------------------
def _welch(ref: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch t (ref minus group) and -log10 two-sided p per column, NaNs omitted.

    ref : (n_ref, k), group : (n_group, k) -> two arrays of shape (k,); NaN where a
    column has fewer than 2 finite values in either group.
    """
    k = ref.shape[1]
    t = np.full(k, np.nan)
    score = np.full(k, np.nan)
    enough = (np.isfinite(ref).sum(axis=0) >= 2) & (np.isfinite(group).sum(axis=0) >= 2)
    if not enough.any():
        return t, score
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(ref[:, enough], group[:, enough], equal_var=False, nan_policy="omit", axis=0)
        tt = np.asarray(res.statistic, dtype=np.float64)
        df = np.asarray(res.df, dtype=np.float64)
        logp = np.log(2.0) + stats.t.logsf(np.abs(tt), df)
    t[enough] = tt
    score[enough] = np.where(np.isfinite(tt), -logp / _LOG10, np.nan)
    return t, score


def _kruskal(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kruskal-Wallis H across stages and its -log10 p, per column of x (NaNs dropped)."""
    k = x.shape[1]
    h = np.full(k, np.nan)
    score = np.full(k, np.nan)
    finite = np.isfinite(x)
    for j in range(k):
        groups = [x[(labels == s) & finite[:, j], j] for s in range(len(STAGES))]
        groups = [g for g in groups if len(g) >= 2]
        if len(groups) < 2:
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.kruskal(*groups)  # NaN when every value is the same
        if np.isfinite(res.statistic):
            h[j] = res.statistic
            score[j] = -stats.chi2.logsf(res.statistic, len(groups) - 1) / _LOG10
    return h, score


# ---------------------------------------------------------------------------------
# ROIs
# ---------------------------------------------------------------------------------
def roi_t_scores(roi_means: np.ndarray, labels: np.ndarray, roi_names: Sequence[str]) -> pd.DataFrame:
    """Welch t of each ROI's mean intensity, NC minus stage, for SMC, MCI and AD.

    Parameters
    ----------
    roi_means : ndarray of shape (n_subjects, n_rois)
        Mean intensity inside each ROI (NaN values are omitted per ROI).
    labels : ndarray of shape (n_subjects,)
        Stage index of each subject, 0..3 in the order of ``rgenima.STAGES``.
    roi_names : sequence of str, length n_rois

    Returns
    -------
    DataFrame of shape (n_rois, 3)
        Index ``roi`` (the names), columns ``SMC``, ``MCI``, ``AD``: the t statistic
        of ``ttest_ind(NC, stage, equal_var=False)``; positive = lower in the stage
        (atrophy). NaN when NC or the stage has fewer than 2 subjects.
    """
    x = _check_matrix(roi_means, "roi_means", "n_rois")
    labels = _check_labels(labels, x.shape[0], "roi_means")
    names = _check_names(roi_names, x.shape[1], "roi_names", "roi_means")
    ref = x[labels == 0]
    columns = {s: _welch(ref, x[labels == STAGES.index(s)])[0] for s in REFERENCE_STAGES}
    return pd.DataFrame(columns, index=pd.Index(names, name="roi"))


def cube_roi_means(cubes: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Mean intensity inside each ROI from ROI cubes, a batch of subjects at a time.

    Uses :func:`rgenima.model.rgenima.regional_intensity` (the model's own regional
    mean: voxels that are exactly zero are outside the ROI and not counted), so at
    most ``batch_size`` subjects are converted to float32 at once.

    Parameters
    ----------
    cubes : ndarray of shape (n_subjects, n_rois, D, D, D)
    batch_size : int

    Returns
    -------
    ndarray of shape (n_subjects, n_rois), float64
    """
    import torch

    from rgenima.model.rgenima import regional_intensity

    if np.ndim(cubes) != 5:
        raise ValueError(f"cubes: expected shape (n_subjects, n_rois, D, D, D), got {np.shape(cubes)}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    out = np.empty(cubes.shape[:2], dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(cubes), batch_size):
            x = torch.from_numpy(np.asarray(cubes[start : start + batch_size], dtype=np.float32))
            out[start : start + batch_size] = regional_intensity(x).numpy()
    return out


# ---------------------------------------------------------------------------------
# SNPs and genes
# ---------------------------------------------------------------------------------
def snp_scan_scores(dosage: np.ndarray, labels: np.ndarray, snp_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-SNP association of dosage with stage (see the module docstring).

    Parameters
    ----------
    dosage : ndarray of shape (n_subjects, n_snps)
        Allele counts, NaN = missing call (dropped per SNP).
    labels : ndarray of shape (n_subjects,)
        Stage index 0..3 (``rgenima.STAGES``).
    snp_names : sequence of str, length n_snps, optional
        Index of the result; default ``0 .. n_snps - 1``.

    Returns
    -------
    DataFrame of shape (n_snps, 8)
        Index ``snp``. Scores (``-log10 p``): ``all`` (Kruskal-Wallis across stages),
        ``SMC``, ``MCI``, ``AD`` (two-sided Welch t, stage vs NC). Statistics:
        ``H`` and ``t_SMC``, ``t_MCI``, ``t_AD`` (NC minus stage: positive = fewer
        allele copies in the stage).
    """
    x = _check_matrix(dosage, "dosage", "n_snps")
    labels = _check_labels(labels, x.shape[0], "dosage")
    names = range(x.shape[1]) if snp_names is None else _check_names(snp_names, x.shape[1], "snp_names", "dosage")
    h, all_score = _kruskal(x, labels)
    scores, tstats = {"all": all_score}, {"H": h}
    ref = x[labels == 0]
    for s in REFERENCE_STAGES:
        tstats[f"t_{s}"], scores[s] = _welch(ref, x[labels == STAGES.index(s)])
    return pd.DataFrame({**scores, **tstats}, index=pd.Index(list(names), name="snp"))


def gene_scan_scores(
    dosage: np.ndarray,
    labels: np.ndarray,
    snp_genes: Sequence[str],
    gene_names: Iterable[str] | None = None,
    *,
    snp_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Gene scores: the maximum over the gene's SNPs of the per-SNP ``-log10 p``.

    Parameters
    ----------
    dosage : ndarray of shape (n_subjects, n_snps)
        Allele counts, NaN = missing call.
    labels : ndarray of shape (n_subjects,)
        Stage index 0..3 (``rgenima.STAGES``).
    snp_genes : sequence of str, length n_snps
        Gene of each SNP column (``snps.tsv`` ``gene``).
    gene_names : iterable of str, optional
        Genes to report, in this order (a gene without SNPs gets NaN scores and
        ``n_snps`` 0; SNPs of genes not listed are not used). Default: the genes of
        ``snp_genes`` in order of first appearance.
    snp_names : sequence of str, length n_snps, optional
        SNP ids for ``best_snp``; default the column index.

    Returns
    -------
    DataFrame of shape (n_genes, 6)
        Index ``gene``; ``all``, ``SMC``, ``MCI``, ``AD``: max over the gene's SNPs of
        the scores of :func:`snp_scan_scores` (NaN SNPs ignored); ``n_snps``;
        ``best_snp``: the SNP with the highest ``all`` score (missing, NaN, when all are NaN).
        The best SNP of each stage column is in :func:`snp_scan_scores`.
    """
    x = _check_matrix(dosage, "dosage", "n_snps")
    genes = _check_names(snp_genes, x.shape[1], "snp_genes", "dosage")
    snps = snp_scan_scores(x, labels, snp_names)
    order = list(dict.fromkeys(genes)) if gene_names is None else list(dict.fromkeys(gene_names))
    score_columns = ["all", *REFERENCE_STAGES]
    by_gene = pd.Series(genes, index=snps.index)
    rows = []
    for gene in order:
        own = snps[(by_gene == gene).to_numpy()]
        row = {c: (own[c].max() if own[c].notna().any() else np.nan) for c in score_columns}
        row["n_snps"] = len(own)
        row["best_snp"] = own["all"].idxmax() if own["all"].notna().any() else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*score_columns, "n_snps", "best_snp"], index=pd.Index(order, name="gene"))
    out["n_snps"] = out["n_snps"].astype(np.int64)
    return out


# ---------------------------------------------------------------------------------
# On a prepared run
# ---------------------------------------------------------------------------------
def _subject_rows(ptids: pd.Series, subject_ptids) -> np.ndarray:
    if subject_ptids is None:
        return np.arange(len(ptids))
    if isinstance(subject_ptids, str):
        raise ValueError(f"subject_ptids: expected a list of PTIDs, got the string {subject_ptids!r}")
    wanted = [str(p) for p in subject_ptids]
    if not wanted:
        raise ValueError("subject_ptids: no PTID given")
    seen: set[str] = set()
    for p in wanted:
        if p in seen:
            raise ValueError(f"subject_ptids: PTID {p!r} is listed twice")
        seen.add(p)
    row_of = {p: i for i, p in enumerate(ptids.astype(str))}
    for p in wanted:
        if p not in row_of:
            raise ValueError(f"subject_ptids: PTID {p!r} is not a subject of the prepared data")
    return np.array([row_of[p] for p in wanted], dtype=np.int64)


def _roi_means(data, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """The prepared ROI means (roi_features.npz) if present, else from the cubes."""
    n, r = len(data.subjects), len(data.rois)
    features = getattr(data, "roi_features", None)
    if features is not None:
        features = np.asarray(features)
        if features.shape != (n, r):
            raise ValueError(
                f"prepared: roi_features has shape {features.shape}, expected ({n}, {r}) (subjects x ROIs)"
            )
        return features[rows].astype(np.float64)
    cubes = data.cubes
    if np.ndim(cubes) != 5 or cubes.shape[:2] != (n, r):
        raise ValueError(f"prepared: cubes have shape {np.shape(cubes)}, expected ({n}, {r}, D, D, D)")
    means = np.empty((len(rows), r), dtype=np.float64)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        means[start : start + len(chunk)] = cube_roi_means(cubes[chunk], batch_size)
    return means


def reference_scores(
    prepared, subject_ptids: Iterable[str] | None = None, *, batch_size: int = 8
) -> dict[str, pd.DataFrame]:
    """ROI and gene reference scores of a prepared run, on the subjects explained.

    Parameters
    ----------
    prepared : str, pathlib.Path or rgenima.model.inputs.PreparedData
        A prepared folder (``RUNDIR/prepared``, read with ``PreparedData.load``) or
        the data already loaded.
    subject_ptids : iterable of str, optional
        PTIDs of the subjects to use (those explained); default every subject.
    batch_size : int
        Subjects per batch when ROI means have to be computed from the cubes.

    Returns
    -------
    dict
        ``"roi"``: :func:`roi_t_scores` on the ROI means, index the ROI names.
        ``"gene"``: :func:`gene_scan_scores`, index the genes of ``snps.tsv``.

    Notes
    -----
    The ROI means are the prepared ``roi_features.npz`` ``mean_intensity_norm``
    (``PreparedData.roi_features``: mean over the ROI's voxels at full resolution,
    divided by the mean over all atlas voxels, the scale of the cubes). Only when the
    data carry no ROI features (``roi_features`` None) are they computed from the
    cubes with :func:`cube_roi_means`.
    """
    from rgenima.model.inputs import PreparedData

    data = prepared if isinstance(prepared, PreparedData) else PreparedData.load(Path(prepared))
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    rows = _subject_rows(data.subjects["PTID"], subject_ptids)
    labels = data.labels[rows]
    dosage = np.asarray(data.dosage)
    if dosage.ndim != 2 or dosage.shape != (len(data.subjects), len(data.snps)):
        raise ValueError(
            f"prepared: dosage has shape {dosage.shape}, expected "
            f"({len(data.subjects)}, {len(data.snps)}) (subjects x SNPs)"
        )
    roi = roi_t_scores(_roi_means(data, rows, batch_size), labels, data.rois["name"].astype(str).tolist())
    gene = gene_scan_scores(
        dosage[rows], labels, data.snps["gene"].astype(str).tolist(), snp_names=data.snps["snp"].astype(str).tolist()
    )
    return {"roi": roi, "gene": gene}
