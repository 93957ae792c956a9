"""Performance figures: balanced accuracy, learning curve, confusion matrices, ROC curves, training curves."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

from rgenima import STAGES
from rgenima.errors import DataContractError
from rgenima.plots._style import (
    _CB,
    CHANCE_BALANCED_ACCURACY,
    ROLE_COLORS,
    STAGE_COLORS,
    _check_one_of,
    _fig_ax,
    _grid,
    _pretty_configuration,
    _require_columns,
)


def plot_performance(
    metrics: dict,
    *,
    chance: float = CHANCE_BALANCED_ACCURACY,
    ax=None,
    title: str = "Four-way classification (NC/SMC/MCI/AD)",
) -> plt.Figure:
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
    for yi, (_, row) in zip(y, rows.iterrows()):
        main = row["role"] == "main"
        color = ROLE_COLORS.get(row["role"], ROLE_COLORS["other"])
        ba, low, high = row["balanced_accuracy"], row["balanced_accuracy_ci_low"], row["balanced_accuracy_ci_high"]
        xerr = None
        if np.isfinite(low) and np.isfinite(high):
            xerr = [[max(ba - low, 0)], [max(high - ba, 0)]]
        ax.errorbar(
            [ba],
            [yi],
            xerr=xerr,
            fmt="D" if main else "o",
            ms=9 if main else 6,
            color=color,
            ecolor=color,
            elinewidth=2.4 if main else 1.4,
            capsize=3,
            zorder=3,
        )
        text = f"{ba:.3f}" + (f" [{low:.3f}, {high:.3f}]" if xerr is not None else "")
        ax.annotate(
            text,
            (high if xerr is not None else ba, yi),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            weight="bold" if main else "normal",
            zorder=4,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.6},
        )
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
        ref_handles.append(
            Line2D([], [], color="0.3", ls=ls, label=f"{_pretty_configuration(name)}: {row['balanced_accuracy']:.3f}")
        )
    ax.axvline(chance, color="0.5", ls=":", lw=1.2, zorder=1)
    ref_handles.append(Line2D([], [], color="0.5", ls=":", label=f"chance ({chance:.2f})"))
    roles = list(dict.fromkeys(rows["role"]))
    role_handles = [
        Line2D([], [], marker="D" if r == "main" else "o", ls="", color=ROLE_COLORS.get(r, "0.5"), label=r)
        for r in roles
    ]
    below = ax.transAxes + ScaledTranslation(0, -0.5, fig.dpi_scale_trans)  # 0.5 inch under the axes
    ax.legend(
        handles=role_handles + ref_handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        bbox_transform=below,
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    upper = np.nanmax(np.r_[table["balanced_accuracy_ci_high"].to_numpy(), table["balanced_accuracy"].to_numpy()])
    ax.set_xlim(0, min(1.0, upper + 0.22) if np.isfinite(upper) else 1.0)
    ax.set_xlabel("balanced accuracy")
    n_boot = metrics.get("bootstrap", {}).get("n_boot")
    ax.set_title(
        title
        + (f", {metrics.get('n_subjects')} subjects" if metrics.get("n_subjects") else "")
        + (f"\n95% CI: {n_boot} bootstrap resamples of subjects" if n_boot else ""),
        fontsize=10,
    )
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
        ax.errorbar(
            x,
            y,
            yerr=np.clip([y - ci[:, 0], ci[:, 1] - y], 0, None),
            color=color,
            marker=marker,
            ms=7 if main else 5,
            lw=2.2 if main else 1.3,
            capsize=3,
            label=label,
            zorder=3 if main else 2,
        )
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


def plot_confusion_matrices(
    metrics: dict, configurations: Sequence[str] | None = None, *, ncols: int = 3
) -> plt.Figure:
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
        annot = np.array(
            [
                [f"{int(c)}\n({100 * f:.0f}%)" if np.isfinite(f) else f"{int(c)}" for c, f in zip(crow, frow)]
                for crow, frow in zip(counts, frac)
            ]
        )
        sns.heatmap(
            frac,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap=cmap,
            annot=annot,
            fmt="",
            cbar=False,
            square=True,
            linewidths=0.5,
            linecolor="white",
            annot_kws={"fontsize": 8},
            xticklabels=stages,
            yticklabels=stages,
        )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(axis="y", rotation=0)
        entry = metrics["configurations"][name]
        ba = entry["metrics"].get("balanced_accuracy")
        ax.set_title(
            _pretty_configuration(name) + (f"\nbalanced accuracy {ba:.3f}" if ba is not None else ""),
            fontsize=9.5,
            weight="bold" if entry.get("role") == "main" else "normal",
        )
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, shrink=0.6, label="fraction of true stage")
    return fig


def plot_roc_curves(
    predictions: Mapping[str, pd.DataFrame],
    configurations: Sequence[str] | None = None,
    *,
    highlight: str | None = None,
) -> plt.Figure:
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
            ax.plot(
                fpr,
                tpr,
                color=palette[name],
                lw=2.4 if main else 1.2,
                zorder=3 if main else 2,
                label=f"{_pretty_configuration(name)} ({auc:.2f})",
            )
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
    from rgenima.run import Run

    base = Run(run_dir).model_dir(configuration)
    histories, best = {}, {}
    for path in Run(run_dir).fold_states(configuration):
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


def _mark_epoch(ax, frame: pd.DataFrame, epoch: int, column: str, color) -> None:
    """A star on ``column`` at ``epoch`` (the kept epoch of a fold's curve)."""
    at = frame[frame["epoch"] == epoch]
    if len(at):
        ax.plot(at["epoch"], at[column], marker="*", ms=12, color=color, mec="black", mew=0.6, ls="", zorder=4)


def plot_training_curves(
    histories: Mapping[int, Sequence[Mapping]],
    best_epochs: Mapping[int, int] | None = None,
    *,
    show_accuracy: bool = True,
    title: str | None = None,
) -> plt.Figure:
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
            _mark_epoch(ax, frame, best_epochs[k], "val_loss", colors[k])
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    style = [
        Line2D([], [], color="0.3", lw=1.6, label="validation"),
        Line2D([], [], color="0.3", lw=1.0, ls="--", label="train"),
        Line2D([], [], color="0.3", marker="*", ms=10, mec="black", ls="", label="best epoch"),
    ]
    fold_handles = [Line2D([], [], color=colors[k], lw=1.6, label=f"fold {k}") for k in frames]
    ax.legend(handles=style + fold_handles, fontsize=7.5, ncol=2, frameon=False)
    if has_acc:
        ax = axes[1]
        for k, frame in frames.items():
            ax.plot(frame["epoch"], frame["val_balanced_accuracy"], color=colors[k], lw=1.6)
            if k in best_epochs:
                _mark_epoch(ax, frame, best_epochs[k], "val_balanced_accuracy", colors[k])
        ax.axhline(CHANCE_BALANCED_ACCURACY, color="0.5", ls=":", lw=1.2)
        ax.text(ax.get_xlim()[1], CHANCE_BALANCED_ACCURACY, "chance", ha="right", va="bottom", fontsize=8, color="0.4")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation balanced accuracy")
    for a in axes:
        sns.despine(ax=a)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
