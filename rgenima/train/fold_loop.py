"""Training one outer fold: inner split, warm start, the epoch loop with a weight
average, early stopping and resumable checkpoints, then the held-out predictions."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rgenima.fileio import atomic_write_text
from rgenima.model.inputs import batch_tensors, predict_proba
from rgenima.run import FoldDir
from rgenima.train.construction import save_pretrained_atomic, snp_scan_bias
from rgenima.train.files import _save_tensors, load_optimizer, save_optimizer
from rgenima.train.profile import WARM_START_TRAINABLE, TrainProfile
from rgenima.train.runtime import gather_weight_digests
from rgenima.train.splits import class_weights, inner_split

logger = logging.getLogger(__name__)


@dataclass
class FoldResult:
    """What :func:`train_fold` returns for one outer fold.

    Attributes
    ----------
    proba : ndarray of shape (n_test, n_stages)
        Held-out probabilities of the kept model, rows in ``test_idx`` order.
    test_idx : ndarray of shape (n_test,)
        Subject indices of the held-out fold.
    history : list of dict
        One record per epoch (train and validation loss, validation balanced accuracy).
    seconds : float
        Training time, summed over resumed runs.
    best_epoch : int
        Epoch of the kept model (-1: the warm start was kept).
    rank_weight_digests : list of str
        Each rank's final-weight digest (:func:`rgenima.train.runtime.gather_weight_digests`).
    """

    fold: int
    proba: np.ndarray
    test_idx: np.ndarray
    history: list[dict]
    seconds: float
    best_epoch: int
    rank_weight_digests: list[str] = field(default_factory=list)


def _batches(indices: np.ndarray, batch_size: int, rank: int, world: int, rng: np.random.Generator | None):
    """Shuffled (if rng) batches; under DDP each rank takes its share of every batch."""
    order = indices[rng.permutation(len(indices))] if rng is not None else indices
    for start in range(0, len(order), batch_size * world):
        chunk = order[start : start + batch_size * world]
        if len(chunk) < world:  # every rank needs at least one sample
            chunk = np.resize(chunk, world)
        yield chunk[rank::world]


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    pred = proba.argmax(axis=1)
    recalls = [(pred[y == c] == c).mean() for c in np.unique(y)]
    return float(np.mean(recalls))


def learning_rate_at(profile: TrainProfile, epoch: int, base: float | None = None) -> float:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to 0 at ``max_epochs``.

    ``base``: the peak rate (default ``profile.learning_rate``)."""
    base, warm = profile.learning_rate if base is None else base, profile.warmup_epochs
    if epoch < warm:
        return base * (epoch + 1) / (warm + 1)
    progress = (epoch - warm) / max(profile.max_epochs - warm, 1)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers.

    ``update`` after every optimiser step; ``averaged_state_dict`` gives a full state
    dict (non-float entries from the live model) to load into a copy for evaluation.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for key, value in model.state_dict().items():
            if key in self.state:
                self.state[key].mul_(self.decay).add_(value.detach().float(), alpha=1.0 - self.decay)

    def averaged_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: self.state[k].to(v.dtype) if k in self.state else v for k, v in model.state_dict().items()}


def _validation_loss(model, val_idx, seq, data, device, modalities, weights) -> tuple[float, float, np.ndarray]:
    """Class-weighted validation log-loss, balanced accuracy and per-subject terms of ``model``.

    The per-subject terms ``n * w_i * -log p_i(y_i) / sum(w)`` (shape (n_val,)) average to
    the loss, so that two models can be compared subject by subject."""
    proba = predict_proba(model, val_idx, seq, data, device, modalities)
    y_val = data.labels[val_idx]
    w = weights.cpu().numpy()[y_val]
    terms = len(y_val) * w * -np.log(np.clip(proba[np.arange(len(y_val)), y_val], 1e-8, None)) / w.sum()
    return float(terms.mean()), _balanced_accuracy(y_val, proba), terms


def beats_by_one_standard_error(start_terms: np.ndarray, candidate_terms: np.ndarray) -> bool:
    """True if a candidate's validation loss is lower than the starting model's by more
    than one standard error of the paired per-subject difference.

    The one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani & Friedman,
    *Elements of Statistical Learning*, 7.10): prefer the simpler model unless the more
    complex one is better by more than the noise of the estimate. The two-modality model
    uses it to replace its MRI-only start: on a validation split of a few dozen subjects,
    a plain "lower loss" is often noise."""
    difference = np.asarray(start_terms) - np.asarray(candidate_terms)
    if len(difference) < 2:
        return bool(difference.mean() > 0)
    return bool(difference.mean() > difference.std(ddof=1) / np.sqrt(len(difference)))


def _optimizer(model, profile: TrainProfile) -> torch.optim.Optimizer:
    """AdamW; the prompt's attention bias and gates have their own learning rates and no
    weight decay."""
    own = {"prompt_bias": profile.prompt_bias_learning_rate, "prompt_gate": profile.prompt_gate_learning_rate}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if n not in own], "peak_lr": profile.learning_rate}]
    for name, lr in own.items():
        params = [p for n, p in trainable if n == name]
        if params:
            groups.append({"params": params, "weight_decay": 0.0, "peak_lr": lr})
    return torch.optim.AdamW(groups, lr=profile.learning_rate, weight_decay=profile.weight_decay)


def train_fold(
    data,
    seq,
    folds: pd.DataFrame,
    fold: int,
    model_factory,
    out_dir: Path,
    profile: TrainProfile,
    modalities: tuple[str, ...],
    seed: int,
    accelerator,
    max_epochs_this_run: int | None = None,
    init_weights: Path | None = None,
    label: str | None = None,
    tokenizer=None,
) -> FoldResult | None:
    """Train on every fold but ``fold``, early-stop on an inner split, predict ``fold``.

    Resumes from ``out_dir/last.safetensors`` when a previous run stopped early.
    ``max_epochs_this_run`` stops after that many epochs without finishing (it
    simulates an interrupted run in tests); the function then returns None.

    ``init_weights``: a checkpoint (safetensors) to start from instead of a fresh
    initialisation (the warm start of the two-modality model from the MRI-only model
    of the same fold; parameters it lacks, the prompt's attention bias, keep their
    initialisation). The starting model is then validated first (epoch -1) and stays
    the kept model unless a fine-tuned epoch beats it on the inner validation split by
    more than one standard error (:func:`beats_by_one_standard_error`).

    ``label`` names the fold in the progress bar and the log lines (default
    ``fold <k>``); every epoch logs one line with its validation loss and balanced
    accuracy.

    With ``tokenizer``, the kept model is also written to ``out_dir/pretrained/``
    (:meth:`RGenIMAForStaging.save_pretrained`, with the tokenizer), which loads without
    the training code.
    """
    from safetensors.torch import load_file

    from rgenima.progress import progress_bar

    label = label or f"fold {fold}"

    labels = data.labels
    test_idx = np.flatnonzero(folds["fold"].to_numpy() == fold)
    train_idx = np.flatnonzero(folds["fold"].to_numpy() != fold)
    fit_idx, val_idx = inner_split(train_idx, labels, profile.val_fraction, seed + fold)
    weights = torch.tensor(class_weights(labels[fit_idx]), dtype=torch.float32)

    model = model_factory()
    model.fit_input_statistics(
        torch.from_numpy(data.cubes[fit_idx]) if "mri" in modalities else None,
        torch.from_numpy(data.covariates()[fit_idx]),
    )
    if init_weights is not None:
        missing, unexpected = model.load_state_dict(load_file(str(init_weights)), strict=False)
        if unexpected or set(missing) - {"prompt_bias", "prompt_gate"}:
            raise RuntimeError(f"{init_weights} does not fit this model: missing {missing}, unexpected {unexpected}")
        trainable = WARM_START_TRAINABLE[profile.warm_start_trainable]
        if trainable is not None:
            for name, parameter in model.named_parameters():
                if not name.startswith(trainable):
                    parameter.requires_grad_(False)
    if hasattr(model, "prompt_bias") and profile.prompt_bias == "scan":
        with torch.no_grad():
            bias = snp_scan_bias(
                data.dosage[fit_idx],
                labels[fit_idx],
                list(data.snps["snp"]),
                seq,
                profile.prompt_bias_scale,
                profile.prompt_bias_normalise,
            )
            model.prompt_bias[: len(bias)] = torch.from_numpy(bias).float()
    optimizer = _optimizer(model, profile)
    files = FoldDir(out_dir)
    state_path = files.state_json
    state: dict[str, Any] = {
        "epoch": -1,
        "best_epoch": -1,
        "best_val_loss": float("inf"),
        "history": [],
        "seconds": 0.0,
    }
    resumed = state_path.is_file()
    if resumed:
        state = json.loads(state_path.read_text())
        model.load_state_dict(load_file(str(files.last)))
        load_optimizer(files.optimizer, optimizer)
        logger.info("%s: resuming after epoch %d", label, state["epoch"] + 1)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    average = WeightAverage(accelerator.unwrap_model(model), profile.ema_decay) if profile.ema_decay > 0 else None
    if average is not None and state["epoch"] >= 0:
        saved = load_file(str(files.average))
        average.state = {k: v.float().to(device) for k, v in saved.items()}
    # The averaged weights are evaluated in a copy so that training continues on the raw ones.
    averaged_model = copy.deepcopy(accelerator.unwrap_model(model)) if average is not None else None
    rank, world = accelerator.process_index, accelerator.num_processes
    weights = weights.to(device)
    t_start = time.perf_counter()
    if init_weights is not None and not resumed:
        start = accelerator.unwrap_model(model)
        val_loss, val_bacc, terms = _validation_loss(start, val_idx, seq, data, device, modalities, weights)
        state["history"].append(
            {"epoch": -1, "train_loss": None, "val_loss": val_loss, "val_balanced_accuracy": val_bacc}
        )
        state["best_val_loss"], state["best_epoch"] = val_loss, -1
        state["start_val_terms"] = terms.tolist()
        if accelerator.is_main_process:
            _save_tensors(files.best, start.state_dict())
        logger.info("%s warm start: val loss %.4f bacc %.3f", label, val_loss, val_bacc)
    epochs_run = 0
    bar = progress_bar(
        total=profile.max_epochs,
        initial=state["epoch"] + 1,
        desc=label,
        unit="epoch",
        leave=False,
        disable=not accelerator.is_main_process,
    )
    for epoch in range(state["epoch"] + 1, profile.max_epochs):
        if epoch > 0 and epoch - max(state["best_epoch"], 0) > profile.patience:
            logger.info("%s: early stop after epoch %d (best epoch %d)", label, epoch, state["best_epoch"] + 1)
            break
        if max_epochs_this_run is not None and epochs_run >= max_epochs_this_run:
            bar.close()
            return None
        model.train()
        rng = np.random.default_rng([seed, fold, epoch])
        # Dropout draws from torch's generator: reseed it per epoch so that a resumed
        # run continues exactly as an uninterrupted one would.
        torch.manual_seed(int(rng.integers(2**31)) + rank)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(profile, epoch, group["peak_lr"])
        total, n_seen = 0.0, 0
        for idx in _batches(fit_idx, profile.batch_size, rank, world, rng):
            batch = batch_tensors(idx, seq, data, device, modalities)
            y = torch.from_numpy(labels[idx]).to(device)
            with accelerator.autocast():
                if profile.mixup_alpha > 0:
                    lam = float(rng.beta(profile.mixup_alpha, profile.mixup_alpha))
                    perm = torch.from_numpy(rng.permutation(len(idx))).to(device)
                    out = model(**batch, mixup=(lam, perm))
                    loss = lam * torch.nn.functional.cross_entropy(out.logits.float(), y, weight=weights) + (
                        1 - lam
                    ) * torch.nn.functional.cross_entropy(out.logits.float(), y[perm], weight=weights)
                else:
                    loss = model(**batch, labels=y, class_weights=weights).loss
            accelerator.backward(loss)
            if profile.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), profile.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(accelerator.unwrap_model(model))
            total += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        unwrapped = accelerator.unwrap_model(model)
        evaluated = unwrapped
        if average is not None and averaged_model is not None:
            averaged_model.load_state_dict(average.averaged_state_dict(unwrapped))
            evaluated = averaged_model
        val_loss, val_bacc, terms = _validation_loss(evaluated, val_idx, seq, data, device, modalities, weights)
        record = {
            "epoch": epoch,
            "train_loss": total / max(n_seen, 1),
            "val_loss": val_loss,
            "val_balanced_accuracy": val_bacc,
        }
        state["history"].append(record)
        state["epoch"] = epoch
        improved = val_loss < state["best_val_loss"] - 1e-6
        if "start_val_terms" in state:  # a warm start is replaced only by a clearly better model
            improved = improved and beats_by_one_standard_error(state["start_val_terms"], terms)
        if improved:
            state["best_val_loss"], state["best_epoch"] = val_loss, epoch
        state["seconds"] += time.perf_counter() - t_start
        t_start = time.perf_counter()
        if accelerator.is_main_process:
            if improved:
                _save_tensors(files.best, evaluated.state_dict())
            _save_tensors(files.last, unwrapped.state_dict())
            if average is not None:
                _save_tensors(files.average, average.state)
            save_optimizer(files.optimizer, optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer)
            atomic_write_text(state_path, json.dumps(state, indent=1))
        accelerator.wait_for_everyone()
        epochs_run += 1
        bar.update()
        bar.set_postfix_str(f"val loss {val_loss:.3f} bacc {val_bacc:.3f}")
        logger.info(
            "%s epoch %d/%d: train loss %.4f, val loss %.4f, val bacc %.3f%s",
            label,
            epoch + 1,
            profile.max_epochs,
            record["train_loss"],
            val_loss,
            val_bacc,
            " (best so far)" if improved else "",
        )
    bar.close()
    unwrapped = accelerator.unwrap_model(model)
    digests = gather_weight_digests(unwrapped, accelerator)
    unwrapped.load_state_dict(load_file(str(files.best)))
    if tokenizer is not None and accelerator.is_main_process:
        save_pretrained_atomic(unwrapped, tokenizer, files.pretrained)
    accelerator.wait_for_everyone()
    proba = predict_proba(unwrapped, test_idx, seq, data, device, modalities)
    return FoldResult(fold, proba, test_idx, state["history"], state["seconds"], state["best_epoch"], digests)
