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
   ``990_S_9000``, ``990-S-9000``, ``990S9000``, ``990 S 9000``, ``990.S.9000``
   (up to three of ``_``, ``-``, ``.``, white space, or an underscore or space
   escaped as ``%5F``, ``%20``, ``&#95;``, ``&#x5F;``, ``&lowbar;``, ``&nbsp;`` or
   ``\u005f``, around the ``S``), with or without zero padding (``990_S_09000``),
   and as BIDS participant labels, which
   :func:`rgenima.data.discovery.participant_id` forms as ``ADNI`` + the PTID
   without underscores: ``ADNI990S9000`` and ``sub-ADNI990S9000`` (also inside file
   names such as ``sub-ADNI990S9000_ses-M000_T1w``). A candidate of that shape is
   normalised to ``990_S_9000`` (site and number as integers) and looked up in a set, so the cost does not grow
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
Every file under the build folder is read (:func:`scan_files`), whatever its name:

- text in UTF-8, UTF-16 or UTF-32, with or without a byte-order mark (HTML, JSON,
  SVG, CSV, JavaScript, executed notebooks, ``_sources``...);
- the same text with URL escapes (``%5F``), HTML entities (``&#95;``) and JSON
  escapes (``\u005f``) undone, with markup removed (``990<b>_S_9000</b>``), and,
  for JSON and notebooks, as decoded string values;
- base64 payloads found in any text (``data:`` URIs, notebook image outputs, small
  encoded strings such as ``OTkwX1NfOTAwMA==``), decoded and read again;
- gzip files and zip archives, unpacked;
- images: PNG text chunks (``tEXt``, ``zTXt``, ``iTXt``), EXIF, JPEG/GIF comments
  and other metadata Pillow reads; then the printable strings of any binary file.

Not seen, therefore not checked: **text drawn into the pixels of an image** (a tick
label rendered into a PNG, a screenshot), content inside formats whose compression
is not undone (fonts, PDF streams, videos: :data:`OPAQUE_SUFFIXES`, of which only the
raw strings are searched), identifiers spelled out differently (e.g. with the
digits written as words, or split over two table cells), and a RID shown only under
a ``RID`` column header of a rendered table. Pixels are covered by the gate before
publication instead: :func:`assert_publishable` checks every text a matplotlib
figure draws (titles, tick labels, legends, annotations) before it is shown, and a
restricted cohort's book never shows subject images.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import numpy as np
import pandas as pd

from rgenima.errors import DataContractError, PrivacyError

__all__ = [
    "BINARY_SUFFIXES",
    "OPAQUE_SUFFIXES",
    "Finding",
    "IdentifierSet",
    "ObjectFinding",
    "assert_publishable",
    "check_figure_for_identifiers",
    "check_table_for_identifiers",
    "cohort_identifiers",
    "find_identifiers",
    "list_build_files",
    "redact",
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
# Between the parts of a PTID: "_", "-", ".", white space, or an escaped underscore or
# space (URL %5F/%20, HTML &#95; &#x5F; &lowbar; &nbsp;, JSON \u005f), up to 3 of them.
_PTID_SEPARATOR = (
    r"(?:[\s_.\-]|%5[Ff]|%20|&\#0*95;|&\#[xX]0*5[Ff];|&lowbar;|&UnderBar;|&nbsp;|&\#0*32;"
    r"|\\u005[fF]|\\u0020)"
)
_ADNI_BRANCH = (
    _L + r"(?P<bids>(?:sub-)?ADNI[_-]?)?(?P<site>\d{1,6})" + _PTID_SEPARATOR + r"{0,3}S"
    + _PTID_SEPARATOR + r"{0,3}(?P<num>\d{1,8})" + _R
)
# Any ADNI-shaped PTID or BIDS label (3 site digits, 4-5 subject digits), cohort or not:
# masked in messages of restricted runs even when the cohort's list is not at hand.
_ANY_ADNI_RE = re.compile(
    _L + r"(?:(?:sub-)?ADNI[_-]?)?\d{3}" + _PTID_SEPARATOR + r"{0,3}S" + _PTID_SEPARATOR
    + r"{0,3}\d{4,5}" + _R,
    re.IGNORECASE,
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


def _ptid_key(site: str, number: str) -> str:
    """``990_S_9000`` for ``("990", "9000")``, ``("0990", "09000")``...: zero padding ignored."""
    return f"{int(site)}_S_{int(number)}"


class _Matcher:
    """One compiled regex plus set look-ups (see the module doc for the rules)."""

    def __init__(self, ids: IdentifierSet) -> None:
        self.adni: dict[str, str] = {}
        others: dict[str, str] = {}
        for ptid in sorted(ids.ptids):
            match = _ADNI_PTID_RE.match(ptid)
            if match:
                self.adni[_ptid_key(match.group(1), match.group(2))] = ptid
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
                ptid = self.adni.get(_ptid_key(m.group("site"), m.group("num")))
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
    layer : str
        Where in the file, when not in its plain text: e.g. ``"PNG text chunk
        'Comment'"``, ``"gzip content"``, ``"base64 payload"``, ``"HTML-unescaped
        text"``; empty for the plain text. ``line`` is then the line of the carrier.
    """

    file: Path
    line: int
    identifier: str
    match: str
    kind: str
    context: str
    layer: str = ""

    def __str__(self) -> str:
        shown = self.identifier
        if self.match != self.identifier:
            shown += f" (as {self.match!r})"
        where = f" [{self.layer}]" if self.layer else ""
        return f"{self.file}:{self.line}: {shown}{where}"

    def masked(self) -> str:
        """As ``str(self)`` with the identifier's digits replaced by ``#`` (safe to print)."""
        shown = _mask(self.identifier)
        if self.match != self.identifier:
            shown += f" (as {_mask(self.match)!r})"
        where = f" [{self.layer}]" if self.layer else ""
        return f"{self.file}:{self.line}: {shown}{where}"


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


#: Suffixes of formats whose content is compressed in a way the scan does not undo
#: (fonts, PDF streams, videos, other archives): only their raw bytes are searched.
OPAQUE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".woff", ".woff2", ".eot", ".pdf", ".bz2", ".xz", ".tar", ".mp4", ".webm", ".nii",
        ".npy", ".npz", ".pkl", ".pickle", ".doctree", ".safetensors", ".pt", ".bin", ".inv",
    }
)
#: Kept for compatibility: every file is now read (see :func:`list_build_files`).
BINARY_SUFFIXES: frozenset[str] = OPAQUE_SUFFIXES
_MAX_DEPTH = 3  # nesting of carriers: e.g. a PNG in base64 in a notebook in a gzip
_MAX_INFLATED = 256 << 20  # bytes a gzip or zip member may expand to
_MIN_STRING = 6  # shortest printable run taken from binary data
_BASE64_RUN = re.compile(rb"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{4}){3,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
                         rb"(?![A-Za-z0-9+/=])")
_DATA_URI = re.compile(rb"data:[^,;\s\"'<>]{0,80}(?:;[^,;\s\"'<>]{0,80})*;base64,([A-Za-z0-9+/=\s]+)")
_ASCII_RUN = re.compile(rb"[\x20-\x7e\t]{%d,}" % _MIN_STRING)
_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){%d,}" % _MIN_STRING)
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")
_TAG = re.compile(r"<[^<>]{0,500}>")
_ENTITY_OR_ESCAPE = re.compile(r"&[#A-Za-z0-9]{2,10};|%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class _Layer:
    """A text read out of a file: its plain text, or text carried inside it."""

    text: str
    where: str  # "" for the file's own text
    line: int  # line of the carrier in the file (1 for the whole file)
    exact_lines: bool  # whether lines inside ``text`` are lines of the file


def list_build_files(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Every file under a folder, and those the scan can read only partly.

    Parameters
    ----------
    root : str or pathlib.Path
        A built book (``_build/html``, or ``_build`` to include the executed
        notebooks and ``_sources``) or any folder.

    Returns
    -------
    files : list of pathlib.Path
        Every regular file, sorted: all are read by :func:`scan_files`.
    partial : list of pathlib.Path
        Files in a format whose compressed content is not decoded
        (:data:`OPAQUE_SUFFIXES`: fonts, PDF, videos, ...); only the strings in
        their raw bytes are searched.

    Raises
    ------
    NotADirectoryError
        If ``root`` is not an existing folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (expected a built book, e.g. _build/html).")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    partial = [p for p in files if p.suffix.lower() in OPAQUE_SUFFIXES]
    return files, partial


def _decode_text(data: bytes) -> str | None:
    """Text of ``data`` if it is text in UTF-8/16/32 (BOM or NUL pattern), else None."""
    import codecs

    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    head = data[:4096]
    if b"\0" not in head:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        return text if bad <= max(8, len(text) // 100) else None
    n = len(head) - len(head) % 4
    if n >= 8:
        zeros = [head[k:n:4].count(0) / (n // 4) for k in range(4)]
        if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9:
            return data.decode("utf-32-le", errors="replace")
        if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9:
            return data.decode("utf-32-be", errors="replace")
        if zeros[1] > 0.9 and zeros[3] > 0.9:
            return data.decode("utf-16-le", errors="replace")
        if zeros[0] > 0.9 and zeros[2] > 0.9:
            return data.decode("utf-16-be", errors="replace")
    return None


def _binary_strings(data: bytes) -> str:
    """Printable ASCII and UTF-16LE runs of binary data, one per line (like ``strings``)."""
    runs = [m.group().decode("ascii") for m in _ASCII_RUN.finditer(data)]
    runs += [m.group().decode("utf-16-le") for m in _UTF16_RUN.finditer(data)]
    return "\n".join(runs)


def _image_texts(data: bytes) -> list[tuple[str, str]]:
    """``(chunk name, text)`` of an image's metadata: PNG text chunks, EXIF, comments, XMP."""
    import io

    from PIL import Image

    out = []
    try:
        with Image.open(io.BytesIO(data)) as image:
            texts = dict(getattr(image, "text", {}) or {})  # PNG tEXt/zTXt/iTXt (loads if needed)
            for key, value in texts.items():
                out.append((f"text chunk {key!r}", str(value)))
            for key, value in image.info.items():
                if key in texts:
                    continue
                if isinstance(value, bytes):
                    value = value.decode("utf-8", errors="replace") + "\n" + _binary_strings(value)
                out.append((f"metadata {key!r}", str(value)))
            try:
                exif = image.getexif()
            except Exception:  # noqa: BLE001 - a damaged EXIF block is not an error here
                exif = {}
            for tag, value in dict(exif).items():
                if isinstance(value, bytes):
                    value = value.decode("utf-8", errors="replace")
                out.append((f"EXIF tag {tag}", str(value)))
    except Exception:  # noqa: BLE001 - not an image Pillow can open: raw strings still searched
        pass
    return out


def _inflate_gzip(data: bytes) -> bytes | None:
    import gzip
    import zlib

    try:
        inflater = zlib.decompressobj(wbits=31)
        content = inflater.decompress(data, _MAX_INFLATED)
        while inflater.eof and inflater.unused_data.startswith(b"\x1f\x8b"):  # concatenated members
            rest = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
            content += inflater.decompress(rest, _MAX_INFLATED)
        return content
    except (zlib.error, gzip.BadGzipFile, EOFError):
        return None


def _layers(data: bytes, where: str = "", line: int = 1, depth: int = 0) -> Iterator[_Layer]:
    """Every text a file (or a payload inside it) holds, decoded: see the module doc."""
    import zipfile

    if depth > _MAX_DEPTH:
        return
    prefix = f"{where} > " if where else ""
    if data[:2] == b"\x1f\x8b":
        content = _inflate_gzip(data)
        if content is not None:
            yield from _layers(content, prefix + "gzip content", line, depth + 1)
            return
    if data[:4] == b"PK\x03\x04":
        import io

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if info.file_size <= _MAX_INFLATED and not info.is_dir():
                        yield from _layers(archive.read(info), f"{prefix}zip member {info.filename!r}",
                                           line, depth + 1)
            return
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
            pass
    text = _decode_text(data)
    if text is None:
        images = data.startswith(_IMAGE_MAGIC) or data[8:12] == b"WEBP"
        for name, value in _image_texts(data) if images else ():
            yield _Layer(value, f"{prefix}{name}", line, False)
        yield _Layer(_binary_strings(data), f"{prefix}strings of binary data", line, False)
        return
    yield _Layer(text, where, line, not where or where.endswith("gzip content"))
    yield from _text_variants(text, where, line)
    yield from _payloads(text, prefix, line, depth)


def _text_variants(text: str, where: str, line: int) -> Iterator[_Layer]:
    """The text with escapes undone and markup removed (identifiers written around them)."""
    import html
    import urllib.parse

    prefix = f"{where} > " if where else ""
    if "<" in text and ">" in text:
        stripped = _strip_markup(text)
        if stripped != text:
            yield _Layer(stripped, prefix + "text without markup", line, not where)
    if _ENTITY_OR_ESCAPE.search(text):
        unescaped = html.unescape(urllib.parse.unquote(text))
        unescaped = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), unescaped)
        if unescaped != text:
            yield _Layer(unescaped, prefix + "text with URL/HTML/JSON escapes undone", line, not where)
            if "<" in unescaped:
                yield _Layer(_strip_markup(unescaped), prefix + "unescaped text without markup", line, not where)
    if text.lstrip()[:1] in ("{", "["):
        try:
            strings = list(_json_strings(json.loads(text)))
        except (ValueError, RecursionError):
            strings = []
        if strings:
            yield _Layer("\n".join(strings), prefix + "JSON string values", line, False)


def _strip_markup(text: str) -> str:
    """``text`` without tags; a tag spanning lines leaves its line breaks, so line numbers hold."""
    return _TAG.sub(lambda m: "\n" * m.group().count("\n"), text)


def _json_strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield str(key)
            yield from _json_strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _json_strings(value)


def _payloads(text: str, prefix: str, line: int, depth: int) -> Iterator[_Layer]:
    """Base64 payloads in a text (data URIs, notebook images, small encoded strings), decoded."""
    import base64
    import binascii

    raw = text.encode("utf-8", errors="replace")
    seen: set[tuple[int, int]] = set()
    candidates = [(m.start(1), re.sub(rb"\s", b"", m.group(1))) for m in _DATA_URI.finditer(raw)]
    # Notebook outputs wrap base64 images over lines ("iVBOR...\n"): join such blocks.
    candidates += [(m.start(), m.group()) for m in _BASE64_RUN.finditer(raw)]
    for start, chunk in candidates:
        key = (start, len(chunk))
        if key in seen or len(chunk) < 12:
            continue
        seen.add(key)
        chunk = chunk[: len(chunk) - len(chunk) % 4]
        try:
            payload = base64.b64decode(chunk, validate=False)
        except (binascii.Error, ValueError):
            continue
        if not payload:
            continue
        at = line + raw.count(b"\n", 0, start)
        yield from _layers(payload, f"{prefix}base64 payload", at, depth + 1)


def scan_files(paths: Iterable[str | Path], identifiers: IdentifierSet) -> list[Finding]:
    """Find the cohort's identifiers in files, whatever their format.

    Each file is read as text when it is UTF-8, UTF-16 or UTF-32 (with or without a
    byte-order mark); gzip and zip content is unpacked; images give their metadata
    (PNG text chunks, EXIF, comments); any other binary gives its printable strings.
    Every text is also searched with URL, HTML and JSON escapes undone, with markup
    removed, as JSON string values, and for base64 payloads (data URIs, notebook
    images, small encoded strings), which are decoded and read the same way.

    Parameters
    ----------
    paths : iterable of str or pathlib.Path
        The files.
    identifiers : IdentifierSet
        From :func:`cohort_identifiers`.

    Returns
    -------
    list of Finding
        Grouped by file, in the order given, then by position; one finding per
        identifier and line even when several decodings show it.
    """
    findings = []
    for path in paths:
        seen: set[tuple[str, int]] = set()
        found_here: list[Finding] = []
        for layer in _layers(Path(path).read_bytes()):
            for found in scan_text(layer.text, identifiers, file=path):
                line = layer.line + found.line - 1 if layer.exact_lines else layer.line
                if (found.identifier, line) in seen:
                    continue
                seen.add((found.identifier, line))
                found_here.append(replace(found, line=line, layer=layer.where))
        findings.extend(sorted(found_here, key=lambda f: f.line))
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
