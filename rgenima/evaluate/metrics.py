"""Point estimates of the classification metrics (scikit-learn) on stage labels."""

from __future__ import annotations

import math

import numpy as np

from rgenima import STAGES


def stage_codes(labels) -> np.ndarray:
    """Stage labels as integer codes (index in STAGES).

    Parameters
    ----------
    labels : array-like of shape (n_subjects,)
        Stage names from STAGES, or integer codes in ``range(len(STAGES))``.

    Returns
    -------
    codes : ndarray of shape (n_subjects,), dtype int
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {labels.shape}")
    if labels.dtype.kind in "iu":
        codes = labels.astype(int)
        if ((codes < 0) | (codes >= len(STAGES))).any():
            raise ValueError(f"integer labels must lie in [0, {len(STAGES) - 1}]; got {sorted(set(codes))}")
        return codes
    lookup = {s: i for i, s in enumerate(STAGES)}
    unknown = sorted({str(v) for v in labels} - set(lookup))
    if unknown:
        raise ValueError(f"labels must be one of {list(STAGES)}; got {unknown}")
    return np.array([lookup[str(v)] for v in labels], dtype=int)


def _check_inputs(y_true, y_pred, proba=None):
    y_true, y_pred = stage_codes(y_true), stage_codes(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length; got {len(y_true)} and {len(y_pred)}")
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if proba.shape != (len(y_true), len(STAGES)):
            raise ValueError(
                f"proba must have shape (n_subjects, {len(STAGES)}) = ({len(y_true)}, {len(STAGES)}); got {proba.shape}"
            )
    return y_true, y_pred, proba


def classification_metrics(y_true, y_pred, proba) -> dict:
    """Accuracy, balanced accuracy, macro-F1, recall, AUROC and confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_subjects,)
        True and predicted stages (names from STAGES or integer codes).
    proba : array-like of shape (n_subjects, 4)
        Predicted probabilities, columns in STAGES order.

    Returns
    -------
    metrics : dict
        - ``accuracy``, ``balanced_accuracy`` (mean recall over the stages present in
          ``y_true``), ``macro_f1`` (unweighted mean F1 over the stages present in
          ``y_true`` or ``y_pred``), all from scikit-learn;
        - ``recall``: dict stage -> recall (NaN for a stage absent from ``y_true``);
        - ``auroc``: dict stage -> one-vs-rest AUROC of ``proba[:, stage]`` (NaN when
          the stage is absent from ``y_true`` or is the only one);
        - ``macro_auroc``: mean of the defined per-stage AUROCs (equal to
          ``roc_auc_score(..., multi_class="ovr", average="macro")`` when every stage
          is present);
        - ``confusion_matrix``: ndarray of shape (4, 4), rows true, columns predicted,
          in STAGES order.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        recall_score,
        roc_auc_score,
    )

    y_true, y_pred, proba = _check_inputs(y_true, y_pred, proba)
    labels = list(range(len(STAGES)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    auroc = {}
    for k, stage in enumerate(STAGES):
        positive = y_true == k
        auroc[stage] = float(roc_auc_score(positive, proba[:, k])) if 0 < positive.sum() < len(positive) else math.nan
    defined = [v for v in auroc.values() if not math.isnan(v)]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0.0)),
        "macro_auroc": float(np.mean(defined)) if defined else math.nan,
        "recall": {stage: float(r) for stage, r in zip(STAGES, recall)},
        "auroc": auroc,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels),
    }


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """Flatten :func:`classification_metrics` output to scalar metrics.

    ``recall`` and ``auroc`` become ``recall_<stage>`` and ``auroc_<stage>``; the
    confusion matrix is dropped. These are the keys of the bootstrap intervals.
    """
    out = {name: metrics[name] for name in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc")}
    for group in ("recall", "auroc"):
        out.update({f"{group}_{stage}": metrics[group][stage] for stage in STAGES})
    return out
