"""Held-out subjects: which rows each fold model explains, checked against training.

Every subject is explained by the model of the fold in which it was a test subject
(``folds.csv``); :func:`held_out_indices` checks this against what each fold model
predicted as held out during training before anything is computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.run import Run


def held_out_indices(run_dir: str | Path, configuration: str, subjects: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per fold, the row indices (into ``subjects``) of the fold's test subjects.

    Checks, for every fold ``k``, that the subjects with test fold ``k`` in folds.csv
    are exactly those the fold-``k`` model predicted as held out during training
    (``models/<configuration>/fold_k/predictions.csv``), hence that the model never
    trained on them (it trained on the subjects of the other folds only).
    """
    run_dir = Path(run_dir)
    folds = pd.read_csv(Run(run_dir).folds_csv, dtype={"PTID": str})
    fold_of = dict(zip(folds["PTID"], folds["fold"].astype(int)))
    missing = [p for p in subjects["PTID"] if p not in fold_of]
    if missing:
        raise ValueError(f"{Run(run_dir).folds_csv}: no fold for {len(missing)} subjects (e.g. {missing[:3]}).")
    fold = np.array([fold_of[p] for p in subjects["PTID"]])
    out = {}
    for k in sorted(set(fold.tolist())):
        path = Run(run_dir).fold_predictions_csv(configuration, k)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: fold {k} of {configuration} did not finish training.")
        test = set(pd.read_csv(path, dtype={"PTID": str})["PTID"])
        idx = np.flatnonzero(fold == k)
        ptids = set(subjects["PTID"].to_numpy()[idx])
        if ptids != test:
            raise ValueError(
                f"held-out check failed for fold {k}: folds.csv lists {len(ptids)} test subjects, {path} "
                f"{len(test)}; {len(ptids - test)} of them were not held out by the fold-{k} model "
                f"(e.g. {sorted(ptids - test)[:3]}). Explanations must come from a model that did not train on "
                "the subject: retrain, or restore folds.csv."
            )
        train = set(subjects["PTID"].to_numpy()[fold != k])
        assert not (ptids & train), "a subject is both a test and a training subject"
        out[k] = idx
    return out
