"""The gate before publishing: identifiers in a table, figure, string, path or report, redaction
of messages and :func:`assert_publishable`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from rgenima.errors import PrivacyError
from rgenima.privacy.build import list_build_files, scan_files
from rgenima.privacy.identifiers import _ANY_ADNI_RE, _RID_COLUMN_RE, IdentifierSet, _mask
from rgenima.privacy.text import scan_text

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectFinding:
    """One identifier found in an in-memory table, figure or report.

    Attributes
    ----------
    where : str
        Location without the identifier itself, e.g. ``"column 'PTID'"``,
        ``"axes 0 x tick label"``, ``"index"``.
    row : int or None
        0-based row position for a table cell or index label, else None.
    value : str
        The offending value as it is in the object (not masked).
    identifier : str
        The subject it identifies (a PTID or ``"RID <n>"``).
    kind : str
        ``"ptid"``, ``"bids"``, ``"rid"`` or ``"id"``.
    """

    where: str
    row: int | None
    value: str
    identifier: str
    kind: str


def _scan_values(values: Iterable[Any], identifiers: IdentifierSet) -> dict[int, list[tuple[str, str]]]:
    """Positions of values holding an identifier -> [(identifier, kind)]; one regex pass."""
    strings = ["" if v is None else str(v).replace("\n", " ").replace("\r", " ") for v in values]
    text = "\n".join(strings)
    out: dict[int, list[tuple[str, str]]] = {}
    line, last = 0, 0
    for start, _, identifier, kind in identifiers._matcher.finditer(text):
        line += text.count("\n", last, start)
        last = start
        out.setdefault(line, []).append((identifier, kind))
    return out


def _describe(name: Any, identifiers: IdentifierSet) -> str:
    text = str(name)
    return repr(_mask(text)) if _scan_values([text], identifiers) else repr(text)


def _check_labels(labels: pd.Index, where: str, identifiers: IdentifierSet, rid_context: bool) -> list[ObjectFinding]:
    """Text and (when ``rid_context``) RID checks of one column or index level."""
    findings: list[ObjectFinding] = []
    is_text = labels.dtype == object or isinstance(labels.dtype, (pd.CategoricalDtype, pd.StringDtype))
    values = pd.Series(np.asarray(labels, dtype=object))
    if is_text:
        as_text = values.map(lambda v: "" if v is None or v is pd.NA else str(v))
        uniques = pd.unique(as_text.to_numpy())
        for pos, hits in _scan_values(uniques, identifiers).items():
            rows = np.flatnonzero(as_text.to_numpy() == uniques[pos])
            for identifier, kind in hits:
                findings.extend(ObjectFinding(where, int(r), str(uniques[pos]), identifier, kind) for r in rows)
    if rid_context and identifiers.rids:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        hit = np.isin(numbers, np.fromiter(identifiers.rids, dtype=float))
        for r in np.flatnonzero(hit):
            rid = int(numbers[r])
            findings.append(ObjectFinding(where, int(r), str(values.iloc[r]), f"RID {rid}", "rid"))
    return findings


def check_table_for_identifiers(table: Any, identifiers: IdentifierSet) -> list[ObjectFinding]:
    """Find the cohort's identifiers in a table: cells, column names and index.

    Detection only, whether or not the cohort is restricted; the publishing gate
    is :func:`assert_publishable`.

    Parameters
    ----------
    table : pandas.DataFrame, pandas.Series or pandas.Index
        Text cells (object, string and categorical columns), column names and
        index labels are matched with the text rules of the module doc. Numeric
        columns cannot spell a PTID and are only checked when their name says they
        hold RIDs (``RID``, ``RIDs``, ``subject_RID``...): then each value that is
        a cohort RID is reported.
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of ObjectFinding
        Column names first, then the index, then cells column by column.
    """
    if isinstance(table, pd.Index):
        table = pd.DataFrame(index=table)
    elif isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "value")
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"'table' must be a pandas DataFrame, Series or Index; got {type(table).__name__}.")
    findings: list[ObjectFinding] = []
    names = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns]
    for pos, hits in _scan_values(names, identifiers).items():
        for identifier, kind in hits:
            findings.append(ObjectFinding(f"column name {pos}", None, names[pos], identifier, kind))
    index = table.index
    for level in range(index.nlevels):
        labels = index.get_level_values(level)
        name = labels.name
        where = "index" if index.nlevels == 1 else f"index level {level}"
        if name is not None:
            where += f" {_describe(name, identifiers)}"
            for identifier, kind in _scan_values([name], identifiers).get(0) or []:
                findings.append(ObjectFinding(f"{where} name", None, str(name), identifier, kind))
        rid_context = name is not None and bool(_RID_COLUMN_RE.search(str(name)))
        findings.extend(_check_labels(labels, where, identifiers, rid_context))
    for pos, name in enumerate(names):
        column = table.iloc[:, pos]
        rid_context = bool(_RID_COLUMN_RE.search(name))
        where = f"column {_describe(name, identifiers)}"
        findings.extend(_check_labels(pd.Index(column), where, identifiers, rid_context))
    return findings


def _figure_texts(figure: Any) -> list[tuple[str, str]]:
    """``(where, text)`` of every text a matplotlib artist tree can show."""
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase
    from matplotlib.text import Text

    out: list[tuple[str, str]] = []
    seen: set[int] = set()

    def add(where: str, artist: Any) -> None:
        if artist is None or id(artist) in seen:
            return
        seen.add(id(artist))
        text = artist.get_text()
        if text:
            out.append((where, str(text)))

    axes_list: list[Any] = []
    if isinstance(figure, FigureBase):
        axes_list = list(figure.axes)
        add("figure title", getattr(figure, "_suptitle", None))
        add("figure x label", getattr(figure, "_supxlabel", None))
        add("figure y label", getattr(figure, "_supylabel", None))
        for text in figure.texts:
            add("figure text", text)
    elif isinstance(figure, Axes):
        axes_list = [figure]
    for i, ax in enumerate(axes_list):
        name = f"axes {i}"
        for title in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            if title is not None:
                add(f"{name} title", title)
        for letter in ("x", "y", "z"):
            axis = getattr(ax, f"{letter}axis", None)
            if axis is None:
                continue
            add(f"{name} {letter}-axis label", axis.label)
            for which in ("major", "minor"):
                for label in axis.get_ticklabels(which=which):  # updates the ticks first
                    add(f"{name} {letter} tick label", label)
            units = axis.get_units()
            mapping = getattr(units, "_mapping", None)
            if isinstance(mapping, Mapping):
                for category in mapping:
                    out.append((f"{name} {letter} categories", str(category)))
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                add(f"{name} legend", text)
            add(f"{name} legend title", legend.get_title())
        for text in ax.texts:
            add(f"{name} text", text)
    for artist in figure.findobj(Artist):
        if isinstance(artist, Text):
            add("text", artist)
        label = artist.get_label()
        if isinstance(label, str) and label and not label.startswith("_"):
            out.append((f"label of {type(artist).__name__}", label))
    unique: dict[str, str] = {}
    for where, text in out:  # one entry per text, under its most specific role
        unique.setdefault(text, where)
    return [(where, text) for text, where in unique.items()]


def check_figure_for_identifiers(figure: Any, identifiers: IdentifierSet) -> list[ObjectFinding]:
    """Find the cohort's identifiers in the texts of a matplotlib figure or axes.

    Detection only (see :func:`assert_publishable` for the gate). Checked: figure
    and axes titles, axis labels, tick labels (major and minor, updated first),
    categorical axis values, legend entries and title, annotations and any other
    :class:`~matplotlib.text.Text`, and artist labels not starting with ``_``
    (a legend would show them). Not checked: pixels of images drawn on the axes.

    Parameters
    ----------
    figure : matplotlib.figure.Figure, SubFigure or Axes
        The figure, before it is shown or saved.
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of ObjectFinding
    """
    texts = _figure_texts(figure)
    findings: list = []
    for pos, hits in _scan_values([t for _, t in texts], identifiers).items():
        where, value = texts[pos]
        findings.extend(ObjectFinding(where, None, value, i, k) for i, k in hits)
    return findings


def find_identifiers(obj: Any, identifiers: IdentifierSet) -> list[ObjectFinding]:
    """Find the cohort's identifiers in anything a notebook may publish.

    Parameters
    ----------
    obj : DataFrame, Series, Index, matplotlib Figure/Axes, str, os.PathLike, dict or list
        Tables: :func:`check_table_for_identifiers`; figures:
        :func:`check_figure_for_identifiers`; a string: the text rules; a path: the
        file, or every text file under a folder; a dict or list: its JSON text.
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of ObjectFinding
        Empty when nothing was found (detection runs for unrestricted cohorts too).

    Raises
    ------
    TypeError
        For any other type.
    """
    if isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        return check_table_for_identifiers(obj, identifiers)
    if "matplotlib" in sys.modules:
        from matplotlib.artist import Artist

        if isinstance(obj, Artist):
            return check_figure_for_identifiers(obj, identifiers)
    if isinstance(obj, os.PathLike):
        path = Path(obj)
        files = list_build_files(path)[0] if path.is_dir() else [path]
        return [
            ObjectFinding(f"{f.file}:{f.line}", None, f.match, f.identifier, f.kind)
            for f in scan_files(files, identifiers)
        ]
    if isinstance(obj, str):
        return [
            ObjectFinding(f"text line {f.line}", None, f.match, f.identifier, f.kind)
            for f in scan_text(obj, identifiers)
        ]
    if isinstance(obj, (Mapping, list, tuple)):
        text = json.dumps(obj, default=str, indent=1)
        return [
            ObjectFinding(f"JSON line {f.line}", None, f.context, f.identifier, f.kind)
            for f in scan_text(text, identifiers)
        ]
    raise TypeError(
        f"cannot check an object of type {type(obj).__name__} for subject identifiers; "
        f"expected a pandas DataFrame/Series/Index, a matplotlib Figure or Axes, a "
        f"string, a path, or a dict/list."
    )


def redact(text: str, identifiers: IdentifierSet | None = None) -> str:
    """``text`` with the digits of every subject identifier replaced by ``#``.

    Used for what a restricted run prints (errors, logs, reports of the scan), which
    may end up in a published log.

    Parameters
    ----------
    text : str
        Any message.
    identifiers : IdentifierSet, optional
        The cohort's identifiers: PTIDs, BIDS labels, other ID shapes and RIDs after
        the word ``RID`` are masked. Every ADNI-shaped PTID or BIDS label
        (``023_S_0031``, ``sub-ADNI023S0031``) is masked whether or not it is given.

    Returns
    -------
    str
        ``990_S_9000`` -> ``###_S_####``, ``sub-ADNI990S9000`` -> ``sub-ADNI###S####``;
        everything else unchanged.
    """
    spans = [(m.start(), m.end()) for m in _ANY_ADNI_RE.finditer(text)]
    if identifiers is not None:
        spans += [(start, end) for start, end, _, _ in identifiers._matcher.finditer(text)]
    if not spans:
        return text
    out, last = [], 0
    for start, end in sorted(spans):
        start = max(start, last)
        if end <= start:
            continue
        out += [text[last:start], _mask(text[start:end])]
        last = end
    return "".join(out) + text[last:]


def _message(what: str, identifiers: IdentifierSet, findings: list[ObjectFinding]) -> str:
    groups: dict[str, list[ObjectFinding]] = {}
    for finding in findings:
        groups.setdefault(finding.where, []).append(finding)
    parts = []
    for where, group in groups.items():
        kinds = sorted({f.kind for f in group})
        rows = sorted({f.row for f in group if f.row is not None})
        shown = f"{where}"
        if rows:
            listed = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
            shown += f", {len(rows)} row(s) ({listed})"
        example = _mask(group[0].value)
        if len(example) > 60:
            example = example[:57] + "..."
        shown += f": {'/'.join(kinds)} such as {example!r}"
        parts.append(shown)
    n_identifiers = len({f.identifier for f in findings})
    return (
        f"{what}: contains {n_identifiers} subject identifier(s) of the restricted "
        f"cohort {identifiers.cohort!r}, which must not be published: "
        + "; ".join(parts)
        + ". Drop the column/label or replace IDs by pseudonyms (e.g. 'subject 1') "
        "before publishing. Digits are masked here; the exception's .findings holds "
        "the values."
    )


def assert_publishable(obj: T, identifiers: IdentifierSet, what: str) -> T:
    """Refuse to publish an object holding identifiers of a restricted cohort.

    Parameters
    ----------
    obj : DataFrame, Series, Index, matplotlib Figure/Axes, str, os.PathLike, dict or list
        What is about to be displayed, saved or written into the book (see
        :func:`find_identifiers`).
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`. When ``identifiers.restricted`` is False
        this function checks nothing and returns ``obj``.
    what : str
        Name used in the error, e.g. ``"Table 2 (cohort summary)"``.

    Returns
    -------
    obj
        Unchanged, so that calls can be chained.

    Raises
    ------
    PrivacyError
        If the cohort is restricted and ``obj`` holds an identifier. The message
        names ``what``, the column/row or figure element and the kind of
        identifier, with digits masked (it may end up in a notebook's output);
        ``exc.findings`` holds the list of :class:`ObjectFinding`.
    TypeError
        If ``obj`` is of a type that cannot be checked (restricted cohorts only).
    """
    if not identifiers.restricted:
        return obj
    findings = find_identifiers(obj, identifiers)
    if findings:
        error = PrivacyError(_message(what, identifiers, findings))
        error.findings = findings
        raise error
    return obj
