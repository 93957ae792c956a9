"""External validation: a trained run's models applied to a second, independent cohort.

Cross-validation estimates how a design does on subjects like the training ones; an
external cohort (another study, another ADNI phase, or for the synthetic default another
seed of the generator) shows whether the trained models themselves carry over. Nothing
is retrained on the external cohort:

- each R-GenIMA configuration: the fold models (``models/<name>/fold_<k>/pretrained/``,
  read with :meth:`rgenima.model.rgenima.RGenIMAForStaging.from_pretrained`, without the
  training code) each predict every external subject, and their probabilities are
  averaged;
- each baseline: refitted on the training cohort fold by fold, with the same folds and
  inner model selection as in :func:`rgenima.train.run_baselines`, and averaged the
  same way;
- on synthetic cohorts, the oracle (the external cohort's own true posterior) and the
  truth-feature LDA (fitted on the training cohort's true features).

The external cohort is prepared to be read exactly as the training cohort was
(:func:`rgenima.data.cohort.prepare_cohort` with ``reference``): the same atlas, cube
size, SNPs and allele coding. Layout::

    RUNDIR/external/<cohort>/prepared/                          the prepared external cohort
    RUNDIR/external/<cohort>/models/<configuration>/predictions.csv
                                                                PTID, fold (-1: all folds averaged),
                                                                y_true, y_pred, p_NC, p_SMC, p_MCI, p_AD
    RUNDIR/external/<cohort>/metrics.json                       as RUNDIR/metrics.json (rgenima.evaluate)
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.errors import DataContractError
from rgenima.run import Run

logger = logging.getLogger(__name__)

#: ``fold`` value of external predictions: every fold model contributed.
ALL_FOLDS = -1


def cohort_folder_name(name: str) -> str:
    """A folder name for a cohort name (letters, digits, ``-``, ``_`` and ``.``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return slug or "external"


def external_dir(run_dir: str | Path, cohort: str) -> Path:
    """``RUNDIR/external/<cohort>``."""
    return Run(run_dir).external_dir(cohort_folder_name(cohort))


def check_disjoint(training: pd.Series, external: pd.Series, external_source: str) -> None:
    """Refuse an external cohort that shares subjects (PTIDs) with the training cohort.

    Raises
    ------
    DataContractError
        Naming how many subjects are shared and the first few.
    """
    shared = sorted(set(training.astype(str)) & set(external.astype(str)))
    if shared:
        shown = ", ".join(shared[:5]) + (" ..." if len(shared) > 5 else "")
        raise DataContractError(
            f"{external_source}: {len(shared)} of its {len(external)} subjects are also in the training cohort "
            f"({shown}). An external validation cohort must not contain training subjects; remove them "
            "from the external cohort's clinical table."
        )


def rgenima_external_proba(run_dir: Path, configuration: str, data, batch_size: int = 32) -> np.ndarray:
    """Average of a configuration's fold models' probabilities on a prepared cohort.

    Returns
    -------
    ndarray of shape (n_subjects, 4)
    """
    import torch

    from rgenima.explain import load_fold_model
    from rgenima.model.inputs import model_sequences, predict_proba

    summary = json.loads(Run(run_dir).training_json(configuration).read_text())
    modalities = tuple(summary["modalities"])
    idx = np.arange(len(data.subjects))
    probas, seq = [], None
    for fold in range(int(summary["n_folds"])):
        model, tokenizer = load_fold_model(run_dir, configuration, fold, attn_implementation="sdpa")
        if seq is None:  # the same layout for every fold of a configuration (one backbone)
            seq = model_sequences(model, tokenizer, data)
        probas.append(predict_proba(model, idx, seq, data, torch.device("cpu"), modalities, batch_size))
    return np.mean(probas, axis=0)


def _write(ext: Path, name: str, data, proba: np.ndarray) -> None:
    from rgenima.train import write_predictions

    n = len(data.subjects)
    write_predictions(Run(ext).predictions_csv(name), data.subjects["PTID"], np.full(n, ALL_FOLDS), data.labels, proba)


def _reference_predictions(run_dir: Path, train, ext_data, folds: np.ndarray) -> dict[str, np.ndarray]:
    """The synthetic references on the external cohort (empty if either truth is unknown)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from rgenima.data.truth import oracle_posterior_table, read_truth, read_truth_features
    from rgenima.model.baselines import cross_validated_proba

    train_truth, ext_truth = Run(run_dir).truth_path(), Run(ext_data.path.parent).truth_path()
    if train_truth is None or ext_truth is None:
        return {}
    ext_ptids = ext_data.subjects["PTID"]
    posterior = oracle_posterior_table(read_truth(ext_truth), ext_ptids, STAGES, source=str(ext_truth))
    out = {"reference_oracle": posterior}
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    _, out["reference_truth_feature_lda"] = cross_validated_proba(
        lda,
        read_truth_features(train_truth, train.subjects["PTID"]).to_numpy(dtype=float),
        train.labels,
        folds,
        X_external=read_truth_features(ext_truth, ext_ptids).to_numpy(dtype=float),
    )
    return out


def validate_external(
    run_dir: str | Path, manifest, n_boot: int = 2000, seed: int = 0, force: bool = False, main: str | None = None
) -> dict:
    """Apply every trained model of a run to an external cohort and evaluate it there.

    Parameters
    ----------
    run_dir : path
        A trained run (``rgenima train --study``): ``prepared/``, ``folds.csv``, ``models/``.
    manifest : Manifest
        The external cohort's manifest (its own clinical table, images and genotypes).
    n_boot, seed : int
        Bootstrap settings of the evaluation (as ``rgenima evaluate``).
    force : bool
        Recompute predictions that already exist.
    main : str, optional
        The configuration compared with the others (as ``rgenima evaluate --main``); by
        default the run's ``rgenima_mri+snp*`` model, else its only R-GenIMA configuration.

    Returns
    -------
    dict
        The external ``metrics.json`` (see rgenima.evaluate), with an ``external`` entry
        describing the cohort.
    """
    from rgenima.data.cohort import PrepareConfig, prepare_cohort
    from rgenima.evaluate import MAIN_PREFIX, evaluate_run
    from rgenima.fileio import atomic_write_text
    from rgenima.model.baselines import BASELINES, cross_validated_proba, make_baseline
    from rgenima.model.inputs import PreparedData
    from rgenima.train import baseline_features

    run_dir = Path(run_dir)
    run = Run(run_dir)
    if not run.prepare_json.is_file() or not run.folds_csv.is_file():
        raise DataContractError(f"{run_dir}: not a trained run (prepared/ and folds.csv); run `rgenima train` first.")
    train = PreparedData.load(run.prepared)
    ext = external_dir(run_dir, manifest.cohort.name)
    # Checked before the (long) preparation, on every baseline row of the clinical table.
    from rgenima.data.clinical import baseline_subjects, read_clinical

    listed, _ = baseline_subjects(read_clinical(manifest.cohort.clinical), manifest.cohort.clinical)
    check_disjoint(train.subjects["PTID"], listed["PTID"], str(manifest.cohort.clinical))
    # Read as the training cohort was: its cube size (atlas, panel and SNPs are checked).
    reference = json.loads(run.prepare_json.read_text())["inputs"]["settings"]["config"]
    config = PrepareConfig(cube_size=int(reference["cube_size"]))
    prepared = prepare_cohort(manifest, ext, config, reference=run.prepared)
    data = PreparedData.load(prepared)
    check_disjoint(train.subjects["PTID"], data.subjects["PTID"], str(manifest.path))
    folds = pd.read_csv(run.folds_csv, dtype={"PTID": str})
    if list(folds["PTID"]) != list(train.subjects["PTID"]):
        raise DataContractError(f"{run.folds_csv} does not list the prepared subjects; retrain the run.")
    fold = folds["fold"].to_numpy()

    timings = {}
    configurations = run.trained_configurations()
    for name in configurations:
        if Run(ext).predictions_csv(name).is_file() and not force:
            continue
        t0 = time.perf_counter()
        _write(ext, name, data, rgenima_external_proba(run_dir, name, data))
        timings[name] = round(time.perf_counter() - t0, 2)
        logger.info("external %s: %s predicted in %.1f s", ext.name, name, timings[name])
    X, blocks = baseline_features(train)
    X_ext, blocks_ext = baseline_features(data)
    if blocks_ext != blocks:
        raise DataContractError(
            f"{manifest.path}: the external cohort's features do not match the training "
            f"cohort's ({blocks_ext} vs {blocks})."
        )
    trained_baselines = [b for b in BASELINES if run.predictions_csv(f"baseline_{b}").is_file()]
    for name in trained_baselines:
        if Run(ext).predictions_csv(f"baseline_{name}").is_file() and not force:
            continue
        t0 = time.perf_counter()
        _, proba = cross_validated_proba(make_baseline(name, seed, blocks), X, train.labels, fold, X_external=X_ext)
        _write(ext, f"baseline_{name}", data, proba)
        timings[f"baseline_{name}"] = round(time.perf_counter() - t0, 2)
    for name, proba in _reference_predictions(run_dir, train, data, fold).items():
        _write(ext, name, data, proba)
    if main is None and configurations and not any(c.startswith(MAIN_PREFIX) for c in configurations):
        main = configurations[0] if len(configurations) == 1 else None
    metrics = evaluate_run(ext, main=main, n_boot=n_boot, seed=seed)
    prepare = Run(ext).prepare_record() or {}
    metrics["external"] = {
        "cohort": manifest.cohort.name,
        "manifest": str(manifest.path),
        "n_subjects": int(len(data.subjects)),
        "class_counts": prepare["class_counts"],
        "training_run": str(run_dir),
        "n_training_subjects": int(len(train.subjects)),
        "snps_missing": len(prepare["genetics"].get("aligned_to_reference", {}).get("missing_snps", [])),
        "seconds": timings,
    }
    atomic_write_text(Run(ext).metrics_json, json.dumps(metrics, indent=1) + "\n")
    return metrics
