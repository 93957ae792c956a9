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

Submodules
----------
- :mod:`~rgenima.evaluate.predictions`: read and check every ``predictions.csv``.
- :mod:`~rgenima.evaluate.metrics`: point estimates (stage codes, classification metrics).
- :mod:`~rgenima.evaluate.bootstrap`: the metrics on every bootstrap resample, intervals,
  bootstrap p-values.
- :mod:`~rgenima.evaluate.comparison`: McNemar and the paired bootstrap between two
  classifiers, Holm's correction.
- :mod:`~rgenima.evaluate.run_metrics`: the main configuration, the roles, and
  ``metrics.json`` of a run.
- :mod:`~rgenima.evaluate.tables`: tables, ROC curves and a text summary for the notebooks.
"""

from rgenima._utils.stats import bootstrap_indices
from rgenima.evaluate.bootstrap import bootstrap_ci, bootstrap_metrics, bootstrap_p_value
from rgenima.evaluate.comparison import paired_comparison
from rgenima.evaluate.metrics import classification_metrics, scalar_metrics, stage_codes
from rgenima.evaluate.predictions import PREDICTION_COLUMNS, PROBA_COLUMNS, load_predictions
from rgenima.evaluate.run_metrics import (
    configuration_role,
    evaluate_predictions,
    evaluate_run,
    find_main_configuration,
    load_metrics,
)
from rgenima.evaluate.tables import SUMMARY_METRICS, comparison_table, format_metrics, metrics_table, roc_curves
from rgenima.run import MAIN_PREFIX

__all__ = [
    "MAIN_PREFIX",
    "PREDICTION_COLUMNS",
    "PROBA_COLUMNS",
    "SUMMARY_METRICS",
    "bootstrap_ci",
    "bootstrap_indices",
    "bootstrap_metrics",
    "bootstrap_p_value",
    "classification_metrics",
    "comparison_table",
    "configuration_role",
    "evaluate_predictions",
    "evaluate_run",
    "find_main_configuration",
    "format_metrics",
    "load_metrics",
    "load_predictions",
    "metrics_table",
    "paired_comparison",
    "roc_curves",
    "scalar_metrics",
    "stage_codes",
]
