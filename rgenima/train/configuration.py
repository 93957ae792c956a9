"""One model configuration across the outer folds: data and sequences, the warm start
of the two-modality model, a fold at a time, then the configuration's predictions and
``training.json``."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.fileio import atomic_write_text
from rgenima.run import Run
from rgenima.train.construction import build_model, ensure_default_backbone
from rgenima.train.files import write_predictions
from rgenima.train.fold_loop import train_fold
from rgenima.train.profile import TrainProfile, configuration_name, get_profile
from rgenima.train.runtime import make_accelerator, set_determinism
from rgenima.train.splits import load_or_make_folds

logger = logging.getLogger(__name__)


def load_training_data(run_dir: str | Path, profile: TrainProfile, modalities: tuple[str, ...]):
    """The run's prepared data, as training reads it.

    With "mri", the ROI cubes are average-pooled by ``profile.rit.input_pool`` here, once,
    rather than at every epoch.

    Returns
    -------
    PreparedData
        With "mri", ``cubes`` of shape (n_subjects, n_rois, e, e, e), float32, with
        ``e = cube_size // input_pool``.
    """
    from rgenima.model.inputs import PreparedData

    data = PreparedData.load(Run(run_dir).prepared)
    if "mri" in modalities:
        from rgenima.model.rgenima import pool_cubes

        data.cubes = pool_cubes(data.cubes, profile.rit.input_pool)
    return data


def tokenizer_and_sequences(backbone_path: Path, data, modalities: tuple[str, ...], n_covariates: int):
    """The backbone's tokenizer and the token sequences it lays out for every subject.

    The tokenizer is the one the model sees (with ``[ROI]`` and ``[COV]``), so that the
    sequences' ROI and covariate slots match the model's.

    Parameters
    ----------
    backbone_path : Path
        Backbone directory (its tokenizer files).
    data : PreparedData
        Its genetic prompts and ``cubes.shape[1]`` ROIs.
    n_covariates : int
        Covariate tokens of the model.

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerFast
    seq : Sequences
        ``input_ids`` of shape (n_subjects, sequence_length).
    """
    from rgenima.model.backbone import load_backbone_tokenizer
    from rgenima.model.inputs import build_sequences

    tokenizer = load_backbone_tokenizer(backbone_path)
    seq = build_sequences(tokenizer, data.prompts, data.cubes.shape[1], modalities, n_covariates=n_covariates)
    return tokenizer, seq


def train_configuration(
    run_dir: str | Path,
    modalities: tuple[str, ...] = ("mri", "snp"),
    n_folds: int = 5,
    seed: int = 0,
    profile: str | TrainProfile = "default",
    backbone: str | Path | None = None,
    max_epochs_this_run: int | None = None,
    accelerator=None,
) -> pd.DataFrame | None:
    """Cross-validated predictions of one R-GenIMA configuration.

    Parameters
    ----------
    run_dir : path
        Run directory holding ``prepared/`` (from ``rgenima prepare``).
    modalities : tuple of str
        ("mri",), ("snp",) or ("mri", "snp").
    backbone : path, optional
        A local Hugging Face model directory; default: the run's default backbone.

    Returns
    -------
    DataFrame or None
        The configuration's predictions (None if interrupted by ``max_epochs_this_run``).
    """
    from rgenima.progress import quiet_library_bars

    quiet_library_bars()
    run_dir = Path(run_dir)
    run = Run(run_dir)
    profile = get_profile(profile) if isinstance(profile, str) else profile
    modalities = tuple(m for m in ("mri", "snp") if m in modalities)
    accelerator = accelerator or make_accelerator()
    set_determinism(seed)
    data = load_training_data(run_dir, profile, modalities)
    folds = load_or_make_folds(run_dir, data.subjects, n_folds, seed) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    if folds is None:
        folds = pd.read_csv(run.folds_csv, dtype={"PTID": str})
    if accelerator.is_main_process and not backbone:
        ensure_default_backbone(run_dir, data, profile, seed)
    accelerator.wait_for_everyone()
    backbone_path = Path(backbone) if backbone else run.backbone_dir(profile.name)
    name = configuration_name(modalities, profile.name, backbone)
    n_rois, cube = data.cubes.shape[1], data.cubes.shape[2] * (profile.rit.input_pool if "mri" in modalities else 1)
    covariates = data.covariate_names()
    tokenizer, seq = tokenizer_and_sequences(backbone_path, data, modalities, len(covariates))
    n_prompt = int(seq.prompt_mask.sum(axis=1).max())

    def factory():
        model, _ = build_model(
            backbone_path, n_rois, cube, modalities, profile, seed, covariates=covariates, prompt_length=n_prompt
        )
        return model

    # Warm start of the two-modality model from the MRI-only model of each fold.
    warm_from = None
    fold_profile = profile
    if profile.warm_start and modalities == ("mri", "snp"):
        warm_name = configuration_name(("mri",), profile.name, backbone)
        warm_from = run.model_dir(warm_name)
        if not all(run.fold(warm_name, k).done_json.is_file() for k in range(n_folds)):
            logger.info("%s starts from %s: training it first", name, warm_from.name)
            if (
                train_configuration(run_dir, ("mri",), n_folds, seed, profile, backbone, accelerator=accelerator)
                is None
            ):
                return None
        fold_profile = replace(
            profile, max_epochs=profile.warm_start_epochs, learning_rate=profile.warm_start_learning_rate
        )
    logger.info(
        "%s: %d subjects, sequence length %d, %d folds", name, len(data.subjects), seq.input_ids.shape[1], n_folds
    )
    results = []
    for fold in range(n_folds):
        files = run.fold(name, fold)
        fold_dir = files.path
        fold_dir.mkdir(parents=True, exist_ok=True)
        if files.done_json.is_file():
            table = pd.read_csv(files.predictions_csv, dtype={"PTID": str})
            results.append(table)
            logger.info("%s fold %d/%d already trained (done.json): reused", name, fold + 1, n_folds)
            continue
        init = run.fold(warm_name, fold).best if warm_from is not None else None
        result = train_fold(
            data,
            seq,
            folds,
            fold,
            factory,
            fold_dir,
            fold_profile,
            modalities,
            seed + 1000 * fold,
            accelerator,
            max_epochs_this_run,
            init_weights=init,
            label=f"{name} fold {fold + 1}/{n_folds}",
            tokenizer=tokenizer,
        )
        if result is None:
            return None
        if accelerator.is_main_process:
            table = write_predictions(
                files.predictions_csv,
                data.subjects["PTID"].to_numpy()[result.test_idx],
                np.full(len(result.test_idx), fold),
                data.labels[result.test_idx],
                result.proba,
            )
            atomic_write_text(
                files.done_json,
                json.dumps(
                    {
                        "best_epoch": result.best_epoch,
                        "seconds": round(result.seconds, 2),
                        "epochs": len(result.history),
                        "world_size": accelerator.num_processes,
                        "rank_weight_digests": result.rank_weight_digests,
                    },
                    indent=1,
                ),
            )
            results.append(table)
            logger.info(
                "%s fold %d/%d done: best epoch %d of %d, %.0f s",
                name,
                fold + 1,
                n_folds,
                result.best_epoch + 1,
                len(result.history),
                result.seconds,
            )
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            results.append(pd.read_csv(files.predictions_csv, dtype={"PTID": str}))
    predictions = pd.concat(results, ignore_index=True)
    order = pd.Series(np.arange(len(data.subjects)), index=data.subjects["PTID"])
    predictions = predictions.iloc[np.argsort(order.loc[predictions["PTID"]].to_numpy())].reset_index(drop=True)
    if accelerator.is_main_process:
        atomic_write_text(run.predictions_csv(name), predictions.to_csv(index=False, float_format="%.6f"))
        summary = {
            "configuration": name,
            "modalities": list(modalities),
            "profile": profile.to_dict(),
            "seed": seed,
            "n_folds": n_folds,
            "sequence_length": int(seq.input_ids.shape[1]),
            "backbone": str(backbone_path),
            "warm_start_from": str(warm_from) if warm_from is not None else None,
            "model": factory().config.to_dict(),
            "world_size": accelerator.num_processes,
            "device": str(accelerator.device),
            "folds": [json.loads(run.fold(name, k).done_json.read_text()) for k in range(n_folds)],
        }
        atomic_write_text(run.training_json(name), json.dumps(summary, indent=1))
    return predictions
