"""Genotype quality control, equal to PLINK 1.9's ``--freq``/``--missing``/``--hardy``/``--mind``
(definitions: see :mod:`rgenima.data.genetics`)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.genetics.bed import _bed_counts, _read_bim, _read_fam_table
from rgenima.data.genetics.hwe import hwe_exact_p
from rgenima.data.genetics.panel import _chrom_lookup
from rgenima.data.manifest import QCSpec
from rgenima.data.plink import check_plink_fileset, plink_paths
from rgenima.errors import DataContractError
from rgenima.fileio import atomic_write_text

logger = logging.getLogger("rgenima.data.genetics")

#: Columns of the per-SNP QC table, in order (``genotype_qc``, ``qc_plink_fileset``).
SNP_QC_COLUMNS: tuple[str, ...] = (
    "snp",
    "chrom",
    "pos",
    "a1",
    "a2",
    "maf",
    "call_rate",
    "hwe_p",
    "pass",
    "n_called",
    "n_hom_a1",
    "n_het",
    "n_hom_a2",
    "a1_freq",
    "fail_reason",
)
#: Columns of the gene panel TSV.


def genotype_counts(dosage: np.ndarray) -> np.ndarray:
    """Genotype counts per SNP from a dosage matrix.

    Parameters
    ----------
    dosage : ndarray of shape (n_samples, n_snps)
        a1 allele counts (0, 1, 2), NaN for a missing call.

    Returns
    -------
    ndarray of int64, shape (n_snps, 4)
        Columns: a1 homozygotes (dosage 2), heterozygotes, a2 homozygotes (dosage 0),
        missing calls.

    Raises
    ------
    ValueError
        If a value is not 0, 1, 2 or NaN.
    """
    dosage = np.asarray(dosage)
    if dosage.ndim != 2:
        raise ValueError(f"'dosage' must be 2-D (n_samples, n_snps); got shape {dosage.shape}.")
    missing = np.isnan(dosage)
    counts = np.stack(
        [(dosage == 2).sum(axis=0), (dosage == 1).sum(axis=0), (dosage == 0).sum(axis=0), missing.sum(axis=0)],
        axis=1,
    ).astype(np.int64)
    bad = counts.sum(axis=1) != dosage.shape[0]
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        odd = dosage[:, j][~np.isin(dosage[:, j], (0, 1, 2)) & ~missing[:, j]]
        raise ValueError(f"'dosage' must hold 0, 1, 2 or NaN; column {j} holds {odd[0]!r}.")
    return counts


def snp_qc_table(
    variants: pd.DataFrame,
    counts: np.ndarray,
    n_samples: int,
    qc: QCSpec = QCSpec(),
    founder_counts: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-SNP QC table from genotype counts.

    Parameters
    ----------
    variants : DataFrame
        One row per SNP with ``snp``, ``chrom``, ``pos``, ``a1``, ``a2``.
    counts : ndarray of shape (n_snps, 4)
        a1 homozygotes, heterozygotes, a2 homozygotes, missing, over all samples
        (gives the call rate).
    n_samples : int
        Number of samples (the denominator of the call rate).
    qc : QCSpec
        Thresholds: a SNP fails when ``call_rate < min_call_rate``, ``maf < min_maf``
        (or no genotype is called) or ``hwe_p < hwe_p``, as PLINK's ``--geno``,
        ``--maf`` and ``--hwe`` filters.
    founder_counts : ndarray of shape (n_snps, 4), optional
        The same counts over founders only, used for ``a1_freq``, ``maf`` and
        ``hwe_p`` as PLINK does; default: ``counts``.

    Returns
    -------
    DataFrame
        Columns :data:`SNP_QC_COLUMNS`: ``maf``, ``a1_freq`` and ``call_rate`` are
        fractions; ``hwe_p`` a p-value; ``pass`` a bool; ``fail_reason`` lists the
        failed thresholds separated by ``;`` (e.g. ``call_rate<0.95;maf<0.01``;
        ``maf=NA`` when no genotype is called), empty when the SNP passes.
        ``n_called``, ``n_hom_a1``, ``n_het`` and ``n_hom_a2`` count all samples.
    """
    counts = np.asarray(counts, dtype=np.int64)
    fc = counts if founder_counts is None else np.asarray(founder_counts, dtype=np.int64)
    if len(variants) != len(counts) or fc.shape != counts.shape:
        raise ValueError(
            f"'variants' has {len(variants)} rows but 'counts' {counts.shape} and "
            f"'founder_counts' {fc.shape}: they must describe the same SNPs."
        )
    hom1, het, hom2 = fc[:, 0], fc[:, 1], fc[:, 2]
    n_alleles = 2 * (hom1 + het + hom2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1_freq = np.where(n_alleles > 0, (2 * hom1 + het) / n_alleles, np.nan)
    maf = np.minimum(a1_freq, 1.0 - a1_freq)
    n_called = n_samples - counts[:, 3]
    call_rate = n_called / n_samples if n_samples else np.zeros(len(counts))
    hwe_p = hwe_exact_p(het, hom1, hom2)

    fail_call = call_rate < qc.min_call_rate
    fail_maf = ~(maf >= qc.min_maf)  # NaN (nothing called) fails
    fail_hwe = hwe_p < qc.hwe_p
    labels = (
        (fail_call, f"call_rate<{qc.min_call_rate:g}"),
        (fail_maf & ~np.isnan(maf), f"maf<{qc.min_maf:g}"),
        (fail_maf & np.isnan(maf), "maf=NA"),
        (fail_hwe, f"hwe_p<{qc.hwe_p:g}"),
    )
    reason = np.full(len(counts), "", dtype=object)
    for mask, label in labels:
        reason[mask] = np.where(reason[mask] == "", label, reason[mask] + ";" + label)
    table = pd.DataFrame(
        {
            "snp": variants["snp"].to_numpy(),
            "chrom": variants["chrom"].astype(str).to_numpy(),
            "pos": variants["pos"].to_numpy(dtype=np.int64),
            "a1": variants["a1"].to_numpy(),
            "a2": variants["a2"].to_numpy(),
            "maf": maf,
            "call_rate": call_rate,
            "hwe_p": hwe_p,
            "pass": ~(fail_call | fail_maf | fail_hwe),
            "n_called": n_called,
            "n_hom_a1": counts[:, 0],
            "n_het": counts[:, 1],
            "n_hom_a2": counts[:, 2],
            "a1_freq": a1_freq,
            "fail_reason": reason,
        }
    )
    _warn_non_autosomal(table["chrom"])
    return table


def genotype_qc(
    dosage: np.ndarray,
    variants: pd.DataFrame,
    qc: QCSpec = QCSpec(),
    founders: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-SNP QC of an in-memory dosage matrix (PLINK 1.9 figures).

    Parameters
    ----------
    dosage : ndarray of shape (n_samples, n_snps)
        a1 allele counts, NaN for a missing call (:attr:`Genotypes.dosage`).
    variants : DataFrame
        One row per SNP: ``snp``, ``chrom``, ``pos``, ``a1``, ``a2``.
    qc : QCSpec
        Thresholds (see :func:`snp_qc_table`).
    founders : ndarray of bool, shape (n_samples,), optional
        Samples used for frequencies and HWE (PLINK: founders); default all.

    Returns
    -------
    DataFrame
        Columns :data:`SNP_QC_COLUMNS`, one row per SNP in input order.
    """
    counts = genotype_counts(dosage)
    founder_counts = None
    if founders is not None:
        founders = np.asarray(founders, dtype=bool)
        founder_counts = genotype_counts(np.asarray(dosage)[founders])
    return snp_qc_table(variants, counts, dosage.shape[0], qc, founder_counts)


def sample_call_rate(dosage: np.ndarray, samples: pd.DataFrame) -> pd.DataFrame:
    """Per-sample call rate over all SNPs (1 - ``F_MISS`` of PLINK's ``.imiss``).

    Parameters
    ----------
    dosage : ndarray of shape (n_samples, n_snps)
        NaN for a missing call.
    samples : DataFrame
        One row per sample with ``iid`` (and ``fid`` if known).

    Returns
    -------
    DataFrame
        Columns ``fid`` (when given), ``iid``, ``n_missing``, ``call_rate``.
    """
    dosage = np.asarray(dosage)
    if len(samples) != dosage.shape[0]:
        raise ValueError(f"'samples' has {len(samples)} rows but 'dosage' has {dosage.shape[0]} samples.")
    n_missing = np.isnan(dosage).sum(axis=1)
    return _sample_table(samples, n_missing, dosage.shape[1])


def _sample_table(samples: pd.DataFrame, n_missing: np.ndarray, n_snps: int) -> pd.DataFrame:
    out = pd.DataFrame({"iid": samples["iid"].astype(str).to_numpy()})
    if "fid" in samples:
        out.insert(0, "fid", samples["fid"].astype(str).to_numpy())
    out["n_missing"] = np.asarray(n_missing, dtype=np.int64)
    out["call_rate"] = 1.0 - out["n_missing"] / n_snps if n_snps else 0.0
    return out


def _warn_non_autosomal(chrom: pd.Series) -> None:
    other = chrom.map(_chrom_lookup(chrom)).isin(["X", "Y", "MT"])
    if other.any():
        logger.warning(
            "%d SNP(s) on X/Y/MT are treated as diploid; PLINK treats male X/Y (and MT) "
            "genotypes as haploid, so their QC figures differ from PLINK's",
            int(other.sum()),
        )


def qc_plink_fileset(
    prefix: str | Path, qc: QCSpec = QCSpec(), chunk_snps: int = 2000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """QC of a PLINK 1 binary file set, reading ``chunk_snps`` SNPs at a time.

    Samples first, then SNPs, in PLINK 1.9's order: a sample with more than
    ``qc.max_subject_missing`` of its calls missing is removed (``--mind``), then the
    SNP figures and filters (``--geno``, ``--maf``, ``--hwe``) use the samples kept, so
    that one failed sample cannot make good SNPs fail their call rate.

    Parameters
    ----------
    prefix : str or Path
        PLINK prefix (``.bed``/``.bim``/``.fam``); checked with
        :func:`~rgenima.data.plink.check_plink_fileset` before any genotype is read.
    qc : QCSpec
        Thresholds (see :func:`snp_qc_table` and ``QCSpec.max_subject_missing``).
    chunk_snps : int, default=2000
        SNPs decoded at a time; memory use is about ``chunk_snps * n_samples``
        bytes, whatever the size of the ``.bed``.

    Returns
    -------
    snp_table : DataFrame
        Columns :data:`SNP_QC_COLUMNS`, one row per ``.bim`` line (equal to PLINK
        1.9's ``--mind``, then ``--freq``/``--missing``/``--hardy`` on autosomes).
    sample_table : DataFrame
        ``fid``, ``iid``, ``n_missing``, ``call_rate`` (1 - ``F_MISS`` of ``.imiss``,
        over all SNPs), ``pass`` (False for a sample removed by
        ``qc.max_subject_missing``) and ``fail_reason`` (e.g. ``missing>0.1``).

    Raises
    ------
    DataContractError
        If the file set is incomplete or inconsistent (see ``check_plink_fileset``),
        or every sample is removed.
    """
    if int(chunk_snps) < 1:
        raise ValueError(f"'chunk_snps' must be a positive integer; got {chunk_snps!r}.")
    chunk_snps = min(int(chunk_snps), 65535)
    shape = check_plink_fileset(prefix)
    paths = plink_paths(prefix)
    variants = _read_bim(paths["bim"])
    samples = _read_fam_table(paths["fam"])
    n, m = shape.n_samples, shape.n_snps
    founder = ((samples["father"] == "0") & (samples["mother"] == "0")).to_numpy()
    if not founder.all():
        logger.info(
            "%d of %d samples are not founders: allele frequencies and HWE use the %d founders only (as PLINK)",
            int((~founder).sum()),
            n,
            int(founder.sum()),
        )
    logger.info("genotype QC of %s: %d samples x %d SNPs", paths["bed"], n, m)
    counts, sample_missing = _bed_counts(paths["bed"], n, m, chunk_snps, [None, founder])
    removed = sample_missing > qc.max_subject_missing * m
    if removed.all():
        raise DataContractError(
            f"{paths['bed']}: every one of the {n} samples has more than "
            f"{qc.max_subject_missing:g} of its {m} genotype calls missing (qc.max_subject_missing): "
            "the .bed is damaged or does not belong to this .bim/.fam."
        )
    if removed.any():
        kept = ~removed
        logger.warning(
            "%d of %d samples removed before SNP QC: more than %g of their calls are missing "
            "(qc.max_subject_missing, PLINK --mind)",
            int(removed.sum()),
            n,
            qc.max_subject_missing,
        )
        counts, _ = _bed_counts(paths["bed"], n, m, chunk_snps, [kept, kept & founder])
    snp_table = snp_qc_table(variants, counts[0], int((~removed).sum()), qc, counts[1])
    sample_table = _sample_table(samples, sample_missing, m)
    sample_table["pass"] = ~removed
    sample_table["fail_reason"] = np.where(removed, f"missing>{qc.max_subject_missing:g}", "")
    logger.info(
        "genotype QC: %d of %d SNPs pass (call rate >= %g, MAF >= %g, HWE p >= %g)",
        int(snp_table["pass"].sum()),
        m,
        qc.min_call_rate,
        qc.min_maf,
        qc.hwe_p,
    )
    return snp_table, sample_table


def qc_summary(snp_table: pd.DataFrame) -> str:
    """One line: SNPs passing, and SNPs failing by reason (a SNP may fail several)."""
    n = len(snp_table)
    passing = int(snp_table["pass"].sum())
    reasons: dict[str, int] = {}
    for text in snp_table["fail_reason"]:
        for label in filter(None, str(text).split(";")):
            key = re.split(r"[<=]", label, maxsplit=1)[0]
            reasons[key] = reasons.get(key, 0) + 1
    failing = ", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"
    return f"{passing} of {n} SNPs pass QC; {n - passing} fail (by reason: {failing})"


def write_qc_tables(snp_table: pd.DataFrame, sample_table: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``snp_qc.tsv`` and ``sample_qc.tsv`` atomically (temp file + rename).

    Tab-separated, floats written exactly (shortest round-trip form), ``NA`` for
    missing values (the MAF of a SNP with no call), ``fail_reason`` empty on pass.

    Returns
    -------
    dict
        ``{"snp_qc": Path, "sample_qc": Path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from rgenima.run import PreparedDir  # the file names of a prepared folder

    files = PreparedDir(out)
    paths = {"snp_qc": files.snp_qc_tsv, "sample_qc": files.sample_qc_tsv}
    for key, table in (("snp_qc", snp_table), ("sample_qc", sample_table)):
        atomic_write_text(paths[key], table.to_csv(sep="\t", index=False, na_rep="NA"))
    return paths
