"""Genotypes from PLINK 1 binary files (pandas-plink), GRCh37.

Allele convention used throughout rgenima: a dosage counts the allele in column 5 of
the ``.bim`` file (PLINK's A1, usually the minor allele), called ``a1`` here; ``a2``
is column 6. pandas-plink names these ``a0`` and ``a1`` and by default counts its
``a1`` (our ``a2``), which silently flips effect directions (pandas-plink #28, #15),
so ``ref="a0"`` is always passed explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.plink import check_plink_fileset

logger = logging.getLogger(__name__)


@dataclass
class Genotypes:
    """Genotype calls of one PLINK file set.

    Attributes
    ----------
    dosage : ndarray of shape (n_samples, n_snps), float32
        Count of each SNP's ``a1`` allele (0, 1, 2); NaN for a missing call.
    samples : DataFrame
        One row per sample: ``fid``, ``iid``, ``sex`` (1 male, 2 female, 0 unknown).
    variants : DataFrame
        One row per SNP: ``snp``, ``chrom``, ``pos`` (GRCh37 bp), ``a1``, ``a2``.
    """

    dosage: np.ndarray
    samples: pd.DataFrame
    variants: pd.DataFrame


def read_genotypes(prefix: str | Path, snps: list[str] | None = None) -> Genotypes:
    """Read a PLINK 1 binary file set.

    Parameters
    ----------
    prefix : str or Path
        Path without extension of ``.bed``/``.bim``/``.fam``.
    snps : list of str, optional
        Only these SNP ids; they are selected before any genotype is decoded, so that
        a genome-wide ``.bed`` never has to fit in memory.
    """
    from pandas_plink import read_plink1_bin

    prefix = Path(prefix)
    check_plink_fileset(prefix)
    G = read_plink1_bin(
        f"{prefix}.bed", f"{prefix}.bim", f"{prefix}.fam", ref="a0", verbose=False
    )
    if snps is not None:
        keep = np.flatnonzero(np.isin(G["snp"].values, list(snps)))
        G = G.isel(variant=keep)
    dosage = np.asarray(G.values, dtype=np.float32)
    samples = pd.DataFrame(
        {
            "fid": G["fid"].values.astype(str),
            "iid": G["iid"].values.astype(str),
            "sex": pd.to_numeric(pd.Series(G["gender"].values), errors="coerce").astype("Int64"),
        }
    )
    variants = pd.DataFrame(
        {
            "snp": G["snp"].values.astype(str),
            "chrom": G["chrom"].values.astype(str),
            "pos": G["pos"].values.astype(np.int64),
            "a1": G["a0"].values.astype(str),
            "a2": G["a1"].values.astype(str),
        }
    )
    logger.info("read %d samples x %d SNPs from %s", *dosage.shape, prefix)
    return Genotypes(dosage=dosage, samples=samples, variants=variants)


def snp_allele_stats(dosage: np.ndarray) -> pd.DataFrame:
    """Per-SNP call rate and minor allele frequency.

    Parameters
    ----------
    dosage : ndarray of shape (n_samples, n_snps)
        a1 allele counts, NaN for missing calls.

    Returns
    -------
    DataFrame with columns ``call_rate`` (fraction of samples called), ``a1_freq``
    (frequency of a1 among called alleles) and ``maf`` (min(a1_freq, 1 - a1_freq)),
    one row per SNP; NaN frequencies where no sample is called.
    """
    called = ~np.isnan(dosage)
    n_called = called.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1_freq = np.nansum(dosage, axis=0) / (2.0 * n_called)
    a1_freq = np.where(n_called > 0, a1_freq, np.nan)
    return pd.DataFrame(
        {
            "call_rate": n_called / dosage.shape[0],
            "a1_freq": a1_freq,
            "maf": np.minimum(a1_freq, 1.0 - a1_freq),
        }
    )
