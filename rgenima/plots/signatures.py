"""Signature figures: brain maps and top ROIs, gene signatures, ROI x gene heatmaps."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import patches as mpatches
from matplotlib.lines import Line2D

from rgenima.display import display_name
from rgenima.plots._style import (
    _CB,
    LOCUS_COLORS,
    STAGE_COLORS,
    _check_one_of,
    _fig_ax,
    _grid,
    _require_columns,
    _stage_order,
)


def _atlas_parts(atlas):
    """(label image, labels table with ``index`` and ``name``) of an Atlas or a (image, labels) pair."""
    import nibabel as nib

    if hasattr(atlas, "image") and hasattr(atlas, "labels"):
        image, labels = atlas.image, atlas.labels
    elif isinstance(atlas, tuple) and len(atlas) == 2:
        image, labels = atlas
    else:
        raise TypeError(
            "'atlas' must be an rgenima.data.atlas.Atlas or an (image, labels) pair; "
            f"{type(atlas).__name__} was provided."
        )
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
        raise ValueError(
            f"'scores' names no ROI of the atlas (e.g. {list(scores.index[:3])}; atlas ROIs are "
            f"e.g. {list(index_of)[:3]}). Scores and atlas must use the same ROI names."
        )
    if unknown:
        warnings.warn(f"{len(unknown)} score name(s) are not atlas ROIs and are ignored: {unknown[:10]}", stacklevel=2)
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
        raise ValueError(
            f"'{name}' has no rows for stage {stage!r} and method {method!r}; available "
            f"(stage, method): {pairs[:20]}{' ...' if len(pairs) > 20 else ''}"
        )
    return rows.sort_values("rank", kind="stable")


def plot_brain_signature(
    roi_attribution: pd.DataFrame,
    atlas,
    stages: Sequence[str] = ("SMC", "MCI", "AD"),
    method: str = "integrated_gradients",
    *,
    top: int | None = None,
    display_mode: str = "lyrz",
    vmax: float | None = None,
    cmap: str = "RdBu_r",
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
                img,
                axes=ax,
                figure=fig,
                display_mode=display_mode,
                plot_abs=False,
                colorbar=True,
                symmetric_cbar=True,
                vmin=-vmax,
                vmax=vmax,
                cmap=cmap,
                threshold=vmax * 1e-3,
                title=label,
                annotate=True,
                resampling_interpolation="nearest",
            )
        cbar = getattr(display, "_cbar", None)
        if cbar is not None:  # nilearn adds a tick at +-threshold; keep round ticks only
            cbar.set_ticks(np.linspace(-vmax, vmax, 5))
            cbar.ax.tick_params(labelsize=8)
    return fig


def plot_top_rois(
    roi_attribution: pd.DataFrame,
    stage: str,
    method: str,
    top: int = 15,
    planted: Iterable[str] | None = None,
    *,
    ax=None,
) -> plt.Figure:
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
            ax.errorbar(
                score[ok],
                y[ok],
                xerr=[np.clip(score[ok] - low[ok], 0, None), np.clip(high[ok] - score[ok], 0, None)],
                fmt="none",
                ecolor="0.2",
                elinewidth=0.9,
                capsize=2,
                zorder=3,
            )
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


def plot_gene_signature(
    gene_attribution: pd.DataFrame,
    panel,
    stage: str,
    method: str,
    top: int = 20,
    planted: Iterable[str] | None = None,
    *,
    ax=None,
    legend: bool = True,
) -> plt.Figure:
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
        ax.legend(
            handles=_gene_legend_handles(bool(planted & set(rows["name"]))),
            fontsize=8,
            loc="lower right",
            frameon=False,
        )
    return fig


def _gene_legend_handles(with_planted: bool) -> list:
    handles = [
        mpatches.Patch(color=LOCUS_COLORS[True], label="GWAS AD locus"),
        mpatches.Patch(color=LOCUS_COLORS[False], label="other panel gene"),
    ]
    if with_planted:
        handles.append(Line2D([], [], marker="*", color="black", ls="", ms=10, label="planted causal gene"))
    return handles


def plot_gene_signatures(
    gene_attribution: pd.DataFrame,
    panel,
    stages: Sequence[str] = ("SMC", "MCI", "AD"),
    method: str = "integrated_gradients",
    top: int = 20,
    planted: Iterable[str] | None = None,
) -> plt.Figure:
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
    fig.legend(
        handles=_gene_legend_handles(bool(planted)), loc="outside lower center", ncol=3, fontsize=9, frameon=False
    )
    return fig


# ---------------------------------------------------------------------------------
# 8. ROI x gene heatmaps
# ---------------------------------------------------------------------------------
def _normalise_pairs(pairs) -> list[tuple[str, str]]:
    if pairs is None:
        return []
    return [(str(r), str(g)) for r, g in pairs]


def plot_roi_gene_heatmap(
    matrix: pd.DataFrame,
    top_rois: int = 20,
    top_genes: int = 15,
    highlight_pairs: Iterable[tuple[str, str]] | None = None,
    title: str | None = None,
    *,
    include_highlighted: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cbar: bool = True,
    ax=None,
) -> plt.Figure:
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
    sns.heatmap(
        shown,
        ax=ax,
        cbar=cbar,
        linewidths=0.3,
        linecolor="white",
        cbar_kws={"label": "association (mean attention)", "shrink": 0.8},
        **kw,
    )
    for r, g in pairs:
        if r in rows and g in cols:
            ax.add_patch(
                mpatches.Rectangle(
                    (cols.index(g), rows.index(r)),
                    1,
                    1,
                    fill=False,
                    edgecolor="black",
                    linewidth=2.0,
                    gid="highlight",
                    zorder=5,
                )
            )
    ax.set_xlabel("gene")
    ax.set_ylabel("ROI")
    ax.tick_params(axis="x", labelsize=8, rotation=90)
    ax.tick_params(axis="y", labelsize=8, rotation=0)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_roi_gene_heatmaps(
    roi_gene_long: pd.DataFrame,
    stages: Sequence[str] = ("SMC", "MCI", "AD"),
    direction: str = "gene_to_roi",
    top_rois: int = 15,
    top_genes: int = 12,
    highlight_pairs=None,
    *,
    share_scale: bool = True,
    ncols: int | None = None,
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
            raise ValueError(
                f"'roi_gene_long' has no rows for stage {stage!r} and direction {direction!r}; "
                f"stages: {_stage_order(sub['stage'].unique())}"
            )
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
    fig, axes = _grid(
        len(stages), ncols or len(stages), (0.28 * top_genes + 2.6, 0.24 * min(n_rows_shown, top_rois + 6) + 1.8)
    )
    for i, (ax, stage) in enumerate(zip(axes, stages)):
        plot_roi_gene_heatmap(
            matrices[stage],
            top_rois,
            top_genes,
            pairs_for(stage),
            title=f"{stage} ({direction})",
            vmin=vmin,
            vmax=vmax,
            cbar=(not share_scale) or i == len(stages) - 1,
            ax=ax,
        )
        if i:
            ax.set_ylabel("")
    return fig
