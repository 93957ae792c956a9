"""Checks of single manifest fields and the wording of their error messages.

The parsers here need no spec class: file paths, numbers in a range, the keys of a
mapping and the ``checksums`` table. Each raises :class:`~rgenima.errors.ManifestError`
naming the manifest (``label``) and the field; :mod:`rgenima.data.manifest` builds its
specs from them.
"""

from __future__ import annotations

import difflib
import math
import os.path
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rgenima.errors import ManifestError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _parse_checksums(raw: Any, *, label: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{label}: field 'checksums' must be a mapping of relative path to sha256 hex digest; got {raw!r}."
        )
    out: dict[str, str] = {}
    for rel, digest in raw.items():
        if not isinstance(rel, str) or not rel.strip():
            raise ManifestError(f"{label}: field 'checksums' has a key that is not a file path: {rel!r}.")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest.strip().lower()):
            raise ManifestError(
                f"{label}: field 'checksums.{rel}' must be a sha256 hex digest "
                f"(64 hexadecimal characters); got {digest!r}."
            )
        out[rel] = digest.strip().lower()
    return out


# ---------------------------------------------------------------------------
# Field helpers


def _check_keys(raw: Mapping, allowed: tuple[str, ...], required: tuple[str, ...], *, where: str, label: str) -> None:
    prefix = f"{where}." if where else ""
    for key in raw:
        if key not in allowed:
            scope = f"in '{where}'" if where else "at the top level"
            raise ManifestError(
                f"{label}: unknown field '{prefix}{key}' {scope}; "
                f"allowed: {_fmt_keys(allowed)}." + _did_you_mean(str(key), allowed)
            )
    for key in required:
        if raw.get(key) is None:
            raise ManifestError(f"{label}: missing required field '{prefix}{key}'.")


def _path_field(value: Any, name: str, *, root: Path, label: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{label}: field '{name}' must be a file path (string); got {value!r}.")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = root / path
    # Collapse "a/../b" without touching the file system (the file may not exist).
    return Path(os.path.normpath(path))


def _number_field(value: Any, name: str, low: float, high: float, *, label: str) -> float:
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        # PyYAML reads "1e-6" (no dot) as a string: accept numeric strings.
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise ManifestError(
            f"{label}: field '{name}' must be a number in [{_fmt_num(low)}, {_fmt_num(high)}]; got {value!r}."
        )
    return number


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _fmt_keys(keys) -> str:
    return ", ".join(f"'{k}'" for k in keys)


def _did_you_mean(value: str, options) -> str:
    match = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
