"""sha256 digests of files (data fingerprints, notebook and manifest hashes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path : str or pathlib.Path
        File to hash.
    chunk_size : int, default=1 MiB
        Bytes read at a time (memory use does not grow with the file).

    Returns
    -------
    str
        64 lowercase hexadecimal characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
