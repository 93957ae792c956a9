"""Paired comparisons of two classifiers on the same subjects, and Holm's correction."""

from __future__ import annotations

import math

import numpy as np

from rgenima._utils.stats import bootstrap_indices, percentile_interval
from rgenima.evaluate.bootstrap import _confusion_metrics, _resample_counts, bootstrap_p_value
from rgenima.evaluate.metrics import _check_inputs


def paired_comparison(
    y_true, pred_a, pred_b, *, n_boot: int = 2000, seed=0, confidence: float = 0.95, indices: np.ndarray | None = None
) -> dict:
    """Compare two classifiers on the same subjects.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_subjects,)
        True stages and the predictions of classifiers ``a`` and ``b``.
    n_boot, seed, confidence, indices
        As :func:`~rgenima.evaluate.bootstrap.bootstrap_ci`; pass the same ``indices`` as for the intervals to keep
        everything on the same resamples.

    Returns
    -------
    comparison : dict
        - ``mcnemar``: ``statistic`` and ``p_value`` of McNemar's exact test
          (statsmodels), ``n10`` (a correct, b wrong) and ``n01`` (a wrong, b correct).
          It tests equal *accuracy*, so it can disagree with the balanced-accuracy
          comparison when classes are unbalanced;
        - ``balanced_accuracy_difference``: ``estimate`` (a minus b), percentile
          ``ci_low``/``ci_high`` of the paired bootstrap and its two-sided ``p_value``
          (:func:`~rgenima.evaluate.bootstrap.bootstrap_p_value`).
    """
    from sklearn.metrics import balanced_accuracy_score
    from statsmodels.stats.contingency_tables import mcnemar

    y_true, pred_a, _ = _check_inputs(y_true, pred_a)
    _, pred_b, _ = _check_inputs(y_true, pred_b)
    correct_a, correct_b = pred_a == y_true, pred_b == y_true
    n11 = int(np.sum(correct_a & correct_b))
    n10 = int(np.sum(correct_a & ~correct_b))
    n01 = int(np.sum(~correct_a & correct_b))
    n00 = int(np.sum(~correct_a & ~correct_b))
    test = mcnemar([[n11, n10], [n01, n00]], exact=True)

    if indices is None:
        indices = bootstrap_indices(len(y_true), n_boot, seed)
    counts = _resample_counts(indices, len(y_true))
    difference = (
        _confusion_metrics(y_true, pred_a, counts)["balanced_accuracy"]
        - _confusion_metrics(y_true, pred_b, counts)["balanced_accuracy"]
    )
    low, high = percentile_interval(difference, confidence)
    estimate = balanced_accuracy_score(y_true, pred_a) - balanced_accuracy_score(y_true, pred_b)
    return {
        "mcnemar": {"statistic": float(test.statistic), "p_value": float(test.pvalue), "n01": n01, "n10": n10},
        "balanced_accuracy_difference": {
            "estimate": float(estimate),
            "ci_low": low,
            "ci_high": high,
            "p_value": bootstrap_p_value(difference),
        },
    }


def _add_holm(comparisons: dict) -> None:
    """Holm-adjusted p-values over the comparisons of the main model (in place)."""
    from statsmodels.stats.multitest import multipletests

    for test in ("mcnemar", "balanced_accuracy_difference"):
        names = [n for n, c in comparisons.items() if not math.isnan(c[test]["p_value"])]
        if not names:
            continue
        adjusted = multipletests([comparisons[n][test]["p_value"] for n in names], method="holm")[1]
        for name, p in zip(names, adjusted):
            comparisons[name][test]["p_value_holm"] = float(p)
