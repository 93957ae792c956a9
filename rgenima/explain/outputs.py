"""What an explain run writes: result arrays, the npz file and the digest of the inputs.

Batches of scores are stored into (n_subjects, ...) arrays (:func:`_store`), written as
one compressed npz file (:func:`_npz_bytes`, names as fixed-width unicode arrays); the
digest of the inputs (:func:`_digest`) lets a rerun with the same inputs reuse the files.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from rgenima.attribution_file import METHODS
from rgenima.fold_models import _checkpoint
from rgenima.run import Run

#: Methods scored on ROIs only (no gene or SNP arrays).
ROI_ONLY_METHODS: tuple[str, ...] = ("atrophy_sensitivity",)
#: Bumped when the meaning of an output changes, so that cached results are recomputed.
EXPLAIN_VERSION = 3


def _digest(run_dir: Path, configuration: str, folds: list[int], params: dict) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": EXPLAIN_VERSION}, sort_keys=True).encode())
    paths = [
        Run(run_dir).folds_csv,
        Run(run_dir).prepare_json,
        Run(run_dir).training_json(configuration),
    ]
    paths += [_checkpoint(run_dir, configuration, k) for k in folds]
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _methods(results: dict) -> tuple[str, ...]:
    """The methods present, in :data:`METHODS` order."""
    return tuple(m for m in METHODS if f"roi__{m}" in results or f"gene__{m}" in results)


def _store(results: dict[str, np.ndarray], parts: dict[str, np.ndarray], rows: np.ndarray, n: int) -> None:
    """Write a batch's arrays into the (n, ...) result arrays (NaN until written)."""
    for key, value in parts.items():
        if key not in results:
            results[key] = np.full((n,) + value.shape[1:], np.nan, dtype=np.float32)
        results[key][rows] = value


def _str_array(values) -> np.ndarray:
    """A fixed-width unicode array (loads without pickle), even when empty."""
    return np.array([str(v) for v in values], dtype=str)


def _n_layers(arrays: dict) -> int:
    return sum(1 for k in arrays if k.startswith("roi__attention_L"))
