"""Decoding of PLINK 1 ``.bed`` files: genotype counts per SNP and missing calls per sample, read
in chunks from the 2-bit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.plink import _read_fam


# .bed decoding: 2-bit codes, lowest bits = first sample; 00 = a1 homozygote,
# 01 = missing, 10 = heterozygote, 11 = a2 homozygote (PLINK 1.9 docs, "bed").
def _bed_tables() -> tuple[np.ndarray, np.ndarray]:
    """Look-up tables indexed by a pair of ``.bed`` bytes (8 samples, as uint16).

    ``per_snp[w]`` packs the counts of missing, heterozygous and a2-homozygous calls
    among the 8 samples into 16-bit fields (bits 0, 16, 32), so that sums over up to
    8190 words (65520 samples) cannot overflow. ``per_sample[w]`` packs the 8
    samples' missing flags into 8-bit fields, so that sums over up to 255 SNPs
    cannot overflow.
    """
    byte_codes = (np.arange(256)[:, None] >> (2 * np.arange(4))[None, :]) & 3
    words = np.arange(65536)
    codes = np.concatenate([byte_codes[words & 255], byte_codes[words >> 8]], axis=1)
    fields16 = np.uint64(16) * np.arange(3, dtype=np.uint64)
    per_snp = (np.stack([(codes == c).sum(axis=1) for c in (1, 2, 3)], axis=1).astype(np.uint64) << fields16).sum(
        axis=1, dtype=np.uint64
    )
    fields8 = np.uint64(8) * np.arange(8, dtype=np.uint64)
    per_sample = ((codes == 1).astype(np.uint64) << fields8).sum(axis=1, dtype=np.uint64)
    return per_snp, per_sample


_BED_TABLES: tuple[np.ndarray, np.ndarray] | None = None
_FIELD16 = np.uint64(0xFFFF)
_FIELD8 = np.uint64(0xFF)
_SHIFTS8 = np.uint64(8) * np.arange(8, dtype=np.uint64)


def _decode_counts(block: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Genotype counts of a ``.bed`` block.

    Parameters
    ----------
    block : ndarray of uint8, shape (n_snps, bytes_per_snp)
        Rows of a SNP-major ``.bed``; its padding bits must already be zero.
    n_samples : int

    Returns
    -------
    counts : ndarray of int64, shape (n_snps, 4)
        a1 homozygotes, heterozygotes, a2 homozygotes, missing.
    sample_missing : ndarray of int64, shape (n_samples,)
        Missing calls per sample in this block.
    """
    global _BED_TABLES
    if _BED_TABLES is None:
        _BED_TABLES = _bed_tables()
    per_snp, per_sample = _BED_TABLES
    m, width = block.shape
    if width % 2:  # pad to whole uint16 words; zero bits decode as 00
        block = np.concatenate([block, np.zeros((m, 1), np.uint8)], axis=1)
    words = block.view(np.uint16)
    packed = np.zeros(m, dtype=np.uint64)
    for k in range(0, words.shape[1], 8190):
        packed += per_snp[words[:, k : k + 8190]].sum(axis=1, dtype=np.uint64)
    counts = np.empty((m, 4), dtype=np.int64)
    counts[:, 3] = (packed & _FIELD16).astype(np.int64)
    counts[:, 1] = ((packed >> np.uint64(16)) & _FIELD16).astype(np.int64)
    counts[:, 2] = ((packed >> np.uint64(32)) & _FIELD16).astype(np.int64)
    counts[:, 0] = n_samples - counts[:, 1:].sum(axis=1)  # padding decodes as 00
    sample_missing = np.zeros((words.shape[1], 8), dtype=np.int64)
    for k in range(0, m, 255):
        partial = per_sample[words[k : k + 255]].sum(axis=0, dtype=np.uint64)
        sample_missing += ((partial[:, None] >> _SHIFTS8) & _FIELD8).astype(np.int64)
    return counts, sample_missing.ravel()[:n_samples]


def _read_bim(path: Path) -> pd.DataFrame:
    bim = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["chrom", "snp", "cm", "pos", "a1", "a2"],
        dtype={"chrom": str, "snp": str, "cm": str, "pos": np.int64, "a1": str, "a2": str},
        keep_default_na=False,
        na_filter=False,
    )
    return bim[["snp", "chrom", "pos", "a1", "a2"]]


#: Columns of a ``.fam`` line.
_FAM_COLUMNS = ("fid", "iid", "father", "mother", "sex", "phenotype")


def _read_fam_table(path: Path) -> pd.DataFrame:
    """The ``.fam`` as a table of strings (columns ``_FAM_COLUMNS``), from the one ``.fam`` reader."""
    return pd.DataFrame(_read_fam(path), columns=list(_FAM_COLUMNS), dtype=str)


def _bed_counts(
    bed: Path, n: int, m: int, chunk_snps: int, subsets: list[np.ndarray | None]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Genotype counts of every SNP over subsets of samples, in one pass over the ``.bed``.

    Parameters
    ----------
    subsets : list of (ndarray of bool, shape (n,)) or None
        Samples counted, one table per entry; None (or all True) counts every sample.

    Returns
    -------
    counts : list of ndarray of int64, shape (m, 4)
        Per subset: a1 homozygotes, heterozygotes, a2 homozygotes, missing (over the
        subset's samples only).
    sample_missing : ndarray of int64, shape (n,)
        Missing calls per sample, over all SNPs.
    """
    from rgenima.progress import progress_bar

    width = (n + 3) // 4
    # Padding bits of each SNP's last byte decode as 00; clear them in case a writer
    # left garbage there.
    last_mask = np.uint8((1 << (2 * (n - 4 * (width - 1)))) - 1)
    masks: list[np.ndarray] = []
    for subset in subsets:
        if subset is None or subset.all():
            masks.append(None)
            continue
        # Per byte: keep the subset's bits, set the other samples to 01 (missing).
        slot = np.zeros(width * 4, dtype=bool)
        slot[:n] = ~subset
        slot = slot.reshape(width, 4)
        bits = (2 * np.arange(4))[None, :]
        keep = (((~slot) * 3) << bits).sum(axis=1).astype(np.uint8)
        fill = ((slot * 1) << bits).sum(axis=1).astype(np.uint8)
        masks.append((keep, fill, n - int(subset.sum())))
    counts = [np.empty((m, 4), dtype=np.int64) for _ in subsets]
    sample_missing = np.zeros(n, dtype=np.int64)
    with open(bed, "rb") as handle, progress_bar(total=m, desc="genotype QC", unit="SNP") as bar:
        handle.seek(3)
        for j0 in range(0, m, chunk_snps):
            j1 = min(m, j0 + chunk_snps)
            block = np.fromfile(handle, dtype=np.uint8, count=(j1 - j0) * width)
            block = block.reshape(j1 - j0, width)
            block[:, -1] &= last_mask
            all_counts, missing = _decode_counts(block, n)
            sample_missing += missing
            for table, mask in zip(counts, masks):
                if mask is None:
                    table[j0:j1] = all_counts
                    continue
                keep, fill, n_out = mask
                # The other samples decode as missing, so a1 homozygotes (n minus the
                # other calls) count the subset only; remove them from "missing".
                table[j0:j1], _ = _decode_counts((block & keep[None, :]) | fill[None, :], n)
                table[j0:j1, 3] -= n_out
            bar.update(j1 - j0)
    return counts, sample_missing
