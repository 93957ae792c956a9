"""Tables, ROC curves and a text summary of metrics.json, for the notebooks and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.evaluate.metrics import stage_codes

#: Scalar metrics shown in tables, in this order.
SUMMARY_METRICS: tuple[str, ...] = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auroc")


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per configuration: balanced accuracy with its interval and the other summaries.

    Parameters
    ----------
    metrics : dict
        From :func:`~rgenima.evaluate.run_metrics.evaluate_run` or :func:`~rgenima.evaluate.run_metrics.load_metrics`.

    Returns
    -------
    table : DataFrame of shape (n_configurations, 7)
        Index ``configuration``; columns ``role``, ``balanced_accuracy``,
        ``balanced_accuracy_ci_low``, ``balanced_accuracy_ci_high``, ``accuracy``,
        ``macro_f1``, ``macro_auroc``, in the order of metrics.json (main first).
    """
    rows = []
    for name, entry in metrics["configurations"].items():
        m, (low, high) = entry["metrics"], entry["ci"]["balanced_accuracy"]
        rows.append(
            {
                "configuration": name,
                "role": entry["role"],
                "balanced_accuracy": _nan(m["balanced_accuracy"]),
                "balanced_accuracy_ci_low": _nan(low),
                "balanced_accuracy_ci_high": _nan(high),
                "accuracy": _nan(m["accuracy"]),
                "macro_f1": _nan(m["macro_f1"]),
                "macro_auroc": _nan(m["macro_auroc"]),
            }
        )
    return pd.DataFrame(rows).set_index("configuration")


def comparison_table(metrics: dict) -> pd.DataFrame:
    """One row per configuration compared with the main model.

    Parameters
    ----------
    metrics : dict
        From :func:`~rgenima.evaluate.run_metrics.evaluate_run` or :func:`~rgenima.evaluate.run_metrics.load_metrics`.

    Returns
    -------
    table : DataFrame of shape (n_configurations - 1, 10)
        Index ``configuration`` (the other model); columns ``role``,
        ``difference`` (main minus other balanced accuracy), ``ci_low``, ``ci_high``,
        ``p_bootstrap``, ``p_bootstrap_holm``, ``n10`` (main right, other wrong),
        ``n01`` (main wrong, other right), ``p_mcnemar``, ``p_mcnemar_holm``.
    """
    rows = []
    for name, entry in metrics["comparisons"].items():
        d, mc = entry["balanced_accuracy_difference"], entry["mcnemar"]
        rows.append(
            {
                "configuration": name,
                "role": metrics["configurations"][name]["role"],
                "difference": _nan(d["estimate"]),
                "ci_low": _nan(d["ci_low"]),
                "ci_high": _nan(d["ci_high"]),
                "p_bootstrap": _nan(d["p_value"]),
                "p_bootstrap_holm": _nan(d.get("p_value_holm")),
                "n10": int(mc["n10"]),
                "n01": int(mc["n01"]),
                "p_mcnemar": _nan(mc["p_value"]),
                "p_mcnemar_holm": _nan(mc.get("p_value_holm")),
            }
        )
    columns = [
        "configuration",
        "role",
        "difference",
        "ci_low",
        "ci_high",
        "p_bootstrap",
        "p_bootstrap_holm",
        "n10",
        "n01",
        "p_mcnemar",
        "p_mcnemar_holm",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("configuration")


def roc_curves(predictions: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC curve of each stage, for plotting.

    Parameters
    ----------
    predictions : DataFrame
        One configuration's predictions (columns ``y_true`` and ``p_<stage>``).

    Returns
    -------
    curves : dict of str to (fpr, tpr, auc)
        ``fpr`` and ``tpr`` are ndarrays of shape (n_thresholds,). Stages that are
        absent from ``y_true`` (or the only one present) are left out.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true = stage_codes(predictions["y_true"].to_numpy())
    curves = {}
    for k, stage in enumerate(STAGES):
        positive = y_true == k
        if not 0 < positive.sum() < len(positive):
            continue
        score = predictions[f"p_{stage}"].to_numpy(dtype=float)
        fpr, tpr, _ = roc_curve(positive, score)
        curves[stage] = (fpr, tpr, float(roc_auc_score(positive, score)))
    return curves


def format_metrics(metrics: dict) -> str:
    """A short plain-text summary: balanced accuracy per configuration and the comparisons."""
    main = metrics["main"]
    table = metrics_table(metrics)
    lines = [
        f"{metrics['n_subjects']} subjects; {metrics['bootstrap']['n_boot']} bootstrap resamples; main model {main}",
        "",
        f"{'configuration':<32} {'role':<9} {'bal. acc. [95% CI]':<22} {'acc.':>6} {'F1':>6} {'AUROC':>6}",
    ]
    for name, row in table.iterrows():
        lines.append(
            f"{name:<32} {row['role']:<9} {row['balanced_accuracy']:.3f} "
            f"[{row['balanced_accuracy_ci_low']:.3f}, {row['balanced_accuracy_ci_high']:.3f}]   "
            f"{row['accuracy']:6.3f} {row['macro_f1']:6.3f} {row['macro_auroc']:6.3f}"
        )
    comparisons = comparison_table(metrics)
    if len(comparisons):
        lines += [
            "",
            f"{main} minus other (balanced accuracy)",
            f"{'other':<32} {'difference [95% CI]':<25} {'p boot':>8} {'n10':>5} {'n01':>5} {'p McNemar':>10}",
        ]
        for name, row in comparisons.iterrows():
            lines.append(
                f"{name:<32} {row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]  "
                f"{row['p_bootstrap']:8.3g} {row['n10']:5d} {row['n01']:5d} {row['p_mcnemar']:10.3g}"
            )
    if metrics["references"]:
        lines.append("")
    for name, ref in metrics["references"].items():
        low, high = (_nan(v) for v in ref["ratio_ci"])
        lines.append(f"{main} / {name} balanced accuracy: {_nan(ref['ratio']):.3f} [{low:.3f}, {high:.3f}]")
    return "\n".join(lines)
