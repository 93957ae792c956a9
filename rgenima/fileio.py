"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader never sees a half-written file, and a failed write leaves the previous
version (or nothing) in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (no newline translation)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def why_missing(path: str | Path) -> str:
    """Why ``path`` cannot be opened, in words that say what to fix.

    Parameters
    ----------
    path : str or pathlib.Path
        A file or folder that was expected to exist.

    Returns
    -------
    str
        ``"does not exist"``, ``"is a symbolic link loop ..."``, ``"is a broken
        symbolic link to ..."``, ``"cannot be read (permission denied) ..."`` or, when
        it does exist, ``"exists"``.
    """
    import errno

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (a link that points, directly or not, at itself); fix or remove the link"
        if os.path.islink(path):
            return f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be reached (permission denied on a folder of its path)"
        return "does not exist"
    return "exists"
