"""The scan of a built book: every file read, with its carriers (base64, gzip, zip, image
metadata) unpacked (scope: see :mod:`rgenima.privacy`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rgenima.privacy.identifiers import IdentifierSet
from rgenima.privacy.text import Finding, scan_text

#: Suffixes of formats whose content is compressed in a way the scan does not undo
#: (fonts, PDF streams, videos, other archives): only their raw bytes are searched.
OPAQUE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".woff",
        ".woff2",
        ".eot",
        ".pdf",
        ".bz2",
        ".xz",
        ".tar",
        ".mp4",
        ".webm",
        ".nii",
        ".npy",
        ".npz",
        ".pkl",
        ".pickle",
        ".doctree",
        ".safetensors",
        ".pt",
        ".bin",
        ".inv",
    }
)
#: Kept for compatibility: every file is now read (see :func:`list_build_files`).
BINARY_SUFFIXES: frozenset[str] = OPAQUE_SUFFIXES
_MAX_DEPTH = 3  # nesting of carriers: e.g. a PNG in base64 in a notebook in a gzip
_MAX_INFLATED = 256 << 20  # bytes a gzip or zip member may expand to
_MIN_STRING = 6  # shortest printable run taken from binary data
_BASE64_RUN = re.compile(
    rb"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{4}){3,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    rb"(?![A-Za-z0-9+/=])"
)
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

    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
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
                        yield from _layers(archive.read(info), f"{prefix}zip member {info.filename!r}", line, depth + 1)
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
