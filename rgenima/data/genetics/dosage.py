"""Genotype dosages from PLINK 1 binary files (pandas-plink): reading, allele alignment to a
reference, APOE doses and training-mean imputation (allele convention: see :mod:`rgenima.data.genetics`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.plink import check_plink_fileset
from rgenima.errors import DataContractError

logger = logging.getLogger("rgenima.data.genetics")


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
    check_plink_fileset(prefix, unique_snp_ids=True)
    G = read_plink1_bin(f"{prefix}.bed", f"{prefix}.bim", f"{prefix}.fam", ref="a0", verbose=False)
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


def dosage_matrix(geno: Genotypes, snps: list[str] | None = None, iids: list[str] | None = None) -> pd.DataFrame:
    """Dosages as a table: one row per subject, one column per SNP.

    Parameters
    ----------
    geno : Genotypes
        As returned by :func:`read_genotypes`.
    snps : list of str, optional
        SNP ids, in the column order wanted (e.g. the QC-passing SNPs). Default: all.
    iids : list of str, optional
        Sample IIDs (= PTIDs), in the row order wanted (e.g. the cohort). Default: all.

    Returns
    -------
    DataFrame of shape (n_iids, n_snps), float32
        Index ``iid``, columns SNP ids; values count the ``a1`` allele, NaN where the
        call is missing (impute with :func:`impute_with_training_mean` inside a fold).

    Raises
    ------
    DataContractError
        If a requested SNP or IID is not in the genotype files, or is repeated there.
    """
    table = pd.DataFrame(
        geno.dosage,
        index=pd.Index(geno.samples["iid"], name="iid"),
        columns=pd.Index(geno.variants["snp"], name="snp"),
    )
    for axis, name, wanted in ((0, "IID", iids), (1, "SNP", snps)):
        if wanted is None:
            continue
        have = table.index if axis == 0 else table.columns
        missing = [w for w in wanted if w not in have]
        if missing:
            raise DataContractError(
                f"genotype files have no {name} {', '.join(map(repr, missing[:10]))}"
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                + "."
            )
        if have.has_duplicates:
            dup = have[have.duplicated()].unique().tolist()[:10]
            raise DataContractError(f"genotype files repeat {name}(s) {', '.join(map(repr, dup))}.")
        table = table.loc[list(wanted)] if axis == 0 else table[list(wanted)]
    return table.astype(np.float32)


_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def align_to_reference(geno: Genotypes, reference: pd.DataFrame, source: str = "genotypes") -> tuple[np.ndarray, dict]:
    """Dosages of a reference SNP table, read from another cohort's genotypes.

    An external validation cohort must be read exactly as the training cohort was: the
    same SNPs, in the same order, counting the same allele. SNPs are matched by id; a
    SNP whose alleles are swapped (``a1``/``a2``), or on the other strand, is recoded.

    Parameters
    ----------
    geno : Genotypes
        The other cohort's genotypes (:func:`read_genotypes`).
    reference : DataFrame
        The training cohort's SNP table (``snps.tsv``): ``snp``, ``a1``, ``a2``.
    source : str
        Name of the genotype files, for messages.

    Returns
    -------
    dosage : ndarray of shape (n_samples, n_reference_snps), float32
        Count of the reference ``a1`` allele; NaN for a missing call and for every call
        of a SNP absent from ``geno``.
    report : dict
        ``n_snps``, ``missing_snps`` (ids absent from ``geno``), ``swapped_snps`` and
        ``strand_flipped_snps`` (ids recoded).

    Raises
    ------
    DataContractError
        If a SNP is listed twice in ``geno``, a SNP's alleles cannot be matched to the
        reference's, or no reference SNP is found at all.
    """
    ids = geno.variants["snp"].astype(str)
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise DataContractError(
            f"{source}: SNP id(s) {', '.join(map(repr, duplicated[:10]))} appear more than "
            "once in the .bim file; keep one row per SNP (e.g. plink --list-duplicate-vars)."
        )
    column = pd.Series(np.arange(len(ids)), index=ids)
    out = np.full((geno.dosage.shape[0], len(reference)), np.nan, dtype=np.float32)
    missing, swapped, flipped = [], [], []
    for j, row in enumerate(reference.itertuples(index=False)):
        if row.snp not in column.index:
            missing.append(row.snp)
            continue
        k = int(column[row.snp])
        b1, b2 = str(geno.variants["a1"].iat[k]).upper(), str(geno.variants["a2"].iat[k]).upper()
        a1, a2 = str(row.a1).upper(), str(row.a2).upper()
        dose = geno.dosage[:, k]
        if (b1, b2) == (a1, a2):
            out[:, j] = dose
        elif (b1, b2) == (a2, a1):
            out[:, j] = 2.0 - dose
            swapped.append(row.snp)
        elif (b1.translate(_COMPLEMENT), b2.translate(_COMPLEMENT)) == (a1, a2):
            out[:, j] = dose
            flipped.append(row.snp)
        elif (b1.translate(_COMPLEMENT), b2.translate(_COMPLEMENT)) == (a2, a1):
            out[:, j] = 2.0 - dose
            flipped.append(row.snp)
        else:
            raise DataContractError(
                f"{source}: SNP {row.snp} has alleles {b1}/{b2}, but {a1}/{a2} in the training cohort; "
                "the two cohorts cannot be read with the same alleles."
            )
    if len(missing) == len(reference):
        raise DataContractError(f"{source}: none of the training cohort's {len(reference)} SNPs is in the file.")
    if missing:
        logger.warning(
            "%s: %d of the training cohort's %d SNPs are absent (their calls are missing): %s%s",
            source,
            len(missing),
            len(reference),
            ", ".join(missing[:10]),
            " ..." if len(missing) > 10 else "",
        )
    return out, {
        "n_snps": int(len(reference)),
        "missing_snps": missing,
        "swapped_snps": swapped,
        "strand_flipped_snps": flipped,
    }


def apoe_doses(dosage: np.ndarray, snps: pd.DataFrame) -> np.ndarray:
    """APOE e4 and e2 allele doses from the two APOE-defining SNPs.

    e4 is counted as the C allele of rs429358 and e2 as the T allele of rs7412 (GRCh37
    chr19:45411941 and 45412079), whichever of a1/a2 they are and on either strand. The
    rare e1 haplotype (C at both) is counted as e4, the usual approximation on unphased
    genotypes.

    Parameters
    ----------
    dosage : ndarray of shape (n_subjects, n_snps)
        Count of each SNP's ``a1`` allele, NaN for a missing call.
    snps : DataFrame
        One row per dosage column: ``snp``, ``a1``, ``a2``.

    Returns
    -------
    ndarray of shape (n_subjects, 2)
        Columns e4 dose, e2 dose (0, 1, 2; NaN where missing or not typed).
    """
    snps = snps.reset_index(drop=True)
    out = np.full((dosage.shape[0], 2), np.nan)
    for col, (rsid, allele) in enumerate((("rs429358", "C"), ("rs7412", "T"))):
        rows = snps.index[snps["snp"] == rsid]
        if len(rows) == 0:
            continue
        j = rows[0]
        a1, a2 = str(snps.at[j, "a1"]).upper(), str(snps.at[j, "a2"]).upper()
        complement = allele.translate(_COMPLEMENT)
        if allele == a1 or (complement == a1 and allele != a2):
            out[:, col] = dosage[:, j]
        elif allele == a2 or complement == a2:
            out[:, col] = 2.0 - dosage[:, j]
    return out


def impute_with_training_mean(
    train: np.ndarray | pd.DataFrame, test: np.ndarray | pd.DataFrame
) -> tuple[np.ndarray | pd.DataFrame, np.ndarray | pd.DataFrame, np.ndarray]:
    """Fill missing dosages with the training fold's per-SNP means.

    Only the training rows are used to compute the means, so that nothing about the
    test fold leaks into the features it is scored on.

    Parameters
    ----------
    train : ndarray or DataFrame of shape (n_train, n_snps)
        Training-fold dosages, NaN where missing.
    test : ndarray or DataFrame of shape (n_test, n_snps)
        Test-fold dosages with the same columns, NaN where missing.

    Returns
    -------
    train_filled, test_filled : same types and shapes as the inputs
        Copies with every NaN replaced by its column's training mean.
    means : ndarray of shape (n_snps,), float64
        The training means. A SNP with no called genotype in the training fold has no
        mean: it is filled with 0.0 and a warning is logged.

    Raises
    ------
    ValueError
        If the two inputs do not have the same number of columns (or, for
        DataFrames, the same column names).
    """
    train_arr = np.asarray(train, dtype=np.float64)
    test_arr = np.asarray(test, dtype=np.float64)
    if train_arr.ndim != 2 or test_arr.ndim != 2 or train_arr.shape[1] != test_arr.shape[1]:
        raise ValueError(
            f"'train' and 'test' must be 2-D with the same number of SNP columns; got "
            f"shapes {train_arr.shape} and {test_arr.shape}."
        )
    if isinstance(train, pd.DataFrame) and isinstance(test, pd.DataFrame):
        if not train.columns.equals(test.columns):
            raise ValueError("'train' and 'test' must have the same columns in the same order.")
    called = ~np.isnan(train_arr)
    n_called = called.sum(axis=0)
    sums = np.where(called, train_arr, 0.0).sum(axis=0)
    means = np.divide(sums, n_called, out=np.zeros_like(sums), where=n_called > 0)
    if (n_called == 0).any():
        logger.warning(
            "%d SNP(s) have no called genotype in the training fold; their missing calls are filled with 0.0",
            int((n_called == 0).sum()),
        )

    def fill(original, arr):
        filled = np.where(np.isnan(arr), means[None, :], arr)
        if isinstance(original, pd.DataFrame):
            return pd.DataFrame(filled, index=original.index, columns=original.columns)
        return filled.astype(np.result_type(np.asarray(original).dtype, np.float32))

    return fill(train, train_arr), fill(test, test_arr), means
