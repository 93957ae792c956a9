"""Evaluation of a run: metrics, bootstrap confidence intervals and paired comparisons.

Reads every ``RUNDIR/models/<configuration>/predictions.csv`` (columns ``PTID, fold,
y_true, y_pred, p_NC, p_SMC, p_MCI, p_AD``), computes the same metrics for every
configuration, and compares the main model (R-GenIMA on MRI + SNP) with each of the
others on the same subjects.

Statistics
----------
- Point estimates come from scikit-learn (:func:`classification_metrics`).
- Confidence intervals are percentile bootstrap intervals over subjects. One matrix of
  resampled subject indices, drawn once from ``seed``, is shared by every metric and
  every configuration, so that differences and ratios between configurations are
  paired (:func:`bootstrap_indices`, :func:`bootstrap_metrics`).
- Paired comparisons use McNemar's exact test on the discordant correct/incorrect
  pairs and a paired bootstrap of the balanced-accuracy difference
  (:func:`paired_comparison`).

:func:`evaluate_run` writes ``RUNDIR/metrics.json``::

    {
      "main": "rgenima_mri+snp",           # the configuration compared with the others
      "n_subjects": 400,
      "stages": ["NC", "SMC", "MCI", "AD"],
      "bootstrap": {"n_boot": 2000, "seed": 0, "confidence": 0.95, "unit": "subject"},
      "configurations": {                  # main first, then ablations, baselines, references
        "<name>": {
          "role": "main" | "variant" | "ablation" | "baseline" | "reference" | "other",
          "metrics": {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc",
                      "recall": {stage: float}, "auroc": {stage: float},
                      "confusion_matrix": [[int]] (rows true, columns predicted, STAGES order)},
          "ci": {"accuracy": [low, high], "balanced_accuracy": [...], "macro_f1": [...],
                 "macro_auroc": [...], "recall_<stage>": [...], "auroc_<stage>": [...]}
        }
      },
      "comparisons": {                     # main versus every other configuration
        "<other>": {
          "mcnemar": {"statistic", "p_value", "p_value_holm", "n01", "n10"},
          "balanced_accuracy_difference": {"estimate", "ci_low", "ci_high", "p_value",
                                           "p_value_holm"}
        }
      },
      "references": {                      # one entry per reference_* configuration
        "<reference>": {"balanced_accuracy", "main_balanced_accuracy", "ratio",
                        "ratio_ci": [low, high]}
      }
    }

In comparisons, ``a`` is the main model and ``b`` the other configuration: ``n10``
counts subjects that the main model classifies correctly and the other does not,
``n01`` the reverse; the difference is main minus other. Holm-adjusted p-values
correct over the comparisons of the main model. Undefined values (for example the
AUROC of a class absent from a resample) are NaN in memory and ``null`` in JSON.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.stats import bootstrap_indices, percentile_interval
from rgenima.errors import DataContractError
from rgenima.fileio import atomic_write_text
from rgenima.run import Run

logger = logging.getLogger(__name__)

#: Probability columns of predictions.csv, in STAGES order.
PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{s}" for s in STAGES)
#: Every column predictions.csv must have.
PREDICTION_COLUMNS: tuple[str, ...] = ("PTID", "fold", "y_true", "y_pred", *PROBA_COLUMNS)
#: Name of the main model; suffixed variants (``rgenima_mri+snp__quick``) also match.
MAIN_PREFIX = "rgenima_mri+snp"
#: Scalar metrics shown in tables, in this order.
SUMMARY_METRICS: tuple[str, ...] = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auroc")

_PROBA_SUM_ATOL = 1e-3  # predictions.csv stores probabilities with 6 decimals
_ROLE_ORDER = ("main", "variant", "ablation", "baseline", "reference", "other")


# ---------------------------------------------------------------------------------
# Reading predictions
# ---------------------------------------------------------------------------------
def load_predictions(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read and check every ``models/<configuration>/predictions.csv`` of a run.

    Parameters
    ----------
    run_dir : str or Path
        Run directory holding ``models/<configuration>/predictions.csv``.

    Returns
    -------
    predictions : dict of str to DataFrame
        Configuration name -> table with the columns of :data:`PREDICTION_COLUMNS`,
        shape (n_subjects, 8). Every table lists the same subjects in the same order
        (that of the first configuration by name), with a default index.

    Raises
    ------
    DataContractError
        If no predictions are found, or a file misses a column, has an unknown stage,
        a duplicated PTID, non-finite probabilities or probabilities that do not sum
        to 1, or disagrees with the others on subjects, true labels or folds. The
        message names the file.
    """
    models_dir = Run(run_dir).models
    paths = Run(run_dir).all_predictions()
    if not paths:
        raise DataContractError(f"{models_dir}: no */predictions.csv found; train the models first")
    tables = {path.parent.name: _read_prediction_file(path) for path in paths}
    _check_same_subjects(tables, {path.parent.name: path for path in paths})
    order = next(iter(tables.values()))["PTID"]
    out = {}
    for name, table in tables.items():
        out[name] = table.set_index("PTID").loc[order].reset_index()
    logger.info("read predictions of %d configurations (%d subjects) from %s", len(out), len(order), models_dir)
    return out


def _read_prediction_file(path: Path) -> pd.DataFrame:
    """One predictions.csv, checked on its own (columns, labels, probabilities)."""
    table = pd.read_csv(path, dtype={"PTID": str, "y_true": str, "y_pred": str})
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise DataContractError(f"{path}: missing column(s) {missing}; expected columns {list(PREDICTION_COLUMNS)}")
    table = table[list(PREDICTION_COLUMNS)].copy()
    if table.empty:
        raise DataContractError(f"{path}: no rows")
    if table["PTID"].isna().any():
        raise DataContractError(f"{path}: empty PTID in row(s) {_rows(table['PTID'].isna())}")
    duplicated = table["PTID"][table["PTID"].duplicated()].unique()
    if len(duplicated):
        raise DataContractError(f"{path}: duplicated PTID(s) {_first(duplicated)}")
    for column in ("y_true", "y_pred"):
        bad = ~table[column].isin(STAGES)
        if bad.any():
            raise DataContractError(
                f"{path}: column {column!r} must hold one of {list(STAGES)}; "
                f"found {_first(table.loc[bad, column].unique())} in row(s) {_rows(bad)}"
            )
    proba = table[list(PROBA_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(proba).all():
        raise DataContractError(
            f"{path}: probabilities must be finite numbers; row(s) {_rows(~np.isfinite(proba).all(axis=1))}"
        )
    if (proba < 0).any() or (proba > 1).any():
        raise DataContractError(
            f"{path}: probabilities must lie in [0, 1]; row(s) {_rows(((proba < 0) | (proba > 1)).any(axis=1))}"
        )
    off = np.abs(proba.sum(axis=1) - 1.0) > _PROBA_SUM_ATOL
    if off.any():
        raise DataContractError(
            f"{path}: probabilities {list(PROBA_COLUMNS)} must sum to 1 (within {_PROBA_SUM_ATOL:g}); "
            f"row(s) {_rows(off)}"
        )
    table[list(PROBA_COLUMNS)] = proba
    return table


def _check_same_subjects(tables: dict[str, pd.DataFrame], paths: dict[str, Path]) -> None:
    """Every configuration must predict the same subjects, labels and folds."""
    names = list(tables)
    reference_name = names[0]
    reference = tables[reference_name].set_index("PTID")
    for name in names[1:]:
        table = tables[name].set_index("PTID")
        only_here = table.index.difference(reference.index)
        only_there = reference.index.difference(table.index)
        if len(only_here) or len(only_there):
            raise DataContractError(
                f"{paths[name]}: covers a different subject set than {paths[reference_name]} "
                f"({len(only_here)} PTID(s) only here, e.g. {_first(only_here)}; {len(only_there)} missing, "
                f"e.g. {_first(only_there)}); every configuration must predict the same subjects"
            )
        table = table.loc[reference.index]
        for column in ("y_true", "fold"):
            differ = table[column].to_numpy() != reference[column].to_numpy()
            if differ.any():
                raise DataContractError(
                    f"{paths[name]}: column {column!r} disagrees with {paths[reference_name]} for "
                    f"{int(differ.sum())} subject(s), e.g. {_first(reference.index[differ])}"
                )


def _rows(mask) -> str:
    """Row numbers (1-based, header excluded) of a boolean mask, at most five."""
    return _first(np.flatnonzero(np.asarray(mask)) + 1)


def _first(values, k: int = 5) -> str:
    values = list(values)
    text = ", ".join(str(v) for v in values[:k])
    return text + (f", ... ({len(values)} in all)" if len(values) > k else "")


# ---------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------
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
    """Every scalar metric of :func:`scalar_metrics` on every bootstrap resample.

    Vectorised over resamples: resample ``b`` weighs each subject by how often it
    appears in ``indices[b]``, which gives the same values as computing the metrics on
    the resampled rows.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_subjects,)
    proba : array-like of shape (n_subjects, 4)
    indices : ndarray of shape (n_boot, n_subjects)
        From :func:`bootstrap_indices`.

    Returns
    -------
    values : dict of str to ndarray of shape (n_boot,)
        Keys as :func:`scalar_metrics`; NaN where a metric is undefined in a resample.
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
        Resamples to reuse (from :func:`bootstrap_indices`), for paired intervals.

    Returns
    -------
    ci : dict of str to (low, high)
        Keys as :func:`scalar_metrics`.
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


def paired_comparison(
    y_true, pred_a, pred_b, *, n_boot: int = 2000, seed=0, confidence: float = 0.95, indices: np.ndarray | None = None
) -> dict:
    """Compare two classifiers on the same subjects.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n_subjects,)
        True stages and the predictions of classifiers ``a`` and ``b``.
    n_boot, seed, confidence, indices
        As :func:`bootstrap_ci`; pass the same ``indices`` as for the intervals to keep
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
          (:func:`bootstrap_p_value`).
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


# ---------------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------------
def find_main_configuration(names, main: str | None = None) -> str:
    """The configuration to compare with the others.

    Parameters
    ----------
    names : iterable of str
        Configurations of the run.
    main : str, optional
        Explicit choice; must be one of ``names``. By default, the configuration whose
        name starts with ``"rgenima_mri+snp"``, preferring exactly that name when
        several do.

    Raises
    ------
    DataContractError
        If ``main`` is not among ``names``, or no or several candidates match.
    """
    names = list(names)
    if main is not None:
        if main not in names:
            raise DataContractError(f"main configuration {main!r} not found; available: {names}")
        return main
    candidates = [n for n in names if n.startswith(MAIN_PREFIX)]
    if MAIN_PREFIX in candidates:
        return MAIN_PREFIX
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataContractError(f"no configuration named {MAIN_PREFIX!r}*; available: {names}")
    raise DataContractError(f"several main configurations {candidates}; choose one with main=")


def configuration_role(name: str, main: str) -> str:
    """``main``, ``variant`` (another rgenima_mri+snp*), ``ablation``, ``baseline``, ``reference`` or ``other``."""
    if name == main:
        return "main"
    if name.startswith(MAIN_PREFIX):
        return "variant"
    for prefix, role in (("rgenima_", "ablation"), ("baseline_", "baseline"), ("reference_", "reference")):
        if name.startswith(prefix):
            return role
    return "other"


def evaluate_predictions(
    predictions: dict[str, pd.DataFrame],
    main: str | None = None,
    *,
    n_boot: int = 2000,
    seed=0,
    confidence: float = 0.95,
) -> dict:
    """Metrics, intervals and comparisons of aligned predictions (see the module docstring).

    Parameters
    ----------
    predictions : dict of str to DataFrame
        As returned by :func:`load_predictions`: same subjects, same row order.
    main : str, optional
        See :func:`find_main_configuration`.
    n_boot, seed, confidence
        Bootstrap settings; one set of resamples is shared by all configurations.

    Returns
    -------
    metrics : dict
        The structure of metrics.json, JSON-ready (NaN as None).
    """
    main = find_main_configuration(predictions, main)
    roles = {name: configuration_role(name, main) for name in predictions}
    names = sorted(predictions, key=lambda n: (_ROLE_ORDER.index(roles[n]), n))
    y_true = stage_codes(predictions[main]["y_true"])
    for name in names:
        if not np.array_equal(stage_codes(predictions[name]["y_true"]), y_true):
            raise DataContractError(
                f"configuration {name!r}: subjects or labels not aligned with {main!r}; use load_predictions"
            )
    indices = bootstrap_indices(len(y_true), n_boot, seed)
    logger.info(
        "evaluating %d configurations on %d subjects (main %s, %d bootstrap resamples, seed %s)",
        len(names),
        len(y_true),
        main,
        n_boot,
        seed,
    )

    configurations, boot_ba = {}, {}
    for name in names:
        table = predictions[name]
        y_pred, proba = table["y_pred"].to_numpy(), table[list(PROBA_COLUMNS)].to_numpy(dtype=float)
        point = classification_metrics(y_true, y_pred, proba)
        values = bootstrap_metrics(y_true, y_pred, proba, indices)
        boot_ba[name] = values["balanced_accuracy"]
        ci = {metric: percentile_interval(v, confidence) for metric, v in values.items()}
        configurations[name] = {"role": roles[name], "metrics": point, "ci": ci}
        low, high = ci["balanced_accuracy"]
        logger.info("%s: balanced accuracy %.3f [%.3f, %.3f]", name, point["balanced_accuracy"], low, high)

    comparisons = {}
    main_pred = predictions[main]["y_pred"].to_numpy()
    for name in names:
        if name == main:
            continue
        comparisons[name] = paired_comparison(
            y_true, main_pred, predictions[name]["y_pred"].to_numpy(), confidence=confidence, indices=indices
        )
    _add_holm(comparisons)
    for name, comparison in comparisons.items():
        d = comparison["balanced_accuracy_difference"]
        logger.info(
            "%s vs %s: difference %.3f [%.3f, %.3f], bootstrap p %.3g, McNemar p %.3g",
            main,
            name,
            d["estimate"],
            d["ci_low"],
            d["ci_high"],
            d["p_value"],
            comparison["mcnemar"]["p_value"],
        )

    references = {}
    main_ba = configurations[main]["metrics"]["balanced_accuracy"]
    for name in names:
        if roles[name] != "reference":
            continue
        ref_ba = configurations[name]["metrics"]["balanced_accuracy"]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(boot_ba[name] > 0, boot_ba[main] / boot_ba[name], np.nan)
        references[name] = {
            "balanced_accuracy": ref_ba,
            "main_balanced_accuracy": main_ba,
            "ratio": main_ba / ref_ba if ref_ba > 0 else math.nan,
            "ratio_ci": percentile_interval(ratio, confidence),
        }
    return json_safe(
        {
            "main": main,
            "n_subjects": len(y_true),
            "stages": list(STAGES),
            "bootstrap": {
                "n_boot": int(n_boot),
                "seed": seed if isinstance(seed, int) else None,
                "confidence": confidence,
                "unit": "subject",
            },
            "configurations": configurations,
            "comparisons": comparisons,
            "references": references,
        }
    )


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


def evaluate_run(
    run_dir: str | Path, main: str | None = None, n_boot: int = 2000, seed=0, confidence: float = 0.95
) -> dict:
    """Evaluate every configuration of a run and write ``RUNDIR/metrics.json``.

    Parameters
    ----------
    run_dir : str or Path
        Run directory with ``models/<configuration>/predictions.csv``.
    main : str, optional
        The configuration compared with the others; by default the one named
        ``rgenima_mri+snp`` (or the single ``rgenima_mri+snp*``).
    n_boot : int, default 2000
        Bootstrap resamples of subjects, shared by all configurations.
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    metrics : dict
        The content of metrics.json (see the module docstring).
    """
    run_dir = Path(run_dir)
    metrics = evaluate_predictions(load_predictions(run_dir), main, n_boot=n_boot, seed=seed, confidence=confidence)
    path = atomic_write_text(Run(run_dir).metrics_json, json.dumps(metrics, indent=1) + "\n")
    logger.info("wrote %s", path)
    from rgenima.cards import write_model_card

    logger.info("model card: %s", write_model_card(run_dir))
    return metrics


def load_metrics(run_dir: str | Path) -> dict:
    """Read ``RUNDIR/metrics.json`` written by :func:`evaluate_run`."""
    path = Run(run_dir).metrics_json
    if not path.is_file():
        raise DataContractError(f"{path}: not found; run `rgenima evaluate --run {run_dir}` first")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------
# Tables and curves for notebooks
# ---------------------------------------------------------------------------------
def _nan(value) -> float:
    return math.nan if value is None else float(value)


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per configuration: balanced accuracy with its interval and the other summaries.

    Parameters
    ----------
    metrics : dict
        From :func:`evaluate_run` or :func:`load_metrics`.

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
        From :func:`evaluate_run` or :func:`load_metrics`.

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
