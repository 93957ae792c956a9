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
from statsmodels.stats.multitest import multipletests

from rgenima.enrichment_controls import (
    CONTROLS_COLUMNS,
    _causal_list,
    controls_table,
    enrichment_controls,
    positive_control_ranking,
    random_ranking,
)
from rgenima.enrichment_stats import (
    _gene_set,
    hypergeometric_enrichment,
    permutation_enrichment,
    rank_genes,
)
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


_GENE_SET_NAME = "AD_LOCI"


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
            group["stage"].iloc[0],
            group["method"].iloc[0],
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
                logger.warning(
                    "stage %s, method %s: k=%d exceeds the %d ranked genes; skipped.", stage, method, k, len(ranked)
                )
                continue
            top = ranked.index[:k]
            overlap, p_hyper = hypergeometric_enrichment(top, locus, background)
            p_perm = permutation_enrichment(
                scores, locus, k, n_permutations=n_permutations, seed=_row_seed(seed, stage, method, k)
            )
            expected = k * len(locus) / len(background)
            rows.append(
                {
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
                }
            )
    table = pd.DataFrame(
        rows, columns=[c for c in ENRICHMENT_COLUMNS if c not in ("q_hypergeom", "q_permutation", "significant_fdr05")]
    )
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
        rnk=rnk,
        gene_sets=str(gmt),
        outdir=str(outdir),
        permutation_num=int(permutation_num),
        seed=int(seed),
        threads=1,
        no_plot=True,
        min_size=1,
        max_size=len(rnk),
        verbose=False,
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
        int(panel["ad_locus"].sum()),
        panel_path,
        source,
        attribution["stage"].nunique(),
        attribution["method"].nunique(),
        list(ks),
        n_permutations,
    )
    table = enrichment_table(attribution, panel, ks=ks, n_permutations=n_permutations, seed=seed, source=str(source))
    if gsea:
        table = _add_gsea(table, attribution, panel, run_dir / "gsea", min(int(n_permutations), 1000), seed)
    out = atomic_write_text(Run(run_dir).enrichment_csv, table.to_csv(index=False, float_format="%.6g"))
    logger.info(
        "wrote %s (%d rows, %d significant at FDR 0.05)", out, len(table), int(table["significant_fdr05"].sum())
    )
    controls = _run_controls(attribution, panel, truth, ks, n_random, seed)
    controls_path = atomic_write_text(
        Run(run_dir).enrichment_controls_json, json.dumps(controls, indent=1, allow_nan=False) + "\n"
    )
    positive = controls["positive"]
    logger.info(
        "wrote %s (positive control %s, negative control %s)",
        controls_path,
        "absent" if positive is None else ("passed" if positive["passed"] else "NOT passed"),
        "calibrated" if controls["negative"]["calibrated"] else "NOT calibrated",
    )
    table.attrs["enrichment_controls"] = controls
    table.attrs["enrichment_controls_path"] = str(controls_path)
    return table


def _load_causal_genes(truth: str | Path | dict) -> tuple[list[str], str]:
    """``causal_genes`` of a truth.json (file, folder or content) and where it came from."""
    if isinstance(truth, dict):
        data, source = truth, "dict"
    else:
        from rgenima.data.truth import read_truth, truth_file

        data, source = read_truth(truth), str(truth_file(truth))
    if "causal_genes" not in data:
        raise DataContractError(
            f"{source if source != 'dict' else 'truth'}: missing key 'causal_genes' "
            "(expected the truth.json written by rgenima.data.synthetic)."
        )
    return _causal_list(data["causal_genes"]), source


def _run_controls(
    attribution: pd.DataFrame,
    panel: pd.DataFrame,
    truth: str | Path | dict | None,
    ks: Iterable[int],
    n_random: int,
    seed: int,
) -> dict:
    """:func:`enrichment_controls` on the background of the first (method, stage)."""
    groups = {
        (str(m), str(s)): frozenset(g["name"].astype(str))
        for (m, s), g in attribution.groupby(["method", "stage"], sort=True)
    }
    (method, stage), background = next(iter(groups.items()))
    identical = len(set(groups.values())) == 1
    if not identical:
        logger.warning(
            "controls: the ranked genes differ between (method, stage); the controls use the %d "
            "genes of method %s, stage %s.",
            len(background),
            method,
            stage,
        )
    causal, source = (None, None) if truth is None else _load_causal_genes(truth)
    controls = enrichment_controls(sorted(background), _locus_genes(panel), causal, ks, n_random=n_random, seed=seed)
    controls["background"] = {
        "method": method,
        "stage": stage,
        "identical_across_groups": identical,
        "n_groups": len(groups),
    }
    controls["truth"] = source
    return controls


def _add_gsea(
    table: pd.DataFrame, attribution: pd.DataFrame, panel: pd.DataFrame, outdir: Path, permutation_num: int, seed: int
) -> pd.DataFrame:
    locus = _locus_genes(panel)
    results = {}
    for (method, stage), group in attribution.groupby(["method", "stage"], sort=True):
        scores = pd.Series(
            pd.to_numeric(group["score"]).to_numpy(dtype=float), index=group["name"].astype(str).to_numpy()
        )
        name = f"{stage}_{method}".replace("/", "-")
        logger.info("GSEA prerank: stage %s, method %s (%d permutations)", stage, method, permutation_num)
        results[(str(method), str(stage))] = gsea_prerank(scores, locus, outdir / name, permutation_num, seed)
    keys = list(zip(table["method"], table["stage"]))
    for column, key in zip(GSEA_COLUMNS, ("nes", "p", "fdr")):
        table[column] = [results[k][key] for k in keys]
    return table
