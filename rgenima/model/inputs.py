"""Model inputs from a prepared run directory (``rgenima prepare``).

:class:`PreparedData` loads the arrays written by rgenima.data.cohort.prepare_cohort;
:func:`build_sequences` turns prompts into token ids laid out as
``[BOS] [ROI]*R [SEP] prompt [SEP] question`` with, for every subject, the token
positions of the ROI tokens and the token span of every gene and SNP;
:func:`batch_tensors` and :func:`predict_proba` feed them to a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.prompt import Span, token_spans
from rgenima.model.backbone import COV, QUESTION, ROI


@dataclass
class PreparedData:
    """Arrays of a prepared cohort, rows aligned with ``subjects``.

    Attributes
    ----------
    subjects : DataFrame
        ``PTID``, ``stage``, ``label`` (0..3), covariates.
    cubes : ndarray of shape (n_subjects, n_rois, D, D, D), float16
    roi_features : ndarray of shape (n_subjects, n_rois)
        Normalised ROI mean intensity.
    rois : DataFrame
        ``roi_id``, ``name``, ``n_voxels``.
    dosage : ndarray of shape (n_subjects, n_snps), float32 (NaN = missing)
    snps : DataFrame
        ``snp``, ``gene``, ``chrom``, ``pos``, ``a1``, ``a2``.
    prompts : list of dict
        ``text`` and character ``spans`` per subject.
    """

    path: Path
    subjects: pd.DataFrame
    cubes: np.ndarray
    roi_features: np.ndarray
    rois: pd.DataFrame
    dosage: np.ndarray
    snps: pd.DataFrame
    prompts: list[dict]

    @classmethod
    def load(cls, prepared: str | Path) -> PreparedData:
        from rgenima.run import PreparedDir

        prepared = Path(prepared)
        files = PreparedDir(prepared)
        if not files.prepare_json.is_file():
            raise FileNotFoundError(f"{prepared}: not a prepared folder (no prepare.json); run `rgenima prepare`.")
        subjects = pd.read_csv(files.subjects_csv, dtype={"PTID": str})
        cubes = np.stack([np.load(files.cube_file(i)) for i in range(len(subjects))])
        prompts = [json.loads(line) for line in files.prompts_jsonl.read_text().splitlines()]
        return cls(
            path=prepared,
            subjects=subjects,
            cubes=cubes,
            roi_features=np.load(files.roi_features_npz)["mean_intensity_norm"],
            rois=pd.read_csv(files.rois_tsv, sep="\t"),
            dosage=np.load(files.dosage_npy),
            snps=pd.read_csv(files.snps_tsv, sep="\t", dtype={"chrom": str}),
            prompts=prompts,
        )

    @property
    def labels(self) -> np.ndarray:
        return self.subjects["label"].to_numpy()

    def covariate_names(self) -> tuple[str, ...]:
        """The covariates present: age (years), sex_female (1/0), education (years)."""
        return tuple(c for c in ("age", "sex_female", "education") if c in self.subjects)

    def covariates(self) -> np.ndarray:
        """(n_subjects, n_covariates): age, sex, education where present (NaN: missing)."""
        return self.subjects[list(self.covariate_names())].to_numpy(dtype=np.float64)


@dataclass
class Sequences:
    """Tokenised model inputs.

    Attributes
    ----------
    input_ids, attention_mask : ndarray of shape (n_subjects, sequence_length)
    position_ids : ndarray of shape (n_subjects, sequence_length)
        Position of each token in the full layout ``[BOS] [COV]*k [ROI]*R [SEP] prompt
        [SEP] question``, also for the tokens of a configuration that leaves a part out.
    answer_positions : ndarray of shape (n_subjects,)
    roi_positions : ndarray of shape (n_rois,) or None
        Token indices of the ROI tokens (identical for every subject).
    covariate_positions : ndarray of shape (n_covariates,)
        Token indices of the covariate tokens.
    spans : list of list of Span
        Per subject, token spans of genes and SNPs (empty without 'snp').
    prompt_mask : ndarray of bool, shape (n_subjects, sequence_length)
        True on the genetic segment: the prompt's tokens and its closing ``[SEP]``. The
        segment gets the prompt's attention bias (and modality dropout) as a whole, so
        that hiding it leaves exactly the sequence of the MRI-only configuration.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    position_ids: np.ndarray
    answer_positions: np.ndarray
    roi_positions: np.ndarray | None
    covariate_positions: np.ndarray
    spans: list[list[Span]]
    prompt_mask: np.ndarray


def build_sequences(
    tokenizer, prompts: list[dict], n_rois: int, modalities: tuple[str, ...], n_covariates: int = 0
) -> Sequences:
    """Token ids for every subject, right-padded to the longest sequence.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        With ``[ROI]`` and ``[COV]`` tokens (rgenima.model.backbone.load_backbone).
    prompts : list of dict
        ``text`` and character ``spans`` per subject (``prompts.jsonl``).
    n_rois : int
    modalities : tuple of str
    n_covariates : int
        Covariate tokens after ``[BOS]``.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    sep = [tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id]
    roi_id = tokenizer.convert_tokens_to_ids(ROI)
    cov_id = tokenizer.convert_tokens_to_ids(COV)
    question = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
    head = bos + [cov_id] * n_covariates
    image = [roi_id] * n_rois + sep
    rows, positions, all_spans, prompt_ranges = [], [], [], []
    for p in prompts:
        enc = tokenizer(p["text"], add_special_tokens=False, return_offsets_mapping=True)
        prompt = enc["input_ids"] + sep
        ids, pos = list(head), list(range(len(head)))
        cursor = len(head)  # position in the full layout
        if "mri" in modalities:
            ids += image
            pos += range(cursor, cursor + len(image))
        cursor += len(image)
        spans: list[Span] = []
        if "snp" in modalities:
            char_spans = [Span(**s) for s in p["spans"]]
            spans = [
                Span(s.kind, s.name, s.gene, s.start + len(ids), s.end + len(ids))
                for s in token_spans(enc["offset_mapping"], char_spans)
            ]
            prompt_ranges.append((len(ids), len(ids) + len(prompt)))
            ids += prompt
            pos += range(cursor, cursor + len(prompt))
        else:
            prompt_ranges.append((0, 0))
        cursor += len(prompt)
        ids += question
        pos += range(cursor, cursor + len(question))
        rows.append(ids)
        positions.append(pos)
        all_spans.append(spans)
    length = max(len(r) for r in rows)
    input_ids = np.full((len(rows), length), tokenizer.pad_token_id, dtype=np.int64)
    position_ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    prompt_mask = np.zeros((len(rows), length), dtype=bool)
    for i, (r, pos) in enumerate(zip(rows, positions)):
        input_ids[i, : len(r)] = r
        position_ids[i, : len(r)] = pos
        position_ids[i, len(r) :] = pos[-1]  # padding: any valid position (masked out)
        mask[i, : len(r)] = 1
        prompt_mask[i, prompt_ranges[i][0] : prompt_ranges[i][1]] = True
    first_roi = len(head)
    roi_positions = np.arange(first_roi, first_roi + n_rois) if "mri" in modalities else None
    return Sequences(
        input_ids,
        mask,
        position_ids,
        mask.sum(axis=1) - 1,
        roi_positions,
        np.arange(len(bos), len(bos) + n_covariates),
        all_spans,
        prompt_mask,
    )


def model_sequences(model, tokenizer, data: PreparedData) -> Sequences:
    """The token sequences of a prepared cohort laid out for ``model``'s configuration
    (its modalities and covariate tokens)."""
    config = model.config
    return build_sequences(
        tokenizer, data.prompts, data.cubes.shape[1], tuple(config.modalities), n_covariates=len(config.covariates)
    )


def batch_tensors(idx: np.ndarray, seq: Sequences, data: PreparedData, device, modalities: tuple[str, ...]) -> dict:
    """Keyword arguments of ``RGenIMAForStaging.forward`` for the subjects ``idx``.

    Returns
    -------
    dict of Tensor
        ``input_ids``, ``attention_mask``, ``position_ids``, ``prompt_mask`` (len(idx), L),
        ``answer_positions`` (len(idx),), ``covariates`` (len(idx), n_covariates) when the
        sequences have covariate tokens, ``cubes`` (len(idx), n_rois, D, D, D) float32
        with 'mri'.
    """
    import torch

    out = {
        "input_ids": torch.from_numpy(seq.input_ids[idx]).to(device),
        "attention_mask": torch.from_numpy(seq.attention_mask[idx]).to(device),
        "position_ids": torch.from_numpy(seq.position_ids[idx]).to(device),
        "answer_positions": torch.from_numpy(seq.answer_positions[idx]).to(device),
        "prompt_mask": torch.from_numpy(seq.prompt_mask[idx]).to(device),
    }
    if len(seq.covariate_positions):
        out["covariates"] = torch.from_numpy(data.covariates()[idx].astype(np.float32)).to(device)
    if "mri" in modalities:
        out["cubes"] = torch.from_numpy(np.asarray(data.cubes[idx], dtype=np.float32)).to(device)
    return out


def predict_proba(
    model,
    idx: np.ndarray,
    seq: Sequences,
    data: PreparedData,
    device,
    modalities: tuple[str, ...],
    batch_size: int = 32,
) -> np.ndarray:
    """(len(idx), 4) stage probabilities of ``model`` (put in eval mode) for the subjects ``idx``."""
    import torch

    from rgenima import STAGES

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            batch = batch_tensors(idx[start : start + batch_size], seq, data, device, modalities)
            out.append(torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(STAGES)))
