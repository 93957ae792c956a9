"""Header-level checks of a PLINK 1 binary fileset (``.bed``/``.bim``/``.fam``).

Nothing here decodes genotypes: the checks read the ``.fam`` and ``.bim`` text files
and the first three bytes and the size of the ``.bed``, which is enough to catch a
truncated download or a ``.bim``/``.fam`` that belongs to another ``.bed``. Genotype
QC lives in the genetics step.

``.bed`` layout (PLINK 1.9 docs, "bed"): magic bytes ``0x6c 0x1b``, a mode byte
(``0x01`` = SNP-major), then for each SNP ``ceil(n_samples / 4)`` bytes.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import NamedTuple

from rgenima.errors import DataContractError

__all__ = [
    "BED_MAGIC",
    "PlinkShape",
    "check_plink_fileset",
    "expected_bed_size",
    "plink_paths",
    "read_fam_iids",
]

#: First two bytes of every PLINK 1 ``.bed`` file.
BED_MAGIC = b"\x6c\x1b"
_SNP_MAJOR = 0x01
_INT_RE = re.compile(r"^-?\d+$")


class PlinkShape(NamedTuple):
    """Size of a PLINK fileset.

    Attributes
    ----------
    n_samples : int
        Lines of the ``.fam`` (samples).
    n_snps : int
        Lines of the ``.bim`` (variants).
    """

    n_samples: int
    n_snps: int


def plink_paths(prefix: str | Path) -> dict[str, Path]:
    """The three files of a PLINK prefix.

    Parameters
    ----------
    prefix : str or pathlib.Path
        Path without extension (``/data/adni/ADNI_cohort``); a trailing ``.bed``,
        ``.bim`` or ``.fam`` is removed.

    Returns
    -------
    dict
        ``{"bed": Path, "bim": Path, "fam": Path}``.
    """
    text = str(prefix)
    for ext in (".bed", ".bim", ".fam"):
        if text.endswith(ext):
            text = text[: -len(ext)]
            break
    return {ext: Path(f"{text}.{ext}") for ext in ("bed", "bim", "fam")}


def expected_bed_size(n_samples: int, n_snps: int) -> int:
    """Bytes of a SNP-major ``.bed``: ``3 + n_snps * ceil(n_samples / 4)``."""
    return 3 + n_snps * math.ceil(n_samples / 4)


def check_plink_fileset(prefix: str | Path, unique_snp_ids: bool = False) -> PlinkShape:
    """Check that a PLINK 1 fileset is complete and self-consistent.

    Parameters
    ----------
    prefix : str or pathlib.Path
        PLINK prefix (see :func:`plink_paths`).
    unique_snp_ids : bool, default=False
        Also require every SNP id (``.bim`` column 2) to be unique. rgenima keys
        dosage columns and prompt entries by SNP id, so the data preparation needs
        this; per-line QC (``rgenima qc``) does not, like PLINK.

    Returns
    -------
    PlinkShape
        ``(n_samples, n_snps)``.

    Raises
    ------
    DataContractError
        If a file is missing; a ``.fam`` line does not have 6 columns; a ``.bim``
        line does not have 6 columns or an integer position; the ``.bed`` does not
        start with the magic bytes 0x6c 0x1b or is not SNP-major (mode 0x01); or the
        ``.bed`` size differs from ``3 + n_snps * ceil(n_samples / 4)`` (truncated
        file, or ``.bim``/``.fam`` from another fileset); with ``unique_snp_ids``, if
        a SNP id is repeated (the message names the ids and their lines).
    """
    from rgenima.fileio import why_missing

    paths = plink_paths(prefix)
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise DataContractError(
            f"PLINK fileset {prefix} (cohort.genotypes) is incomplete: missing "
            + ", ".join(
                str(p) if why_missing(p) == "does not exist" else f"{p} (the path {why_missing(p)})" for p in missing
            )
            + ". A fileset needs .bed, .bim and .fam with the same prefix."
        )
    n_samples = len(_read_fam(paths["fam"]))
    if n_samples == 0:
        raise DataContractError(f"{paths['fam']}: no samples (the file is empty).")
    n_snps = _count_bim(paths["bim"], unique_snp_ids)
    if n_snps == 0:
        raise DataContractError(f"{paths['bim']}: no variants (the file is empty).")

    bed = paths["bed"]
    with open(bed, "rb") as handle:
        header = handle.read(3)
    if header[:2] != BED_MAGIC:
        raise DataContractError(
            f"{bed}: not a PLINK 1 .bed file: expected magic bytes 0x6c 0x1b, got {_hex(header[:2])}."
        )
    if len(header) < 3 or header[2] != _SNP_MAJOR:
        raise DataContractError(
            f"{bed}: expected SNP-major mode byte 0x01 after the magic bytes; got "
            f"{_hex(header[2:3])}. Convert with `plink --bfile ... --make-bed`."
        )
    expected = expected_bed_size(n_samples, n_snps)
    actual = os.path.getsize(bed)
    if actual != expected:
        kind = "truncated" if actual < expected else "too large"
        raise DataContractError(
            f"{bed}: size is {actual} bytes but {paths['bim'].name} lists {n_snps} "
            f"SNPs and {paths['fam'].name} lists {n_samples} samples, so it should be "
            f"3 + {n_snps} * ceil({n_samples} / 4) = {expected} bytes ({kind}). "
            f"The .bed is incomplete or the .bim/.fam belong to another fileset."
        )
    return PlinkShape(n_samples=n_samples, n_snps=n_snps)


def read_fam_iids(prefix: str | Path) -> list[str]:
    """Individual IDs (column 2 of the ``.fam``), in file order.

    Parameters
    ----------
    prefix : str or pathlib.Path
        PLINK prefix (see :func:`plink_paths`).

    Returns
    -------
    list of str
        One IID per sample; the contract says IID = PTID (e.g. ``023_S_0031``).

    Raises
    ------
    DataContractError
        If the ``.fam`` is missing or a line does not have 6 columns.
    """
    fam = plink_paths(prefix)["fam"]
    if not fam.is_file():
        raise DataContractError(f"PLINK .fam file not found: {fam} (cohort.genotypes).")
    return [fields[1] for fields in _read_fam(fam)]


def _lines(path: Path):
    """Yield ``(line_number, fields)`` for non-blank lines; blank lines inside fail."""
    blank_at = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                blank_at = blank_at or number
                continue
            if blank_at is not None:
                raise DataContractError(f"{path}, line {blank_at}: empty line inside the file.")
            yield number, fields


def _read_fam(path: Path) -> list[list[str]]:
    rows = []
    for number, fields in _lines(path):
        if len(fields) != 6:
            raise DataContractError(
                f"{path}, line {number}: expected 6 whitespace-separated columns "
                f"(FID IID father mother sex phenotype); found {len(fields)}."
            )
        rows.append(fields)
    return rows


def _count_bim(path: Path, unique_ids: bool = False) -> int:
    count = 0
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    for number, fields in _lines(path):
        if len(fields) != 6:
            raise DataContractError(
                f"{path}, line {number}: expected 6 whitespace-separated columns "
                f"(chrom SNP cM position allele1 allele2); found {len(fields)}."
            )
        if not _INT_RE.match(fields[3]):
            raise DataContractError(
                f"{path}, line {number}: column 4 (base-pair position) must be an integer; got {fields[3]!r}."
            )
        if unique_ids:
            seen = first_line.setdefault(fields[1], number)
            if seen != number:
                repeats.setdefault(fields[1], [seen]).append(number)
        count += 1
    if repeats:
        shown = "; ".join(
            f"{snp!r} (lines {', '.join(map(str, lines[:5]))}{', ...' if len(lines) > 5 else ''})"
            for snp, lines in list(repeats.items())[:10]
        )
        more = f" ... ({len(repeats)} ids in all)" if len(repeats) > 10 else ""
        hint = (
            " Missing ids ('.') can be set from positions with `plink --bfile PREFIX "
            "--set-missing-var-ids @:#:$1:$2 --make-bed --out NEW`."
            if "." in repeats
            else ""
        )
        raise DataContractError(
            f"{path}: SNP id(s) repeated on several lines: {shown}{more}. rgenima reads genotypes "
            "by SNP id (dosage columns, prompts), so each id must appear once: list the duplicates "
            "with `plink --bfile PREFIX --list-duplicate-vars ids-only suppress-first`, remove them "
            "with `--exclude plink.dupvar --make-bed --out NEW`, and point cohort.genotypes at NEW." + hint
        )
    return count


def _hex(data: bytes) -> str:
    return " ".join(f"0x{b:02x}" for b in data) if data else "nothing (file too short)"
