"""Cohort figures: subjects per stage, example slices, genotype summary, ROI features by stage."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rgenima import STAGES
from rgenima.plots._style import _CB, STAGE_COLORS, _boxplot, _fig_ax, _require_columns, _stage_order


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
        display = plotting.plot_anat(
            img, cut_coords=cut_coords, axes=ax, title=title, annotate=True, draw_cross=False, black_bg=True
        )
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
        apoe4_by_stage.groupby("stage", observed=True)["APOE4"]
        .value_counts(normalize=True)
        .unstack(fill_value=0)
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
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2:
        return math.nan
    pooled = ((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2)
    return float((x.mean() - y.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def plot_roi_features_by_stage(
    features: pd.DataFrame,
    top: int = 8,
    *,
    stage_column: str = "stage",
    contrast: tuple[str, str] = ("AD", "NC"),
    ylabel: str = "ROI feature",
    ax=None,
) -> plt.Figure:
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
            raise ValueError(
                f"'features' has no subject of stage {s!r} (column {stage_column!r}); "
                f"stages present: {_stage_order(stage.unique())}"
            )
    rois = [c for c in features.columns if c != stage_column and pd.api.types.is_numeric_dtype(features[c])]
    d = pd.Series(
        {
            roi: cohens_d(features.loc[stage == contrast[0], roi], features.loc[stage == contrast[1], roi])
            for roi in rois
        },
        dtype=float,
    )
    chosen = d.abs().dropna().sort_values(ascending=False, kind="stable").index[:top].tolist()
    long = features[chosen].assign(stage=stage.to_numpy()).melt(id_vars="stage", var_name="roi", value_name="value")
    order = [s for s in _stage_order(stage.unique())]
    fig, ax = _fig_ax(ax, (max(6.0, 1.15 * len(chosen) + 1.5), 3.8))
    _boxplot(
        data=long,
        x="roi",
        y="value",
        hue="stage",
        order=chosen,
        hue_order=order,
        palette={s: STAGE_COLORS.get(s, _CB[5]) for s in order},
        showfliers=False,
        ax=ax,
        linewidth=0.8,
    )
    ax.set_xticks(range(len(chosen)))
    ax.set_xticklabels([f"{r}\nd = {d[r]:+.2f}" for r in chosen], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_title(f"ROIs with the largest |Cohen's d|, {contrast[0]} vs {contrast[1]}", fontsize=10)
    ax.legend(title="stage", fontsize=8, title_fontsize=8, frameon=False, ncol=len(order), loc="best")
    sns.despine(ax=ax)
    return fig
