"""Identifiers found in a text: :class:`Finding` and :func:`scan_text`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rgenima.privacy.identifiers import IdentifierSet, _mask

_CONTEXT_CHARS = 40


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
        context = text[max(line_start, start - _CONTEXT_CHARS) : min(line_end, end + _CONTEXT_CHARS)]
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
