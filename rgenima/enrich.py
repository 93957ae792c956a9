"""Enrichment of GWAS-supported AD loci among the genes the model ranks highest.

The explain step writes ``RUNDIR/gene_attribution.csv``: one row per (gene, stage,
attribution method) with ``rank`` 1 for the most important gene of that stage and
method. This module asks, for each (stage, method) and each cut-off ``k``, whether
the top ``k`` genes hold more AD loci (panel genes with ``ad_locus`` True) than
chance, and writes ``RUNDIR/enrichment.csv``.

Background
    The background of every test is the set of genes **ranked in that (stage,
    method)**, i.e. the panel genes actually scored (genes with SNPs passing QC),
    not the whole panel. Locus genes of the panel that were not scored cannot be in
    any top ``k`` and are left out of the background and of ``n_locus``.

Tests, for each (stage, method, k)
    ``p_hypergeom``
        One-sided hypergeometric test of the overlap between the top ``k`` and the
        locus genes, ``P(X >= overlap)`` with ``X ~ Hypergeom(M, n, k)``.
    ``p_permutation``
        Label-permutation test of the **rank-weighted top-k overlap**
        ``W_k = sum over locus genes g with rank r_g <= k of (k + 1 - r_g)``: a locus
        gene at rank 1 counts ``k``, one at rank ``k`` counts 1, one below ``k``
        counts 0. The null permutes the locus labels over the ranked genes. A plain
        overlap count would make this the hypergeometric test again (up to Monte Carlo
        error); ``W_k`` also rewards locus genes near the very top of the list.
        ``p = (1 + #{W_null >= W_obs}) / (1 + n_permutations)``.
    ``q_hypergeom``, ``q_permutation``
        Benjamini-Hochberg q-values (``statsmodels`` ``fdr_bh``) computed **within
        each method, across all stages and all k**: each attribution method is an
        analysis of its own, and its stages x cut-offs form the family. The nested
        top-k sets make the tests positively dependent, under which BH is valid.
    ``significant_fdr05``
        ``q_hypergeom <= 0.05``.

Controls (:func:`enrichment_controls`, written by :func:`enrich_run` to
``RUNDIR/enrichment_controls.json``)
    The same hypergeometric test on rankings whose answer is known. The **positive
    control** ranks a synthetic cohort's planted causal genes first: it shows the test
    can find a planted signal at the run's background, locus set and ks (and fails
    when the planted genes are not locus genes). The **negative control** draws
    uniformly random rankings: the fraction with ``p <= alpha`` estimates the test's
    false-positive rate, and the check at every attainable p-value shows the test is
    calibrated (see :func:`enrichment_controls` for both rules).

Optionally, :func:`gsea_prerank` runs a preranked GSEA (``gseapy``) of the locus set
over the attribution scores; the gene set is written as a local GMT file, nothing is
downloaded.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta, binom, hypergeom
from statsmodels.stats.multitest import multipletests

from rgenima.errors import DataContractError
from rgenima.fileio import atomic_write_text
from rgenima.run import Run

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "CONTROLS_COLUMNS",
    "ENRICHMENT_COLUMNS",
    "GSEA_COLUMNS",
    "controls_table",
    "enrich_run",
    "enrichment_controls",
    "enrichment_table",
    "gsea_prerank",
    "hypergeometric_enrichment",
    "permutation_enrichment",
    "positive_control_ranking",
    "random_ranking",
    "rank_genes",
    "read_gene_attribution",
]

#: Columns of ``gene_attribution.csv`` that this module reads (``ci_low`` and
#: ``ci_high`` are not used).
ATTRIBUTION_COLUMNS = ("name", "stage", "method", "score", "rank")

#: Columns of the table returned by :func:`enrichment_table` (and ``enrichment.csv``).
ENRICHMENT_COLUMNS = (
    "stage",
    "method",
    "k",
    "n_background",
    "n_locus",
    "overlap",
    "expected",
    "fold_enrichment",
    "p_hypergeom",
    "p_permutation",
    "n_permutations",
    "q_hypergeom",
    "q_permutation",
    "significant_fdr05",
    "overlap_genes",
)

#: Columns appended by :func:`enrich_run` with ``gsea=True`` (one GSEA per stage and
#: method, repeated over its k rows).
GSEA_COLUMNS = ("gsea_nes", "gsea_p", "gsea_fdr")

#: Columns of the table returned by :func:`controls_table`.
CONTROLS_COLUMNS = (
    "control",
    "k",
    "overlap",
    "expected",
    "p",
    "q",
    "significant_fdr05",
    "rejection_rate",
    "rejection_rate_upper95",
    "exact_size",
    "max_excess",
    "calibrated",
)

_GENE_SET_NAME = "AD_LOCI"
# Permutations are drawn in blocks of at most this many label cells (memory bound).
_BLOCK_CELLS = 2_000_000


# ---------------------------------------------------------------------------------
# Single tests
# ---------------------------------------------------------------------------------
def _gene_set(genes: Iterable[str], name: str) -> set[str]:
    if isinstance(genes, str):
        raise TypeError(f"'{name}' must be a collection of gene symbols, not a string ({genes!r}).")
    return set(genes)


def _check_subset(genes: set[str], background: set[str], name: str) -> None:
    outside = sorted(genes - background)
    if outside:
        shown = ", ".join(outside[:10]) + (", ..." if len(outside) > 10 else "")
        raise ValueError(
            f"{len(outside)} gene(s) of '{name}' are not in the background of "
            f"{len(background)} genes: {shown}."
        )


def hypergeometric_enrichment(
    top_genes: Iterable[str], locus_genes: Iterable[str], background_genes: Iterable[str]
) -> tuple[int, float]:
    """One-sided hypergeometric test of locus genes among the top genes.

    Parameters
    ----------
    top_genes : collection of str
        The selected genes (e.g. the top ``k``), ``N`` distinct genes.
    locus_genes : collection of str
        The gene set tested (e.g. AD loci), ``n`` distinct genes.
    background_genes : collection of str
        All genes that could have been selected, ``M`` distinct genes; must contain
        ``top_genes`` and ``locus_genes``.

    Returns
    -------
    overlap : int
        Number of ``top_genes`` that are locus genes.
    p_value : float
        ``P(X >= overlap)`` for ``X ~ Hypergeom(M, n, N)``, i.e.
        ``scipy.stats.hypergeom.sf(overlap - 1, M, n, N)``.

    Raises
    ------
    ValueError
        If a top or locus gene is not in the background (the message names them).
    """
    top = _gene_set(top_genes, "top_genes")
    locus = _gene_set(locus_genes, "locus_genes")
    background = _gene_set(background_genes, "background_genes")
    _check_subset(top, background, "top_genes")
    _check_subset(locus, background, "locus_genes")
    overlap = len(top & locus)
    p_value = float(hypergeom.sf(overlap - 1, len(background), len(locus), len(top)))
    return overlap, min(p_value, 1.0)


def rank_genes(scores_by_gene: pd.Series) -> pd.Series:
    """Ordinal ranks of genes by decreasing score (1 = most important).

    Parameters
    ----------
    scores_by_gene : Series of shape (n_genes,)
        Importance score indexed by unique gene symbol; larger is more important.

    Returns
    -------
    Series of shape (n_genes,)
        int64 ranks 1..n_genes, sorted by rank. Ties are broken by gene symbol
        (alphabetical), so the ranking is deterministic.

    Raises
    ------
    ValueError
        If the index has duplicates or a score is not finite.
    """
    if not isinstance(scores_by_gene, pd.Series):
        raise TypeError(f"'scores_by_gene' must be a pandas Series; got {type(scores_by_gene).__name__}.")
    if scores_by_gene.index.has_duplicates:
        dup = sorted(map(str, scores_by_gene.index[scores_by_gene.index.duplicated()].unique()))
        raise ValueError(f"'scores_by_gene' has duplicated genes: {', '.join(dup[:10])}.")
    scores = scores_by_gene.to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        bad = scores_by_gene.index[~np.isfinite(scores)]
        raise ValueError(f"'scores_by_gene' has non-finite scores for: {', '.join(map(str, bad[:10]))}.")
    names = scores_by_gene.index.astype(str).to_numpy()
    order = np.lexsort((names, -scores))  # last key is primary: score desc, then name
    return pd.Series(np.arange(1, len(order) + 1, dtype=np.int64), index=scores_by_gene.index[order],
                     name="rank")


def _weighted_overlap(locus_at_rank: np.ndarray, k: int) -> np.ndarray:
    """W_k for label rows: ``locus_at_rank`` (..., >= k) bool, column j = rank j + 1."""
    weights = np.arange(k, 0, -1, dtype=np.int64)  # rank 1 -> k, ..., rank k -> 1
    return locus_at_rank[..., :k].astype(np.int64) @ weights


def permutation_enrichment(
    scores_by_gene: pd.Series,
    locus_genes: Iterable[str],
    k: int,
    n_permutations: int = 10_000,
    seed: int | np.random.Generator | None = None,
) -> float:
    """Label-permutation test that locus genes are ranked within the top ``k``.

    The statistic is the rank-weighted top-k overlap
    ``W_k = sum_{g locus, r_g <= k} (k + 1 - r_g)`` (ranks from :func:`rank_genes`);
    the null distribution permutes the locus labels over the ranked genes.

    Parameters
    ----------
    scores_by_gene : Series of shape (n_genes,)
        Importance score indexed by gene symbol; larger is more important. The
        genes are the background.
    locus_genes : collection of str
        Gene set tested; each must be in ``scores_by_gene.index``.
    k : int
        Cut-off, ``1 <= k <= n_genes``.
    n_permutations : int, default=10_000
        Number of label permutations (>= 1).
    seed : int, numpy Generator or None, default=None
        Seed of the permutations (``numpy.random.default_rng``).

    Returns
    -------
    float
        ``(1 + #{W_null >= W_obs}) / (1 + n_permutations)``, in
        ``[1 / (1 + n_permutations), 1]``. ``W_k`` is discrete, so the test is
        (slightly) conservative.

    Raises
    ------
    ValueError
        If a locus gene is not scored, ``k`` or ``n_permutations`` is out of range,
        or the scores are invalid (see :func:`rank_genes`).
    """
    ranked = rank_genes(scores_by_gene)
    locus = _gene_set(locus_genes, "locus_genes")
    _check_subset(locus, set(ranked.index), "locus_genes")
    n_genes = len(ranked)
    if not 1 <= int(k) <= n_genes:
        raise ValueError(f"'k' must be in [1, {n_genes}] (the number of scored genes); got {k!r}.")
    if int(n_permutations) < 1:
        raise ValueError(f"'n_permutations' must be >= 1; got {n_permutations!r}.")
    k, n_permutations = int(k), int(n_permutations)
    labels = ranked.index.isin(list(locus))  # (n_genes,) in rank order
    observed = int(_weighted_overlap(labels, k))
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n_genes)
    n_ge = 0
    for start in range(0, n_permutations, block):
        rows = min(block, n_permutations - start)
        shuffled = rng.permuted(np.broadcast_to(labels, (rows, n_genes)), axis=1)
        n_ge += int(np.count_nonzero(_weighted_overlap(shuffled, k) >= observed))
    return (1 + n_ge) / (1 + n_permutations)


# ---------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------
def _locus_genes(panel: pd.DataFrame) -> set[str]:
    missing = [c for c in ("symbol", "ad_locus") if c not in panel.columns]
    if missing:
        raise ValueError(f"'panel' lacks column(s) {', '.join(missing)}; got {list(panel.columns)}.")
    return set(panel.loc[panel["ad_locus"].astype(bool), "symbol"].astype(str))


def _check_attribution(gene_attribution: pd.DataFrame, panel: pd.DataFrame, source: str) -> None:
    missing = [c for c in ATTRIBUTION_COLUMNS if c not in gene_attribution.columns]
    if missing:
        raise DataContractError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(ATTRIBUTION_COLUMNS)}."
        )
    if gene_attribution.empty:
        raise DataContractError(f"{source}: no rows.")
    for column in ("name", "stage", "method"):
        if gene_attribution[column].isna().any():
            raise DataContractError(f"{source}: column {column} has empty values.")
    for column in ("score", "rank"):
        values = pd.to_numeric(gene_attribution[column], errors="coerce")
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            raise DataContractError(f"{source}: column {column} has missing or non-numeric values.")
    dup = gene_attribution.duplicated(["stage", "method", "name"])
    if dup.any():
        first = gene_attribution.loc[dup].iloc[0]
        raise DataContractError(
            f"{source}: gene {first['name']} appears more than once for stage "
            f"{first['stage']}, method {first['method']}."
        )
    unknown = sorted(set(gene_attribution["name"].astype(str)) - set(panel["symbol"].astype(str)))
    if unknown:
        raise DataContractError(
            f"{source}: {len(unknown)} gene(s) not in the gene panel: {', '.join(unknown[:10])}"
            f"{', ...' if len(unknown) > 10 else ''}."
        )


def _ordered_group(group: pd.DataFrame) -> pd.Series:
    """Scores that reproduce the group's ``rank`` order (ties: higher score, then name)."""
    ordered = group.assign(name=group["name"].astype(str)).sort_values(
        ["rank", "score", "name"], ascending=[True, False, True], kind="mergesort"
    )
    if not ordered["score"].is_monotonic_decreasing:
        logger.warning(
            "stage %s, method %s: rank does not follow decreasing score; rank is used for top-k.",
            group["stage"].iloc[0], group["method"].iloc[0],
        )
    return pd.Series(-np.arange(len(ordered), dtype=float), index=ordered["name"].to_numpy())


def _row_seed(seed: int, stage: str, method: str, k: int) -> np.random.SeedSequence:
    """One stream per (stage, method, k): rows do not depend on which others exist."""
    return np.random.SeedSequence([int(seed), zlib.crc32(stage.encode()), zlib.crc32(method.encode()), int(k)])


def enrichment_table(
    gene_attribution: pd.DataFrame,
    panel: pd.DataFrame,
    ks: Iterable[int] = (5, 10, 20),
    n_permutations: int = 10_000,
    seed: int = 0,
    *,
    source: str = "gene_attribution",
) -> pd.DataFrame:
    """AD-locus enrichment of the top-k genes for every stage, method and k.

    Parameters
    ----------
    gene_attribution : DataFrame of shape (n_rows, >= 5)
        Columns :data:`ATTRIBUTION_COLUMNS` (``name`` gene symbol, ``stage``,
        ``method``, ``score``, ``rank`` with 1 = most important within (stage,
        method)). ``rank`` defines the order; ties are broken by higher ``score``
        then by name.
    panel : DataFrame of shape (n_panel_genes, >= 2)
        Gene panel with ``symbol`` and boolean ``ad_locus`` (as returned by
        :func:`rgenima.data.genetics.read_gene_panel`).
    ks : iterable of int, default=(5, 10, 20)
        Top-k cut-offs. A k larger than a group's number of ranked genes is skipped
        with a warning.
    n_permutations : int, default=10_000
        Permutations of :func:`permutation_enrichment` per row.
    seed : int, default=0
        Base seed; each (stage, method, k) row draws its own stream from
        ``(seed, stage, method, k)``, so a row does not depend on the other rows.
    source : str, default="gene_attribution"
        Name used in error messages (the file path in :func:`enrich_run`).

    Returns
    -------
    DataFrame of shape (n_stages * n_methods * n_ks, 15)
        Columns :data:`ENRICHMENT_COLUMNS`, sorted by method, stage and k.
        ``n_background`` genes ranked in the (stage, method); ``n_locus`` locus
        genes among them; ``overlap`` locus genes in the top k; ``expected`` =
        ``k * n_locus / n_background``; ``fold_enrichment`` = overlap / expected
        (NaN when expected is 0); ``overlap_genes`` the overlapping genes in rank
        order joined by ``;``. See the module docstring for the p- and q-values.

    Raises
    ------
    DataContractError
        If a column is missing, a value is missing or invalid, a gene is repeated
        within a (stage, method), or a gene is not in the panel.
    ValueError
        If ``ks`` is empty or holds a k < 1.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"'ks' must be one or more integers >= 1; got {ks!r}.")
    _check_attribution(gene_attribution, panel, source)
    locus_all = _locus_genes(panel)
    attribution = gene_attribution.assign(
        stage=gene_attribution["stage"].astype(str),
        method=gene_attribution["method"].astype(str),
        score=pd.to_numeric(gene_attribution["score"]),
        rank=pd.to_numeric(gene_attribution["rank"]),
    )
    rows = []
    for (method, stage), group in attribution.groupby(["method", "stage"], sort=True):
        scores = _ordered_group(group)
        ranked = rank_genes(scores)
        background = set(ranked.index)
        locus = locus_all & background
        for k in ks:
            if k > len(ranked):
                logger.warning("stage %s, method %s: k=%d exceeds the %d ranked genes; skipped.",
                               stage, method, k, len(ranked))
                continue
            top = ranked.index[:k]
            overlap, p_hyper = hypergeometric_enrichment(top, locus, background)
            p_perm = permutation_enrichment(
                scores, locus, k, n_permutations=n_permutations, seed=_row_seed(seed, stage, method, k)
            )
            expected = k * len(locus) / len(background)
            rows.append({
                "stage": stage,
                "method": method,
                "k": k,
                "n_background": len(background),
                "n_locus": len(locus),
                "overlap": overlap,
                "expected": expected,
                "fold_enrichment": overlap / expected if expected > 0 else np.nan,
                "p_hypergeom": p_hyper,
                "p_permutation": p_perm,
                "n_permutations": int(n_permutations),
                "overlap_genes": ";".join(g for g in top if g in locus),
            })
    table = pd.DataFrame(rows, columns=[c for c in ENRICHMENT_COLUMNS if c not in
                                        ("q_hypergeom", "q_permutation", "significant_fdr05")])
    table["q_hypergeom"] = _bh_within_method(table, "p_hypergeom")
    table["q_permutation"] = _bh_within_method(table, "p_permutation")
    table["significant_fdr05"] = table["q_hypergeom"] <= 0.05
    return table.loc[:, list(ENRICHMENT_COLUMNS)].reset_index(drop=True)


def _bh_within_method(table: pd.DataFrame, p_column: str) -> pd.Series:
    """Benjamini-Hochberg q-values of ``p_column`` within each method."""
    q = pd.Series(np.nan, index=table.index, dtype=float)
    for _, index in table.groupby("method").groups.items():
        q.loc[index] = multipletests(table.loc[index, p_column].to_numpy(), method="fdr_bh")[1]
    return q


# ---------------------------------------------------------------------------------
# GSEA (optional dependency)
# ---------------------------------------------------------------------------------
def gsea_prerank(
    scores_by_gene: pd.Series,
    locus_genes: Iterable[str],
    outdir: str | Path,
    permutation_num: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Preranked GSEA of the locus set over the scores (``gseapy.prerank``).

    The gene set is written to ``outdir/ad_loci.gmt`` and read from there (no
    download); gseapy writes its report and log under ``outdir`` (no plots). Runs on
    one thread, weight 1 (classic weighted Kolmogorov-Smirnov running sum).

    Parameters
    ----------
    scores_by_gene : Series of shape (n_genes,)
        Ranking metric indexed by unique gene symbol; larger is more important.
    locus_genes : collection of str
        Gene set; genes that are not scored are dropped (at least one must remain,
        and at least one scored gene must be outside the set).
    outdir : str or Path
        Folder for the GMT file and gseapy's output (created).
    permutation_num : int, default=1000
        Gene-set permutations of gseapy.
    seed : int, default=0
        gseapy's seed.

    Returns
    -------
    dict
        ``nes`` normalised enrichment score, ``p`` nominal p-value, ``fdr`` gseapy's
        FDR q-value (with one gene set it is driven by the nominal p). gseapy
        reports ``p = 0`` when no permutation reaches the observed score, meaning
        ``p < 1 / permutation_num``.

    Raises
    ------
    ImportError
        If gseapy is not installed (it is optional: ``pip install gseapy``).
    ValueError
        If no scored gene, or every scored gene, is in the set.
    """
    try:
        import gseapy
    except ImportError as exc:
        raise ImportError(
            "gsea_prerank needs the optional package gseapy (pip install 'rgenima[gsea]' "
            "or pip install gseapy==1.3.1); the hypergeometric and permutation tests do not."
        ) from exc
    ranked = rank_genes(scores_by_gene)  # validates the scores
    genes = sorted(_gene_set(locus_genes, "locus_genes") & set(ranked.index.astype(str)))
    if not genes or len(genes) == len(ranked):
        raise ValueError(
            f"GSEA needs scored genes both in and outside the locus set; {len(genes)} of "
            f"{len(ranked)} scored genes are locus genes."
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    gmt = outdir / "ad_loci.gmt"
    atomic_write_text(gmt, "\t".join([_GENE_SET_NAME, "AD loci of the rgenima gene panel", *genes]) + "\n")
    rnk = scores_by_gene.astype(float).copy()
    rnk.index = rnk.index.astype(str)
    result = gseapy.prerank(
        rnk=rnk, gene_sets=str(gmt), outdir=str(outdir), permutation_num=int(permutation_num),
        seed=int(seed), threads=1, no_plot=True, min_size=1, max_size=len(rnk), verbose=False,
    )
    row = result.res2d.set_index("Term").loc[_GENE_SET_NAME]
    return {"nes": float(row["NES"]), "p": float(row["NOM p-val"]), "fdr": float(row["FDR q-val"])}


# ---------------------------------------------------------------------------------
# Controls: can the test find a planted signal, and is it calibrated?
# ---------------------------------------------------------------------------------
# One-sided tail of the calibration margin: the exact-binomial analogue of 3 standard
# errors (norm.sf(3) = 0.00135).
_MARGIN_TAIL = 0.0013499
# Attainable null p-values up to this level are checked for calibration.
_MAX_THRESHOLD = 0.5
_FDR = 0.05


def _gene_list(genes: Iterable[str], name: str) -> list[str]:
    """Genes as a list of str in a reproducible order (a set is sorted), no duplicates."""
    if isinstance(genes, str):
        raise TypeError(f"'{name}' must be a collection of gene symbols, not a string ({genes!r}).")
    out = sorted(map(str, genes)) if isinstance(genes, (set, frozenset)) else [str(g) for g in genes]
    index = pd.Index(out)
    if index.has_duplicates:
        dup = sorted(index[index.duplicated()].unique())
        raise ValueError(f"'{name}' has duplicated genes: {', '.join(dup[:10])}.")
    return out


def _causal_list(causal_genes: Iterable[str]) -> list[str]:
    """Planted genes as str in the given order (a set is sorted), repeats dropped."""
    if isinstance(causal_genes, str):
        raise TypeError(f"'causal_genes' must be a collection of gene symbols, not a string ({causal_genes!r}).")
    genes = sorted(causal_genes) if isinstance(causal_genes, (set, frozenset)) else causal_genes
    return list(dict.fromkeys(map(str, genes)))


def _ranking(order: list[str]) -> pd.Series:
    return pd.Series(np.arange(1, len(order) + 1, dtype=np.int64), index=pd.Index(order, dtype=object),
                     name="rank")


def random_ranking(genes: Iterable[str], seed: int | np.random.SeedSequence | np.random.Generator | None = None
                   ) -> pd.Series:
    """A uniformly random ranking of ``genes`` (the null of the enrichment tests).

    Parameters
    ----------
    genes : collection of str
        The ranked background, ``n_genes`` distinct symbols. A set is sorted first, so
        the result does not depend on hash order.
    seed : int, SeedSequence, Generator or None, default=None
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Series of shape (n_genes,)
        int64 ranks 1..n_genes (1 = top) indexed by gene, sorted by rank (as
        :func:`rank_genes`).

    Raises
    ------
    ValueError
        If a gene is repeated.
    """
    order = _gene_list(genes, "genes")
    rng = np.random.default_rng(seed)
    return _ranking([order[i] for i in rng.permutation(len(order))])


def positive_control_ranking(
    genes: Iterable[str],
    causal_genes: Iterable[str],
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> pd.Series:
    """A ranking that puts the planted causal genes on top: what a perfect model finds.

    Parameters
    ----------
    genes : collection of str
        The ranked background, ``n_genes`` distinct symbols (a set is sorted first).
    causal_genes : collection of str
        Planted causal genes (``truth.json`` key ``causal_genes``). Those in ``genes``
        take ranks 1, 2, ... in the given order (repeats ignored); those not in
        ``genes`` are ignored and logged.
    seed : int, SeedSequence, Generator or None, default=None
        Seed of the random order of the other genes (``numpy.random.default_rng``).

    Returns
    -------
    Series of shape (n_genes,)
        int64 ranks 1..n_genes (1 = top) indexed by gene, sorted by rank: the present
        causal genes first, then every other gene in a seeded random order.

    Raises
    ------
    ValueError
        If a gene of ``genes`` is repeated.
    """
    order = _gene_list(genes, "genes")
    causal = _causal_list(causal_genes)
    present = set(order)
    top = [g for g in causal if g in present]
    missing = [g for g in causal if g not in present]
    if missing:
        logger.info("positive control: %d planted gene(s) not in the %d ranked genes, ignored: %s",
                    len(missing), len(order), ", ".join(missing))
    rest = [g for g in order if g not in set(top)]
    rng = np.random.default_rng(seed)
    return _ranking(top + [rest[i] for i in rng.permutation(len(rest))])


def _attainable_p_values(n_background: int, n_locus: int, k: int) -> np.ndarray:
    """``P(X >= x)`` for ``x = 0..min(n_locus, k)``, ``X ~ Hypergeom(n_background, n_locus, k)``."""
    x = np.arange(min(n_locus, k) + 1)
    return np.minimum(hypergeom.sf(x - 1, n_background, n_locus, k), 1.0)


def _null_p_values(overlaps: np.ndarray, n_background: int, n_locus: int, k: int) -> np.ndarray:
    """p-values of :func:`hypergeometric_enrichment` for an array of top-k overlaps."""
    return _attainable_p_values(n_background, n_locus, k)[np.asarray(overlaps, dtype=np.int64)]


def _upper95(successes: int, trials: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a binomial proportion."""
    return 1.0 if successes >= trials else float(beta.ppf(0.95, successes + 1, trials - successes))


def _calibration(p_values: np.ndarray, attainable: np.ndarray, n_random: int) -> dict:
    """Worst excess of the empirical rejection rate over attainable levels ``t <= 0.5``."""
    thresholds = np.unique(attainable[attainable <= _MAX_THRESHOLD])
    checks = []
    for t in thresholds:
        hits = int(np.count_nonzero(p_values <= t * (1 + 1e-9)))
        allowed = int(binom.isf(_MARGIN_TAIL, n_random, t))  # smallest c with P(X > c) <= tail
        checks.append({"t": float(t), "rejection_rate": hits / n_random, "excess": hits / n_random - float(t),
                       "margin": allowed / n_random - float(t), "within_margin": hits <= allowed})
    if not checks:
        return {"max_excess": None, "threshold_at_max_excess": None, "margin_at_max_excess": None,
                "calibrated": True, "checks": []}
    worst = max(checks, key=lambda c: c["excess"])
    return {"max_excess": worst["excess"], "threshold_at_max_excess": worst["t"],
            "margin_at_max_excess": worst["margin"],
            "calibrated": all(c["within_margin"] for c in checks), "checks": checks}


def _any_bh_rejection(p_values: np.ndarray, level: float) -> np.ndarray:
    """Rows (n_random, m) with at least one Benjamini-Hochberg rejection at ``level``."""
    m = p_values.shape[1]
    ordered = np.sort(p_values, axis=1)
    return (ordered <= level * np.arange(1, m + 1) / m).any(axis=1)


def _positive_control(ranking: pd.Series, locus: set[str], background: list[str], ks: list[int],
                      causal_present: list[str]) -> dict:
    rows = []
    for k in ks:
        top = list(ranking.index[:k])
        overlap, p = hypergeometric_enrichment(top, locus, background)
        rows.append({"k": k, "overlap": overlap, "expected": k * len(locus) / len(background), "p": p,
                     "overlap_genes": [g for g in top if g in locus]})
    q = multipletests([r["p"] for r in rows], method="fdr_bh")[1] if rows else []
    for row, q_k in zip(rows, q):
        row["q"] = float(q_k)
        row["significant_fdr05"] = bool(q_k <= _FDR)
    n_causal = len(causal_present)
    causal_locus = [g for g in causal_present if g in locus]
    notes = []
    covering = [r for r in rows if r["k"] >= n_causal]
    deciding = covering[0] if covering else (rows[-1] if rows else None)
    if n_causal == 0:
        notes.append("no planted causal gene is among the ranked genes: the positive control cannot be built")
        deciding = None
    elif not covering and rows:
        notes.append(f"no k covers the {n_causal} planted genes; the largest k ({deciding['k']}) decides")
    if n_causal and not causal_locus:
        notes.append("no planted causal gene is an AD locus of the panel: the locus set holds none of the planted "
                     "signal, so the positive control cannot pass")
    return {
        "rows": rows,
        "n_causal_present": n_causal,
        "causal_locus_genes": causal_locus,
        "deciding_k": deciding["k"] if deciding else None,
        "passed": bool(deciding["significant_fdr05"]) if deciding else None,
        "note": "; ".join(notes) or None,
    }


def _negative_control(labels: np.ndarray, ks: list[int], n_random: int, alpha: float,
                      rng: np.random.Generator) -> dict:
    n_background, n_locus = len(labels), int(labels.sum())
    # A uniformly random ranking puts the locus labels uniformly at random over the
    # ranks: row i is the label at ranks 1..n_background of ranking i.
    shuffled = rng.permuted(np.broadcast_to(labels, (n_random, n_background)), axis=1)
    cumulative = np.cumsum(shuffled[:, : max(ks)], axis=1, dtype=np.int64)  # overlap of top k at column k - 1
    rows, p_all = [], []
    for k in ks:
        overlaps = cumulative[:, k - 1]
        p = _null_p_values(overlaps, n_background, n_locus, k)
        p_all.append(p)
        attainable = _attainable_p_values(n_background, n_locus, k)
        hits = int(np.count_nonzero(p <= alpha))
        counts = np.bincount(overlaps, minlength=len(attainable))
        pmf = hypergeom.pmf(np.arange(len(attainable)), n_background, n_locus, k)
        rows.append({
            "k": k,
            "expected": k * n_locus / n_background,
            "fraction_p_below_alpha": hits / n_random,
            "fraction_upper95": _upper95(hits, n_random),
            "exact_size": float(attainable[attainable <= alpha].max(initial=0.0)),
            **_calibration(p, attainable, n_random),
            "null_distribution": [
                {"overlap": x, "p": float(attainable[x]), "n_rankings": int(counts[x]), "expected_fraction": float(f)}
                for x, f in enumerate(pmf)
            ],
        })
    any_hits = int(_any_bh_rejection(np.column_stack(p_all), _FDR).sum()) if p_all else 0
    return {
        "rows": rows,
        "fraction_any_significant_fdr05": any_hits / n_random if p_all else None,
        "fraction_any_upper95": _upper95(any_hits, n_random) if p_all else None,
        "calibrated": all(r["calibrated"] for r in rows),
    }


def enrichment_controls(
    background_genes: Iterable[str],
    locus_genes: Iterable[str],
    causal_genes: Iterable[str] | None,
    ks: Iterable[int],
    n_random: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Positive and negative controls of the top-k hypergeometric enrichment test.

    Both controls run the test of :func:`enrichment_table` (same background, same
    locus set, same k, ``p`` from :func:`hypergeometric_enrichment`) on rankings whose
    answer is known.

    Positive control (can the test find a planted signal?)
        The ranking of :func:`positive_control_ranking`: the planted causal genes on
        top, the rest at random. For each k: ``overlap``, ``expected`` =
        ``k * n_locus / n_background``, ``p``, Benjamini-Hochberg ``q`` across the ks
        (``statsmodels`` ``fdr_bh``; the control is one "stage", so its family is its
        ks) and ``significant_fdr05`` = ``q <= 0.05``. **Rule**: ``passed`` is
        ``significant_fdr05`` at ``deciding_k``, the smallest k >= the number of
        planted genes present (the first cut-off that can hold them all; the largest
        k if none can). It fails, as it should, when the planted genes are not locus
        genes (``note`` says so) or too few to stand out.
    Negative control (is the test calibrated?)
        ``n_random`` uniformly random rankings (:func:`random_ranking`'s null, drawn
        at once). For each k: ``fraction_p_below_alpha`` = fraction of rankings with
        ``p <= alpha`` and its one-sided 95% Clopper-Pearson upper bound
        ``fraction_upper95``; ``exact_size`` = the largest attainable p-value
        ``<= alpha``, the exact false-positive rate of the discrete test, which the
        fraction estimates. A Kolmogorov-Smirnov test of uniform p-values would be
        wrong for a discrete test; instead, at every attainable p-value ``t <= 0.5``
        (``P(X >= x)`` for an overlap ``x``, where a valid test has
        ``P(p <= t) = t`` exactly), ``excess = P_hat(p <= t) - t``. **Rule**:
        ``calibrated`` is True when at every such ``t`` the number of rankings with
        ``p <= t`` is at most the ``1 - 0.00135`` binomial quantile of
        ``Binomial(n_random, t)`` (the exact analogue of 3 standard errors
        ``sqrt(t (1 - t) / n_random)``, which fails for small ``n_random * t``);
        ``margin = quantile / n_random - t``. ``max_excess`` is the worst excess and
        ``checks`` lists every threshold. With no attainable ``t <= 0.5`` (no locus
        gene) the test never rejects and ``calibrated`` is True.
        ``fraction_any_significant_fdr05``: fraction of rankings with any k
        significant after BH across the ks (the table's rule), expected ``<= 0.05``.

    Parameters
    ----------
    background_genes : collection of str
        The ranked genes, ``n_background`` distinct symbols (a set is sorted first).
    locus_genes : collection of str
        AD loci; only those in the background count (as in :func:`enrichment_table`).
    causal_genes : collection of str or None
        Planted causal genes (synthetic cohort). None: no positive control.
    ks : iterable of int
        Top-k cut-offs (>= 1); a k above ``n_background`` is skipped with a warning.
    n_random : int, default=1000
        Random rankings of the negative control (>= 1).
    seed : int, default=0
        Base seed; the positive and negative controls draw separate streams from it.
    alpha : float, default=0.05
        Level of the negative control's rejection rate, in (0, 1).

    Returns
    -------
    dict
        JSON-ready (no NaN): ``ks`` (those run), ``n_random``, ``seed``, ``alpha``,
        ``n_background``, ``n_locus``, ``causal_present``, ``causal_missing``,
        ``positive`` (None without ``causal_genes``; else ``rows`` of ``k``,
        ``overlap``, ``expected``, ``p``, ``overlap_genes``, ``q``,
        ``significant_fdr05``; ``n_causal_present``, ``causal_locus_genes``,
        ``deciding_k``, ``passed``, ``note``), ``negative`` (``rows`` of ``k``,
        ``expected``, ``fraction_p_below_alpha``, ``fraction_upper95``,
        ``exact_size``, ``max_excess``, ``threshold_at_max_excess``,
        ``margin_at_max_excess``, ``calibrated``, ``checks``, ``null_distribution``
        (per overlap: ``p``, ``n_rankings``, ``expected_fraction``);
        ``fraction_any_significant_fdr05``, ``fraction_any_upper95``,
        ``calibrated``) and ``notes``.

    Raises
    ------
    ValueError
        If the background is empty or repeats a gene, ``ks`` is empty or holds a
        k < 1, ``n_random < 1`` or ``alpha`` is not in (0, 1).
    """
    background = _gene_list(background_genes, "background_genes")
    if not background:
        raise ValueError("'background_genes' is empty.")
    ks_all = sorted({int(k) for k in ks})
    if not ks_all or ks_all[0] < 1:
        raise ValueError(f"'ks' must be one or more integers >= 1; got {ks_all!r}.")
    if int(n_random) < 1:
        raise ValueError(f"'n_random' must be >= 1; got {n_random!r}.")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"'alpha' must be in (0, 1); got {alpha!r}.")
    n_random, alpha = int(n_random), float(alpha)
    ks_run = [k for k in ks_all if k <= len(background)]
    notes = []
    if len(ks_run) < len(ks_all):
        skipped = [k for k in ks_all if k > len(background)]
        logger.warning("controls: k=%s exceed the %d ranked genes; skipped.", skipped, len(background))
        notes.append(f"k={skipped} exceed the {len(background)} ranked genes and were skipped")
    in_background = set(background)
    locus = _gene_set(locus_genes, "locus_genes") & in_background
    labels = np.array([g in locus for g in background])
    positive_seed, negative_seed = np.random.SeedSequence(int(seed)).spawn(2)

    if causal_genes is None:
        causal, positive = [], None
        notes.append("positive control: no planted genes (real data)")
    else:
        causal = _causal_list(causal_genes)
        ranking = positive_control_ranking(background, causal, seed=positive_seed)
        present = [g for g in causal if g in in_background]
        positive = _positive_control(ranking, locus, background, ks_run, present)
        if positive["note"]:
            notes.append(f"positive control: {positive['note']}")
    negative = (_negative_control(labels, ks_run, n_random, alpha, np.random.default_rng(negative_seed))
                if ks_run else {"rows": [], "fraction_any_significant_fdr05": None, "fraction_any_upper95": None,
                                "calibrated": None})
    if not locus:
        notes.append("no locus gene among the ranked genes: the test can never reject")
    return {
        "ks": ks_run,
        "n_random": n_random,
        "seed": int(seed),
        "alpha": alpha,
        "n_background": len(background),
        "n_locus": len(locus),
        "causal_present": [g for g in causal if g in in_background],
        "causal_missing": [g for g in causal if g not in in_background],
        "positive": positive,
        "negative": negative,
        "notes": notes,
    }


def controls_table(controls: dict) -> pd.DataFrame:
    """One readable row per (control, k) of :func:`enrichment_controls`' result.

    Parameters
    ----------
    controls : dict
        As returned by :func:`enrichment_controls` (or read from
        ``enrichment_controls.json``).

    Returns
    -------
    DataFrame of shape (n_rows, 12)
        Columns :data:`CONTROLS_COLUMNS`; positive rows first (absent when there is
        no positive control), then negative rows, each by k. Positive rows fill
        ``overlap``, ``p``, ``q``, ``significant_fdr05``; negative rows fill
        ``rejection_rate`` (fraction of random rankings with ``p <= alpha``),
        ``rejection_rate_upper95``, ``exact_size``, ``max_excess`` and
        ``calibrated``; ``expected`` is filled for both. Cells that do not apply
        are missing (NaN or None).
    """
    rows = []
    for row in (controls.get("positive") or {}).get("rows", []):
        rows.append({"control": "positive", "k": row["k"], "overlap": row["overlap"], "expected": row["expected"],
                     "p": row["p"], "q": row["q"], "significant_fdr05": row["significant_fdr05"]})
    for row in (controls.get("negative") or {}).get("rows", []):
        rows.append({"control": "negative", "k": row["k"], "expected": row["expected"],
                     "rejection_rate": row["fraction_p_below_alpha"],
                     "rejection_rate_upper95": row["fraction_upper95"], "exact_size": row["exact_size"],
                     "max_excess": np.nan if row["max_excess"] is None else row["max_excess"],
                     "calibrated": row["calibrated"]})
    table = pd.DataFrame(rows, columns=list(CONTROLS_COLUMNS))
    table["k"] = table["k"].astype(np.int64)
    table["overlap"] = table["overlap"].astype("Int64")
    for column in ("significant_fdr05", "calibrated"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table


# ---------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------
def read_gene_attribution(path: str | Path) -> pd.DataFrame:
    """Read ``gene_attribution.csv`` and check its columns.

    Parameters
    ----------
    path : str or Path
        CSV with at least :data:`ATTRIBUTION_COLUMNS`.

    Returns
    -------
    DataFrame
        The file as read (``name``, ``stage`` and ``method`` as strings).

    Raises
    ------
    DataContractError
        If the file is missing or lacks a column (the message names both).
    """
    path = Path(path)
    if not path.is_file():
        raise DataContractError(f"gene attribution table not found: {path} (run the explain step first).")
    table = pd.read_csv(path, dtype={"name": str, "stage": str, "method": str})
    missing = [c for c in ATTRIBUTION_COLUMNS if c not in table.columns]
    if missing:
        raise DataContractError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(ATTRIBUTION_COLUMNS)}."
        )
    return table


def _run_panel_path(run_dir: Path) -> Path:
    """The panel the run was prepared with, else the built-in panel."""
    from rgenima.data.manifest import builtin_gene_panel_path
    from rgenima.run import Run

    return Run(run_dir).gene_panel() or builtin_gene_panel_path()


def enrich_run(
    run_dir: str | Path,
    ks: Iterable[int] = (5, 10, 20),
    n_permutations: int = 10_000,
    seed: int = 0,
    gsea: bool = False,
    panel_path: str | Path | None = None,
    truth: str | Path | dict | None = None,
    n_random: int = 1000,
) -> pd.DataFrame:
    """Enrichment of AD loci in a run's gene attributions; writes ``enrichment.csv``.

    Also writes ``RUNDIR/enrichment_controls.json``: the controls of
    :func:`enrichment_controls` with the same ks and seed, the positive control only
    when ``truth`` is given. Their background is the set of genes ranked in the first
    (method, stage) of the table: it is the background of at least that row of the
    table, where a union of backgrounds would be the background of none. The
    explain step ranks the same genes in every (method, stage), which the file
    records as ``background.identical_across_groups`` (a warning is logged when it
    is False).

    Parameters
    ----------
    run_dir : str or Path
        Run directory holding ``gene_attribution.csv``.
    ks, n_permutations, seed
        See :func:`enrichment_table`.
    gsea : bool, default=False
        Also run :func:`gsea_prerank` per (stage, method) on the ``score`` column
        (``min(n_permutations, 1000)`` permutations; output under
        ``RUNDIR/gsea/<stage>_<method>/``) and add :data:`GSEA_COLUMNS`.
    panel_path : str, Path or None, default=None
        Gene panel TSV. None: the panel recorded in
        ``RUNDIR/prepared/prepare.json``, else the built-in panel.
    truth : str, Path, dict or None, default=None
        A synthetic cohort's ``truth.json`` (path to the file or to its folder, or
        its content) with key ``causal_genes``: the planted genes of the positive
        control (:func:`rgenima.signatures.find_truth` finds a run's file). None:
        real data, no positive control (``positive`` is None, with a note).
    n_random : int, default=1000
        Random rankings of the negative control.

    Returns
    -------
    DataFrame
        The table written to ``RUNDIR/enrichment.csv`` (atomically): columns
        :data:`ENRICHMENT_COLUMNS`, plus :data:`GSEA_COLUMNS` when ``gsea``. The
        controls are in ``table.attrs["enrichment_controls"]`` (the content of
        ``enrichment_controls.json``, see :func:`enrichment_controls`, plus
        ``background`` and ``truth``) and the file path in
        ``table.attrs["enrichment_controls_path"]``.

    Raises
    ------
    DataContractError
        If ``gene_attribution.csv`` or the panel is missing or invalid, or
        ``truth`` lacks ``causal_genes``.
    FileNotFoundError
        If ``truth`` is a path that does not exist.
    ImportError
        If ``gsea`` and gseapy is not installed.
    """
    from rgenima.data.genetics import read_gene_panel

    run_dir = Path(run_dir)
    ks = list(ks)
    source = Run(run_dir).gene_attribution_csv
    attribution = read_gene_attribution(source)
    panel_path = Path(panel_path) if panel_path is not None else _run_panel_path(run_dir)
    panel = read_gene_panel(panel_path)
    logger.info(
        "enrichment of %d AD loci (panel %s) in %s: %d stage(s), %d method(s), k=%s, %d permutations",
        int(panel["ad_locus"].sum()), panel_path, source, attribution["stage"].nunique(),
        attribution["method"].nunique(), list(ks), n_permutations,
    )
    table = enrichment_table(attribution, panel, ks=ks, n_permutations=n_permutations, seed=seed,
                             source=str(source))
    if gsea:
        table = _add_gsea(table, attribution, panel, run_dir / "gsea", min(int(n_permutations), 1000), seed)
    out = atomic_write_text(Run(run_dir).enrichment_csv, table.to_csv(index=False, float_format="%.6g"))
    logger.info("wrote %s (%d rows, %d significant at FDR 0.05)", out, len(table),
                int(table["significant_fdr05"].sum()))
    controls = _run_controls(attribution, panel, truth, ks, n_random, seed)
    controls_path = atomic_write_text(Run(run_dir).enrichment_controls_json,
                                      json.dumps(controls, indent=1, allow_nan=False) + "\n")
    positive = controls["positive"]
    logger.info("wrote %s (positive control %s, negative control %s)", controls_path,
                "absent" if positive is None else ("passed" if positive["passed"] else "NOT passed"),
                "calibrated" if controls["negative"]["calibrated"] else "NOT calibrated")
    table.attrs["enrichment_controls"] = controls
    table.attrs["enrichment_controls_path"] = str(controls_path)
    return table


def _load_causal_genes(truth: str | Path | dict) -> tuple[list[str], str]:
    """``causal_genes`` of a truth.json (file, folder or content) and where it came from."""
    if isinstance(truth, dict):
        data, source = truth, "dict"
    else:
        path = Path(truth)
        if path.is_dir():
            path = path / "truth.json"
        if not path.is_file():
            raise FileNotFoundError(f"truth file not found: {path}")
        data, source = json.loads(path.read_text()), str(path)
    if "causal_genes" not in data:
        raise DataContractError(f"{source if source != 'dict' else 'truth'}: missing key 'causal_genes' "
                                "(expected the truth.json written by rgenima.data.synthetic).")
    return _causal_list(data["causal_genes"]), source


def _run_controls(attribution: pd.DataFrame, panel: pd.DataFrame, truth: str | Path | dict | None,
                  ks: Iterable[int], n_random: int, seed: int) -> dict:
    """:func:`enrichment_controls` on the background of the first (method, stage)."""
    groups = {(str(m), str(s)): frozenset(g["name"].astype(str))
              for (m, s), g in attribution.groupby(["method", "stage"], sort=True)}
    (method, stage), background = next(iter(groups.items()))
    identical = len(set(groups.values())) == 1
    if not identical:
        logger.warning("controls: the ranked genes differ between (method, stage); the controls use the %d "
                       "genes of method %s, stage %s.", len(background), method, stage)
    causal, source = (None, None) if truth is None else _load_causal_genes(truth)
    controls = enrichment_controls(sorted(background), _locus_genes(panel), causal, ks, n_random=n_random,
                                   seed=seed)
    controls["background"] = {"method": method, "stage": stage, "identical_across_groups": identical,
                              "n_groups": len(groups)}
    controls["truth"] = source
    return controls


def _add_gsea(table: pd.DataFrame, attribution: pd.DataFrame, panel: pd.DataFrame, outdir: Path,
              permutation_num: int, seed: int) -> pd.DataFrame:
    locus = _locus_genes(panel)
    results = {}
    for (method, stage), group in attribution.groupby(["method", "stage"], sort=True):
        scores = pd.Series(pd.to_numeric(group["score"]).to_numpy(dtype=float),
                           index=group["name"].astype(str).to_numpy())
        name = f"{stage}_{method}".replace("/", "-")
        logger.info("GSEA prerank: stage %s, method %s (%d permutations)", stage, method, permutation_num)
        results[(str(method), str(stage))] = gsea_prerank(scores, locus, outdir / name, permutation_num, seed)
    keys = list(zip(table["method"], table["stage"]))
    for column, key in zip(GSEA_COLUMNS, ("nes", "p", "fdr")):
        table[column] = [results[k][key] for k in keys]
    return table
