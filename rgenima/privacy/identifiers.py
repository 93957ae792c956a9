"""The subject identifiers of a cohort (:class:`IdentifierSet`, :func:`cohort_identifiers`) and
the compiled matcher that finds them in text (rules: see :mod:`rgenima.privacy`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from rgenima.errors import DataContractError

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
    _L
    + r"(?P<bids>(?:sub-)?ADNI[_-]?)?(?P<site>\d{1,6})"
    + _PTID_SEPARATOR
    + r"{0,3}S"
    + _PTID_SEPARATOR
    + r"{0,3}(?P<num>\d{1,8})"
    + _R
)
# Any ADNI-shaped PTID or BIDS label (3 site digits, 4-5 subject digits), cohort or not:
# masked in messages of restricted runs even when the cohort's list is not at hand.
_ANY_ADNI_RE = re.compile(
    _L + r"(?:(?:sub-)?ADNI[_-]?)?\d{3}" + _PTID_SEPARATOR + r"{0,3}S" + _PTID_SEPARATOR + r"{0,3}\d{4,5}" + _R,
    re.IGNORECASE,
)
_RID_SEPARATOR = r"(?:[\s\"'`:=#_\-]|&[A-Za-z]{2,8};|&\#[xX]?[0-9A-Fa-f]{1,6};|<[^<>]{0,80}>)"
_RID_BRANCH = _L + r"RIDs?" + _RID_SEPARATOR + r"{0,12}(?P<rid>\d{1,9})(?![0-9])"
_RID_COLUMN_RE = re.compile(r"(?<![A-Za-z0-9])RIDs?(?![A-Za-z0-9])", re.IGNORECASE)


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
            f"{path}: no 'PTID' column; cannot collect the subject identifiers to keep out of published output."
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


def _mask(text: str) -> str:
    """Hide the characters of an identifier but keep its shape (990_S_9000 -> ###_S_####)."""
    return re.sub(r"[0-9]", "#", text)
