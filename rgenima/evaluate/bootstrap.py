"""Percentile bootstrap over subjects: every scalar metric on every resample, vectorised.

One matrix of resampled subject indices (:func:`rgenima._utils.stats.bootstrap_indices`)
can be shared by every metric and configuration, so that intervals of differences and
ratios are paired.
"""

from __future__ import annotations

import math

import numpy as np

from rgenima import STAGES
from rgenima._utils.stats import bootstrap_indices, percentile_interval
from rgenima.evaluate.metrics import _check_inputs


def _resample_counts(indices: np.ndarray, n_subjects: int) -> np.ndarray:
    """How often each subject appears in each resample, shape (n_boot, n_subjects)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.size == 0:
        raise ValueError(f"indices must have shape (n_boot, n_subjects); got {indices.shape}")
    if indices.min() < 0 or indices.max() >= n_subjects:
        raise ValueError(f"indices must lie in [0, {n_subjects - 1}]")
    n_boot = indices.shape[0]
    flat = (np.arange(n_boot)[:, None] * n_subjects + indices).ravel()
    return np.bincount(flat, minlength=n_boot * n_subjects).reshape(n_boot, n_subjects).astype(float)


def _confusion_metrics(y_true: np.ndarray, y_pred: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro-F1 and recall of every resample."""
    n_classes = len(STAGES)
    cell = y_true * n_classes + y_pred  # (n_subjects,)
    onehot = np.zeros((len(cell), n_classes * n_classes))
    onehot[np.arange(len(cell)), cell] = 1.0
    confusion = (counts @ onehot).reshape(-1, n_classes, n_classes)  # (n_boot, true, pred)
    diagonal = np.diagonal(confusion, axis1=1, axis2=2)  # (n_boot, n_classes)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diagonal / support, np.nan)
        f1_denominator = support + predicted
        f1 = np.where(f1_denominator > 0, 2 * diagonal / f1_denominator, np.nan)
    out = {
        "accuracy": diagonal.sum(axis=1) / counts.sum(axis=1),
        "balanced_accuracy": _nanmean_rows(recall),
        "macro_f1": _nanmean_rows(f1),
    }
    out.update({f"recall_{stage}": recall[:, k] for k, stage in enumerate(STAGES)})
    return out


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN for an all-NaN row (without a warning)."""
    defined = ~np.isnan(values)
    n = defined.sum(axis=1)
    total = np.where(defined, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _weighted_auroc(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC of every resample (Mann-Whitney statistic, ties count 1/2).

    Parameters
    ----------
    positive : ndarray of shape (n_subjects,), dtype bool
    score : ndarray of shape (n_subjects,)
    counts : ndarray of shape (n_boot, n_subjects)
        Multiplicity of each subject in each resample.

    Returns
    -------
    auroc : ndarray of shape (n_boot,)
        NaN where a resample has no positive or no negative subject.
    """
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])  # tie groups
    weights = counts[:, order]
    pos_sorted = positive[order]
    group_pos = np.add.reduceat(weights * pos_sorted, starts, axis=1)  # (n_boot, n_groups)
    group_neg = np.add.reduceat(weights * ~pos_sorted, starts, axis=1)
    neg_below = np.cumsum(group_neg, axis=1) - group_neg
    numerator = (group_pos * (neg_below + 0.5 * group_neg)).sum(axis=1)
    denominator = group_pos.sum(axis=1) * group_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def bootstrap_metrics(y_true, y_pred, proba, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Every scalar metric of :func:`~rgenima.evaluate.metrics.scalar_metrics` on every bootstrap resample.

    Vectorised over resamples: resample ``b`` weighs each subject by how often it
    appears in ``indices[b]``, which gives the same values as computing the metrics on
    the resampled rows.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_subjects,)
    proba : array-like of shape (n_subjects, 4)
    indices : ndarray of shape (n_boot, n_subjects)
        From :func:`~rgenima._utils.stats.bootstrap_indices`.

    Returns
    -------
    values : dict of str to ndarray of shape (n_boot,)
        Keys as :func:`~rgenima.evaluate.metrics.scalar_metrics`; NaN where a metric is undefined in a resample.
    """
    y_true, y_pred, proba = _check_inputs(y_true, y_pred, proba)
    counts = _resample_counts(indices, len(y_true))
    out = _confusion_metrics(y_true, y_pred, counts)
    auroc = np.column_stack([_weighted_auroc(y_true == k, proba[:, k], counts) for k in range(len(STAGES))])
    out["macro_auroc"] = _nanmean_rows(auroc)
    out.update({f"auroc_{stage}": auroc[:, k] for k, stage in enumerate(STAGES)})
    return {name: out[name] for name in _SCALAR_KEYS}


_SCALAR_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_auroc",
    *(f"recall_{s}" for s in STAGES),
    *(f"auroc_{s}" for s in STAGES),
)


def bootstrap_ci(
    y_true, y_pred, proba, *, n_boot: int = 2000, seed=0, confidence: float = 0.95, indices: np.ndarray | None = None
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals (over subjects) of every scalar metric.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_subjects,)
    proba : array-like of shape (n_subjects, 4)
    n_boot : int, default 2000
        Number of resamples; ignored when ``indices`` is given.
    seed : int or numpy.random.Generator, default 0
        Seed of the resamples; ignored when ``indices`` is given.
    confidence : float, default 0.95
    indices : ndarray of shape (n_boot, n_subjects), optional
        Resamples to reuse (from :func:`~rgenima._utils.stats.bootstrap_indices`), for paired intervals.

    Returns
    -------
    ci : dict of str to (low, high)
        Keys as :func:`~rgenima.evaluate.metrics.scalar_metrics`.
    """
    if indices is None:
        indices = bootstrap_indices(len(np.asarray(y_true)), n_boot, seed)
    values = bootstrap_metrics(y_true, y_pred, proba, indices)
    return {name: percentile_interval(v, confidence) for name, v in values.items()}


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference" from bootstrap differences.

    Twice the smaller of the fractions of resamples at or below zero and at or above
    zero, each with the usual +1 correction ((1 + count) / (1 + n_boot)), capped at 1.
    It is below ``1 - confidence`` roughly when the percentile interval excludes 0.
    """
    differences = np.asarray(differences, dtype=float)
    differences = differences[~np.isnan(differences)]
    if differences.size == 0:
        return math.nan
    n = differences.size
    below = (1 + np.count_nonzero(differences <= 0)) / (n + 1)
    above = (1 + np.count_nonzero(differences >= 0)) / (n + 1)
    return float(min(1.0, 2 * min(below, above)))
