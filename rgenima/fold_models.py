"""Fold models of a trained configuration, and their randomised counterparts.

The model of each cross-validation fold (``models/<configuration>/fold_k/``, reloaded
with :meth:`rgenima.model.RGenIMAForStaging.from_pretrained`), the same architecture with
re-initialised trainable weights (model-parameter randomisation) and the fold retrained on
permuted labels (label randomisation): the models :mod:`rgenima.explain` explains.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima.fileio import atomic_write_text
from rgenima.run import FoldDir, Run

logger = logging.getLogger("rgenima.explain")


# ---------------------------------------------------------------------------------
# Finding and loading fold models
# ---------------------------------------------------------------------------------
def find_configuration(run_dir: str | Path, configuration: str | None = None) -> str:
    """The configuration to explain: ``configuration`` if given (it must have been
    trained), else the run's main configuration (:meth:`rgenima.run.Run.main_configuration`)."""
    return Run(run_dir).main_configuration(configuration)


def _known_fields(cls, values: dict) -> dict:
    """The entries of ``values`` that ``cls`` has fields for; the others are logged (a
    training.json written by another version of rgenima)."""
    names = {f.name for f in dataclasses.fields(cls)}
    dropped = sorted(set(values) - names)
    if dropped:
        logger.warning("training.json: %s setting(s) %s are unknown to this version and ignored", cls.__name__, dropped)
    return {k: v for k, v in values.items() if k in names}


def _training_summary(run_dir: Path, configuration: str) -> dict:
    path = Run(run_dir).training_json(configuration)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the configuration first (`rgenima train`).")
    return json.loads(path.read_text())


def _profile(summary: dict):
    """The TrainProfile a configuration was trained with (from training.json)."""
    from rgenima.model.backbone import DefaultBackboneConfig
    from rgenima.model.rit import RiTConfig
    from rgenima.train import TrainProfile

    d = dict(summary["profile"])
    d["rit"] = RiTConfig(**_known_fields(RiTConfig, d["rit"]))
    d["backbone"] = DefaultBackboneConfig(**_known_fields(DefaultBackboneConfig, d["backbone"]))
    return TrainProfile(**_known_fields(TrainProfile, d))


def _backbone_path(run_dir: Path, summary: dict) -> Path:
    """The backbone directory recorded in training.json (relative paths may be relative
    to the directory training ran from), else the run's default backbone."""
    recorded = Path(summary.get("backbone", ""))
    candidates = [recorded] if recorded.is_absolute() else [recorded, run_dir / recorded, run_dir.parent / recorded]
    candidates.append(Run(run_dir).backbone_dir(summary["profile"]["name"]))
    for path in candidates:
        if str(path) and (path / "config.json").is_file():
            return path
    raise FileNotFoundError(f"backbone of {summary['configuration']} not found: tried {[str(c) for c in candidates]}.")


def _checkpoint(run_dir: Path, configuration: str, fold: int) -> Path:
    path = Run(run_dir).fold_checkpoint(configuration, fold)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: fold {fold} of {configuration} is not trained.")
    return path


def fold_model_dir(run_dir: str | Path, configuration: str, fold: int) -> Path:
    """``RUNDIR/models/<configuration>/fold_<k>/pretrained``: the fold's kept model as
    written by :meth:`RGenIMAForStaging.save_pretrained` (config, weights, tokenizer)."""
    return Run(run_dir).fold_pretrained(configuration, fold)


def load_fold_model(run_dir: str | Path, configuration: str, fold: int, attn_implementation: str = "eager"):
    """The trained model of one cross-validation fold, in eval mode.

    Read from the fold's ``pretrained/`` directory with
    :meth:`RGenIMAForStaging.from_pretrained` and :func:`load_tokenizer` alone: neither
    the training code nor the backbone directory is needed. Runs trained before folds
    wrote that directory are still read, the old way: the model rebuilt from
    ``training.json``, the backbone directory and the training code, then
    ``best.safetensors`` loaded into it (retrain to get self-contained fold models).

    Parameters
    ----------
    run_dir : path
        Run directory (``rgenima train --out``).
    configuration : str
        Folder under ``RUNDIR/models`` (e.g. ``rgenima_mri+snp``).
    fold : int
        Outer fold; its model was trained on every other fold.
    attn_implementation : {"eager", "sdpa"}
        "eager" to get attention weights (see PITFALLS: sdpa's ``output_attentions``
        differs across transformers versions).

    Returns
    -------
    model : RGenIMAForStaging
    tokenizer : transformers.PreTrainedTokenizerFast
    """
    from rgenima.model.rgenima import RGenIMAForStaging, load_tokenizer

    folder = fold_model_dir(run_dir, configuration, fold)
    if (folder / "config.json").is_file():
        return RGenIMAForStaging.from_pretrained(folder, attn_implementation=attn_implementation), load_tokenizer(
            folder
        )
    return _load_legacy_fold_model(Path(run_dir), configuration, fold, attn_implementation)


def _load_legacy_fold_model(run_dir: Path, configuration: str, fold: int, attn_implementation: str):
    """A fold model of a run without ``pretrained/`` folders (see load_fold_model)."""
    from safetensors.torch import load_file

    from rgenima.train import build_model

    summary = _training_summary(run_dir, configuration)
    ckpt = _checkpoint(run_dir, configuration, fold)
    logger.info(
        "%s fold %d: no pretrained/ folder (a run from an older rgenima); rebuilt from training.json",
        configuration,
        fold,
    )
    model, tokenizer = build_model(
        _backbone_path(run_dir, summary),
        _n_rois(run_dir),
        _cube_size(run_dir),
        tuple(summary["modalities"]),
        _profile(summary),
        int(summary.get("seed", 0)),
        attn_implementation=attn_implementation,
        **_model_shape(summary),
    )
    try:
        model.load_state_dict(load_file(str(ckpt)))
    except RuntimeError as exc:
        raise RuntimeError(
            f"{ckpt} does not match the current model code; retrain {configuration} (`rgenima train`). {exc}"
        ) from None
    model.eval()
    return model, tokenizer


def _n_rois(run_dir: Path) -> int:
    return len(pd.read_csv(Run(run_dir).rois_tsv, sep="\t"))


def _cube_size(run_dir: Path) -> int:
    """Edge of the prepared ROI cubes (from the first subject's file)."""
    return int(np.load(Run(run_dir).cube_file(0), mmap_mode="r").shape[1])


def _model_shape(summary: dict) -> dict:
    """The covariates and prompt length a configuration was built with (training.json)."""
    model = summary.get("model", {})
    return {"covariates": tuple(model.get("covariates", ())), "prompt_length": int(model.get("prompt_length", 0))}


def randomized_model(run_dir: str | Path, configuration: str, model, seed: int = 0, attn_implementation: str = "eager"):
    """A copy of ``model`` whose trainable parameters are freshly initialised.

    Built from ``model.config`` alone (``run_dir`` and ``configuration`` are kept for
    the callers; they are not read): RiT, projector, head and a default backbone
    (trained in full, rebuilt from its ``text_config``) are drawn by their constructors,
    seeded with ``seed``; a pretrained backbone keeps its frozen weights and gets fresh
    LoRA adapters. Frozen parameters (the genotype input embeddings, a LoRA backbone's
    base weights) and buffers (cube statistics) are copied from ``model``. The fusion
    gates (if any) are drawn from N(0, 1), so that the random model reads the genetic
    prompt.
    """
    from rgenima.model.rgenima import RGenIMAForStaging

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = RGenIMAForStaging(model.config, attn_implementation=attn_implementation)
    trained = model.state_dict()
    requires_grad = dict(_trainable_flags(fresh))
    keep = {k: v for k, v in trained.items() if not requires_grad.get(k, False)}
    _, unexpected = fresh.load_state_dict(keep, strict=False)
    if unexpected:
        raise RuntimeError(f"randomised model: unexpected keys {unexpected}")
    if hasattr(fresh, "prompt_gate"):
        # Gates initialised at 0 would hide the prompt from the random model altogether.
        with torch.no_grad():
            fresh.prompt_gate.normal_(generator=torch.Generator().manual_seed(seed + 2))
    fresh.eval()
    return fresh


def _trainable_flags(model) -> list[tuple[str, bool]]:
    return [(n, p.requires_grad) for n, p in model.named_parameters()]


def label_randomised_model(
    run_dir: str | Path, configuration: str, fold: int = 0, seed: int = 0, attn_implementation: str = "eager"
):
    """The fold model retrained on permuted labels (Adebayo et al. 2018's label randomisation).

    Trains the configuration's fold ``fold`` once, from scratch (no warm start), with its
    profile, on its training subjects with their stage labels permuted among them
    (seeded; class counts unchanged); the model is kept in
    ``RUNDIR/explain/<configuration>/label_randomised/fold_<fold>/`` and reused while
    its ``done.json`` records the same seed.

    Returns
    -------
    model : RGenIMAForStaging
        In eval mode.
    info : dict
        ``fold``, ``seed``, ``seconds`` (training), ``best_epoch``, ``test_balanced_accuracy``
        (on the fold's held-out subjects, true labels: near chance by construction).
    """
    from dataclasses import replace

    from safetensors.torch import load_file
    from sklearn.metrics import balanced_accuracy_score

    from rgenima.model.rgenima import RGenIMAForStaging
    from rgenima.train import build_model, load_training_data, make_accelerator, tokenizer_and_sequences, train_fold

    run_dir = Path(run_dir)
    summary = _training_summary(run_dir, configuration)
    modalities = tuple(summary["modalities"])
    profile = replace(_profile(summary), warm_start=False)
    out_dir = Run(run_dir).label_randomised_dir(configuration, fold)
    done = FoldDir(out_dir).done_json
    shape = _model_shape(summary)
    backbone = _backbone_path(run_dir, summary)
    n_rois, cube = _n_rois(run_dir), _cube_size(run_dir)

    def factory(implementation: str = "sdpa"):
        return build_model(
            backbone, n_rois, cube, modalities, profile, seed, attn_implementation=implementation, **shape
        )

    record = json.loads(done.read_text()) if done.is_file() else {}
    if record.get("seed") != seed or record.get("permuted") != "training subjects":
        if out_dir.exists():  # another permutation's model and its resume state
            import shutil

            shutil.rmtree(out_dir)
        data = load_training_data(run_dir, profile, modalities)
        folds = pd.read_csv(Run(run_dir).folds_csv, dtype={"PTID": str})
        # Permuted among the training subjects only: the training set keeps its class
        # counts (and its inner split its strata); the held-out subjects are not trained on.
        subjects = data.subjects.copy()
        true_labels = subjects["label"].to_numpy()
        labels = true_labels.copy()
        train = folds.set_index("PTID").loc[subjects["PTID"], "fold"].to_numpy() != fold
        labels[train] = np.random.default_rng(seed).permutation(labels[train])
        subjects["label"] = labels
        data = dataclasses.replace(data, subjects=subjects)
        tokenizer, seq = tokenizer_and_sequences(backbone, data, modalities, len(shape["covariates"]))
        out_dir.mkdir(parents=True, exist_ok=True)
        logger.info("%s: retraining fold %d on permuted labels (label randomisation check)", configuration, fold)
        result = train_fold(
            data,
            seq,
            folds,
            fold,
            lambda: factory()[0],
            out_dir,
            profile,
            modalities,
            seed + 1000 * fold,
            make_accelerator(),
            label=f"{configuration} permuted labels",
            tokenizer=tokenizer,
        )
        assert result is not None  # train_fold stops early only under an epoch limit
        info = {
            "fold": fold,
            "seed": seed,
            "permuted": "training subjects",
            "seconds": round(result.seconds, 2),
            "best_epoch": result.best_epoch,
            "test_balanced_accuracy": float(
                balanced_accuracy_score(true_labels[result.test_idx], result.proba.argmax(1))
            ),
        }
        atomic_write_text(done, json.dumps(info, indent=1))
    info = json.loads(done.read_text())
    pretrained = FoldDir(out_dir).pretrained
    if (pretrained / "config.json").is_file():
        return RGenIMAForStaging.from_pretrained(pretrained, attn_implementation), info
    model, _ = factory(attn_implementation)  # a model kept by an older rgenima
    model.load_state_dict(load_file(str(FoldDir(out_dir).best)))
    model.eval()
    return model, info
