"""Building a model to train: the run's default backbone, the model configuration of a
profile, a fresh seeded model, its atomic ``save_pretrained`` and the initial attention
bias of the genetic prompt."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rgenima.run import Run
from rgenima.train.profile import TrainProfile


def ensure_default_backbone(run_dir: Path, data, profile: TrainProfile, seed: int) -> Path:
    """Create the run's default backbone (tokenizer from the prepared SNP table) once."""
    from rgenima.data.genetics import read_gene_panel
    from rgenima.model.backbone import create_default_backbone

    path = Run(run_dir).backbone_dir(profile.name)
    if (path / "config.json").is_file():
        return path
    panel_path = Run(data.path.parent).gene_panel()
    if panel_path is None:
        raise FileNotFoundError(f"{data.path}: prepare.json records no gene panel; rerun `rgenima prepare`.")
    panel = read_gene_panel(panel_path)
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
