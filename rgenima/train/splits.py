"""Subject splits shared by every model: the outer cross-validation folds
(``RUNDIR/folds.csv``), the inner validation split of a training fold, and the class
weights of a split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.fileio import atomic_write_text
from rgenima.run import Run

logger = logging.getLogger(__name__)


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
