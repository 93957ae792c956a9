"""The training step of the study: the main configuration and its ablations, the
baselines and the synthetic cohort's references, all on the same folds."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.data.truth import oracle_posterior_table, read_truth, read_truth_features, truth_file
from rgenima.fileio import atomic_write_text
from rgenima.run import Run
from rgenima.train.configuration import train_configuration
from rgenima.train.files import write_predictions
from rgenima.train.profile import TrainProfile, configuration_name
from rgenima.train.splits import load_or_make_folds

logger = logging.getLogger(__name__)


def baseline_features(data) -> tuple[np.ndarray, dict]:
    """The baselines' feature matrix of a prepared cohort (see baselines.feature_matrix)."""
    from rgenima.data.genetics import apoe_doses
    from rgenima.model.baselines import feature_matrix

    return feature_matrix(data.roi_features, data.dosage, data.covariates(), apoe_doses(data.dosage, data.snps))


def run_baselines(run_dir: str | Path, n_folds: int = 5, seed: int = 0, names=None) -> dict[str, pd.DataFrame]:
    """Out-of-fold predictions of every baseline, written to models/baseline_<name>/."""
    from rgenima.model.baselines import BASELINES, cross_validated_proba, make_baseline
    from rgenima.model.inputs import PreparedData

    run_dir = Path(run_dir)
    data = PreparedData.load(Run(run_dir).prepared)
    folds = load_or_make_folds(run_dir, data.subjects, n_folds, seed)
    X, blocks = baseline_features(data)
    y, fold = data.labels, folds["fold"].to_numpy()
    out = {}
    for name in names or BASELINES:
        path = Run(run_dir).predictions_csv(f"baseline_{name}")
        if path.is_file():
            out[name] = pd.read_csv(path, dtype={"PTID": str})
            continue
        t0 = time.perf_counter()
        proba = cross_validated_proba(make_baseline(name, seed, blocks), X, y, fold)
        out[name] = write_predictions(path, data.subjects["PTID"], fold, y, proba)
        logger.info("baseline %s: %.1f s", name, time.perf_counter() - t0)
    return out


def run_references(
    run_dir: str | Path, truth_dir: str | Path, n_folds: int = 5, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The synthetic cohort's references on the same folds.

    - ``oracle``: the generator's true posterior P(stage | atrophy, genotypes, age).
    - ``truth_feature_lda``: shrinkage LDA on the true per-ROI atrophy, the causal
      genotype doses and age (``truth_features.csv``): the best a learner can do at
      this sample size if feature extraction were perfect.

    Parameters
    ----------
    truth_dir : path
        The cohort's ``truth.json``, or the folder holding it
        (:func:`rgenima.data.truth.locate_truth` finds it).
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from rgenima.model.baselines import cross_validated_proba
    from rgenima.model.inputs import PreparedData

    run_dir = Path(run_dir)
    data = PreparedData.load(Run(run_dir).prepared)
    folds = load_or_make_folds(run_dir, data.subjects, n_folds, seed)
    ptids = data.subjects["PTID"]
    y, fold = data.labels, folds["fold"].to_numpy()
    oracle = oracle_posterior_table(read_truth(truth_dir), ptids, STAGES, source=str(truth_file(truth_dir)))
    features = read_truth_features(truth_dir, ptids)
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    proba = cross_validated_proba(lda, features.to_numpy(dtype=float), y, fold)
    return {
        "oracle": write_predictions(Run(run_dir).predictions_csv("reference_oracle"), ptids, fold, y, oracle),
        "truth_feature_lda": write_predictions(
            Run(run_dir).predictions_csv("reference_truth_feature_lda"), ptids, fold, y, proba
        ),
    }


def study_configurations(modalities: tuple[str, ...], ablations: bool = True) -> list[tuple[str, ...]]:
    """The main configuration first, then (with ``ablations``) its single-modality ablations."""
    main = tuple(m for m in ("mri", "snp") if m in modalities)
    out: list[tuple[str, ...]] = [main]
    if ablations and len(main) == 2:
        out += [("mri",), ("snp",)]
    return out


def train_study(
    run_dir: str | Path,
    truth_dir: str | Path | None = None,
    modalities: tuple[str, ...] = ("mri", "snp"),
    ablations: bool = True,
    baselines: bool = True,
    n_folds: int = 5,
    seed: int = 0,
    profile: str | TrainProfile = "default",
    backbone: str | Path | None = None,
) -> pd.DataFrame:
    """Train the main configuration, its ablations, the baselines and the references.

    Finished folds and configurations are reused, so a rerun on a finished run
    directory only reads results. Wall-clock seconds of each step are written to
    ``RUNDIR/timings.json`` (steps that were reused keep their first timing).

    Parameters
    ----------
    truth_dir : path, optional
        The synthetic cohort's ``truth.json`` or the folder holding it (references are
        skipped without it, or when the file does not exist).

    Returns
    -------
    DataFrame
        One row per step: ``step``, ``seconds``, ``reused``.
    """
    run_dir = Path(run_dir)
    timings_path = Run(run_dir).timings_json
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    steps = []

    def timed(step: str, already_done: bool, fn) -> None:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        if not already_done or step not in timings:
            timings[step] = round(seconds, 2)
        steps.append({"step": step, "seconds": timings[step], "reused": already_done})
        atomic_write_text(timings_path, json.dumps(timings, indent=1))

    from rgenima.progress import progress_bar

    profile_name = profile if isinstance(profile, str) else profile.name
    # Single-modality configurations first: the two-modality model starts from the MRI one.
    configurations = sorted(study_configurations(modalities, ablations), key=len)
    truth = truth_dir if truth_dir is not None and truth_file(truth_dir).is_file() else None
    n_steps = len(configurations) + bool(baselines) + (truth is not None)
    with progress_bar(total=n_steps, desc="train", unit="step") as bar:
        for i, mods in enumerate(configurations):
            name = configuration_name(mods, profile_name, backbone)
            done = Run(run_dir).training_json(name).is_file()
            logger.info("training step %d/%d: %s%s", i + 1, n_steps, name, " (finished: reused)" if done else "")
            bar.set_postfix_str(name)
            timed(
                name,
                done,
                lambda mods=mods: train_configuration(
                    run_dir, mods, n_folds=n_folds, seed=seed, profile=profile, backbone=backbone
                ),
            )
            bar.update()
        if baselines:
            from rgenima.model.baselines import BASELINES

            done = all(Run(run_dir).predictions_csv(f"baseline_{b}").is_file() for b in BASELINES)
            logger.info("training step %d/%d: baselines%s", bar.n + 1, n_steps, " (finished: reused)" if done else "")
            bar.set_postfix_str("baselines")
            timed("baselines", done, lambda: run_baselines(run_dir, n_folds=n_folds, seed=seed))
            bar.update()
        if truth is not None:
            logger.info("training step %d/%d: references of the synthetic cohort", bar.n + 1, n_steps)
            bar.set_postfix_str("references")
            timed("references", False, lambda: run_references(run_dir, truth, n_folds=n_folds, seed=seed))
            bar.update()
    from rgenima.cards import write_model_card

    logger.info("model card: %s", write_model_card(run_dir))
    return pd.DataFrame(steps)
