"""Read the ADNIMERGE-style clinical table and select one baseline row per subject.

Contract (DESIGN.md, "Data contract" 1): required columns ``PTID``, ``VISCODE`` and
``DX_bl``; one subject is its baseline row; the label comes from ``DX_bl`` through
:data:`rgenima.DX_BL_TO_STAGE` (CN->NC, SMC->SMC, EMCI->MCI, LMCI->MCI, AD->AD).
Subjects that cannot be labelled are listed in an exclusions table with the reason,
never dropped silently.

**Baseline rule.** ADNI writes the first visit in several ways: ``bl`` (ADNIMERGE),
``m00`` (month 0 in some derived tables), ``init`` (ADNI3's initial visit of a
participant rolled over from an earlier phase), ``sc`` and ``scmri`` (screening
visits, a few weeks before month 0). A subject's baseline row is its row whose
VISCODE comes first in :data:`BASELINE_VISCODES` = (``bl``, ``m00``, ``init``,
``sc``, ``scmri``): ``bl`` whenever there is one, a screening visit only for a
subject without any month-0 row. Two rows with that same VISCODE are an error (the
message names the PTID and the lines). VISCODE values are compared as written,
after removing surrounding spaces (``BL`` is not a code ADNI uses and is refused).

The file must be UTF-8 (ADNI's downloads are); a file saved as Windows-1252 by a
spreadsheet is refused with the line of the first bad byte and the command that
converts it.

Row numbers in messages are *file line numbers* (the header is line 1), so that a
user can open the CSV at the right place.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import DX_BL_TO_STAGE, STAGES
from rgenima.errors import DataContractError

logger = logging.getLogger(__name__)

__all__ = [
    "BASELINE_VISCODES",
    "COVARIATES",
    "REQUIRED_COLUMNS",
    "VISCODE_PATTERN",
    "baseline_subjects",
    "read_clinical",
    "resolve_clinical_path",
]

#: Columns every clinical table must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("PTID", "VISCODE", "DX_bl")

#: Optional covariates kept at baseline when present (never MMSE/CDR/ADAS: they
#: are diagnostic criteria and would leak the label).
COVARIATES: tuple[str, ...] = ("AGE", "PTGENDER", "PTEDUCAT", "APOE4")
_NUMERIC_COVARIATES = ("AGE", "PTEDUCAT", "APOE4")

#: VISCODE values ADNIMERGE uses: bl, sc, scmri, init, y1, m03, m06, m12, ...
VISCODE_PATTERN = re.compile(r"^(bl|sc|scmri|init|y1|m\d+)$")
#: VISCODEs of a first visit, in order of preference (see the module doc).
BASELINE_VISCODES: tuple[str, ...] = ("bl", "m00", "init", "sc", "scmri")
_NO_BASELINE = f"no baseline visit (VISCODE {', '.join(BASELINE_VISCODES)})"
_ID_COLUMNS = ("PTID", "VISCODE", "DX_bl", "RID", "PTGENDER")
_HEADER_LINES = 1  # file line of row 0 is 2


def resolve_clinical_path(path: str | Path) -> Path:
    """Find the clinical CSV: a file as given, or the one ``ADNIMERGE*.csv`` in a folder.

    Parameters
    ----------
    path : str or pathlib.Path
        A CSV file (any name, e.g. the dated ``ADNIMERGE_27Nov2026.csv``), or a
        folder holding exactly one ``ADNIMERGE*.csv``.

    Returns
    -------
    pathlib.Path
        The CSV file.

    Raises
    ------
    DataContractError
        If the file does not exist, or the folder holds none or several
        ``ADNIMERGE*.csv`` files.
    """
    from rgenima.fileio import why_missing

    path = Path(path)
    if path.is_dir():
        found = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.name.lower().startswith("adnimerge") and p.suffix.lower() == ".csv"
        )
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DataContractError(
                f"{path}: expected exactly one ADNIMERGE*.csv in this folder "
                f"(cohort.clinical); found {names}. Point the manifest at the file."
            )
        return found[0]
    if not path.is_file():
        raise DataContractError(
            f"clinical table not found: {path} (cohort.clinical in the manifest): the path {why_missing(path)}."
        )
    return path


def read_clinical(path: str | Path) -> pd.DataFrame:
    """Read an ADNIMERGE-style CSV and check its identifying columns.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV (dated names are fine) or a folder with one ``ADNIMERGE*.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per visit, in file order, with a RangeIndex (file line = index + 2).
        ``PTID``, ``VISCODE``, ``DX_bl`` (and ``RID``, ``PTGENDER`` when present) are
        strings with surrounding whitespace removed; empty cells are NaN. Other
        columns are as pandas parses them. ``attrs["source"]`` holds the file path.

    Raises
    ------
    DataContractError
        If the file is missing or unreadable, a required column is missing (the
        message lists the columns found and suggests near matches such as
        ``'ptid'`` for ``'PTID'``), a PTID is empty, or a VISCODE is not one ADNI
        uses (``bl``, ``sc``, ``scmri``, ``init``, ``y1`` or ``m<months>``).
    """
    path = resolve_clinical_path(path)
    _check_utf8(path)
    try:
        table = pd.read_csv(path, dtype={c: str for c in _ID_COLUMNS}, low_memory=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataContractError(
            f"{path}: the clinical table is empty (no header line); expected an ADNIMERGE-style "
            f"CSV with columns {', '.join(REQUIRED_COLUMNS)}."
        ) from None
    except pd.errors.ParserError as exc:
        raise DataContractError(
            f"{path}: cannot read the clinical table as CSV ({' '.join(str(exc).split())}). Check that the line has as "
            "many comma-separated fields as the header (a comma inside a value needs quotes)."
        ) from None
    if table.empty:
        raise DataContractError(
            f"{path}: the clinical table has a header line but no rows; expected one row per subject and visit."
        )

    _check_columns(table, path)
    for column in _ID_COLUMNS:
        if column in table.columns:
            values = table[column].astype(object).str.strip()
            table[column] = values.where(values != "", np.nan)

    empty = table["PTID"].isna()
    if empty.any():
        lines = _lines(table.index[empty])
        raise DataContractError(
            f"{path}: column 'PTID' is empty on line(s) {lines}; every row needs a subject ID such as '023_S_0031'."
        )
    viscode = table["VISCODE"]
    bad = viscode.isna() | ~viscode.fillna("").str.fullmatch(VISCODE_PATTERN)
    if bad.any():
        rows = table.index[bad]
        shown = "; ".join(
            f"line {i + 1 + _HEADER_LINES} (PTID {table.at[i, 'PTID']}): "
            f"{'empty' if pd.isna(viscode[i]) else repr(viscode[i])}"
            for i in rows[:5]
        )
        more = f" ... ({len(rows)} rows in all)" if len(rows) > 5 else ""
        raise DataContractError(
            f"{path}: unknown VISCODE value(s) in column 'VISCODE': {shown}{more}. "
            f"Expected 'bl', 'sc', 'scmri', 'init', 'y1' or 'm' followed by months "
            f"(e.g. 'm06'). The ADNI portal may have changed its codes: check the "
            f"download, then report it."
        )
    table.attrs["source"] = str(path)
    return table


def _check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """Raise with the line of the first byte that is not UTF-8 (read in chunks)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # Positions are relative to the decoder's pending bytes plus this chunk.
                pending = len(exc.object) - len(chunk)
                at = offset - pending + exc.start
                line = lines + exc.object[: exc.start].count(b"\n")
                raise DataContractError(
                    f"{path}, line {line}: not UTF-8 text (byte "
                    f"0x{exc.object[exc.start]:02x} at file offset {at}). ADNI's files are UTF-8; a "
                    "file saved by a spreadsheet is often Windows-1252 (0xe9 is 'é' there): convert "
                    f"it, e.g. `iconv -f WINDOWS-1252 -t UTF-8 {path.name} > fixed.csv`, and point "
                    "the manifest at the result."
                ) from None
            lines += chunk.count(b"\n")
            offset += len(chunk)


def baseline_subjects(clinical: pd.DataFrame, path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One labelled row per subject, from the baseline visit.

    Parameters
    ----------
    clinical : pandas.DataFrame
        As returned by :func:`read_clinical` (its index gives file lines).
    path : str or pathlib.Path, optional
        Named in messages; defaults to ``clinical.attrs["source"]``.

    Returns
    -------
    subjects : pandas.DataFrame
        One row per labelled subject, in file order: ``PTID``, ``DX_bl``, ``stage``
        (one of :data:`rgenima.STAGES`) and those of ``AGE`` (years),
        ``PTGENDER``, ``PTEDUCAT`` (years) and ``APOE4`` (allele count) present.
    exclusions : pandas.DataFrame
        Columns ``PTID`` and ``reason``: subjects with an empty DX_bl, a DX_bl that
        is not a study label, or no ``bl`` visit.

    Raises
    ------
    DataContractError
        If a PTID has several ``bl`` rows (the message names the PTIDs and lines),
        or a numeric covariate holds a non-numeric value.
    """
    if path is None:
        path = clinical.attrs.get("source", "<clinical table>")
    missing = [c for c in REQUIRED_COLUMNS if c not in clinical.columns]
    if missing:
        _check_columns(clinical, path)

    preference = {code: rank for rank, code in enumerate(BASELINE_VISCODES)}
    rank = clinical["VISCODE"].map(preference)
    candidates = clinical[rank.notna()]
    rank = rank[rank.notna()]
    baseline = candidates[rank == rank.groupby(candidates["PTID"]).transform("min")]
    dup_mask = baseline["PTID"].duplicated(keep=False)
    if dup_mask.any():
        dups = baseline[dup_mask]
        shown = "; ".join(
            f"{ptid} (lines {', '.join(str(i + 1 + _HEADER_LINES) for i in group.index)})"
            for ptid, group in dups.groupby("PTID", sort=True)
        )
        codes = ", ".join(repr(c) for c in sorted(set(dups["VISCODE"]), key=lambda code: preference[code]))
        raise DataContractError(
            f"{path}: several baseline rows (VISCODE {codes}) for the same PTID: {shown}. Each "
            f"subject needs exactly one baseline row (its first of VISCODE "
            f"{', '.join(BASELINE_VISCODES)}); remove the duplicate."
        )

    exclusions: list[tuple[str, str]] = []
    with_bl = set(baseline["PTID"])
    for ptid in pd.unique(clinical["PTID"]):
        if ptid not in with_bl:
            exclusions.append((ptid, _NO_BASELINE))
    used = baseline["VISCODE"].value_counts()
    if set(used.index) - {"bl"}:
        logger.info("baseline rows by VISCODE: %s", ", ".join(f"{k} {v}" for k, v in used.items()))

    dx = baseline["DX_bl"]
    stage = dx.map(DX_BL_TO_STAGE)
    for ptid, code in zip(baseline["PTID"][stage.isna()], dx[stage.isna()]):
        if pd.isna(code):
            reason = "DX_bl is empty"
        else:
            reason = f"DX_bl {code!r} is not one of {', '.join(DX_BL_TO_STAGE)}"
        exclusions.append((ptid, reason))

    keep = baseline[stage.notna()]
    subjects = pd.DataFrame(
        {
            "PTID": keep["PTID"].to_numpy(),
            "DX_bl": keep["DX_bl"].to_numpy(),
            "stage": pd.Categorical(stage[stage.notna()].to_numpy(), categories=STAGES),
        }
    )
    for column in COVARIATES:
        if column not in keep.columns:
            continue
        values = keep[column]
        if column in _NUMERIC_COVARIATES:
            values = _to_numeric(values, column, path)
        subjects[column] = values.to_numpy()

    exclusions_df = pd.DataFrame(exclusions, columns=["PTID", "reason"])
    # File line of each subject's baseline row, for messages that must not print a PTID.
    subjects.attrs["lines"] = {p: int(i) + 1 + _HEADER_LINES for p, i in zip(keep["PTID"], keep.index)}
    return subjects, exclusions_df


def _to_numeric(values: pd.Series, column: str, path) -> pd.Series:
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna() & (text != "")
    if bad.any():
        i = values.index[bad.to_numpy()][0]
        raise DataContractError(
            f"{path}, line {i + 1 + _HEADER_LINES}: column {column!r} must be a number; got {values[i]!r}."
        )
    return numbers.astype(float)


def _check_columns(table: pd.DataFrame, path) -> None:
    found = [str(c) for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if not missing:
        return
    hints = []
    for column in missing:
        near = _near_column(column, found)
        if near is not None:
            hints.append(f"{near!r} for {column!r}")
    hint = f" Did you mean {', '.join(hints)}? Column names are case- and whitespace-sensitive." if hints else ""
    shown = ", ".join(repr(c) for c in found[:30])
    if len(found) > 30:
        shown += f", ... ({len(found)} columns in all)"
    raise DataContractError(
        f"{path}: missing required column(s) {', '.join(repr(c) for c in missing)}; found columns: {shown}.{hint}"
    )


def _near_column(column: str, found: list[str]) -> str | None:
    def norm(name: str) -> str:
        return re.sub(r"[\s_\-]", "", name).lower()

    for candidate in found:
        if norm(candidate) == norm(column):
            return candidate
    close = difflib.get_close_matches(column, found, n=1, cutoff=0.8)
    return close[0] if close else None


def _lines(index, limit: int = 10) -> str:
    lines = [str(i + 1 + _HEADER_LINES) for i in index[:limit]]
    more = f", ... ({len(index)} in all)" if len(index) > limit else ""
    return ", ".join(lines) + more
