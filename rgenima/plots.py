"""Figures of the book. Each function takes plain arrays/tables and returns a Figure.

Figures never show subject identifiers: example images are titled by stage only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rgenima import STAGES

STAGE_COLORS = dict(zip(STAGES, sns.color_palette("viridis", len(STAGES))))


def plot_class_counts(counts: dict[str, int], title: str = "Subjects per stage") -> plt.Figure:
    """Bar chart of subjects per stage (NC, SMC, MCI, AD)."""
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
