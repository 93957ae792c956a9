"""Controls of the GWAS-locus enrichment: can the test find a planted signal, and is it calibrated?

The **positive control** ranks the synthetic cohort's planted causal genes first and
applies the enrichment table's test (same background, locus set and k); the **negative
control** draws uniformly random rankings of the same genes. See
:func:`enrichment_controls` for both rules. :mod:`rgenima.enrich` runs them with the
enrichment of a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta, binom, hypergeom
from statsmodels.stats.multitest import multipletests

from rgenima.enrichment_stats import _gene_set, hypergeometric_enrichment

logger = logging.getLogger("rgenima.enrich")

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
    return pd.Series(np.arange(1, len(order) + 1, dtype=np.int64), index=pd.Index(order, dtype=object), name="rank")


def random_ranking(
    genes: Iterable[str], seed: int | np.random.SeedSequence | np.random.Generator | None = None
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
        logger.info(
            "positive control: %d planted gene(s) not in the %d ranked genes, ignored: %s",
            len(missing),
            len(order),
            ", ".join(missing),
        )
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
        checks.append(
            {
                "t": float(t),
                "rejection_rate": hits / n_random,
                "excess": hits / n_random - float(t),
                "margin": allowed / n_random - float(t),
                "within_margin": hits <= allowed,
            }
        )
    if not checks:
        return {
            "max_excess": None,
            "threshold_at_max_excess": None,
            "margin_at_max_excess": None,
            "calibrated": True,
            "checks": [],
        }
    worst = max(checks, key=lambda c: c["excess"])
    return {
        "max_excess": worst["excess"],
        "threshold_at_max_excess": worst["t"],
        "margin_at_max_excess": worst["margin"],
        "calibrated": all(c["within_margin"] for c in checks),
        "checks": checks,
    }


def _any_bh_rejection(p_values: np.ndarray, level: float) -> np.ndarray:
    """Rows (n_random, m) with at least one Benjamini-Hochberg rejection at ``level``."""
    m = p_values.shape[1]
    ordered = np.sort(p_values, axis=1)
    return (ordered <= level * np.arange(1, m + 1) / m).any(axis=1)


def _positive_control(
    ranking: pd.Series, locus: set[str], background: list[str], ks: list[int], causal_present: list[str]
) -> dict:
    rows: list[dict[str, Any]] = []
    for k in ks:
        top = list(ranking.index[:k])
        overlap, p = hypergeometric_enrichment(top, locus, background)
        rows.append(
            {
                "k": k,
                "overlap": overlap,
                "expected": k * len(locus) / len(background),
                "p": p,
                "overlap_genes": [g for g in top if g in locus],
            }
        )
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
        notes.append(f"no k covers the {n_causal} planted genes; the largest k ({rows[-1]['k']}) decides")
    if n_causal and not causal_locus:
        notes.append(
            "no planted causal gene is an AD locus of the panel: the locus set holds none of the planted "
            "signal, so the positive control cannot pass"
        )
    return {
        "rows": rows,
        "n_causal_present": n_causal,
        "causal_locus_genes": causal_locus,
        "deciding_k": deciding["k"] if deciding else None,
        "passed": bool(deciding["significant_fdr05"]) if deciding else None,
        "note": "; ".join(notes) or None,
    }


def _negative_control(labels: np.ndarray, ks: list[int], n_random: int, alpha: float, rng: np.random.Generator) -> dict:
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
        rows.append(
            {
                "k": k,
                "expected": k * n_locus / n_background,
                "fraction_p_below_alpha": hits / n_random,
                "fraction_upper95": _upper95(hits, n_random),
                "exact_size": float(attainable[attainable <= alpha].max(initial=0.0)),
                **_calibration(p, attainable, n_random),
                "null_distribution": [
                    {
                        "overlap": x,
                        "p": float(attainable[x]),
                        "n_rankings": int(counts[x]),
                        "expected_fraction": float(f),
                    }
                    for x, f in enumerate(pmf)
                ],
            }
        )
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
    negative = (
        _negative_control(labels, ks_run, n_random, alpha, np.random.default_rng(negative_seed))
        if ks_run
        else {"rows": [], "fraction_any_significant_fdr05": None, "fraction_any_upper95": None, "calibrated": None}
    )
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
        rows.append(
            {
                "control": "positive",
                "k": row["k"],
                "overlap": row["overlap"],
                "expected": row["expected"],
                "p": row["p"],
                "q": row["q"],
                "significant_fdr05": row["significant_fdr05"],
            }
        )
    for row in (controls.get("negative") or {}).get("rows", []):
        rows.append(
            {
                "control": "negative",
                "k": row["k"],
                "expected": row["expected"],
                "rejection_rate": row["fraction_p_below_alpha"],
                "rejection_rate_upper95": row["fraction_upper95"],
                "exact_size": row["exact_size"],
                "max_excess": np.nan if row["max_excess"] is None else row["max_excess"],
                "calibrated": row["calibrated"],
            }
        )
    table = pd.DataFrame(rows, columns=list(CONTROLS_COLUMNS))
    table["k"] = table["k"].astype(np.int64)
    table["overlap"] = table["overlap"].astype("Int64")
    for column in ("significant_fdr05", "calibrated"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table
