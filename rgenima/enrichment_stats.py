"""The single enrichment tests: hypergeometric and rank-weighted permutation tests of
the overlap between the top-k genes of a ranking and a locus set (see rgenima.enrich)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

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
            f"{len(outside)} gene(s) of '{name}' are not in the background of {len(background)} genes: {shown}."
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
    return pd.Series(np.arange(1, len(order) + 1, dtype=np.int64), index=scores_by_gene.index[order], name="rank")


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
