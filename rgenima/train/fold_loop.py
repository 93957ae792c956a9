"""Cross-validated training of R-GenIMA (and its ablations) with Hugging Face Accelerate.

Layout of a run directory::

    RUNDIR/prepared/                      rgenima prepare (cached)
    RUNDIR/folds.csv                      PTID, label, fold (outer test fold), shared by all models
    RUNDIR/backbone/                      default backbone + tokenizer (save_pretrained)
    RUNDIR/models/<name>/fold_<k>/        last.safetensors, optimizer.safetensors, best.safetensors,
                                          state.json, predictions.csv, done.json
    RUNDIR/models/<name>/fold_<k>/pretrained/
                                          the kept model, loadable on its own with
                                          RGenIMAForStaging.from_pretrained (config.json,
                                          model.safetensors, tokenizer files)
    RUNDIR/models/<name>/predictions.csv  PTID, fold, y_true, y_pred, p_NC, p_SMC, p_MCI, p_AD
    RUNDIR/models/<name>/training.json    profile, config, per-fold history and timings

A fold with ``done.json`` is never retrained; a fold killed mid-training resumes from
its last epoch checkpoint. On CPU, the same seed gives the same predictions; under
``torchrun --nproc_per_node N`` each rank trains on its shard of every batch (DDP, gloo
on CPU, NCCL on GPU) and all ranks end with identical weights.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima import STAGES
from rgenima.fileio import atomic_write_text
from rgenima.model.backbone import DefaultBackboneConfig
from rgenima.model.inputs import batch_tensors, model_sequences, predict_proba  # noqa: F401 (re-exported)
from rgenima.model.rit import RiTConfig
from rgenima.run import FoldDir, Run

logger = logging.getLogger(__name__)

PROBA_COLUMNS = [f"p_{s}" for s in STAGES]
#: The batch helper's former name (benchmarks and explain import it from here).
_tensors = batch_tensors
#: Folder of a fold's kept model, written with RGenIMAForStaging.save_pretrained.


#: What the warm-started two-modality model trains: every parameter, the language model
#: and what reads the prompt (the image and covariate pathways frozen), or only the
#: prompt's attention bias and the stage head.
WARM_START_TRAINABLE = {
    "all": None,
    "language_model": ("language_model.", "score.", "prompt_bias", "prompt_gate"),
    "head": ("score.", "prompt_bias", "prompt_gate"),
}


@dataclass
class TrainProfile:
    """Model size and optimisation settings.

    ``quick`` is for tests and smoke runs, ``default`` is the CPU study (the book),
    ``gpu`` a larger model for a GPU.

    The learning rate warms up linearly over ``warmup_epochs`` and then follows a
    cosine decay to zero at ``max_epochs``. Validation, early stopping and the saved
    ``best`` weights use an exponential moving average of the weights (``ema_decay``
    per optimiser step; 0 disables it): on a validation split of a few dozen subjects
    the raw weights' validation loss jumps from epoch to epoch, the average's does not.
    With ``mixup_alpha`` > 0, every training batch is mixed (mixup on the input
    embeddings, mixing weight drawn from Beta(alpha, alpha)).

    ``intensity_tokens``, ``rit_gate``: the ROI tokens (rgenima.model.rgenima). The
    genetic segment's attention bias starts from a training-fold association scan
    (``prompt_bias="scan"``, scaled by ``prompt_bias_scale``), from the constant
    ``prompt_bias_init`` ("constant") or is absent ("none"); it learns at
    ``prompt_bias_learning_rate``. With ``prompt_gate`` (both modalities), what attending
    to the genetic segment changes passes through a zero-initialised tanh gate per layer
    (rgenima.model.rgenima.RGenIMAConfig), which learns at ``prompt_gate_learning_rate``.

    With ``warm_start``, the model with both modalities is trained in two stages, as
    LLaVA trains its projector before the whole model: each fold starts from the
    MRI-only model of the same fold (same training subjects, same inner split), whose
    validation loss it must then beat, and is fine-tuned with the genetic prompt for at
    most ``warm_start_epochs`` at ``warm_start_learning_rate``, training only the
    parameters ``warm_start_trainable`` names (:data:`WARM_START_TRAINABLE`).
    """

    name: str
    rit: RiTConfig = field(default_factory=RiTConfig)
    backbone: DefaultBackboneConfig = field(default_factory=DefaultBackboneConfig)
    max_epochs: int = 40
    patience: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    val_fraction: float = 0.15
    grad_clip: float = 1.0
    lora_r: int = 8
    warmup_epochs: int = 1
    ema_decay: float = 0.97
    warm_start: bool = True
    warm_start_epochs: int = 4
    warm_start_learning_rate: float = 5e-4
    warm_start_trainable: str = "language_model"
    intensity_tokens: bool = True
    rit_gate: bool = True
    prompt_bias: str = "scan"
    prompt_bias_init: float = -8.0
    prompt_bias_scale: float = 0.5
    prompt_bias_normalise: str = "length"
    prompt_bias_learning_rate: float = 0.003
    prompt_gate: bool = True
    prompt_gate_learning_rate: float = 0.01
    mixup_alpha: float = 0.4

    def __post_init__(self) -> None:
        if self.prompt_bias not in ("scan", "constant", "none"):
            raise ValueError(f"'prompt_bias' must be one of ('scan', 'constant', 'none'); got {self.prompt_bias!r}.")
        if self.prompt_bias_normalise not in ("length", "total"):
            raise ValueError(
                f"'prompt_bias_normalise' must be 'length' or 'total'; got {self.prompt_bias_normalise!r}."
            )
        if self.warm_start_trainable not in WARM_START_TRAINABLE:
            raise ValueError(
                f"'warm_start_trainable' must be one of {tuple(WARM_START_TRAINABLE)}; "
                f"got {self.warm_start_trainable!r}."
            )

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, TrainProfile] = {
    "quick": TrainProfile(
        name="quick",
        rit=RiTConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
        backbone=DefaultBackboneConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        ),
        max_epochs=6,
        patience=6,
        learning_rate=3e-3,
        warm_start_epochs=3,
    ),
    "default": TrainProfile(name="default", max_epochs=20, patience=6),
    "gpu": TrainProfile(
        name="gpu",
        rit=RiTConfig(input_pool=2, patch_size=2, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
        backbone=DefaultBackboneConfig(
            hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8
        ),
        max_epochs=80,
        patience=12,
        batch_size=32,
        learning_rate=5e-4,
    ),
}


def get_profile(name: str) -> TrainProfile:
    if name not in PROFILES:
        raise ValueError(f"'profile' must be one of {tuple(PROFILES)}; got {name!r}.")
    return PROFILES[name]


def configuration_name(
    modalities: tuple[str, ...], profile: str = "default", backbone: str | Path | None = None
) -> str:
    """Folder name of a model configuration: ``rgenima_mri+snp`` for the default profile
    and backbone, with ``__<profile>`` and ``__<backbone folder>`` appended otherwise, so
    that runs with different settings never share checkpoints."""
    name = "rgenima_" + "+".join(m for m in ("mri", "snp") if m in modalities)
    if profile != "default":
        name += f"__{profile}"
    if backbone:
        name += f"__{Path(backbone).name}"
    return name


# ---------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------
def make_folds(subjects: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Subject-level stratified k-fold assignment: each subject in exactly one test fold."""
    from sklearn.model_selection import StratifiedKFold

    if subjects["PTID"].duplicated().any():
        raise ValueError("subjects must have unique PTIDs to be split into folds")
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(subjects), -1)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(subjects)), subjects["label"])):
        fold[test] = k
    return pd.DataFrame({"PTID": subjects["PTID"].to_numpy(), "label": subjects["label"].to_numpy(), "fold": fold})


def load_or_make_folds(run_dir: Path, subjects: pd.DataFrame, n_folds: int, seed: int) -> pd.DataFrame:
    """``RUNDIR/folds.csv``, written once so every model and baseline shares it."""
    path = Run(run_dir).folds_csv
    if path.is_file():
        folds = pd.read_csv(path, dtype={"PTID": str})
        if folds["fold"].nunique() == n_folds and list(folds["PTID"]) == list(subjects["PTID"]):
            return folds
        logger.info("folds.csv does not match (%d folds requested); writing new folds", n_folds)
    folds = make_folds(subjects, n_folds, seed)
    atomic_write_text(path, folds.to_csv(index=False))
    return folds


def inner_split(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified inner split of a training fold into (fit, validation) indices."""
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(labels[train_idx]))
    # At least one validation subject per class, so the split stays stratified on tiny folds.
    n_val = max(int(round(fraction * len(train_idx))), n_classes)
    fit, val = train_test_split(train_idx, test_size=n_val, stratify=labels[train_idx], random_state=seed)
    return np.sort(fit), np.sort(val)


def class_weights(labels: np.ndarray, n_classes: int = len(STAGES)) -> np.ndarray:
    """Inverse-frequency weights ``n / (n_classes * count_c)`` (balanced)."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------
def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata={k: json.dumps(v) for k, v in (metadata or {}).items()},
    )
    os.replace(tmp, path)


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state in safetensors (tensors) + metadata (param groups), no pickle."""
    sd = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value for idx, st in sd["state"].items() for key, value in st.items()}
    _save_tensors(path, tensors, {"param_groups": sd["param_groups"]})


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    from safetensors import safe_open

    state: dict[int, dict] = {}
    with safe_open(str(path), framework="pt") as fh:
        groups = json.loads(fh.metadata()["param_groups"])
        for key in fh.keys():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = fh.get_tensor(key)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_predictions(path: Path, ptids, folds, y_true: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """The shared predictions format: PTID, fold, y_true, y_pred, p_NC, p_SMC, p_MCI, p_AD."""
    table = pd.DataFrame({"PTID": list(ptids), "fold": np.asarray(folds, dtype=int)})
    table["y_true"] = [STAGES[i] for i in y_true]
    table["y_pred"] = [STAGES[i] for i in proba.argmax(axis=1)]
    for c, col in enumerate(PROBA_COLUMNS):
        table[col] = proba[:, c]
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6f"))
    return table


# ---------------------------------------------------------------------------------
# Model construction
# ---------------------------------------------------------------------------------
def ensure_default_backbone(run_dir: Path, data, profile: TrainProfile, seed: int) -> Path:
    """Create the run's default backbone (tokenizer from the prepared SNP table) once."""
    from rgenima.data.genetics import read_gene_panel
    from rgenima.model.backbone import create_default_backbone

    path = Run(run_dir).backbone_dir(profile.name)
    if (path / "config.json").is_file():
        return path
    panel = read_gene_panel(Run(data.path.parent).gene_panel())
    tmp = path.parent / f".{profile.name}.tmp-{os.getpid()}"
    create_default_backbone(tmp, data.snps, panel["symbol"].tolist(), profile.backbone, seed=seed)
    os.replace(tmp, path)
    return path


def model_config(
    profile: TrainProfile,
    backbone_path: Path,
    tokenizer,
    n_rois: int,
    cube_size: int,
    modalities: tuple[str, ...],
    covariates: tuple[str, ...] = (),
    prompt_length: int = 0,
    text_config: dict | None = None,
):
    """The RGenIMAConfig of a profile on a cohort's shape: the one place where training
    settings become architecture.

    Parameters
    ----------
    backbone_path : Path
        A pretrained backbone gets LoRA (``profile.lora_r``); rgenima's default backbone
        is trained in full, with its input embeddings frozen when it says so.
    tokenizer : transformers.PreTrainedTokenizerFast
        The backbone's, with ``[ROI]`` and ``[COV]``.
    n_rois, cube_size : int
        ROIs and edge of the prepared cubes (samples).
    covariates : tuple of str
        Covariate tokens (PreparedData.covariate_names()).
    prompt_length : int
        Longest genetic prompt in tokens: size of the prompt's attention bias (with 'snp').
    text_config : dict, optional
        The language model's config (filled in by the model when None).
    """
    from rgenima.model.backbone import COV, ROI, backbone_info, is_pretrained, lora_settings
    from rgenima.model.rgenima import RGenIMAConfig

    pretrained = is_pretrained(backbone_path)
    return RGenIMAConfig(
        rit=replace(profile.rit, n_rois=n_rois, cube_size=cube_size),
        modalities=modalities,
        roi_token_id=tokenizer.convert_tokens_to_ids(ROI),
        covariate_token_id=tokenizer.convert_tokens_to_ids(COV),
        covariates=tuple(covariates),
        intensity_tokens=profile.intensity_tokens,
        rit_gate=profile.rit_gate,
        prompt_length=prompt_length if profile.prompt_bias != "none" else 0,
        prompt_bias_init=profile.prompt_bias_init,
        prompt_gate=profile.prompt_gate,
        text_config=text_config,
        lora=lora_settings(r=profile.lora_r) if pretrained else None,
        freeze_input_embeddings=not pretrained and bool(backbone_info(backbone_path).get("freeze_input_embeddings")),
    )


def build_model(
    backbone_path: Path,
    n_rois: int,
    cube_size: int,
    modalities: tuple[str, ...],
    profile: TrainProfile,
    seed: int,
    attn_implementation: str = "sdpa",
    covariates: tuple[str, ...] = (),
    prompt_length: int = 0,
):
    """Fresh R-GenIMA (seeded) and its tokenizer, from the backbone directory and
    :func:`model_config`; LoRA for a pretrained backbone."""
    from rgenima.model.backbone import load_backbone
    from rgenima.model.rgenima import RGenIMAForStaging, text_config_of

    language_model, tokenizer = load_backbone(backbone_path, attn_implementation=attn_implementation)
    config = model_config(
        profile,
        backbone_path,
        tokenizer,
        n_rois,
        cube_size,
        modalities,
        covariates,
        prompt_length,
        text_config=text_config_of(language_model),
    )
    torch.manual_seed(seed)
    return RGenIMAForStaging(config, language_model), tokenizer


def save_pretrained_atomic(model, tokenizer, path: Path) -> Path:
    """``model.save_pretrained(path, tokenizer)`` written beside and renamed into place, so
    that ``path`` is either absent or complete."""
    import shutil

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, tokenizer=tokenizer)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def prompt_length(tokenizer, prompts: list[dict]) -> int:
    """Tokens of the longest genetic prompt."""
    return max(len(tokenizer(p["text"], add_special_tokens=False)["input_ids"]) for p in prompts)


def snp_scan_bias(
    dosage: np.ndarray, labels: np.ndarray, snps: list[str], seq, scale: float, normalise: str = "length"
) -> np.ndarray:
    """Initial attention bias of each prompt token from a per-SNP trend test.

    For every SNP, the squared correlation ``r^2`` between its allele dose (missing calls
    at the mean) and the stage order (NC < SMC < MCI < AD) over the training subjects
    gives the trend statistic ``n r^2`` (Armitage's trend test); the token's bias is
    ``scale * n r^2 - c``. With ``normalise="length"``, ``c = log(n_prompt_tokens)``: a SNP
    with no association weighs about as much as one ordinary token divided by the prompt's
    length, and a strongly associated SNP stands out by ``exp(scale * n r^2)`` (it can
    then outweigh every other token of the sequence). With ``normalise="total"``, ``c`` is
    the log-sum-exp of ``scale * n r^2`` over the SNP tokens: the SNP tokens together start
    with the attention weight of one ordinary token, shared out by their evidence (the two
    agree when no SNP is associated). Computed on the training fold only.

    Parameters
    ----------
    dosage : ndarray of shape (n_training_subjects, n_snps)
    labels : ndarray of shape (n_training_subjects,)
    snps : list of str
        SNP ids of the dosage columns.
    seq : Sequences
        Its SNP spans map prompt tokens to SNPs (the first subject's layout).
    scale : float
    normalise : {"length", "total"}

    Returns
    -------
    ndarray of shape (n_prompt_tokens,)
        Bias of each prompt token, in prompt order (tokens outside any SNP span: 0).
    """
    x = np.where(np.isnan(dosage), np.nanmean(dosage, axis=0), dosage)
    x = np.nan_to_num(x - x.mean(axis=0))
    y = labels - labels.mean()
    denom = np.sqrt((x**2).sum(axis=0) * (y**2).sum())
    r = np.divide((x * y[:, None]).sum(axis=0), denom, out=np.zeros(x.shape[1]), where=denom > 0)
    statistic = len(y) * r**2
    start = int(np.flatnonzero(seq.prompt_mask[0])[0])
    n_tokens = int(seq.prompt_mask[0].sum())
    bias = np.zeros(n_tokens)
    snp_spans = [s for s in seq.spans[0] if s.kind == "snp"]
    order = {name: j for j, name in enumerate(snps)}
    if normalise not in ("length", "total"):
        raise ValueError(f"'normalise' must be 'length' or 'total'; got {normalise!r}.")
    is_snp = np.zeros(n_tokens, dtype=bool)
    for span in snp_spans:
        bias[span.start - start : span.end - start] = scale * statistic[order[span.name]]
        is_snp[span.start - start : span.end - start] = True
    if normalise == "length":
        bias[is_snp] -= np.log(n_tokens)
    elif is_snp.any():
        bias[is_snp] -= np.logaddexp.reduce(bias[is_snp])
    return bias


# ---------------------------------------------------------------------------------
# One fold
# ---------------------------------------------------------------------------------
@dataclass
class FoldResult:
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
    state = {"epoch": -1, "best_epoch": -1, "best_val_loss": float("inf"), "history": [], "seconds": 0.0}
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
    evaluated = copy.deepcopy(accelerator.unwrap_model(model)) if average is not None else None
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
        if average is not None:
            evaluated.load_state_dict(average.averaged_state_dict(unwrapped))
        else:
            evaluated = unwrapped
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


def weight_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_weight_digests(model: torch.nn.Module, accelerator) -> list[str]:
    """Each rank's final-weight digest (one entry on a single process): under DDP
    they must all be equal, and done.json records them so that this can be checked."""
    digest = weight_digest(model)
    if accelerator.num_processes == 1:
        return [digest]
    from accelerate.utils import gather_object

    return list(gather_object([digest]))


# ---------------------------------------------------------------------------------
# A configuration over all folds
# ---------------------------------------------------------------------------------
def make_accelerator():
    """CUDA with bf16 autocast when present, else CPU (gloo under torchrun)."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    return Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    if not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)


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
    from rgenima.model.backbone import load_backbone_tokenizer
    from rgenima.model.inputs import PreparedData, build_sequences
    from rgenima.progress import quiet_library_bars

    quiet_library_bars()
    run_dir = Path(run_dir)
    run = Run(run_dir)
    profile = get_profile(profile) if isinstance(profile, str) else profile
    modalities = tuple(m for m in ("mri", "snp") if m in modalities)
    accelerator = accelerator or make_accelerator()
    set_determinism(seed)
    data = PreparedData.load(run.prepared)
    if "mri" in modalities:
        from rgenima.model.rgenima import pool_cubes

        data.cubes = pool_cubes(data.cubes, profile.rit.input_pool)  # once, not at every epoch
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
    # The tokenizer as the model sees it (with [ROI] and [COV]) lays out the sequences.
    tokenizer = load_backbone_tokenizer(backbone_path)
    seq = build_sequences(tokenizer, data.prompts, n_rois, modalities, n_covariates=len(covariates))
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


# ---------------------------------------------------------------------------------
# Baselines and the synthetic cohort's references, on the same folds
# ---------------------------------------------------------------------------------
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
    """
    import json as _json

    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from rgenima.model.baselines import cross_validated_proba
    from rgenima.model.inputs import PreparedData

    run_dir, truth_dir = Path(run_dir), Path(truth_dir)
    data = PreparedData.load(Run(run_dir).prepared)
    folds = load_or_make_folds(run_dir, data.subjects, n_folds, seed)
    truth = _json.loads((truth_dir / "truth.json").read_text())
    posterior = {s["PTID"]: [s["posterior"][c] for c in STAGES] for s in truth["subjects"]}
    ptids = data.subjects["PTID"]
    y, fold = data.labels, folds["fold"].to_numpy()
    oracle = np.array([posterior[p] for p in ptids])
    features = pd.read_csv(truth_dir / "truth_features.csv", dtype={"PTID": str}).set_index("PTID").loc[ptids]
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    proba = cross_validated_proba(lda, features.to_numpy(dtype=float), y, fold)
    return {
        "oracle": write_predictions(Run(run_dir).predictions_csv("reference_oracle"), ptids, fold, y, oracle),
        "truth_feature_lda": write_predictions(
            Run(run_dir).predictions_csv("reference_truth_feature_lda"), ptids, fold, y, proba
        ),
    }


# ---------------------------------------------------------------------------------
# The whole training step of the study
# ---------------------------------------------------------------------------------
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
        Folder of the synthetic cohort's ``truth.json`` (references are skipped without it).

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
    has_truth = truth_dir is not None and (Path(truth_dir) / "truth.json").is_file()
    n_steps = len(configurations) + bool(baselines) + has_truth
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
        if has_truth:
            logger.info("training step %d/%d: references of the synthetic cohort", bar.n + 1, n_steps)
            bar.set_postfix_str("references")
            timed("references", False, lambda: run_references(run_dir, truth_dir, n_folds=n_folds, seed=seed))
            bar.update()
    from rgenima.cards import write_model_card

    logger.info("model card: %s", write_model_card(run_dir))
    return pd.DataFrame(steps)
