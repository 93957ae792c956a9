"""The planted truth of a synthetic cohort: where it is and how to read it.

:func:`rgenima.data.synthetic.write_synthetic_cohort` writes two files into the cohort
folder: ``truth.json`` (every planted effect and each subject's oracle posterior) and
``truth_features.csv`` (the true atrophy per ROI, the causal genotype doses and age). A
manifest names the first with its optional ``cohort.truth`` entry; without it the file
is looked for beside the clinical table, where ``rgenima synth`` puts it.

Only the references, the validation of the attributions and the data card read these
files; nothing that trains or predicts the model does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.errors import DataContractError

#: The planted effects and oracle posteriors (JSON).
TRUTH_FILE = "truth.json"
#: The true features per subject (CSV, one row per PTID), beside :data:`TRUTH_FILE`.
TRUTH_FEATURES_FILE = "truth_features.csv"


def locate_truth(truth: str | Path | None, clinical: str | Path | None) -> Path | None:
    """The cohort's ``truth.json``, or None (real data).

    Parameters
    ----------
    truth : str, pathlib.Path or None
        The manifest's ``cohort.truth`` entry. When given, it is returned as is
        (the manifest loader has checked that it exists).
    clinical : str, pathlib.Path or None
        The clinical table; ``truth.json`` beside it is used when ``truth`` is None.

    Returns
    -------
    pathlib.Path or None
        None when no entry is given and no file lies beside the clinical table.
    """
    if truth is not None:
        return Path(truth)
    if clinical is None:
        return None
    candidate = Path(clinical).parent / TRUTH_FILE
    return candidate if candidate.is_file() else None


def truth_file(source: str | Path) -> Path:
    """``source`` itself if it is a file, else ``source/truth.json``."""
    path = Path(source)
    return path / TRUTH_FILE if path.is_dir() else path


def read_truth(source: str | Path) -> dict:
    """The content of ``truth.json`` (a file, or the folder holding it).

    Raises
    ------
    FileNotFoundError
        Naming the missing file.
    DataContractError
        If the file is not a JSON object.
    """
    path = truth_file(source)
    if not path.is_file():
        raise FileNotFoundError(f"truth file not found: {path} (written by `rgenima synth`)")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataContractError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(content, dict):
        raise DataContractError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


def oracle_posterior_table(truth: dict, ptids, stages, source: str = "truth") -> np.ndarray:
    """Each subject's oracle posterior, in the order of ``ptids``.

    Parameters
    ----------
    truth : dict
        Content of ``truth.json`` (key ``subjects``: ``PTID`` and ``posterior``).
    ptids : sequence of str, length n
    stages : sequence of str, length c
        Column order.
    source : str
        Named in errors (the file the content came from).

    Returns
    -------
    ndarray, shape (n, c)
    """
    try:
        posterior = {s["PTID"]: [s["posterior"][c] for c in stages] for s in truth["subjects"]}
    except (KeyError, TypeError) as exc:
        raise DataContractError(f"{source}: subjects[].posterior is missing or incomplete ({exc})") from exc
    missing = [p for p in ptids if p not in posterior]
    if missing:
        raise DataContractError(f"{source}: no posterior for {len(missing)} subject(s), e.g. {missing[:3]}")
    return np.array([posterior[p] for p in ptids], dtype=float)


def read_truth_features(source: str | Path, ptids) -> pd.DataFrame:
    """``truth_features.csv`` beside ``truth.json``, rows in the order of ``ptids``.

    Parameters
    ----------
    source : str or pathlib.Path
        ``truth.json`` or its folder.
    ptids : sequence of str, length n

    Returns
    -------
    DataFrame, shape (n, n_features), indexed by PTID
    """
    path = truth_file(source).parent / TRUTH_FEATURES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"truth features not found: {path} (written by `rgenima synth`)")
    table = pd.read_csv(path, dtype={"PTID": str}).set_index("PTID")
    missing = [p for p in ptids if p not in table.index]
    if missing:
        raise DataContractError(f"{path}: no row for {len(missing)} subject(s), e.g. {missing[:3]}")
    return table.loc[list(ptids)]
