"""Reading and checking a run's prediction files (``models/<configuration>/predictions.csv``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.errors import DataContractError
from rgenima.run import Run

logger = logging.getLogger(__name__)

#: Probability columns of predictions.csv, in STAGES order.
PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{s}" for s in STAGES)
#: Every column predictions.csv must have.
PREDICTION_COLUMNS: tuple[str, ...] = ("PTID", "fold", "y_true", "y_pred", *PROBA_COLUMNS)

_PROBA_SUM_ATOL = 1e-3  # predictions.csv stores probabilities with 6 decimals


def load_predictions(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read and check every ``models/<configuration>/predictions.csv`` of a run.

    Parameters
    ----------
    run_dir : str or Path
        Run directory holding ``models/<configuration>/predictions.csv``.

    Returns
    -------
    predictions : dict of str to DataFrame
        Configuration name -> table with the columns of :data:`PREDICTION_COLUMNS`,
        shape (n_subjects, 8). Every table lists the same subjects in the same order
        (that of the first configuration by name), with a default index.

    Raises
    ------
    DataContractError
        If no predictions are found, or a file misses a column, has an unknown stage,
        a duplicated PTID, non-finite probabilities or probabilities that do not sum
        to 1, or disagrees with the others on subjects, true labels or folds. The
        message names the file.
    """
    models_dir = Run(run_dir).models
    paths = Run(run_dir).all_predictions()
    if not paths:
        raise DataContractError(f"{models_dir}: no */predictions.csv found; train the models first")
    tables = {path.parent.name: _read_prediction_file(path) for path in paths}
    _check_same_subjects(tables, {path.parent.name: path for path in paths})
    order = next(iter(tables.values()))["PTID"]
    out = {}
    for name, table in tables.items():
        out[name] = table.set_index("PTID").loc[order].reset_index()
    logger.info("read predictions of %d configurations (%d subjects) from %s", len(out), len(order), models_dir)
    return out


def _read_prediction_file(path: Path) -> pd.DataFrame:
    """One predictions.csv, checked on its own (columns, labels, probabilities)."""
    table = pd.read_csv(path, dtype={"PTID": str, "y_true": str, "y_pred": str})
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise DataContractError(f"{path}: missing column(s) {missing}; expected columns {list(PREDICTION_COLUMNS)}")
    table = table[list(PREDICTION_COLUMNS)].copy()
    if table.empty:
        raise DataContractError(f"{path}: no rows")
    if table["PTID"].isna().any():
        raise DataContractError(f"{path}: empty PTID in row(s) {_rows(table['PTID'].isna())}")
    duplicated = table["PTID"][table["PTID"].duplicated()].unique()
    if len(duplicated):
        raise DataContractError(f"{path}: duplicated PTID(s) {_first(duplicated)}")
    for column in ("y_true", "y_pred"):
        bad = ~table[column].isin(STAGES)
        if bad.any():
            raise DataContractError(
                f"{path}: column {column!r} must hold one of {list(STAGES)}; "
                f"found {_first(table.loc[bad, column].unique())} in row(s) {_rows(bad)}"
            )
    proba = table[list(PROBA_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(proba).all():
        raise DataContractError(
            f"{path}: probabilities must be finite numbers; row(s) {_rows(~np.isfinite(proba).all(axis=1))}"
        )
    if (proba < 0).any() or (proba > 1).any():
        raise DataContractError(
            f"{path}: probabilities must lie in [0, 1]; row(s) {_rows(((proba < 0) | (proba > 1)).any(axis=1))}"
        )
    off = np.abs(proba.sum(axis=1) - 1.0) > _PROBA_SUM_ATOL
    if off.any():
        raise DataContractError(
            f"{path}: probabilities {list(PROBA_COLUMNS)} must sum to 1 (within {_PROBA_SUM_ATOL:g}); "
            f"row(s) {_rows(off)}"
        )
    table[list(PROBA_COLUMNS)] = proba
    return table


def _check_same_subjects(tables: dict[str, pd.DataFrame], paths: dict[str, Path]) -> None:
    """Every configuration must predict the same subjects, labels and folds."""
    names = list(tables)
    reference_name = names[0]
    reference = tables[reference_name].set_index("PTID")
    for name in names[1:]:
        table = tables[name].set_index("PTID")
        only_here = table.index.difference(reference.index)
        only_there = reference.index.difference(table.index)
        if len(only_here) or len(only_there):
            raise DataContractError(
                f"{paths[name]}: covers a different subject set than {paths[reference_name]} "
                f"({len(only_here)} PTID(s) only here, e.g. {_first(only_here)}; {len(only_there)} missing, "
                f"e.g. {_first(only_there)}); every configuration must predict the same subjects"
            )
        table = table.loc[reference.index]
        for column in ("y_true", "fold"):
            differ = table[column].to_numpy() != reference[column].to_numpy()
            if differ.any():
                raise DataContractError(
                    f"{paths[name]}: column {column!r} disagrees with {paths[reference_name]} for "
                    f"{int(differ.sum())} subject(s), e.g. {_first(reference.index[differ])}"
                )


def _rows(mask) -> str:
    """Row numbers (1-based, header excluded) of a boolean mask, at most five."""
    return _first(np.flatnonzero(np.asarray(mask)) + 1)


def _first(values, k: int = 5) -> str:
    values = list(values)
    text = ", ".join(str(v) for v in values[:k])
    return text + (f", ... ({len(values)} in all)" if len(values) > k else "")
