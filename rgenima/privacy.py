"""Keep subject identifiers of restricted cohorts (ADNI) out of published output.

DESIGN.md: "Published output (the book) never contains subject identifiers of
restricted data." This module gives two guards:

- **before publishing** an object (a table, a figure, a JSON-able report),
  :func:`assert_publishable` raises :class:`~rgenima.errors.PrivacyError` when the
  cohort is restricted and the object holds an identifier; it returns the object
  unchanged otherwise (and always when the cohort is not restricted), so a notebook
  can write ``display(assert_publishable(table, ids, "Table 2"))``;
- **after the build**, :func:`scan_directory` (CLI: ``rgenima check-privacy``) reads
  every text file of the built book and reports where an identifier appears.

Which identifiers (:func:`cohort_identifiers`)
----------------------------------------------
PTIDs (``PTID`` column of the clinical table, every row, excluded subjects
included), genotype IIDs (column 2 of the ``.fam``), subjects of the BIDS folder
(``sub-ADNI<site>S<number>`` folders, when ``cohort.mri`` is a BIDS root), and RIDs:
the clinical ``RID`` column plus the subject number of every ADNI-shaped PTID (in
ADNI the RID *is* that number: ``023_S_0031`` has RID 31) plus purely numeric IIDs.

How they are matched in text (case-insensitive)
-----------------------------------------------
Left and right of every match there must be no letter or digit (``_``, ``-``, ``/``,
``.``, quotes, spaces and markup are boundaries), so ``1990_S_90001`` never matches
``990_S_9000``; ``fig_990_S_9000.png`` does.

1. **ADNI-shaped PTIDs** (``<site digits>_S_<subject digits>``: ADNI uses 3 + 4
   digits, the synthetic generator 5 subject digits past 999 subjects) match in the spellings
   ``990_S_9000``, ``990-S-9000`` and ``990S9000`` (any mix of ``_``, ``-`` or
   nothing around the ``S``), and as BIDS participant labels, which
   :func:`rgenima.data.discovery.participant_id` forms as ``ADNI`` + the PTID
   without underscores: ``ADNI990S9000`` and ``sub-ADNI990S9000`` (also inside file
   names such as ``sub-ADNI990S9000_ses-M000_T1w``). A candidate of that shape is
   normalised to ``990_S_9000`` and looked up in a set, so the cost does not grow
   with the number of subjects and IDs of other cohorts are not reported.
2. **Other identifiers** (a PTID or IID of another shape) match exactly, as a
   token, as does their BIDS label ``ADNI<id without underscores>``.
3. **RIDs** are small integers (ADNI: 2 to ~10000) that collide with years,
   sample sizes, permutation counts and digits of p-values, so a bare number is
   never reported. A RID matches only right after the word ``RID`` (or ``RIDs``),
   separated by at most 12 characters of spaces, quotes, ``: = # _ -``, HTML
   entities (``&quot;``) or tags (as in highlighted JSON or a two-cell row):
   ``RID 9000``, ``RID=9000``, ``RID: 9000``, ``"RID": 9000``, ``RID_9000``,
   ``<td>RID</td><td>9000</td>``; leading zeros are ignored (``RID 0031`` is 31).
   ``9000 permutations`` and ``n = 9001`` are not reported. In a *table*
   (:func:`check_table_for_identifiers`) the column name is the context: every
   value of a column (or index) named ``RID``, ``RIDs`` or ``..._RID`` that is a
   cohort RID is reported.

Scope of the directory scan
---------------------------
Every file under the build folder is read, whatever its suffix (html, js, json,
txt, csv, svg, ipynb, map, ...), except files with a known binary suffix (images,
fonts, pdf, archives, NumPy/pickle/NIfTI) and files with a NUL byte in their first
8 KiB. Not decoded, therefore not checked: text in PNG/JPEG/PDF files and their
metadata, base64 payloads (``data:image/png;base64,...`` in html, image outputs in
``.ipynb``), identifiers split by markup (``990<b>_S_9000</b>``) or written with
HTML entities (``990&#95;S&#95;9000``), and a RID shown only under a ``RID``
column header of a rendered table (check the DataFrame with
:func:`assert_publishable` before it is displayed). Inline SVG inside html and SVG
files are text and are checked.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import numpy as np
import pandas as pd

from rgenima.errors import DataContractError, PrivacyError

__all__ = [
    "BINARY_SUFFIXES",
    "Finding",
    "IdentifierSet",
    "ObjectFinding",
    "assert_publishable",
    "check_figure_for_identifiers",
    "check_table_for_identifiers",
    "cohort_identifiers",
    "find_identifiers",
    "list_build_files",
    "scan_directory",
    "scan_files",
    "scan_text",
]

#: File suffixes never read by the directory scan (their text is not plain).
BINARY_SUFFIXES: frozenset[str] = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".tif", ".tiff",
        ".woff", ".woff2", ".ttf", ".otf", ".eot", ".pdf", ".zip", ".gz", ".bz2",
        ".xz", ".tar", ".nii", ".npy", ".npz", ".pkl", ".pickle", ".doctree",
        ".safetensors", ".pt", ".bin", ".mp4", ".webm", ".inv",
    }
)
_SNIFF_BYTES = 8192
_CONTEXT_CHARS = 40

_L = r"(?<![A-Za-z0-9])"  # no letter or digit before
_R = r"(?![A-Za-z0-9])"  # no letter or digit after
_ADNI_PTID_RE = re.compile(r"^(\d{1,6})_S_(\d{1,8})$", re.IGNORECASE)
_ADNI_BRANCH = (
    _L + r"(?P<bids>(?:sub-)?ADNI[_-]?)?(?P<site>\d{1,6})[_-]?S[_-]?(?P<num>\d{1,8})" + _R
)
_RID_SEPARATOR = (
    r"(?:[\s\"'`:=#_\-]|&[A-Za-z]{2,8};|&\#[xX]?[0-9A-Fa-f]{1,6};|<[^<>]{0,80}>)"
)
_RID_BRANCH = _L + r"RIDs?" + _RID_SEPARATOR + r"{0,12}(?P<rid>\d{1,9})(?![0-9])"
_RID_COLUMN_RE = re.compile(r"(?<![A-Za-z0-9])RIDs?(?![A-Za-z0-9])", re.IGNORECASE)

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Identifiers


@dataclass(frozen=True)
class IdentifierSet:
    """The subject identifiers of one cohort, and whether they may be published.

    Its ``repr`` shows counts only, so displaying it in a notebook leaks nothing.

    Attributes
    ----------
    ptids : frozenset of str
        PTIDs and other string IDs (genotype IIDs, BIDS subjects as PTIDs), e.g.
        ``"023_S_0031"``. Purely numeric strings are treated as RIDs.
    rids : frozenset of int
        RIDs (matched in text only after the word ``RID``; see the module doc).
    restricted : bool
        True when published output must not contain these identifiers.
    cohort : str
        Cohort name, used in messages.
    """

    ptids: frozenset[str] = field(default_factory=frozenset)
    rids: frozenset[int] = field(default_factory=frozenset)
    restricted: bool = True
    cohort: str = ""

    def __post_init__(self) -> None:
        ptids = frozenset(str(p).strip() for p in self.ptids if str(p).strip())
        rids = {int(r) for r in self.rids}
        rids.update(int(p) for p in ptids if p.isdigit())
        object.__setattr__(self, "ptids", ptids)
        object.__setattr__(self, "rids", frozenset(rids))

    def __repr__(self) -> str:
        return (
            f"IdentifierSet(cohort={self.cohort!r}, restricted={self.restricted}, "
            f"{len(self.ptids)} PTIDs/IIDs, {len(self.rids)} RIDs)"
        )

    def __len__(self) -> int:
        return len(self.ptids) + len(self.rids)

    @cached_property
    def _matcher(self) -> _Matcher:
        return _Matcher(self)


def cohort_identifiers(manifest: Any) -> IdentifierSet:
    """Collect the subject identifiers of a manifest's cohort.

    Parameters
    ----------
    manifest : rgenima.data.manifest.Manifest or str or pathlib.Path
        A loaded manifest, or the path of one.

    Returns
    -------
    IdentifierSet
        PTIDs of every clinical row, ``.fam`` IIDs and BIDS subjects (when
        ``cohort.mri`` is a BIDS root that exists); RIDs from the ``RID`` column,
        from the subject number of ADNI-shaped PTIDs (``023_S_0031`` -> 31) and
        from numeric IIDs. ``restricted`` and ``cohort`` come from the manifest.

    Raises
    ------
    DataContractError
        If the clinical table or the ``.fam`` file is missing or unreadable, or the
        clinical table has no ``PTID`` column: without them the check would be
        silently incomplete.
    """
    from rgenima.data.clinical import resolve_clinical_path
    from rgenima.data.manifest import Manifest, load_manifest
    from rgenima.data.plink import read_fam_iids

    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    cohort = manifest.cohort

    path = resolve_clinical_path(cohort.clinical)
    wanted = {"PTID", "RID"}
    try:
        table = pd.read_csv(
            path,
            usecols=lambda c: str(c).strip().upper() in wanted,
            dtype=str,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataContractError(
            f"{path}: cannot read the clinical table as CSV to collect subject "
            f"identifiers ({type(exc).__name__}: {exc})."
        ) from None
    table.columns = [str(c).strip().upper() for c in table.columns]
    if "PTID" not in table.columns:
        raise DataContractError(
            f"{path}: no 'PTID' column; cannot collect the subject identifiers "
            f"to keep out of published output."
        )
    ptids = _column_strings(table, "PTID")
    rids: set[int] = set()
    if "RID" in table.columns:
        numbers = pd.to_numeric(pd.Series(sorted(_column_strings(table, "RID"))), errors="coerce")
        rids.update(int(x) for x in numbers.dropna() if float(x).is_integer() and x >= 0)

    ptids.update(s for s in (i.strip() for i in read_fam_iids(cohort.genotypes)) if s)

    if cohort.mri.mode == "bids" and cohort.mri.bids_root.is_dir():
        from rgenima.data.discovery import ptid_from_participant

        for entry in cohort.mri.bids_root.iterdir():
            if entry.is_dir() and entry.name.startswith("sub-"):
                try:
                    ptids.add(ptid_from_participant(entry.name))
                except DataContractError:
                    pass  # not an ADNI label: its folder name is not a PTID

    for ptid in ptids:
        match = _ADNI_PTID_RE.match(ptid)
        if match:
            rids.add(int(match.group(2)))
    return IdentifierSet(
        ptids=frozenset(ptids),
        rids=frozenset(rids),
        restricted=cohort.restricted,
        cohort=cohort.name,
    )


def _column_strings(table: pd.DataFrame, name: str) -> set[str]:
    columns = table.loc[:, [c == name for c in table.columns]]
    values = pd.unique(columns.to_numpy().ravel())
    return {str(v).strip() for v in values if str(v).strip()}


# ---------------------------------------------------------------------------
# Matching


def _trie_pattern(words: Iterable[str]) -> str:
    """Regex matching exactly ``words``, as a prefix tree (fast for thousands of words)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict) -> str:
        branches = [re.escape(c) + render(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(trie)


class _Matcher:
    """One compiled regex plus set look-ups (see the module doc for the rules)."""

    def __init__(self, ids: IdentifierSet) -> None:
        self.adni: dict[str, str] = {}
        others: dict[str, str] = {}
        for ptid in sorted(ids.ptids):
            match = _ADNI_PTID_RE.match(ptid)
            if match:
                self.adni[f"{match.group(1)}_S_{match.group(2)}"] = ptid
            elif not ptid.isdigit():
                others[ptid.lower()] = ptid
                label = "ADNI" + ptid.replace("_", "")
                if label.isalnum():
                    others.setdefault(label.lower(), ptid)
                    others.setdefault("sub-" + label.lower(), ptid)
        self.others = others
        self.rids = ids.rids
        branches = []
        if others:
            branches.append(_L + f"(?P<other>{_trie_pattern(others)})" + _R)
        branches += [_ADNI_BRANCH, _RID_BRANCH]
        self.regex = re.compile("|".join(branches), re.IGNORECASE)

    def finditer(self, text: str) -> Iterator[tuple[int, int, str, str]]:
        """Yield ``(start, end, identifier, kind)`` for each cohort identifier."""
        for m in self.regex.finditer(text):
            if m.group("site") is not None:
                ptid = self.adni.get(f"{m.group('site')}_S_{m.group('num')}")
                if ptid is None:
                    continue
                yield m.start(), m.end(), ptid, "bids" if m.group("bids") else "ptid"
            elif m.group("rid") is not None:
                rid = int(m.group("rid"))
                if rid in self.rids:
                    yield m.start(), m.end(), f"RID {rid}", "rid"
            else:
                other = m.group("other")
                ptid = self.others[other.lower()]
                kind = "bids" if other.lower() != ptid.lower() else "id"
                yield m.start(), m.end(), ptid, kind


@dataclass(frozen=True)
class Finding:
    """One identifier found in a text file.

    Attributes
    ----------
    file : pathlib.Path
        The file (the scanned folder joined with its relative path).
    line : int
        1-based line of the start of the match.
    identifier : str
        The subject it identifies: the PTID as in the cohort (``"990_S_9000"``,
        also for a BIDS label) or ``"RID 9000"``.
    match : str
        The text as it appears in the file (``"sub-ADNI990S9000"``).
    kind : str
        ``"ptid"``, ``"bids"``, ``"rid"`` or ``"id"`` (an identifier of another shape).
    context : str
        Up to 40 characters either side of the match, on the same line.
    """

    file: Path
    line: int
    identifier: str
    match: str
    kind: str
    context: str

    def __str__(self) -> str:
        shown = self.identifier
        if self.match != self.identifier:
            shown += f" (as {self.match!r})"
        return f"{self.file}:{self.line}: {shown}"


def scan_text(text: str, identifiers: IdentifierSet, *, file: str | Path = "<text>") -> list[Finding]:
    """Find the cohort's identifiers in a string.

    Parameters
    ----------
    text : str
        Any text (a whole file is fine).
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.
    file : str or pathlib.Path, default="<text>"
        Recorded in each :class:`Finding`.

    Returns
    -------
    list of Finding
        In text order.
    """
    findings = []
    line, last = 1, 0
    for start, end, identifier, kind in identifiers._matcher.finditer(text):
        line += text.count("\n", last, start)
        last = start
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        if line_end < 0:
            line_end = len(text)
        context = text[max(line_start, start - _CONTEXT_CHARS):min(line_end, end + _CONTEXT_CHARS)]
        findings.append(
            Finding(
                file=Path(file),
                line=line,
                identifier=identifier,
                match=text[start:end],
                kind=kind,
                context=" ".join(context.split()),
            )
        )
    return findings


# ---------------------------------------------------------------------------
# Built book


def list_build_files(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Split the files under a folder into those the scan reads and those it cannot.

    Parameters
    ----------
    root : str or pathlib.Path
        A built book (``_build/html``) or any folder.

    Returns
    -------
    text_files : list of pathlib.Path
        Files read by :func:`scan_directory`, sorted.
    skipped : list of pathlib.Path
        Files with a suffix in :data:`BINARY_SUFFIXES` or a NUL byte in their
        first 8 KiB (images, fonts, ...), sorted.

    Raises
    ------
    NotADirectoryError
        If ``root`` is not an existing folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (expected a built book, e.g. _build/html).")
    text_files, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in BINARY_SUFFIXES:
            skipped.append(path)
            continue
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        (skipped if b"\0" in head else text_files).append(path)
    return text_files, skipped


def scan_files(paths: Iterable[str | Path], identifiers: IdentifierSet) -> list[Finding]:
    """Find the cohort's identifiers in text files (decoded as UTF-8, bad bytes replaced).

    Parameters
    ----------
    paths : iterable of str or pathlib.Path
        The files; no binary check is made here (see :func:`list_build_files`).
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of Finding
        Grouped by file, in the order given, then by position.
    """
    findings = []
    for path in paths:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
        findings.extend(scan_text(text, identifiers, file=path))
    return findings


def scan_directory(html_dir: str | Path, identifiers: IdentifierSet) -> list[Finding]:
    """Find the cohort's identifiers in every text file of a built book.

    Runs whether or not the cohort is restricted (the caller decides what a finding
    means). Scope and matching rules: see the module doc.

    Parameters
    ----------
    html_dir : str or pathlib.Path
        The built book (``_build/html``, or ``_build`` to include executed
        notebooks), read recursively.
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of Finding
        Sorted by file path, then position; empty when the book is clean.

    Raises
    ------
    NotADirectoryError
        If ``html_dir`` is not an existing folder.
    """
    text_files, _ = list_build_files(html_dir)
    return scan_files(text_files, identifiers)


# ---------------------------------------------------------------------------
# Objects before publishing


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


def _scan_values(
    values: Iterable[Any], identifiers: IdentifierSet
) -> dict[int, list[tuple[str, str]]]:
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


def _check_labels(
    labels: pd.Index, where: str, identifiers: IdentifierSet, rid_context: bool
) -> list[ObjectFinding]:
    """Text and (when ``rid_context``) RID checks of one column or index level."""
    findings = []
    is_text = labels.dtype == object or isinstance(
        labels.dtype, (pd.CategoricalDtype, pd.StringDtype)
    )
    values = pd.Series(np.asarray(labels, dtype=object))
    if is_text:
        as_text = values.map(lambda v: "" if v is None or v is pd.NA else str(v))
        uniques = pd.unique(as_text.to_numpy())
        for pos, hits in _scan_values(uniques, identifiers).items():
            rows = np.flatnonzero(as_text.to_numpy() == uniques[pos])
            for identifier, kind in hits:
                findings.extend(
                    ObjectFinding(where, int(r), str(uniques[pos]), identifier, kind)
                    for r in rows
                )
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
        raise TypeError(
            f"'table' must be a pandas DataFrame, Series or Index; got {type(table).__name__}."
        )
    findings: list[ObjectFinding] = []
    names = [
        " ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns
    ]
    for pos, hits in _scan_values(names, identifiers).items():
        for identifier, kind in hits:
            findings.append(
                ObjectFinding(f"column name {pos}", None, names[pos], identifier, kind)
            )
    index = table.index
    for level in range(index.nlevels):
        labels = index.get_level_values(level)
        name = labels.name
        where = "index" if index.nlevels == 1 else f"index level {level}"
        if name is not None:
            where += f" {_describe(name, identifiers)}"
            for identifier, kind in (_scan_values([name], identifiers).get(0) or []):
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
    findings = []
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


def _mask(text: str) -> str:
    """Hide the characters of an identifier but keep its shape (990_S_9000 -> ###_S_####)."""
    return re.sub(r"[0-9]", "#", text)


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
