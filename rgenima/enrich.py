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
from scipy.stats import hypergeom
from statsmodels.stats.multitest import multipletests

from rgenima.errors import DataContractError
from rgenima.fileio import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "ENRICHMENT_COLUMNS",
    "GSEA_COLUMNS",
    "enrich_run",
    "enrichment_table",
    "gsea_prerank",
    "hypergeometric_enrichment",
    "permutation_enrichment",
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

    prepare = run_dir / "prepared" / "prepare.json"
    if prepare.is_file():
        recorded = json.loads(prepare.read_text()).get("manifest", {}).get("gene_panel")
        if recorded:
            return Path(recorded)
    return builtin_gene_panel_path()


def enrich_run(
    run_dir: str | Path,
    ks: Iterable[int] = (5, 10, 20),
    n_permutations: int = 10_000,
    seed: int = 0,
    gsea: bool = False,
    panel_path: str | Path | None = None,
) -> pd.DataFrame:
    """Enrichment of AD loci in a run's gene attributions; writes ``enrichment.csv``.

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

    Returns
    -------
    DataFrame
        The table written to ``RUNDIR/enrichment.csv`` (atomically): columns
        :data:`ENRICHMENT_COLUMNS`, plus :data:`GSEA_COLUMNS` when ``gsea``.

    Raises
    ------
    DataContractError
        If ``gene_attribution.csv`` or the panel is missing or invalid.
    ImportError
        If ``gsea`` and gseapy is not installed.
    """
    from rgenima.data.genetics import read_gene_panel

    run_dir = Path(run_dir)
    source = run_dir / "gene_attribution.csv"
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
    out = atomic_write_text(run_dir / "enrichment.csv", table.to_csv(index=False, float_format="%.6g"))
    logger.info("wrote %s (%d rows, %d significant at FDR 0.05)", out, len(table),
                int(table["significant_fdr05"].sum()))
    return table


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
