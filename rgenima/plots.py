"""Figures of the book. Each function takes plain arrays/tables and returns a Figure.

Inputs are the tables and dicts the analysis modules write (``metrics.json`` of
:mod:`rgenima.evaluate`, ``roi_attribution.csv`` / ``gene_attribution.csv`` /
``roi_gene.csv`` of :mod:`rgenima.signatures`, ``enrichment.csv`` of
:mod:`rgenima.enrich`, training histories from ``state.json``), already loaded as
pandas/numpy/dict objects; the only readers here are the two small helpers
:func:`load_training_histories` and :func:`load_sanity_correlations`.

Style: seaborn's "colorblind" palette, one colour per stage (:data:`STAGE_COLORS`) and
per configuration role (:data:`ROLE_COLORS`) in every figure, ``constrained_layout``.
Functions that draw on a single axes accept ``ax=`` to draw into an existing figure.

Figures never show subject identifiers: example images are titled by stage only, and
everything else is an aggregate over subjects.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import patches as mpatches
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

from rgenima import STAGES
from rgenima.display import display_name
from rgenima.errors import DataContractError

__all__ = [
    "STAGE_COLORS",
    "ROLE_COLORS",
    "LOCUS_COLORS",
    "plot_class_counts",
    "plot_example_slices",
    "plot_genotype_summary",
    "cohens_d",
    "plot_roi_features_by_stage",
    "plot_framework",
    "plot_performance",
    "plot_confusion_matrices",
    "plot_roc_curves",
    "load_training_histories",
    "plot_training_curves",
    "roi_score_image",
    "plot_brain_signature",
    "plot_top_rois",
    "plot_gene_signature",
    "plot_gene_signatures",
    "plot_roi_gene_heatmap",
    "plot_roi_gene_heatmaps",
    "plot_enrichment",
    "plot_batch_summary",
    "plot_learning_curve",
    "load_sanity_correlations",
    "plot_sanity_check",
]

_CB = sns.color_palette("colorblind").as_hex()
#: One colour per stage (and grey for "all" subjects), used by every figure.
STAGE_COLORS: dict[str, str] = {"NC": _CB[0], "SMC": _CB[2], "MCI": _CB[1], "AD": _CB[3], "all": _CB[7]}
#: One colour per configuration role of :func:`rgenima.evaluate.configuration_role`.
ROLE_COLORS: dict[str, str] = {
    "main": _CB[3], "variant": _CB[4], "ablation": _CB[1], "baseline": _CB[0], "reference": _CB[7],
    "other": _CB[5],
}
#: Gene bar colours: GWAS-supported AD locus (panel ``ad_locus`` True) or not.
LOCUS_COLORS: dict[bool, str] = {True: _CB[3], False: _CB[7]}
#: Chance balanced accuracy of the four-way task.
CHANCE_BALANCED_ACCURACY = 1.0 / len(STAGES)

_REFERENCE_LABELS = {"reference_oracle": "oracle (true generative model)",
                     "reference_truth_feature_lda": "LDA on true features"}


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------
def _fig_ax(ax, figsize):
    """(figure, axes): a new constrained-layout figure, or the figure holding ``ax``."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def _grid(n: int, ncols: int | None, panel_size: tuple[float, float], *, sharex=False, sharey=False):
    """A constrained-layout grid of ``n`` panels; unused panels are removed."""
    ncols = max(1, min(n, ncols or n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             constrained_layout=True, squeeze=False, sharex=sharex, sharey=sharey)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.remove()
    return fig, list(flat[:n])


def _check_one_of(value, allowed, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"'{name}' must be one of {tuple(allowed)}. {value!r} was provided.")


def _require_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"'{name}' lacks column(s) {missing}; it has {list(table.columns)}.")


def _stage_order(stages: Iterable[str]) -> list[str]:
    """Stages in STAGES order, then 'all', then anything else."""
    order = [*STAGES, "all"]
    stages = list(dict.fromkeys(stages))
    return sorted(stages, key=lambda s: (order.index(s) if s in order else len(order), str(s)))


def _boxplot(**kwargs):
    """``seaborn.boxplot`` without the deprecation warning that seaborn 0.13 triggers in matplotlib 3.11."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        return sns.boxplot(**kwargs)


def _pretty_configuration(name: str) -> str:
    return _REFERENCE_LABELS.get(name) or display_name(name)


# ---------------------------------------------------------------------------------
# Cohort
# ---------------------------------------------------------------------------------
def plot_class_counts(counts: dict[str, int], title: str = "Subjects per stage") -> plt.Figure:
    """Bar chart of subjects per stage (NC, SMC, MCI, AD).

    Parameters
    ----------
    counts : dict of str to int
        Stage -> number of subjects; missing stages count 0.
    title : str
    """
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    values = [counts.get(s, 0) for s in STAGES]
    ax.bar(STAGES, values, color=[STAGE_COLORS[s] for s in STAGES])
    for x, v in enumerate(values):
        ax.text(x, v, str(v), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("subjects")
    ax.set_title(title)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_example_slices(images: dict[str, object], atlas_img, cut_coords=(-20, 0, -14)) -> plt.Figure:
    """One row per stage: a T1w image with the atlas contours overlaid.

    Parameters
    ----------
    images : dict
        Stage -> Niimg-like (path or image). For a restricted cohort pass the MNI
        template instead of subject images.
    atlas_img : Niimg-like
        Integer label image in MNI space.
    cut_coords : tuple of float
        MNI coordinates (x, y, z) in mm of the three orthogonal cuts.
    """
    from nilearn import plotting

    fig, axes = plt.subplots(len(images), 1, figsize=(8.0, 2.6 * len(images)))
    axes = np.atleast_1d(axes)
    for ax, (title, img) in zip(axes, images.items()):
        display = plotting.plot_anat(img, cut_coords=cut_coords, axes=ax, title=title,
                                     annotate=True, draw_cross=False, black_bg=True)
        display.add_contours(atlas_img, levels=[0.5], colors="yellow", linewidths=0.4)
        display.add_overlay(atlas_img, cmap="tab20", transparency=0.25)
    return fig


def plot_genotype_summary(snp_stats: pd.DataFrame, apoe4_by_stage: pd.DataFrame) -> plt.Figure:
    """Minor allele frequencies, call rates, and APOE ε4 dose by stage.

    Parameters
    ----------
    snp_stats : DataFrame
        Per SNP: ``maf`` and ``call_rate``.
    apoe4_by_stage : DataFrame
        Columns ``stage`` and ``APOE4`` (0, 1, 2), one row per subject.
    """
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.2))
    axes[0].hist(snp_stats["maf"].dropna(), bins=25, color="0.4")
    axes[0].set_xlabel("minor allele frequency")
    axes[0].set_ylabel("SNPs")
    axes[1].hist(snp_stats["call_rate"], bins=25, color="0.4")
    axes[1].set_xlabel("call rate")
    axes[1].set_yscale("log")
    apoe4_by_stage = apoe4_by_stage.assign(APOE4=apoe4_by_stage["APOE4"].astype(int))
    table = (
        apoe4_by_stage.groupby("stage", observed=True)["APOE4"].value_counts(normalize=True).unstack(fill_value=0)
        .reindex(index=[s for s in STAGES if s in set(apoe4_by_stage["stage"])])
    )
    table.mul(100).plot.bar(stacked=True, ax=axes[2], color=sns.color_palette("rocket_r", 3), rot=0)
    axes[2].set_ylabel("% of subjects")
    axes[2].set_xlabel("")
    axes[2].legend(title="ε4 alleles", fontsize=8)
    axes[2].set_title("APOE ε4 dose by stage")
    sns.despine(fig)
    fig.tight_layout()
    return fig


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """Cohen's d of ``a`` minus ``b`` (pooled SD, ``ddof=1``); NaN values are ignored.

    Returns NaN when either group has fewer than two values or the pooled SD is 0.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def plot_roi_features_by_stage(features: pd.DataFrame, top: int = 8, *, stage_column: str = "stage",
                               contrast: tuple[str, str] = ("AD", "NC"), ylabel: str = "ROI feature",
                               ax=None) -> plt.Figure:
    """Distribution by stage of the ROI features that differ most between two stages.

    The ``top`` ROI columns with the largest \\|Cohen's d\\| between ``contrast[0]`` and
    ``contrast[1]`` are shown as box plots by stage (colours :data:`STAGE_COLORS`), each
    labelled with its d.

    Parameters
    ----------
    features : DataFrame of shape (n_subjects, n_rois + 1)
        One numeric column per ROI (e.g. normalised mean intensity, unitless z) and the
        stage column. Only aggregates are drawn (no subject identifiers).
    top : int, default 8
    stage_column : str, default "stage"
    contrast : (str, str), default ("AD", "NC")
        The two stages whose Cohen's d (first minus second) ranks the ROIs.
    ylabel : str, default "ROI feature"
        y-axis label; name the feature and its unit (e.g. "normalised mean intensity").
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require_columns(features, (stage_column,), "features")
    stage = features[stage_column].astype(str)
    for s in contrast:
        if not (stage == s).any():
            raise ValueError(f"'features' has no subject of stage {s!r} (column {stage_column!r}); "
                             f"stages present: {_stage_order(stage.unique())}")
    rois = [c for c in features.columns if c != stage_column and pd.api.types.is_numeric_dtype(features[c])]
    d = pd.Series({roi: cohens_d(features.loc[stage == contrast[0], roi], features.loc[stage == contrast[1], roi])
                   for roi in rois}, dtype=float)
    chosen = d.abs().dropna().sort_values(ascending=False, kind="stable").index[:top].tolist()
    long = features[chosen].assign(stage=stage.to_numpy()).melt(id_vars="stage", var_name="roi", value_name="value")
    order = [s for s in _stage_order(stage.unique())]
    fig, ax = _fig_ax(ax, (max(6.0, 1.15 * len(chosen) + 1.5), 3.8))
    _boxplot(data=long, x="roi", y="value", hue="stage", order=chosen, hue_order=order,
             palette={s: STAGE_COLORS.get(s, _CB[5]) for s in order}, showfliers=False, ax=ax, linewidth=0.8)
    ax.set_xticks(range(len(chosen)))
    ax.set_xticklabels([f"{r}\nd = {d[r]:+.2f}" for r in chosen], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_title(f"ROIs with the largest |Cohen's d|, {contrast[0]} vs {contrast[1]}", fontsize=10)
    ax.legend(title="stage", fontsize=8, title_fontsize=8, frameon=False, ncol=len(order), loc="best")
    sns.despine(ax=ax)
    return fig


# ---------------------------------------------------------------------------------
# 1. Framework diagram
# ---------------------------------------------------------------------------------
def _box(ax, x, y, w, h, text, *, color, fontsize=9, weight="normal", family=None, alpha=0.18,
         ls="-", text_color="black", ha="center"):
    """A rounded box at (x, y) (lower left), in data units, with centred text."""
    ax.add_patch(mpatches.FancyBboxPatch(
        (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1.1, linestyle=ls,
        facecolor=(*_rgb(color), alpha), edgecolor=color))
    tx = x + w / 2 if ha == "center" else x + 0.08
    ax.text(tx, y + h / 2, text, ha=ha, va="center", fontsize=fontsize, weight=weight, family=family,
            color=text_color, linespacing=1.25)
    return (x, y, w, h)


def _rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def _arrow(ax, start, end, *, color="0.25", ls="-", lw=1.3, rad=0.0):
    ax.add_patch(mpatches.FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=11, color=color, linewidth=lw, linestyle=ls,
        connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def _tokens(ax, x, y, n, size, colors, gap=0.04):
    """A row of ``n`` small squares (tokens) starting at (x, y)."""
    for i in range(n):
        ax.add_patch(mpatches.Rectangle((x + i * (size + gap), y), size, size, facecolor=colors[i % len(colors)],
                                        edgecolor="0.2", linewidth=0.6))


def plot_framework(
    n_rois: int = 120,
    n_snps: int | None = None,
    n_genes: int | None = None,
    *,
    atlas_name: str = "AAL2",
    cube_size: int = 16,
    rit_hidden_size: int = 32,
    hidden_size: int = 64,
    num_layers: int = 2,
    backbone: str = "LLaMA-architecture\ndecoder",
    pretrained: bool = False,
    prompt_example: str = "APOE: rs429358 C/T, rs7412 C/C;\nBIN1: rs4662703 G/A; CLU: …",
    ax=None,
) -> plt.Figure:
    """The R-GenIMA framework as a block diagram (drawn from code, no image files).

    Imaging path: T1 MRI + atlas -> one cube per ROI -> RiT (one ViT shared by all ROIs)
    -> projector -> ``n_rois`` ROI tokens. Genetic path: SNP genotypes -> genetic
    prompt text -> prompt tokens. Both enter the language model; the hidden state at
    the answer position feeds the four-way stage head. The bottom row lists the
    interpretation outputs (attention, rollout, integrated gradients -> ROI and gene
    signatures, ROI x gene association, GWAS-locus enrichment).

    Parameters
    ----------
    n_rois : int, default 120
        Atlas regions, i.e. ROI tokens.
    n_snps, n_genes : int, optional
        SNPs and genes of the prompt (after QC); left out of the labels when None.
    atlas_name : str, default "AAL2"
    cube_size : int, default 16
        Edge of each ROI cube, in voxels.
    rit_hidden_size : int, default 32
        Hidden size of the RiT (ROI-wise vision transformer).
    hidden_size : int, default 64
        Hidden size of the language model (= ROI token dimension after the projector).
    num_layers : int, default 2
        Decoder layers of the language model.
    backbone : str
        Description of the language-model backbone.
    pretrained : bool, default False
        Pretrained backbone fine-tuned with LoRA (True) or a backbone trained from
        scratch (False); changes the label of the language-model box.
    prompt_example : str
        Genetic prompt excerpt shown in the diagram (genotypes written as alleles).
    ax : matplotlib Axes, optional
        Draw here; by default a new 12 x 5 inch figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _fig_ax(ax, (12.0, 5.0))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 5)
    ax.set_axis_off()
    img_c, gen_c, llm_c, out_c, int_c = _CB[0], _CB[2], _CB[4], "0.35", _CB[1]

    # --- imaging row (y 3.35 .. 4.65)
    y_img, h_row = 3.35, 1.3
    _box(ax, 0.1, y_img, 1.75, h_row, f"T1 MRI\n+ {atlas_name} atlas\n({n_rois} ROIs)", color=img_c)
    _box(ax, 2.15, y_img, 1.6, h_row, f"ROI cubes\n{n_rois} × {cube_size}³ voxels", color=img_c)
    for i in range(3):  # three stacked cubes as an icon
        ax.add_patch(mpatches.Rectangle((2.55 + 0.12 * i, y_img + 0.12 + 0.06 * i), 0.22, 0.22,
                                        facecolor="white", edgecolor=img_c, linewidth=0.8))
    _box(ax, 4.05, y_img, 1.65, h_row, f"RiT: ROI-wise ViT\n(hidden {rit_hidden_size}),\nzero-init gate\n"
         "+ regional-\nintensity token", color=img_c, fontsize=8.5)
    _box(ax, 6.0, y_img, 1.2, h_row, f"projector\n(MLP)\n{rit_hidden_size} → {hidden_size}", color=img_c)
    ax.text(7.55, y_img + h_row - 0.25, f"{n_rois} ROI\ntokens", ha="center", va="top", fontsize=9)
    _tokens(ax, 7.28, y_img + 0.2, 4, 0.12, [img_c])
    for a, b in ((1.85, 2.15), (3.75, 4.05), (5.7, 6.0), (7.2, 7.27)):
        _arrow(ax, (a, y_img + h_row / 2), (b, y_img + h_row / 2))

    # --- genetic row (y 1.55 .. 2.85)
    y_gen = 1.55
    snp_text = "SNP genotypes"
    if n_snps is not None or n_genes is not None:
        parts = [f"{n_snps} SNPs" if n_snps is not None else None, f"{n_genes} genes" if n_genes is not None else None]
        snp_text += "\n" + ", ".join(p for p in parts if p)
    _box(ax, 0.1, y_gen, 1.75, h_row, snp_text + "\n(PLINK dosages)", color=gen_c)
    _box(ax, 2.15, y_gen, 3.55, h_row, "", color=gen_c)
    ax.text(2.25, y_gen + h_row - 0.18, "genetic prompt (structured text)", ha="left", va="top", fontsize=9)
    ax.text(2.25, y_gen + 0.5, prompt_example, ha="left", va="center", fontsize=8.5, family="monospace")
    _box(ax, 6.0, y_gen, 1.2, h_row, "one token per\ngenotype,\nattention prior\n(trend scan)",
         color=gen_c, fontsize=8.5)
    ax.text(7.55, y_gen + h_row - 0.25, "prompt\ntokens", ha="center", va="top", fontsize=9)
    _tokens(ax, 7.28, y_gen + 0.2, 4, 0.12, [gen_c])
    for a, b in ((1.85, 2.15), (5.7, 6.0), (7.2, 7.27)):
        _arrow(ax, (a, y_gen + h_row / 2), (b, y_gen + h_row / 2))

    # --- language model (x 8.1 .. 9.9, y 1.55 .. 4.65)
    llm_text = (f"language model\n{backbone}\n{num_layers} layers, hidden {hidden_size}\n"
                + ("pretrained + LoRA\nadapters" if pretrained else "trained from scratch"))
    _box(ax, 8.1, y_gen, 1.8, y_img + h_row - y_gen, "", color=llm_c)
    ax.text(9.0, 4.5, llm_text, ha="center", va="top", fontsize=9, linespacing=1.3)
    ax.text(9.0, 2.75, "token sequence", ha="center", va="center", fontsize=7.5, color="0.3")
    ax.text(9.0, 3.05, "+ age, sex, education\ntokens", ha="center", va="center", fontsize=7.5, color="0.3")
    _tokens(ax, 8.22, 2.32, 4, 0.12, [img_c])
    _tokens(ax, 8.87, 2.32, 4, 0.12, [gen_c])
    ax.add_patch(mpatches.Rectangle((9.53, 2.3), 0.18, 0.18, facecolor=llm_c, edgecolor="0.1", linewidth=0.9))
    ax.text(9.62, 2.22, "answer", ha="center", va="top", fontsize=7)
    _arrow(ax, (7.85, y_img + 0.26), (8.1, y_img - 0.1))
    _arrow(ax, (7.85, y_gen + 0.26), (8.1, y_gen + 0.45))

    # --- stage head (x 10.2 .. 11.9): answer state -> head -> NC/SMC/MCI/AD
    _box(ax, 10.2, 1.95, 1.7, 0.9, "stage head\n(linear, answer\nhidden state)", color=out_c, alpha=0.1)
    _arrow(ax, (9.72, 2.39), (10.2, 2.39))
    for i, stage in enumerate(STAGES):
        ax.add_patch(mpatches.FancyBboxPatch((10.2 + i * 0.43, 3.3), 0.38, 0.4,
                                             boxstyle="round,pad=0.01,rounding_size=0.05",
                                             facecolor=STAGE_COLORS[stage], edgecolor="0.2", linewidth=0.6))
        ax.text(10.39 + i * 0.43, 3.5, stage, ha="center", va="center", fontsize=8, color="white",
                weight="bold")
    _arrow(ax, (11.05, 2.85), (11.05, 3.28))
    ax.text(11.05, 3.85, "4-way diagnosis\n(softmax over stages)", ha="center", va="bottom", fontsize=8)

    # --- interpretation row (y 0.1 .. 1.1)
    y_int, h_int = 0.1, 0.95
    _box(ax, 0.1, y_int, 2.55, h_int, "attribution\nattention · rollout ·\nintegrated gradients", color=int_c)
    outputs = ("ROI signatures\n(stage brain maps)", "gene signatures\n(stage rankings)",
               "ROI × gene\nassociation", "GWAS AD-locus\nenrichment")
    x = 3.05
    for text in outputs:
        _box(ax, x, y_int, 1.85, h_int, text, color=int_c, ls="--", alpha=0.08)
        x += 2.05
    _arrow(ax, (2.65, y_int + h_int / 2), (3.05, y_int + h_int / 2))
    _arrow(ax, (9.0, y_gen), (1.4, y_int + h_int), color=int_c, ls="--", rad=-0.05)
    ax.text(5.0, 1.28, "attributions per subject, grouped by stage", ha="center", va="center", fontsize=8,
            color=int_c, style="italic")
    return fig


# ---------------------------------------------------------------------------------
# 2-4. Performance
# ---------------------------------------------------------------------------------
def plot_performance(metrics: dict, *, chance: float = CHANCE_BALANCED_ACCURACY, ax=None,
                     title: str = "Four-way classification (NC/SMC/MCI/AD)") -> plt.Figure:
    """Balanced accuracy with its 95% bootstrap interval for every configuration.

    One row per configuration (point and horizontal error bar, coloured by role; the
    main model larger and in bold). Reference configurations (``reference_*``: the
    oracle posterior and the LDA on the true features of the synthetic cohort) are
    drawn as vertical lines with their interval as a band, not as rows. A dotted line
    marks chance (0.25 for four balanced classes).

    Parameters
    ----------
    metrics : dict
        Content of ``metrics.json`` (:func:`rgenima.evaluate.evaluate_predictions`).
    chance : float, default 0.25
        Balanced accuracy of a random classifier.
    ax : matplotlib Axes, optional
    title : str
        First line of the title (the number of subjects and the bootstrap follow).

    Returns
    -------
    matplotlib.figure.Figure
        x axis: balanced accuracy (fraction, 0-1).
    """
    from rgenima.evaluate import metrics_table

    table = metrics_table(metrics)
    rows = table[table["role"] != "reference"]
    refs = table[table["role"] == "reference"]
    fig, ax = _fig_ax(ax, (7.5, 0.42 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yi, (name, row) in zip(y, rows.iterrows()):
        main = row["role"] == "main"
        color = ROLE_COLORS.get(row["role"], ROLE_COLORS["other"])
        ba, low, high = row["balanced_accuracy"], row["balanced_accuracy_ci_low"], row["balanced_accuracy_ci_high"]
        xerr = None
        if np.isfinite(low) and np.isfinite(high):
            xerr = [[max(ba - low, 0)], [max(high - ba, 0)]]
        ax.errorbar([ba], [yi], xerr=xerr, fmt="D" if main else "o", ms=9 if main else 6, color=color,
                    ecolor=color, elinewidth=2.4 if main else 1.4, capsize=3, zorder=3)
        text = f"{ba:.3f}" + (f" [{low:.3f}, {high:.3f}]" if xerr is not None else "")
        ax.annotate(text, (high if xerr is not None else ba, yi), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8, weight="bold" if main else "normal", zorder=4,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.6})
    ax.set_yticks(y)
    ax.set_yticklabels([_pretty_configuration(name) for name in rows.index])
    for label, role in zip(ax.get_yticklabels(), rows["role"]):
        if role == "main":
            label.set_fontweight("bold")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ref_handles = []
    ref_styles = ["--", "-.", ":"]
    for i, (name, row) in enumerate(refs.iterrows()):
        ls = ref_styles[i % len(ref_styles)]
        low, high = row["balanced_accuracy_ci_low"], row["balanced_accuracy_ci_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.axvspan(low, high, color=ROLE_COLORS["reference"], alpha=0.12, lw=0, zorder=0)
        ax.axvline(row["balanced_accuracy"], color="0.3", ls=ls, lw=1.3, zorder=1)
        ref_handles.append(Line2D([], [], color="0.3", ls=ls,
                                  label=f"{_pretty_configuration(name)}: {row['balanced_accuracy']:.3f}"))
    ax.axvline(chance, color="0.5", ls=":", lw=1.2, zorder=1)
    ref_handles.append(Line2D([], [], color="0.5", ls=":", label=f"chance ({chance:.2f})"))
    roles = list(dict.fromkeys(rows["role"]))
    role_handles = [Line2D([], [], marker="D" if r == "main" else "o", ls="", color=ROLE_COLORS.get(r, "0.5"),
                           label=r) for r in roles]
    below = ax.transAxes + ScaledTranslation(0, -0.5, fig.dpi_scale_trans)  # 0.5 inch under the axes
    ax.legend(handles=role_handles + ref_handles, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below,
              ncol=3, fontsize=8, frameon=False)
    upper = np.nanmax(np.r_[table["balanced_accuracy_ci_high"].to_numpy(), table["balanced_accuracy"].to_numpy()])
    ax.set_xlim(0, min(1.0, upper + 0.22) if np.isfinite(upper) else 1.0)
    ax.set_xlabel("balanced accuracy")
    n_boot = metrics.get("bootstrap", {}).get("n_boot")
    ax.set_title(title
                 + (f", {metrics.get('n_subjects')} subjects" if metrics.get("n_subjects") else "")
                 + (f"\n95% CI: {n_boot} bootstrap resamples of subjects" if n_boot else ""), fontsize=10)
    ax.grid(axis="x", color="0.92", zorder=0)
    sns.despine(ax=ax)
    return fig


#: Models drawn by plot_learning_curve, with their labels and styles.
LEARNING_CURVE_MODELS: dict[str, tuple[str, str, str]] = {
    "rgenima_mri+snp": ("R-GenIMA MRI + SNP", ROLE_COLORS["main"], "D"),
    "rgenima_mri": ("R-GenIMA MRI only", ROLE_COLORS["ablation"], "o"),
    "baseline_logistic_roi_apoe": ("logistic regression, ROI + APOE", ROLE_COLORS["baseline"], "s"),
    "baseline_logistic_roi": ("logistic regression, ROI", _CB[9], "^"),
    "reference_truth_feature_lda": ("LDA on true features", ROLE_COLORS["reference"], "v"),
}


def plot_learning_curve(curve: dict, *, chance: float = CHANCE_BALANCED_ACCURACY, ax=None) -> plt.Figure:
    """Balanced accuracy on a fixed external cohort against the number of training subjects.

    Parameters
    ----------
    curve : dict
        Output of ``benchmarks/bench_learning_curve.py``: ``sizes`` maps the number of
        training subjects to ``balanced_accuracy`` and ``ci`` (95% bootstrap interval on
        the external cohort) per configuration.
    chance : float, default 0.25
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        x axis: training subjects (log scale); y axis: balanced accuracy on the external
        cohort; the oracle's (which needs no training) as a horizontal line.
    """
    sizes = sorted(curve["sizes"], key=int)
    n = np.array([int(s) for s in sizes])
    fig, ax = _fig_ax(ax, (6.8, 4.4))
    offsets = np.linspace(-0.03, 0.03, len(LEARNING_CURVE_MODELS))
    for offset, (name, (label, color, marker)) in zip(offsets, LEARNING_CURVE_MODELS.items()):
        if not all(name in curve["sizes"][s]["balanced_accuracy"] for s in sizes):
            continue
        y = np.array([curve["sizes"][s]["balanced_accuracy"][name] for s in sizes])
        ci = np.array([curve["sizes"][s]["ci"][name] for s in sizes])
        x = n * 10**offset  # small horizontal offsets on the log axis keep the error bars apart
        main = name == "rgenima_mri+snp"
        ax.errorbar(x, y, yerr=np.clip([y - ci[:, 0], ci[:, 1] - y], 0, None), color=color, marker=marker, ms=7 if main else 5,
                    lw=2.2 if main else 1.3, capsize=3, label=label, zorder=3 if main else 2)
    oracle = [curve["sizes"][s]["balanced_accuracy"].get("reference_oracle") for s in sizes]
    if oracle[0] is not None:
        ax.axhline(oracle[0], color="0.3", ls="--", lw=1.2, label=f"oracle (true posterior): {oracle[0]:.3f}")
    ax.axhline(chance, color="0.5", ls=":", lw=1.2, label=f"chance ({chance:.2f})")
    ax.set_xscale("log")
    ax.set_xticks(n)
    ax.set_xticklabels([f"{v:,}" for v in n])
    ax.minorticks_off()
    ax.set_xlabel("training subjects")
    ax.set_ylabel("balanced accuracy, external cohort")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.grid(axis="y", color="0.92", zorder=0)
    sns.despine(ax=ax)
    return fig


def plot_confusion_matrices(metrics: dict, configurations: Sequence[str] | None = None, *,
                            ncols: int = 3) -> plt.Figure:
    """Row-normalised confusion matrices, one panel per configuration.

    Cell colour: fraction of the subjects of the true stage (row) predicted as the
    column's stage, on a colour scale shared by all panels (0-1). Cell text: count and
    row percentage. Stages in :data:`rgenima.STAGES` order.

    Parameters
    ----------
    metrics : dict
        Content of ``metrics.json``; each configuration's ``metrics.confusion_matrix``
        (rows true, columns predicted).
    configurations : sequence of str, optional
        Panels to draw, in this order; default every configuration of ``metrics``.
    ncols : int, default 3
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    available = list(metrics["configurations"])
    configurations = list(configurations) if configurations is not None else available
    if not configurations:
        raise ValueError("'configurations' is empty; name at least one configuration.")
    for name in configurations:
        _check_one_of(name, available, "configurations")
    stages = list(metrics.get("stages", STAGES))
    fig, axes = _grid(len(configurations), ncols, (3.6, 3.3))
    cmap = sns.color_palette("rocket_r", as_cmap=True)
    for ax, name in zip(axes, configurations):
        counts = np.asarray(metrics["configurations"][name]["metrics"]["confusion_matrix"], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(totals > 0, counts / totals, np.nan)
        annot = np.array([[f"{int(c)}\n({100 * f:.0f}%)" if np.isfinite(f) else f"{int(c)}"
                           for c, f in zip(crow, frow)] for crow, frow in zip(counts, frac)])
        sns.heatmap(frac, ax=ax, vmin=0, vmax=1, cmap=cmap, annot=annot, fmt="", cbar=False, square=True,
                    linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8},
                    xticklabels=stages, yticklabels=stages)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(axis="y", rotation=0)
        entry = metrics["configurations"][name]
        ba = entry["metrics"].get("balanced_accuracy")
        ax.set_title(_pretty_configuration(name) + (f"\nbalanced accuracy {ba:.3f}" if ba is not None else ""),
                     fontsize=9.5,
                     weight="bold" if entry.get("role") == "main" else "normal")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, shrink=0.6, label="fraction of true stage")
    return fig


def plot_roc_curves(predictions: Mapping[str, pd.DataFrame], configurations: Sequence[str] | None = None, *,
                    highlight: str | None = None) -> plt.Figure:
    """One-vs-rest ROC curves: one panel per stage, one line per configuration.

    Parameters
    ----------
    predictions : dict of str to DataFrame
        Configuration -> predictions (columns ``y_true`` and ``p_NC`` .. ``p_AD``), as
        from :func:`rgenima.evaluate.load_predictions`.
    configurations : sequence of str, optional
        Lines to draw, in this order; default all.
    highlight : str, optional
        Configuration drawn thicker; default the main model ``rgenima_mri+snp`` if drawn.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: false positive rate (x) against true positive rate (y); the legend of
        each panel gives the AUROC of each configuration for that stage.
    """
    from rgenima.evaluate import MAIN_PREFIX, roc_curves

    configurations = list(configurations) if configurations is not None else list(predictions)
    for name in configurations:
        _check_one_of(name, list(predictions), "configurations")
    if highlight is None and MAIN_PREFIX in configurations:
        highlight = MAIN_PREFIX
    curves = {name: roc_curves(predictions[name]) for name in configurations}
    palette = dict(zip(configurations, sns.color_palette("colorblind", len(configurations))))
    fig, axes = _grid(len(STAGES), 4, (3.4, 3.6), sharey=True)
    for ax, stage in zip(axes, STAGES):
        ax.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
        for name in configurations:
            if stage not in curves[name]:
                continue
            fpr, tpr, auc = curves[name][stage]
            main = name == highlight
            ax.plot(fpr, tpr, color=palette[name], lw=2.4 if main else 1.2, zorder=3 if main else 2,
                    label=f"{_pretty_configuration(name)} ({auc:.2f})")
        ax.set_title(f"{stage} vs rest", color=STAGE_COLORS[stage], weight="bold", fontsize=10)
        ax.set_xlabel("false positive rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.legend(fontsize=6.5, loc="lower right", title="AUROC", title_fontsize=7, frameon=False)
    axes[0].set_ylabel("true positive rate")
    return fig


# ---------------------------------------------------------------------------------
# 5. Training curves
# ---------------------------------------------------------------------------------
def load_training_histories(run_dir: str | Path, configuration: str) -> tuple[dict[int, list[dict]], dict[int, int]]:
    """Training histories of every fold of a configuration.

    Parameters
    ----------
    run_dir : str or Path
        Run directory with ``models/<configuration>/fold_<k>/state.json``.
    configuration : str

    Returns
    -------
    histories : dict of int to list of dict
        Fold -> ``[{"epoch", "train_loss", "val_loss", "val_balanced_accuracy"}, ...]``.
    best_epochs : dict of int to int
        Fold -> ``best_epoch`` of its state.json (folds without one are left out).

    Raises
    ------
    DataContractError
        If no ``fold_<k>/state.json`` is found, or one has no ``history``.
    """
    base = Path(run_dir) / "models" / configuration
    histories, best = {}, {}
    for path in sorted(base.glob("fold_*/state.json")):
        m = re.fullmatch(r"fold_(\d+)", path.parent.name)
        if not m:
            continue
        state = json.loads(path.read_text())
        if "history" not in state:
            raise DataContractError(f"{path}: no 'history' field; keys are {sorted(state)}")
        k = int(m.group(1))
        histories[k] = list(state["history"])
        if state.get("best_epoch") is not None:
            best[k] = int(state["best_epoch"])
    if not histories:
        raise DataContractError(f"{base}: no fold_<k>/state.json found; train {configuration!r} first")
    return dict(sorted(histories.items())), best


def plot_training_curves(histories: Mapping[int, Sequence[Mapping]], best_epochs: Mapping[int, int] | None = None,
                         *, show_accuracy: bool = True, title: str | None = None) -> plt.Figure:
    """Train and validation loss per fold, with the selected (best) epoch marked.

    Parameters
    ----------
    histories : dict of int to list of dict
        Fold -> per-epoch records with ``epoch``, ``train_loss``, ``val_loss`` and
        optionally ``val_balanced_accuracy`` (see :func:`load_training_histories`).
    best_epochs : dict of int to int, optional
        Fold -> selected epoch; by default the epoch of minimum validation loss.
    show_accuracy : bool, default True
        Add a second panel with the validation balanced accuracy when recorded.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: cross-entropy loss (nats per subject) against epoch, solid validation and
        dashed training; right: validation balanced accuracy (fraction).
    """
    if not histories:
        raise ValueError("'histories' is empty; expected fold -> list of epoch records.")
    frames = {k: pd.DataFrame(list(h)) for k, h in histories.items()}
    for k, frame in frames.items():
        _require_columns(frame, ("epoch", "train_loss", "val_loss"), f"histories[{k}]")
    has_acc = show_accuracy and all("val_balanced_accuracy" in f.columns for f in frames.values())
    fig, axes = _grid(2 if has_acc else 1, 2, (5.0, 3.6))
    colors = dict(zip(frames, sns.color_palette("colorblind", len(frames))))
    best_epochs = dict(best_epochs or {})
    for k, frame in frames.items():
        if k not in best_epochs and frame["val_loss"].notna().any():
            best_epochs[k] = int(frame.loc[frame["val_loss"].idxmin(), "epoch"])
    ax = axes[0]
    for k, frame in frames.items():
        ax.plot(frame["epoch"], frame["val_loss"], color=colors[k], lw=1.6, label=f"fold {k}")
        ax.plot(frame["epoch"], frame["train_loss"], color=colors[k], lw=1.0, ls="--", alpha=0.8)
        if k in best_epochs:
            at = frame[frame["epoch"] == best_epochs[k]]
            if len(at):
                ax.plot(at["epoch"], at["val_loss"], marker="*", ms=12, color=colors[k], mec="black", mew=0.6,
                        ls="", zorder=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    style = [Line2D([], [], color="0.3", lw=1.6, label="validation"),
             Line2D([], [], color="0.3", lw=1.0, ls="--", label="train"),
             Line2D([], [], color="0.3", marker="*", ms=10, mec="black", ls="", label="best epoch")]
    fold_handles = [Line2D([], [], color=colors[k], lw=1.6, label=f"fold {k}") for k in frames]
    ax.legend(handles=style + fold_handles, fontsize=7.5, ncol=2, frameon=False)
    if has_acc:
        ax = axes[1]
        for k, frame in frames.items():
            ax.plot(frame["epoch"], frame["val_balanced_accuracy"], color=colors[k], lw=1.6)
            if k in best_epochs:
                at = frame[frame["epoch"] == best_epochs[k]]
                ax.plot(at["epoch"], at["val_balanced_accuracy"], marker="*", ms=12, color=colors[k], mec="black",
                        mew=0.6, ls="", zorder=4)
        ax.axhline(CHANCE_BALANCED_ACCURACY, color="0.5", ls=":", lw=1.2)
        ax.text(ax.get_xlim()[1], CHANCE_BALANCED_ACCURACY, "chance", ha="right", va="bottom", fontsize=8,
                color="0.4")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation balanced accuracy")
    for a in axes:
        sns.despine(ax=a)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


# ---------------------------------------------------------------------------------
# 6. Brain maps
# ---------------------------------------------------------------------------------
def _atlas_parts(atlas):
    """(label image, labels table with ``index`` and ``name``) of an Atlas or a (image, labels) pair."""
    import nibabel as nib

    if hasattr(atlas, "image") and hasattr(atlas, "labels"):
        image, labels = atlas.image, atlas.labels
    elif isinstance(atlas, tuple) and len(atlas) == 2:
        image, labels = atlas
    else:
        raise TypeError("'atlas' must be an rgenima.data.atlas.Atlas or an (image, labels) pair; "
                        f"{type(atlas).__name__} was provided.")
    if isinstance(image, (str, Path)):
        image = nib.load(str(image))
    labels = pd.DataFrame(labels)
    _require_columns(labels, ("index", "name"), "atlas.labels")
    return image, labels


def roi_score_image(atlas, scores: pd.Series | Mapping[str, float], *, background: float = 0.0):
    """A brain image holding each ROI's score on that ROI's voxels.

    Parameters
    ----------
    atlas : rgenima.data.atlas.Atlas or (Niimg-like, DataFrame)
        Integer label image (0 = background) and labels table with ``index`` (the
        label value) and ``name``.
    scores : Series or dict
        ROI name -> score (any unit; it is copied as is). ROIs of the atlas without a
        score, and NaN scores, get ``background``.
    background : float, default 0
        Value outside the scored ROIs.

    Returns
    -------
    nibabel.Nifti1Image
        float32, same shape and affine as the atlas image.

    Raises
    ------
    ValueError
        If no score names an atlas ROI. Names that are not atlas ROIs are listed in a
        warning and ignored.
    """
    import nibabel as nib

    image, labels = _atlas_parts(atlas)
    scores = pd.Series(scores, dtype=float)
    index_of = dict(zip(labels["name"].astype(str), labels["index"].astype(int)))
    unknown = [n for n in scores.index if str(n) not in index_of]
    known = scores[[str(n) in index_of for n in scores.index]]
    if len(scores) and not len(known):
        raise ValueError(f"'scores' names no ROI of the atlas (e.g. {list(scores.index[:3])}; atlas ROIs are "
                         f"e.g. {list(index_of)[:3]}). Scores and atlas must use the same ROI names.")
    if unknown:
        warnings.warn(f"{len(unknown)} score name(s) are not atlas ROIs and are ignored: {unknown[:10]}",
                      stacklevel=2)
    data = np.asarray(image.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.allclose(data, rounded):
            raise ValueError("'atlas' image must hold integer labels; found non-integer values.")
        data = rounded
    data = data.astype(np.int64)
    max_label = max(int(data.max(initial=0)), max(index_of.values(), default=0))
    lut = np.full(max_label + 1, background, dtype=np.float64)
    for name, value in known.items():
        if np.isfinite(value):
            lut[index_of[str(name)]] = value
    lut[0] = background
    out = lut[np.clip(data, 0, max_label)]
    return nib.Nifti1Image(out.astype(np.float32), image.affine)


def _signature_rows(table: pd.DataFrame, stage: str, method: str, name: str) -> pd.DataFrame:
    _require_columns(table, ("name", "stage", "method", "score", "rank"), name)
    rows = table[(table["stage"] == stage) & (table["method"] == method)]
    if rows.empty:
        pairs = sorted(set(zip(table["stage"], table["method"])))
        raise ValueError(f"'{name}' has no rows for stage {stage!r} and method {method!r}; available "
                         f"(stage, method): {pairs[:20]}{' ...' if len(pairs) > 20 else ''}")
    return rows.sort_values("rank", kind="stable")


def plot_brain_signature(roi_attribution: pd.DataFrame, atlas, stages: Sequence[str] = ("SMC", "MCI", "AD"),
                         method: str = "integrated_gradients", *, top: int | None = None,
                         display_mode: str = "lyrz", vmax: float | None = None, cmap: str = "RdBu_r"
                         ) -> plt.Figure:
    """Glass-brain maps of the ROI signature of each stage (one row per stage).

    Each ROI is filled with its score (:func:`roi_score_image`); the colour scale is
    signed (``plot_abs=False``), symmetric about 0 and shared by all stages, so that
    colours compare across rows. The glass brain is a maximum-intensity projection.

    Parameters
    ----------
    roi_attribution : DataFrame
        ``roi_attribution.csv`` (columns ``name, stage, method, score, ...``).
    atlas : rgenima.data.atlas.Atlas or (Niimg-like, DataFrame)
        The atlas whose ROI names the table uses.
    stages : sequence of str, default ("SMC", "MCI", "AD")
    method : str, default "integrated_gradients"
        Attribution method, e.g. ``attention`` (stage minus NC contrast) or
        ``attention@mean_abs`` (mean level).
    top : int, optional
        Keep only the ``top`` ROIs of largest \\|score\\| in each stage (others 0).
    display_mode : str, default "lyrz"
        nilearn display mode ("ortho", "lyrz", ...).
    vmax : float, optional
        Colour limit; default the largest \\|score\\| shown.
    cmap : str, default "RdBu_r"

    Returns
    -------
    matplotlib.figure.Figure
        Colour: the score in the unit of the method (stage-minus-NC difference of
        mean attribution, or mean \\|attribution\\|).
    """
    from nilearn import plotting

    stages = list(stages)
    maps = {}
    for stage in stages:
        rows = _signature_rows(roi_attribution, stage, method, "roi_attribution")
        scores = rows.set_index("name")["score"].astype(float)
        if top is not None:
            scores = scores[scores.abs().sort_values(ascending=False, kind="stable").index[:top]]
        maps[stage] = scores
    if vmax is None:
        vmax = max((float(np.nanmax(np.abs(s.to_numpy()))) for s in maps.values() if s.notna().any()), default=1.0)
        vmax = vmax if vmax > 0 else 1.0
    width = 11.0 if display_mode in ("lyrz", "lzry", "lyr", "lzr") else 8.0
    fig = plt.figure(figsize=(width, 2.9 * len(stages)))
    for i, stage in enumerate(stages):
        ax = fig.add_axes([0.01, 1 - (i + 1) / len(stages) + 0.01, 0.98, 1 / len(stages) - 0.02])
        img = roi_score_image(atlas, maps[stage])
        label = f"{stage}: {method}" + (f" (top {top})" if top is not None else "")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            display = plotting.plot_glass_brain(
                img, axes=ax, figure=fig, display_mode=display_mode, plot_abs=False, colorbar=True,
                symmetric_cbar=True, vmin=-vmax, vmax=vmax, cmap=cmap, threshold=vmax * 1e-3, title=label,
                annotate=True, resampling_interpolation="nearest")
        cbar = getattr(display, "_cbar", None)
        if cbar is not None:  # nilearn adds a tick at +-threshold; keep round ticks only
            cbar.set_ticks(np.linspace(-vmax, vmax, 5))
            cbar.ax.tick_params(labelsize=8)
    return fig


def plot_top_rois(roi_attribution: pd.DataFrame, stage: str, method: str, top: int = 15,
                  planted: Iterable[str] | None = None, *, ax=None) -> plt.Figure:
    """The ``top`` highest-ranked ROIs of one stage and method, with bootstrap CIs.

    Parameters
    ----------
    roi_attribution : DataFrame
        ``roi_attribution.csv`` (``name, stage, method, score, ci_low, ci_high, rank``).
    stage, method : str
    top : int, default 15
    planted : iterable of str, optional
        Regions planted in the synthetic cohort for this stage; marked with a star
        and a bold label.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Bars: score (unit of the method); whiskers: 95% bootstrap interval over subjects.
    """
    rows = _signature_rows(roi_attribution, stage, method, "roi_attribution").head(top)
    planted = set(planted or ())
    fig, ax = _fig_ax(ax, (5.5, 0.28 * len(rows) + 1.4))
    color = STAGE_COLORS.get(stage, _CB[7])
    _ranked_bars(ax, rows, [color] * len(rows), planted)
    handles = [mpatches.Patch(color=color, label=f"{stage}")]
    if planted & set(rows["name"]):
        handles.append(Line2D([], [], marker="*", color="black", ls="", ms=10, label="planted region"))
    ax.legend(handles=handles, fontsize=8, loc="lower right", frameon=False)
    ax.set_title(f"{stage}: top {len(rows)} ROIs ({display_name(method)})", fontsize=10)
    return fig


def _ranked_bars(ax, rows: pd.DataFrame, colors: list, planted: set) -> None:
    """Horizontal bars, rank 1 on top, CI whiskers, planted names starred."""
    n = len(rows)
    y = np.arange(n)[::-1]
    score = rows["score"].to_numpy(dtype=float)
    ax.barh(y, score, color=colors, edgecolor="none", height=0.75, zorder=2)
    if {"ci_low", "ci_high"} <= set(rows.columns):
        low, high = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
        ok = np.isfinite(low) & np.isfinite(high)
        if ok.any():
            ax.errorbar(score[ok], y[ok], xerr=[np.clip(score[ok] - low[ok], 0, None),
                                                np.clip(high[ok] - score[ok], 0, None)],
                        fmt="none", ecolor="0.2", elinewidth=0.9, capsize=2, zorder=3)
        edge = np.where(ok, np.where(score >= 0, np.fmax(high, score), np.fmin(low, score)), score)
    else:
        edge = score
    names = rows["name"].astype(str).tolist()
    span = np.nanmax(np.abs(edge)) if n and np.isfinite(edge).any() else 1.0
    for yi, name, e in zip(y, names, edge):
        if name in planted:
            ax.plot(e + np.sign(e or 1) * 0.04 * span, yi, marker="*", color="black", ms=9, ls="", zorder=4)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    for label, name in zip(ax.get_yticklabels(), names):
        if name in planted:
            label.set_fontweight("bold")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("score")
    ax.margins(x=0.08)
    sns.despine(ax=ax)


# ---------------------------------------------------------------------------------
# 7. Gene signatures
# ---------------------------------------------------------------------------------
def _ad_loci(panel) -> set[str]:
    """Symbols of GWAS AD loci from a panel table (``symbol``, ``ad_locus``) or a collection."""
    if isinstance(panel, pd.DataFrame):
        _require_columns(panel, ("symbol", "ad_locus"), "panel")
        flag = panel["ad_locus"]
        if flag.dtype != bool:
            flag = flag.astype(str).str.lower().isin(("true", "1", "yes"))
        return set(panel.loc[flag, "symbol"].astype(str))
    if isinstance(panel, Mapping):
        return {str(k) for k, v in panel.items() if bool(v)}
    if isinstance(panel, str):
        raise TypeError("'panel' must be a gene panel table or a collection of locus symbols, not a string.")
    return {str(g) for g in panel}


def plot_gene_signature(gene_attribution: pd.DataFrame, panel, stage: str, method: str, top: int = 20,
                        planted: Iterable[str] | None = None, *, ax=None, legend: bool = True) -> plt.Figure:
    """The ``top`` highest-ranked genes of one stage and method.

    Bars are coloured by GWAS support (:data:`LOCUS_COLORS`: AD locus of the panel or
    not); whiskers are 95% bootstrap intervals over subjects; planted causal genes of
    the synthetic cohort are starred.

    Parameters
    ----------
    gene_attribution : DataFrame
        ``gene_attribution.csv`` (``name, stage, method, score, ci_low, ci_high, rank``).
    panel : DataFrame or collection of str
        Gene panel with ``symbol`` and ``ad_locus`` (:func:`rgenima.data.genetics.read_gene_panel`),
        a dict symbol -> bool, or the AD-locus symbols themselves.
    stage, method : str
    top : int, default 20
    planted : iterable of str, optional
        Causal genes planted in the synthetic cohort.
    ax : matplotlib Axes, optional
    legend : bool, default True

    Returns
    -------
    matplotlib.figure.Figure
        Bars: score (unit of the method: stage-minus-NC difference of mean attribution,
        or mean \\|attribution\\| for ``@mean_abs``).
    """
    loci = _ad_loci(panel)
    rows = _signature_rows(gene_attribution, stage, method, "gene_attribution").head(top)
    planted = set(planted or ())
    fig, ax = _fig_ax(ax, (5.0, 0.26 * len(rows) + 1.4))
    colors = [LOCUS_COLORS[str(n) in loci] for n in rows["name"]]
    _ranked_bars(ax, rows, colors, planted)
    n_loci = sum(str(n) in loci for n in rows["name"])
    ax.set_title(f"{stage}: top {len(rows)} genes ({display_name(method)})\n{n_loci} GWAS AD loci", fontsize=10)
    if legend:
        ax.legend(handles=_gene_legend_handles(bool(planted & set(rows["name"]))), fontsize=8, loc="lower right",
                  frameon=False)
    return fig


def _gene_legend_handles(with_planted: bool) -> list:
    handles = [mpatches.Patch(color=LOCUS_COLORS[True], label="GWAS AD locus"),
               mpatches.Patch(color=LOCUS_COLORS[False], label="other panel gene")]
    if with_planted:
        handles.append(Line2D([], [], marker="*", color="black", ls="", ms=10, label="planted causal gene"))
    return handles


def plot_gene_signatures(gene_attribution: pd.DataFrame, panel, stages: Sequence[str] = ("SMC", "MCI", "AD"),
                         method: str = "integrated_gradients", top: int = 20,
                         planted: Iterable[str] | None = None) -> plt.Figure:
    """:func:`plot_gene_signature` for several stages, side by side, with one legend.

    Parameters
    ----------
    gene_attribution : DataFrame
    panel : DataFrame or collection of str
    stages : sequence of str, default ("SMC", "MCI", "AD")
    method : str, default "integrated_gradients"
    top : int, default 20
    planted : iterable of str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel per stage.
    """
    stages = list(stages)
    planted = set(planted or ())
    fig, axes = _grid(len(stages), len(stages), (3.8, 0.26 * top + 1.6))
    for ax, stage in zip(axes, stages):
        plot_gene_signature(gene_attribution, panel, stage, method, top, planted, ax=ax, legend=False)
    fig.legend(handles=_gene_legend_handles(bool(planted)), loc="outside lower center", ncol=3, fontsize=9,
               frameon=False)
    return fig


# ---------------------------------------------------------------------------------
# 8. ROI x gene heatmaps
# ---------------------------------------------------------------------------------
def _normalise_pairs(pairs) -> list[tuple[str, str]]:
    if pairs is None:
        return []
    return [(str(r), str(g)) for r, g in pairs]


def plot_roi_gene_heatmap(matrix: pd.DataFrame, top_rois: int = 20, top_genes: int = 15,
                          highlight_pairs: Iterable[tuple[str, str]] | None = None, title: str | None = None, *,
                          include_highlighted: bool = True, vmin: float | None = None, vmax: float | None = None,
                          cbar: bool = True, ax=None) -> plt.Figure:
    """Heatmap of the strongest ROIs and genes of an ROI x gene association matrix.

    Rows and columns are ranked by their largest \\|value\\| and the ``top_rois`` x
    ``top_genes`` strongest are drawn, strongest first. Highlighted (planted) pairs
    are outlined with a black rectangle.

    Parameters
    ----------
    matrix : DataFrame of shape (n_rois, n_genes)
        Index ROI names, columns gene names (:func:`rgenima.signatures.roi_gene_matrix`).
        Values: mean attention between the ROI token and the gene's prompt tokens.
    top_rois, top_genes : int
    highlight_pairs : iterable of (roi, gene), optional
        Cells to outline, e.g. the planted interactions of the synthetic cohort.
    title : str, optional
    include_highlighted : bool, default True
        Add the rows and columns of highlighted pairs even when they are not among the
        strongest (so that a weak planted pair stays visible).
    vmin, vmax : float, optional
        Colour limits (pass the same to several heatmaps to share the scale). Signed
        data use a diverging map centred on 0.
    cbar : bool, default True
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Outlines are ``Rectangle`` patches with gid ``"highlight"`` at (column, row)
        of the cell in the drawn heatmap.
    """
    if not isinstance(matrix, pd.DataFrame):
        raise TypeError(f"'matrix' must be a DataFrame (ROIs x genes); {type(matrix).__name__} was provided.")
    values = matrix.astype(float)
    strength_rows = values.abs().max(axis=1).fillna(-np.inf)
    strength_cols = values.abs().max(axis=0).fillna(-np.inf)
    rows = list(strength_rows.sort_values(ascending=False, kind="stable").index[:top_rois])
    cols = list(strength_cols.sort_values(ascending=False, kind="stable").index[:top_genes])
    pairs = [(r, g) for r, g in _normalise_pairs(highlight_pairs) if r in values.index and g in values.columns]
    if include_highlighted:
        rows += [r for r, _ in pairs if r not in rows]
        cols += [g for _, g in pairs if g not in cols]
        rows = list(dict.fromkeys(rows))
        cols = list(dict.fromkeys(cols))
        rows.sort(key=lambda r: -strength_rows[r])
        cols.sort(key=lambda g: -strength_cols[g])
    shown = values.loc[rows, cols]
    fig, ax = _fig_ax(ax, (0.38 * len(cols) + 3.2, 0.28 * len(rows) + 1.6))
    finite = shown.to_numpy()[np.isfinite(shown.to_numpy())]
    signed = finite.size and finite.min() < 0
    if signed:
        lim = vmax if vmax is not None else (np.abs(finite).max() if finite.size else 1.0)
        kw = dict(cmap="vlag", center=0, vmin=-lim if vmin is None else vmin, vmax=lim)
    else:
        kw = dict(cmap="rocket_r", vmin=0 if vmin is None else vmin, vmax=vmax)
    sns.heatmap(shown, ax=ax, cbar=cbar, linewidths=0.3, linecolor="white",
                cbar_kws={"label": "association (mean attention)", "shrink": 0.8}, **kw)
    for r, g in pairs:
        if r in rows and g in cols:
            ax.add_patch(mpatches.Rectangle((cols.index(g), rows.index(r)), 1, 1, fill=False, edgecolor="black",
                                            linewidth=2.0, gid="highlight", zorder=5))
    ax.set_xlabel("gene")
    ax.set_ylabel("ROI")
    ax.tick_params(axis="x", labelsize=8, rotation=90)
    ax.tick_params(axis="y", labelsize=8, rotation=0)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_roi_gene_heatmaps(roi_gene_long: pd.DataFrame, stages: Sequence[str] = ("SMC", "MCI", "AD"),
                           direction: str = "gene_to_roi", top_rois: int = 15, top_genes: int = 12,
                           highlight_pairs=None, *, share_scale: bool = True, ncols: int | None = None
                           ) -> plt.Figure:
    """:func:`plot_roi_gene_heatmap` for several stages, side by side.

    Parameters
    ----------
    roi_gene_long : DataFrame
        ``roi_gene.csv`` (columns ``stage, direction, roi, gene, score, rank``).
    stages : sequence of str, default ("SMC", "MCI", "AD")
    direction : {'gene_to_roi', 'roi_to_gene'}, default 'gene_to_roi'
    top_rois, top_genes : int
    highlight_pairs : iterable of (roi, gene) or dict of stage to such, optional
        Cells to outline in every panel, or per stage.
    share_scale : bool, default True
        One colour scale for all panels (limits over all cells of the stages drawn).
    ncols : int, optional
        Panels per row; default all in one row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per stage.
    """
    _require_columns(roi_gene_long, ("stage", "direction", "roi", "gene", "score"), "roi_gene_long")
    directions = sorted(set(roi_gene_long["direction"]))
    _check_one_of(direction, directions, "direction")
    stages = list(stages)
    sub = roi_gene_long[roi_gene_long["direction"] == direction]
    matrices = {}
    for stage in stages:
        part = sub[sub["stage"] == stage]
        if part.empty:
            raise ValueError(f"'roi_gene_long' has no rows for stage {stage!r} and direction {direction!r}; "
                             f"stages: {_stage_order(sub['stage'].unique())}")
        matrices[stage] = part.pivot_table(index="roi", columns="gene", values="score", aggfunc="first")

    def pairs_for(stage):
        if isinstance(highlight_pairs, Mapping):
            return highlight_pairs.get(stage)
        return highlight_pairs

    vmin = vmax = None
    if share_scale:
        values = np.concatenate([m.to_numpy().ravel() for m in matrices.values()])
        values = values[np.isfinite(values)]
        if values.size:
            if values.min() < 0:
                vmax = float(np.abs(values).max())
                vmin = -vmax
            else:
                vmin, vmax = 0.0, float(values.max())
    n_rows_shown = top_rois + (len(_normalise_pairs(pairs_for(stages[0]))) if highlight_pairs is not None else 0)
    fig, axes = _grid(len(stages), ncols or len(stages),
                      (0.28 * top_genes + 2.6, 0.24 * min(n_rows_shown, top_rois + 6) + 1.8))
    for i, (ax, stage) in enumerate(zip(axes, stages)):
        plot_roi_gene_heatmap(matrices[stage], top_rois, top_genes, pairs_for(stage), title=f"{stage} ({direction})",
                              vmin=vmin, vmax=vmax, cbar=(not share_scale) or i == len(stages) - 1, ax=ax)
        if i:
            ax.set_ylabel("")
    return fig


# ---------------------------------------------------------------------------------
# 9. Enrichment
# ---------------------------------------------------------------------------------
def plot_enrichment(enrichment: pd.DataFrame, method: str, *, stages: Sequence[str] | None = None,
                    q_column: str = "q_hypergeom", alpha: float = 0.05, ax=None) -> plt.Figure:
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
        ax.bar(x, np.nan_to_num(height), width=width * 0.92, color=color, edgecolor=color, linewidth=1.5,
               label=stage, zorder=2)
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
        ax.text(0.5, 0.62, f"no stage reaches q < {alpha:g} at any k", transform=ax.transAxes, ha="center",
                va="center", fontsize=10, color="0.25", bbox={"facecolor": "white", "edgecolor": "0.6", "pad": 4})
    ax.set_title(f"GWAS AD-locus enrichment among top-ranked genes ({display_name(method)})\n"
                 "numbers: locus genes in the top k", fontsize=10)
    sns.despine(ax=ax)
    return fig


# ---------------------------------------------------------------------------------
# 10. Batch summary (several seeds)
# ---------------------------------------------------------------------------------
_METRIC_WORDS = ("accuracy", "f1", "auroc", "_mean", "_sd", "_se", "_std", "_ci", "seed", "loss", "seconds")


def plot_batch_summary(summary: pd.DataFrame, *, mean_column: str = "balanced_accuracy_mean",
                       sd_column: str = "balanced_accuracy_sd", n_column: str = "n_seeds",
                       configuration_column: str = "configuration", grid_columns: Sequence[str] | None = None,
                       chance: float = CHANCE_BALANCED_ACCURACY, ax=None) -> plt.Figure:
    """Mean ± SD balanced accuracy across seeds, one row per configuration and grid value.

    Parameters
    ----------
    summary : DataFrame
        One row per configuration (and grid setting), with at least ``mean_column``.
    mean_column, sd_column, n_column, configuration_column : str
        Column names; ``sd_column`` and ``n_column`` are optional in ``summary``.
        ``configuration_column`` may also be the index name.
    grid_columns : sequence of str, optional
        Columns of the grid (e.g. ``modalities``). Default: every other column whose
        name is not a metric (no "accuracy", "f1", "auroc", "_mean", "_sd", "seed", ...)
        and that takes more than one value. Rows are labelled by configuration and grid
        values and coloured by the first grid column, or by configuration role.
    chance : float, default 0.25
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        x axis: balanced accuracy (fraction); error bars: ±1 SD across seeds.
    """
    from rgenima.evaluate import configuration_role, find_main_configuration

    table = summary.copy()
    if configuration_column not in table.columns and table.index.name == configuration_column:
        table = table.reset_index()
    _require_columns(table, (mean_column,), "summary")
    if grid_columns is None:
        grid_columns = [c for c in table.columns
                        if c not in (configuration_column, n_column)
                        and not any(w in str(c).lower() for w in _METRIC_WORDS)
                        and table[c].astype(str).nunique() > 1]
    else:
        _require_columns(table, grid_columns, "summary")
    grid_columns = list(grid_columns)

    def label(row):
        parts = [_pretty_configuration(row[configuration_column])] if configuration_column in table.columns else []
        parts += [f"{c}={row[c]}" for c in grid_columns]
        return ", ".join(parts) or str(row.name)

    labels = [label(r) for _, r in table.iterrows()]
    if grid_columns:
        key = table[grid_columns[0]].astype(str)
        palette = dict(zip(dict.fromkeys(key), sns.color_palette("colorblind", key.nunique())))
        colors, legend_title = [palette[k] for k in key], grid_columns[0]
        handles = [Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in palette.items()]
    elif configuration_column in table.columns:
        names = table[configuration_column].astype(str)
        try:
            main = find_main_configuration(names.unique())
            roles = [configuration_role(n, main) for n in names]
        except DataContractError:
            roles = ["other"] * len(names)
        colors, legend_title = [ROLE_COLORS[r] for r in roles], "role"
        handles = [Line2D([], [], marker="o", ls="", color=ROLE_COLORS[r], label=r) for r in dict.fromkeys(roles)]
    else:
        colors, legend_title, handles = [_CB[0]] * len(table), None, []
    fig, ax = _fig_ax(ax, (7.0, 0.4 * len(table) + 1.5))
    y = np.arange(len(table))[::-1]
    mean = table[mean_column].to_numpy(dtype=float)
    sd = table[sd_column].to_numpy(dtype=float) if sd_column in table.columns else np.full(len(table), np.nan)
    for yi, m, s, c in zip(y, mean, sd, colors):
        ax.errorbar([m], [yi], xerr=None if not np.isfinite(s) else [[s], [s]], fmt="o", color=c, ms=6,
                    capsize=3, elinewidth=1.4, zorder=3)
    if n_column in table.columns:
        for yi, m, s, n in zip(y, mean, sd, table[n_column]):
            text = f"{m:.3f}" + (f" ± {s:.3f}" if np.isfinite(s) else "") + (f" (n={int(n)})" if pd.notna(n) else "")
            ax.annotate(text, (m + (s if np.isfinite(s) else 0), yi), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(chance, color="0.5", ls=":", lw=1.2)
    upper = np.nanmax(mean + np.nan_to_num(sd)) if len(mean) else 1.0
    ax.set_xlim(0, min(1.0, upper + 0.25) if np.isfinite(upper) else 1.0)
    ax.set_xlabel("balanced accuracy (mean ± SD across seeds)")
    if handles:
        ax.legend(handles=handles, title=legend_title, fontsize=8, title_fontsize=8, frameon=False,
                  loc="lower right")
    ax.grid(axis="x", color="0.92", zorder=0)
    sns.despine(ax=ax)
    return fig


# ---------------------------------------------------------------------------------
# 11. Sanity check (model-parameter randomisation)
# ---------------------------------------------------------------------------------
def load_sanity_correlations(attributions_npz: str | Path, test: str = "parameters") -> dict[str, np.ndarray]:
    """Per-subject sanity correlations from an ``attributions.npz`` of :mod:`rgenima.explain`.

    Parameters
    ----------
    attributions_npz : str or Path
        File with arrays ``sanity__{roi|gene}__{method}`` (model-parameter randomisation)
        or ``sanity_label__{roi|gene}__{method}`` (label randomisation) of shape (n_subjects,).
    test : {"parameters", "labels"}

    Returns
    -------
    dict of str to ndarray
        ``"<level> · <method>"`` -> Spearman correlations (NaN where undefined).
    """
    if test not in ("parameters", "labels"):
        raise ValueError(f"'test' must be 'parameters' or 'labels'; got {test!r}.")
    prefix = "sanity" if test == "parameters" else "sanity_label"
    path = Path(attributions_npz)
    with np.load(path, allow_pickle=False) as data:
        out = {}
        for key in sorted(data.files):
            m = re.fullmatch(rf"{prefix}__(roi|gene)__(.+)", key)
            if m:
                out[f"{m.group(1)} · {m.group(2)}"] = np.asarray(data[key], dtype=float)
    if not out:
        raise DataContractError(f"{path}: no '{prefix}__<level>__<method>' arrays")
    return out


def plot_sanity_check(correlations: Mapping[str, Sequence[float]], *, threshold: float = 0.5,
                      title: str | None = None, ax=None) -> plt.Figure:
    """Model-randomisation check: trained-vs-randomised attribution correlations.

    For each label (method, or level and method) a box plot with the individual
    subjects as points: the Spearman rank correlation between the attributions of the
    trained model and of a model with re-initialised trainable parameters. Attributions
    that depend on what the model learned correlate weakly (below ``threshold``).

    Parameters
    ----------
    correlations : dict of str to sequence of float
        Label -> one correlation per subject (NaN ignored); see
        :func:`load_sanity_correlations`.
    threshold : float, default 0.5
        Dashed line; the fraction of subjects below it is printed per label.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        x axis: Spearman ρ (−1 to 1).
    """
    if not correlations:
        raise ValueError("'correlations' is empty; expected label -> per-subject correlations.")
    labels = list(correlations)
    long = pd.DataFrame([(label, float(v)) for label in labels for v in np.asarray(correlations[label], float).ravel()
                         if np.isfinite(v)], columns=["label", "rho"])
    fig, ax = _fig_ax(ax, (6.5, 0.55 * len(labels) + 1.4))
    palette = dict(zip(labels, sns.color_palette("colorblind", len(labels))))
    if len(long):
        _boxplot(data=long, x="rho", y="label", order=labels, hue="label", palette=palette, legend=False,
                 ax=ax, fliersize=0, width=0.55, boxprops={"alpha": 0.45})
        sns.stripplot(data=long, x="rho", y="label", order=labels, hue="label", palette=palette, legend=False,
                      ax=ax, size=3, jitter=0.18, alpha=0.7)
    ax.axvline(threshold, color="0.25", ls="--", lw=1.2)
    ax.axvline(0, color="0.7", lw=0.8)
    for i, label in enumerate(labels):
        v = long.loc[long["label"] == label, "rho"].to_numpy()
        text = (f"median {np.median(v):.2f}, {100 * np.mean(v < threshold):.0f}% < {threshold:g}  (n={len(v)})"
                if len(v) else "no finite values")
        ax.text(1.02, i, text, va="center", ha="left", fontsize=7.5, transform=ax.get_yaxis_transform())
    ax.set_xlim(-1.02, 1.02)
    ax.set_xlabel("Spearman ρ, trained vs randomised model")
    ax.set_ylabel("")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_title(title or "Model-parameter randomisation check", fontsize=10)
    sns.despine(ax=ax)
    return fig
