"""Robustness figures: performance across seeds (batch summary) and the attribution sanity check."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from rgenima.errors import DataContractError
from rgenima.plots._style import (
    _CB,
    CHANCE_BALANCED_ACCURACY,
    ROLE_COLORS,
    _boxplot,
    _fig_ax,
    _pretty_configuration,
    _require_columns,
)

_METRIC_WORDS = ("accuracy", "f1", "auroc", "_mean", "_sd", "_se", "_std", "_ci", "seed", "loss", "seconds")


def plot_batch_summary(
    summary: pd.DataFrame,
    *,
    mean_column: str = "balanced_accuracy_mean",
    sd_column: str = "balanced_accuracy_sd",
    n_column: str = "n_seeds",
    configuration_column: str = "configuration",
    grid_columns: Sequence[str] | None = None,
    chance: float = CHANCE_BALANCED_ACCURACY,
    ax=None,
) -> plt.Figure:
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
        grid_columns = [
            c
            for c in table.columns
            if c not in (configuration_column, n_column)
            and not any(w in str(c).lower() for w in _METRIC_WORDS)
            and table[c].astype(str).nunique() > 1
        ]
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
        ax.errorbar(
            [m],
            [yi],
            xerr=None if not np.isfinite(s) else [[s], [s]],
            fmt="o",
            color=c,
            ms=6,
            capsize=3,
            elinewidth=1.4,
            zorder=3,
        )
    if n_column in table.columns:
        for yi, m, s, n in zip(y, mean, sd, table[n_column]):
            text = f"{m:.3f}" + (f" ± {s:.3f}" if np.isfinite(s) else "") + (f" (n={int(n)})" if pd.notna(n) else "")
            ax.annotate(
                text,
                (m + (s if np.isfinite(s) else 0), yi),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(chance, color="0.5", ls=":", lw=1.2)
    upper = np.nanmax(mean + np.nan_to_num(sd)) if len(mean) else 1.0
    ax.set_xlim(0, min(1.0, upper + 0.25) if np.isfinite(upper) else 1.0)
    ax.set_xlabel("balanced accuracy (mean ± SD across seeds)")
    if handles:
        ax.legend(handles=handles, title=legend_title, fontsize=8, title_fontsize=8, frameon=False, loc="lower right")
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


def plot_sanity_check(
    correlations: Mapping[str, Sequence[float]], *, threshold: float = 0.5, title: str | None = None, ax=None
) -> plt.Figure:
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
    long = pd.DataFrame(
        [
            (label, float(v))
            for label in labels
            for v in np.asarray(correlations[label], float).ravel()
            if np.isfinite(v)
        ],
        columns=["label", "rho"],
    )
    fig, ax = _fig_ax(ax, (6.5, 0.55 * len(labels) + 1.4))
    palette = dict(zip(labels, sns.color_palette("colorblind", len(labels))))
    if len(long):
        _boxplot(
            data=long,
            x="rho",
            y="label",
            order=labels,
            hue="label",
            palette=palette,
            legend=False,
            ax=ax,
            fliersize=0,
            width=0.55,
            boxprops={"alpha": 0.45},
        )
        sns.stripplot(
            data=long,
            x="rho",
            y="label",
            order=labels,
            hue="label",
            palette=palette,
            legend=False,
            ax=ax,
            size=3,
            jitter=0.18,
            alpha=0.7,
        )
    ax.axvline(threshold, color="0.25", ls="--", lw=1.2)
    ax.axvline(0, color="0.7", lw=0.8)
    for i, label in enumerate(labels):
        v = long.loc[long["label"] == label, "rho"].to_numpy()
        text = (
            f"median {np.median(v):.2f}, {100 * np.mean(v < threshold):.0f}% < {threshold:g}  (n={len(v)})"
            if len(v)
            else "no finite values"
        )
        ax.text(1.02, i, text, va="center", ha="left", fontsize=7.5, transform=ax.get_yaxis_transform())
    ax.set_xlim(-1.02, 1.02)
    ax.set_xlabel("Spearman ρ, trained vs randomised model")
    ax.set_ylabel("")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_title(title or "Model-parameter randomisation check", fontsize=10)
    sns.despine(ax=ax)
    return fig
