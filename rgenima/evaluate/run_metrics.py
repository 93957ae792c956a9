"""The evaluation of a whole run: main configuration, roles, ``RUNDIR/metrics.json``.

The layout of metrics.json is described in :mod:`rgenima.evaluate`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.stats import bootstrap_indices, percentile_interval
from rgenima.errors import DataContractError
from rgenima.evaluate.bootstrap import bootstrap_metrics
from rgenima.evaluate.comparison import _add_holm, paired_comparison
from rgenima.evaluate.metrics import classification_metrics, stage_codes
from rgenima.evaluate.predictions import PROBA_COLUMNS, load_predictions
from rgenima.fileio import atomic_write_text
from rgenima.run import MAIN_PREFIX, Run

logger = logging.getLogger(__name__)

_ROLE_ORDER = ("main", "variant", "ablation", "baseline", "reference", "other")


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
    """Metrics, intervals and comparisons of aligned predictions (see :mod:`rgenima.evaluate`).

    Parameters
    ----------
    predictions : dict of str to DataFrame
        As returned by :func:`~rgenima.evaluate.predictions.load_predictions`: same subjects, same row order.
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

    configurations: dict[str, dict[str, Any]] = {}
    boot_ba: dict[str, np.ndarray] = {}
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
        The content of metrics.json (see :mod:`rgenima.evaluate`).
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
