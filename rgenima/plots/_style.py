"""Shared style of the figures: stage/role/locus colours and small layout and argument helpers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rgenima import STAGES
from rgenima.display import display_name

_CB = sns.color_palette("colorblind").as_hex()
#: One colour per stage (and grey for "all" subjects), used by every figure.
STAGE_COLORS: dict[str, str] = {"NC": _CB[0], "SMC": _CB[2], "MCI": _CB[1], "AD": _CB[3], "all": _CB[7]}
#: One colour per configuration role of :func:`rgenima.evaluate.configuration_role`.
ROLE_COLORS: dict[str, str] = {
    "main": _CB[3],
    "variant": _CB[4],
    "ablation": _CB[1],
    "baseline": _CB[0],
    "reference": _CB[7],
    "other": _CB[5],
}
#: Gene bar colours: GWAS-supported AD locus (panel ``ad_locus`` True) or not.
LOCUS_COLORS: dict[bool, str] = {True: _CB[3], False: _CB[7]}
#: Chance balanced accuracy of the four-way task.
CHANCE_BALANCED_ACCURACY = 1.0 / len(STAGES)

_REFERENCE_LABELS = {
    "reference_oracle": "oracle (true generative model)",
    "reference_truth_feature_lda": "LDA on true features",
}


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
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
        constrained_layout=True,
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
    )
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
