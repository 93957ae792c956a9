"""Enrichment figure: GWAS AD loci among the top-k genes, by k and stage."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rgenima.display import display_name
from rgenima.plots._style import _CB, STAGE_COLORS, _check_one_of, _fig_ax, _require_columns, _stage_order


def plot_enrichment(
    enrichment: pd.DataFrame,
    method: str,
    *,
    stages: Sequence[str] | None = None,
    q_column: str = "q_hypergeom",
    alpha: float = 0.05,
    ax=None,
) -> plt.Figure:
    """Enrichment of GWAS AD loci among the top-k genes, by k and stage.

    Grouped bars: −log10 q (Benjamini-Hochberg q-value of the one-sided hypergeometric
    test, within the method) for each cut-off k (x) and stage (colour); the dashed line
    is q = ``alpha``. Above each bar: the overlap (locus genes in the top k). Bars are
    outlined, so that a q-value near 1 still shows as a bar of height about 0, and when
    no bar crosses the line the axes say so: a null result reads as one.

    Parameters
    ----------
    enrichment : DataFrame
        ``enrichment.csv`` (:func:`rgenima.enrich.enrichment_table`).
    method : str
        Attribution method (a value of the ``method`` column).
    stages : sequence of str, optional
        Default every stage of the method, in NC, SMC, MCI, AD, all order.
    q_column : str, default "q_hypergeom"
        Or ``q_permutation``.
    alpha : float, default 0.05
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require_columns(enrichment, ("stage", "method", "k", "overlap", q_column), "enrichment")
    sub = enrichment[enrichment["method"] == method]
    if sub.empty:
        _check_one_of(method, sorted(set(enrichment["method"])), "method")
    stages = list(stages) if stages is not None else _stage_order(sub["stage"].unique())
    ks = sorted(sub["k"].unique())
    fig, ax = _fig_ax(ax, (max(5.0, 1.1 * len(ks) * max(len(stages), 1) ** 0.5 + 2), 3.6))
    width = 0.8 / max(len(stages), 1)
    top = -math.log10(alpha)
    for i, stage in enumerate(stages):
        part = sub[sub["stage"] == stage].set_index("k").reindex(ks)
        q = part[q_column].astype(float).clip(lower=1e-300)
        height = -np.log10(q.to_numpy())
        x = np.arange(len(ks)) - 0.4 + width * (i + 0.5)
        color = STAGE_COLORS.get(stage, _CB[5])
        ax.bar(
            x,
            np.nan_to_num(height),
            width=width * 0.92,
            color=color,
            edgecolor=color,
            linewidth=1.5,
            label=stage,
            zorder=2,
        )
        for xi, h, ov in zip(x, height, part["overlap"]):
            if np.isfinite(h) and pd.notna(ov):
                ax.text(xi, h, f"{int(ov)}", ha="center", va="bottom", fontsize=7)
        top = max(top, np.nanmax(height) if np.isfinite(height).any() else 0)
    ax.axhline(-math.log10(alpha), color="0.3", ls="--", lw=1.1, zorder=3)
    ax.text(-0.45, -math.log10(alpha), f"q = {alpha:g}", ha="left", va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(np.arange(len(ks)))
    ax.set_xticklabels([str(int(k)) for k in ks])
    ax.set_xlabel("top k genes")
    ax.set_ylabel(f"−log10 {q_column.replace('_', ' ')}")
    ax.set_ylim(0, top * 1.18 + 0.05)
    ax.legend(title="stage", fontsize=8, title_fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    if not (sub[sub["stage"].isin(stages)][q_column].astype(float) < alpha).any():
        ax.text(
            0.5,
            0.62,
            f"no stage reaches q < {alpha:g} at any k",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
            color="0.25",
            bbox={"facecolor": "white", "edgecolor": "0.6", "pad": 4},
        )
    ax.set_title(
        f"GWAS AD-locus enrichment among top-ranked genes ({display_name(method)})\nnumbers: locus genes in the top k",
        fontsize=10,
    )
    sns.despine(ax=ax)
    return fig
