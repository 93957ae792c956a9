"""Genotypes from PLINK 1 binary files (pandas-plink), GRCh37, and genotype QC.

Allele convention used throughout rgenima: a dosage counts the allele in column 5 of
the ``.bim`` file (PLINK's A1, usually the minor allele), called ``a1`` here; ``a2``
is column 6. pandas-plink names these ``a0`` and ``a1`` and by default counts its
``a1`` (our ``a2``), which silently flips effect directions (pandas-plink #28, #15),
so ``ref="a0"`` is always passed explicitly.

Quality control reproduces PLINK 1.9 (``--freq``, ``--missing``, ``--hardy``):

- ``call_rate`` = 1 - ``F_MISS`` of ``plink --missing`` (``.lmiss`` per SNP, ``.imiss``
  per sample), over all samples;
- ``a1_freq`` = the ``MAF`` column of ``plink --freq --keep-allele-order`` (the a1
  allele's frequency among called founder alleles); ``maf = min(a1_freq, 1 - a1_freq)``;
- ``hwe_p`` = the ``P`` column of ``plink --hardy`` (two-sided exact test of Wigginton,
  Cutler & Abecasis 2005, founders only; PLINK 1.9's default, not ``midp``).

Like PLINK, allele frequencies and HWE use founders only (``.fam`` father and mother
both ``0``); unrelated cohorts such as ADNI are all founders. Every SNP is treated as
diploid: on X, Y and MT PLINK treats male (or all) genotypes as haploid, so figures for
those chromosomes differ from PLINK's (a warning is logged when such SNPs are present).

``qc_plink_fileset`` decodes the ``.bed`` itself, ``chunk_snps`` SNPs at a time (a few
megabytes whatever the file size), from its 2-bit codes; the allele coding is pinned
by tests against both pandas-plink and PLINK.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.manifest import QCSpec
from rgenima.fileio import atomic_write_text
from rgenima.data.plink import check_plink_fileset, plink_paths
from rgenima.errors import DataContractError

__all__ = [
    "GENE_PANEL_COLUMNS",
    "PANEL_CHROMOSOMES",
    "SNP_QC_COLUMNS",
    "Genotypes",
    "align_to_reference",
    "apoe_doses",
    "dosage_matrix",
    "genotype_counts",
    "genotype_qc",
    "hwe_exact_p",
    "impute_with_training_mean",
    "map_snps_to_genes",
    "normalize_chrom",
    "qc_plink_fileset",
    "qc_summary",
    "read_gene_panel",
    "read_genotypes",
    "sample_call_rate",
    "snp_allele_stats",
    "snp_qc_table",
    "write_qc_tables",
]

logger = logging.getLogger(__name__)

#: Columns of the per-SNP QC table, in order (``genotype_qc``, ``qc_plink_fileset``).
SNP_QC_COLUMNS: tuple[str, ...] = (
    "snp", "chrom", "pos", "a1", "a2", "maf", "call_rate", "hwe_p", "pass",
    "n_called", "n_hom_a1", "n_het", "n_hom_a2", "a1_freq", "fail_reason",
)
#: Columns of the gene panel TSV.
GENE_PANEL_COLUMNS: tuple[str, ...] = ("symbol", "chrom", "start", "end", "ad_locus", "source")
#: Chromosome names allowed in the gene panel (after removing a ``chr`` prefix).
PANEL_CHROMOSOMES: tuple[str, ...] = tuple(str(c) for c in range(1, 23)) + ("X", "Y", "MT")
# PLINK's numeric codes for the non-autosomes (.bim column 1); XY (25) is the
# pseudo-autosomal region, whose GRCh37 coordinates are X coordinates.
_PLINK_CHROM_CODES = {"23": "X", "24": "Y", "25": "X", "26": "MT"}
_CHROM_NAMES = {"X": "X", "Y": "Y", "XY": "X", "M": "MT", "MT": "MT"}
_INT_RE = re.compile(r"^[+-]?\d+$")
_GROUPED_INT_RE = re.compile(r"^\d{1,3}([,.' ]\d{3})+$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


# ---------------------------------------------------------------------------------
# Reading genotypes
# ---------------------------------------------------------------------------------
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


def dosage_matrix(
    geno: Genotypes, snps: list[str] | None = None, iids: list[str] | None = None
) -> pd.DataFrame:
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
        geno.dosage, index=pd.Index(geno.samples["iid"], name="iid"),
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
                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "") + "."
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
        raise DataContractError(f"{source}: SNP id(s) {', '.join(map(repr, duplicated[:10]))} appear more than "
                                "once in the .bim file; keep one row per SNP (e.g. plink --list-duplicate-vars).")
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
            out[:, j], _ = 2.0 - dose, swapped.append(row.snp)
        elif (b1.translate(_COMPLEMENT), b2.translate(_COMPLEMENT)) == (a1, a2):
            out[:, j], _ = dose, flipped.append(row.snp)
        elif (b1.translate(_COMPLEMENT), b2.translate(_COMPLEMENT)) == (a2, a1):
            out[:, j], _ = 2.0 - dose, flipped.append(row.snp)
        else:
            raise DataContractError(
                f"{source}: SNP {row.snp} has alleles {b1}/{b2}, but {a1}/{a2} in the training cohort; "
                "the two cohorts cannot be read with the same alleles."
            )
    if len(missing) == len(reference):
        raise DataContractError(f"{source}: none of the training cohort's {len(reference)} SNPs is in the file.")
    if missing:
        logger.warning("%s: %d of the training cohort's %d SNPs are absent (their calls are missing): %s%s",
                       source, len(missing), len(reference), ", ".join(missing[:10]),
                       " ..." if len(missing) > 10 else "")
    return out, {"n_snps": int(len(reference)), "missing_snps": missing, "swapped_snps": swapped,
                 "strand_flipped_snps": flipped}


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
            "%d SNP(s) have no called genotype in the training fold; their missing "
            "calls are filled with 0.0", int((n_called == 0).sum()),
        )

    def fill(original, arr):
        filled = np.where(np.isnan(arr), means[None, :], arr)
        if isinstance(original, pd.DataFrame):
            return pd.DataFrame(filled, index=original.index, columns=original.columns)
        return filled.astype(np.result_type(np.asarray(original).dtype, np.float32))

    return fill(train, train_arr), fill(test, test_arr), means


# ---------------------------------------------------------------------------------
# Hardy-Weinberg exact test
# ---------------------------------------------------------------------------------
# The test (Wigginton, Cutler & Abecasis 2005, AJHG 76:887) conditions on the number
# of samples n and of rare alleles r. With j rare homozygotes there are h = r - 2j
# heterozygotes and n - r + j common homozygotes, and
#     P(j + 1) / P(j) = h (h - 1) / (4 (j + 1) (n - r + j + 1)),
# a ratio that falls as j grows: the distribution is log-concave with its mode at
# ceil(j0), j0 = (r^2 - r - 4 (n - r + 1)) / (4 n + 6). The p-value sums P(j) over
# every j at most as probable as the observed one (ties included), as PLINK 1.9's
# SNPHWE2 does. Instead of walking the whole support, probabilities are accumulated
# (products of those ratios) only over a window around the mode and the observed
# count, widened until both of its edges are at least _HWE_EDGE_NATS below the
# observed and the modal probability: by log-concavity the terms outside then add
# less than ~1e-12 (relative) to either sum. Rows whose window spans a modest range
# of probabilities use plain products; the others (far out in a tail: tiny p-values)
# use sums of logarithms, so that nothing overflows or underflows.
_HWE_EDGE_NATS = 30.0
_HWE_TIE = 1e-9  # probabilities equal within 1e-9 (relative) are ties, as in PLINK
_HWE_LINEAR_NATS = 250.0  # windows with a smaller estimated range use products
_HWE_BLOCK_CELLS = 1 << 17  # cells per vectorised block (about 1 MB: fits in cache)


def hwe_exact_p(n_het, n_hom1, n_hom2, *, midp: bool = False) -> np.ndarray:
    """Hardy-Weinberg equilibrium exact test p-values, as PLINK 1.9 ``--hardy``.

    Parameters
    ----------
    n_het, n_hom1, n_hom2 : int or array_like of int
        Heterozygote and the two homozygote counts (broadcast together); which
        homozygote is which does not matter.
    midp : bool, default=False
        Mid-p variant (Graffelman & Moreno 2013), as ``plink --hardy midp``; the
        default is PLINK 1.9's default two-sided exact p-value.

    Returns
    -------
    ndarray of float64, shape of the broadcast inputs
        p-values in [0, 1]. A SNP with no called genotype or no copy of one allele
        (monomorphic) gets 1 (0.5 with ``midp``), as in PLINK. Agrees with PLINK's
        algorithm to about 1e-10 relative; p-values below ~1e-308 lose precision and
        underflow to 0 below ~5e-324, as PLINK's do.

    Raises
    ------
    ValueError
        If a count is negative or not an integer.
    """
    arrays = np.broadcast_arrays(*(np.asarray(x) for x in (n_het, n_hom1, n_hom2)))
    shape = arrays[0].shape
    counts = []
    for name, arr in zip(("n_het", "n_hom1", "n_hom2"), arrays):
        arr = arr.ravel()
        if arr.size and (
            not np.issubdtype(arr.dtype, np.number)
            or not np.all(np.isfinite(arr))
            or np.any(arr != np.round(arr))
            or np.any(arr < 0)
        ):
            raise ValueError(f"'{name}' must hold non-negative integer counts.")
        counts.append(arr.astype(np.int64))
    het, hom1, hom2 = counts
    homr = np.minimum(hom1, hom2)
    n = het + hom1 + hom2
    rare = 2 * homr + het
    out = np.full(n.shape, 0.5 if midp else 1.0)
    todo = np.flatnonzero(rare >= 2)  # otherwise only one table is possible: p = 1
    if todo.size:
        # Distinct (n, rare, homr) rows, coded as one integer when it fits.
        n_t, r_t, j_t = n[todo], rare[todo], homr[todo]
        base = int(n_t.max()) + 1
        if base < 2**20:
            keys, inverse = np.unique((n_t * (2 * base) + r_t) * base + j_t, return_inverse=True)
            n_t, r_t, j_t = keys // (2 * base * base), keys // base % (2 * base), keys % base
        else:
            keys, inverse = np.unique(np.stack([n_t, r_t, j_t], axis=1), axis=0, return_inverse=True)
            n_t, r_t, j_t = keys[:, 0], keys[:, 1], keys[:, 2]
        out[todo] = _hwe_p_unique(n_t, r_t, j_t, midp)[inverse.ravel()]
    return out.reshape(shape)


def _hwe_p_unique(n: np.ndarray, rare: np.ndarray, j_obs: np.ndarray, midp: bool) -> np.ndarray:
    """p-values for (n, rare alleles, rare homozygotes) rows with rare >= 2."""
    n_f = n.astype(np.float64)
    r_f = rare.astype(np.float64)
    last = rare // 2  # largest possible number of rare homozygotes
    j0 = (r_f * r_f - r_f - 4.0 * (n_f - r_f + 1.0)) / (4.0 * n_f + 6.0)
    mode = np.clip(np.ceil(j0), 0, last).astype(np.int64)
    # Normal approximation at the mode: sd of j from the curvature of log P.
    h = np.maximum(r_f - 2.0 * mode, 1.0)
    sd = 1.0 / np.sqrt(4.0 / h + 1.0 / (mode + 1.0) + 1.0 / (n_f - r_f + mode + 1.0))
    reach = np.abs(j_obs - mode) + np.ceil(8.0 * sd).astype(np.int64) + 2
    p = np.empty(n.shape)
    pending = np.arange(n.size)
    use_log = np.zeros(n.shape, dtype=bool)
    while pending.size:
        lo = np.maximum(mode[pending] - reach[pending], 0)
        hi = np.minimum(mode[pending] + reach[pending], last[pending])
        est_range = 0.5 * (reach[pending] / sd[pending]) ** 2
        use_log[pending] |= est_range > _HWE_LINEAR_NATS
        p_part, ok, finite = _hwe_window(
            n[pending], rare[pending], j_obs[pending], lo, hi, use_log[pending], midp
        )
        use_log[pending[~finite]] = True  # products overflowed: redo with logarithms
        done = ok & finite
        p[pending[done]] = p_part[done]
        narrow = pending[~ok & finite]  # edges not negligible: widen the window
        reach[narrow] *= 2
        pending = pending[~done]
    return p


def _hwe_window(n, rare, j_obs, lo, hi, use_log, midp):
    """p-values from the windows [lo, hi] of rare-homozygote counts; whether each
    window was wide enough (edges negligible); whether its products stayed finite.
    Rows go through in blocks of similar width, about _HWE_BLOCK_CELLS cells each."""
    width = hi - lo + 1
    order = np.lexsort((width, use_log))
    p = np.empty(n.shape)
    ok = np.ones(n.shape, dtype=bool)
    finite = np.ones(n.shape, dtype=bool)
    start = 0
    while start < order.size:
        stop = min(order.size, start + max(1, _HWE_BLOCK_CELLS // int(width[order[start]])))
        while stop - start > 1 and (
            (stop - start) * int(width[order[stop - 1]]) > _HWE_BLOCK_CELLS
            or use_log[order[stop - 1]] != use_log[order[start]]
        ):
            stop = start + (stop - start + 1) // 2
        rows = order[start:stop]
        block = _hwe_block_log if use_log[rows[0]] else _hwe_block_linear
        p[rows], ok[rows], finite[rows] = block(
            n[rows], rare[rows], j_obs[rows], lo[rows], hi[rows], midp
        )
        start = stop
    return p, ok, finite


def _hwe_grid(n, rare, lo, hi):
    """Window cells, one column per row (shape (span, rows)): validity, and the
    ratio P(j + 1) / P(j) at rare-homozygote count j = lo + k (1 beyond the window)."""
    k = np.arange(int((hi - lo).max()) + 1, dtype=np.float64)[:, None]
    valid = k <= (hi - lo)[None, :]
    j = k + lo[None, :]
    h = np.multiply(j, -2.0)
    h += rare[None, :]
    numerator = h - 1.0
    numerator *= h
    denominator = j + ((n - rare) + 1.0)[None, :]
    j += 1.0
    denominator *= j
    denominator *= 4.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(numerator, denominator, out=numerator)
    np.copyto(ratio, 1.0, where=k >= (hi - lo)[None, :])  # no step beyond the window
    return valid, ratio


def _hwe_block_linear(n, rare, j_obs, lo, hi, midp):
    valid, ratio = _hwe_grid(n, rare, lo, hi)
    prob = np.empty(ratio.shape)  # P(j) / P(lo)
    prob[0] = 1.0
    np.cumprod(ratio[:-1], axis=0, out=prob[1:])
    np.copyto(prob, 0.0, where=~valid)
    cols = np.arange(len(n))
    obs = prob[j_obs - lo, cols]
    top = prob.max(axis=0)
    floor = np.minimum(obs, top) * np.exp(-_HWE_EDGE_NATS)
    ok = ((lo == 0) | (prob[0] <= floor)) & ((hi == rare // 2) | (prob[hi - lo, cols] <= floor))
    # Products must stay well inside the normal range of doubles (else: logarithms).
    finite = (top < 1e250) & (obs > 1e-250) & (prob[hi - lo, cols] > 1e-300)
    total = prob.sum(axis=0)
    if midp:
        ties = (np.abs(prob - obs) <= _HWE_TIE * obs).sum(axis=0)
    np.copyto(prob, 0.0, where=prob > obs * (1.0 + _HWE_TIE))
    tail = prob.sum(axis=0)
    if midp:
        tail -= 0.5 * obs * ties
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(tail / total, 1.0), ok, finite


def _hwe_block_log(n, rare, j_obs, lo, hi, midp):
    valid, ratio = _hwe_grid(n, rare, lo, hi)
    with np.errstate(divide="ignore"):
        step = np.log(ratio)
    logp = np.zeros(ratio.shape)  # log P(j) - log P(lo)
    np.cumsum(step[:-1], axis=0, out=logp[1:])
    np.copyto(logp, -np.inf, where=~valid)
    cols = np.arange(len(n))
    obs = logp[j_obs - lo, cols]
    top = logp.max(axis=0)
    floor = np.minimum(obs, top) - _HWE_EDGE_NATS
    ok = ((lo == 0) | (logp[0] <= floor)) & ((hi == rare // 2) | (logp[hi - lo, cols] <= floor))
    rel = logp - obs
    tail = np.exp(np.where(rel <= _HWE_TIE, rel, -np.inf)).sum(axis=0)  # units of P(obs)
    if midp:
        tail -= 0.5 * (np.abs(rel) <= _HWE_TIE).sum(axis=0)
    total = np.exp(logp - top).sum(axis=0)  # units of P(mode)
    with np.errstate(divide="ignore"):
        log_p = np.log(tail) + obs - np.log(total) - top
    return np.minimum(np.exp(log_p), 1.0), ok, np.ones(len(n), dtype=bool)


# ---------------------------------------------------------------------------------
# Genotype QC
# ---------------------------------------------------------------------------------
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
        [(dosage == 2).sum(axis=0), (dosage == 1).sum(axis=0), (dosage == 0).sum(axis=0),
         missing.sum(axis=0)], axis=1,
    ).astype(np.int64)
    bad = counts.sum(axis=1) != dosage.shape[0]
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        odd = dosage[:, j][~np.isin(dosage[:, j], (0, 1, 2)) & ~missing[:, j]]
        raise ValueError(
            f"'dosage' must hold 0, 1, 2 or NaN; column {j} holds {odd[0]!r}."
        )
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
        raise ValueError(
            f"'samples' has {len(samples)} rows but 'dosage' has {dosage.shape[0]} samples."
        )
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
    per_snp = (
        np.stack([(codes == c).sum(axis=1) for c in (1, 2, 3)], axis=1).astype(np.uint64)
        << fields16
    ).sum(axis=1, dtype=np.uint64)
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
        packed += per_snp[words[:, k:k + 8190]].sum(axis=1, dtype=np.uint64)
    counts = np.empty((m, 4), dtype=np.int64)
    counts[:, 3] = (packed & _FIELD16).astype(np.int64)
    counts[:, 1] = ((packed >> np.uint64(16)) & _FIELD16).astype(np.int64)
    counts[:, 2] = ((packed >> np.uint64(32)) & _FIELD16).astype(np.int64)
    counts[:, 0] = n_samples - counts[:, 1:].sum(axis=1)  # padding decodes as 00
    sample_missing = np.zeros((words.shape[1], 8), dtype=np.int64)
    for k in range(0, m, 255):
        partial = per_sample[words[k:k + 255]].sum(axis=0, dtype=np.uint64)
        sample_missing += ((partial[:, None] >> _SHIFTS8) & _FIELD8).astype(np.int64)
    return counts, sample_missing.ravel()[:n_samples]


def _read_bim(path: Path) -> pd.DataFrame:
    bim = pd.read_csv(
        path, sep=r"\s+", header=None, names=["chrom", "snp", "cm", "pos", "a1", "a2"],
        dtype={"chrom": str, "snp": str, "cm": str, "pos": np.int64, "a1": str, "a2": str},
        keep_default_na=False, na_filter=False,
    )
    return bim[["snp", "chrom", "pos", "a1", "a2"]]


def _read_fam(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path, sep=r"\s+", header=None,
        names=["fid", "iid", "father", "mother", "sex", "phenotype"],
        dtype=str, keep_default_na=False, na_filter=False,
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
    samples = _read_fam(paths["fam"])
    n, m = shape.n_samples, shape.n_snps
    founder = ((samples["father"] == "0") & (samples["mother"] == "0")).to_numpy()
    if not founder.all():
        logger.info(
            "%d of %d samples are not founders: allele frequencies and HWE use the "
            "%d founders only (as PLINK)", int((~founder).sum()), n, int(founder.sum()),
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
            "(qc.max_subject_missing, PLINK --mind)", int(removed.sum()), n, qc.max_subject_missing,
        )
        counts, _ = _bed_counts(paths["bed"], n, m, chunk_snps, [kept, kept & founder])
    snp_table = snp_qc_table(variants, counts[0], int((~removed).sum()), qc, counts[1])
    sample_table = _sample_table(samples, sample_missing, m)
    sample_table["pass"] = ~removed
    sample_table["fail_reason"] = np.where(removed, f"missing>{qc.max_subject_missing:g}", "")
    logger.info(
        "genotype QC: %d of %d SNPs pass (call rate >= %g, MAF >= %g, HWE p >= %g)",
        int(snp_table["pass"].sum()), m, qc.min_call_rate, qc.min_maf, qc.hwe_p,
    )
    return snp_table, sample_table


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
    masks = []
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
    paths = {"snp_qc": out / "snp_qc.tsv", "sample_qc": out / "sample_qc.tsv"}
    for key, table in (("snp_qc", snp_table), ("sample_qc", sample_table)):
        atomic_write_text(paths[key], table.to_csv(sep="\t", index=False, na_rep="NA"))
    return paths


# ---------------------------------------------------------------------------------
# Gene panel and SNP-to-gene mapping
# ---------------------------------------------------------------------------------
def _chrom_lookup(values) -> dict:
    """``{value: normalize_chrom(value)}`` over the distinct values (fast for .bim)."""
    return {v: normalize_chrom(v) for v in pd.unique(pd.Series(values, dtype=object))}


def normalize_chrom(value) -> str | None:
    """Canonical chromosome name: ``1``..``22``, ``X``, ``Y``, ``MT``; None if unknown.

    Accepts a ``chr`` prefix (any case), ``M`` for MT, and the numeric codes PLINK
    writes in ``.bim`` files (without prefix): 23 (X), 24 (Y), 25 (XY, the
    pseudo-autosomal region, whose GRCh37 coordinates are X's) and 26 (MT).
    """
    text = str(value).strip()
    prefixed = text[:3].lower() == "chr"
    if prefixed:
        text = text[3:]
    text = text.upper()
    if text.isdigit():
        code = int(text)
        if 1 <= code <= 22:
            return str(code)
        return None if prefixed else _PLINK_CHROM_CODES.get(str(code))
    return _CHROM_NAMES.get(text)


def read_gene_panel(path: str | Path) -> pd.DataFrame:
    """Read and check a gene panel TSV.

    Parameters
    ----------
    path : str or Path
        Tab-separated with a header line and columns :data:`GENE_PANEL_COLUMNS`
        (others are kept): ``symbol``; ``chrom`` one of 1..22, X, Y, MT (or M),
        optionally prefixed ``chr``; ``start`` <= ``end`` GRCh37 bp (1-based, inclusive);
        ``ad_locus`` True/False; ``source``. Blank lines are skipped.

    Returns
    -------
    DataFrame
        One row per gene in file order; ``chrom`` without ``chr`` prefix, ``start``
        and ``end`` int64, ``ad_locus`` bool, and ``line`` (line number in the file).

    Raises
    ------
    DataContractError
        If the file is missing or empty, a column is missing, a symbol is repeated,
        or a value is invalid; the message names the file, the line and the value.
    """
    from rgenima.fileio import why_missing

    path = Path(path)
    if not path.is_file():
        raise DataContractError(
            f"gene panel not found: {path} (gene_panel in the manifest): the path {why_missing(path)}."
        )
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            # QUOTE_NONE: one row per physical line, so line numbers are exact.
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            lines = [(i, row) for i, row in enumerate(reader, start=1)
                     if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataContractError(f"{path}: gene panel is not a UTF-8 text file ({exc}).") from None
    if not lines:
        raise DataContractError(f"{path}: gene panel is empty (expected a header line).")
    header_line, header = lines[0]
    header = [h.strip() for h in header]
    missing = [c for c in GENE_PANEL_COLUMNS if c not in header]
    if missing:
        raise DataContractError(
            f"{path}, line {header_line}: gene panel is missing column(s) "
            f"{', '.join(map(repr, missing))}; expected tab-separated columns "
            f"{', '.join(GENE_PANEL_COLUMNS)}; found {', '.join(map(repr, header))}."
        )
    if len(lines) == 1:
        raise DataContractError(f"{path}: gene panel has no rows.")
    records = []
    seen: dict[str, int] = {}
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise DataContractError(
                f"{path}, line {number}: expected {len(header)} tab-separated fields "
                f"({', '.join(header)}); found {len(row)}."
            )
        rec = dict(zip(header, (cell.strip() for cell in row)))
        symbol = rec["symbol"]
        if not symbol:
            raise DataContractError(f"{path}, line {number}: column 'symbol' is empty.")
        if symbol in seen:
            raise DataContractError(
                f"{path}, line {number}: gene symbol {symbol!r} repeats line {seen[symbol]}."
            )
        seen[symbol] = number
        chrom = rec["chrom"]
        name = chrom[3:] if chrom[:3].lower() == "chr" else chrom
        if name.upper() in ("X", "Y", "MT", "M"):
            name = "MT" if name.upper() == "M" else name.upper()
        if name not in PANEL_CHROMOSOMES:
            raise DataContractError(
                f"{path}, line {number}: column 'chrom' must be one of 1..22, X, Y, MT "
                f"(optionally prefixed 'chr'); got {chrom!r}."
            )
        rec["chrom"] = name
        for column in ("start", "end"):
            if not _INT_RE.match(rec[column]) or int(rec[column]) < 1:
                hint = ""
                if _GROUPED_INT_RE.match(rec[column]):
                    hint = " Remove the thousands separators (write 45409039, not 45,409,039)."
                raise DataContractError(
                    f"{path}, line {number}: column {column!r} must be a positive "
                    f"integer GRCh37 position; got {rec[column]!r}.{hint}"
                )
            rec[column] = int(rec[column])
        if rec["start"] > rec["end"]:
            raise DataContractError(
                f"{path}, line {number}: gene {symbol!r} has start {rec['start']} > "
                f"end {rec['end']}."
            )
        flag = rec["ad_locus"].lower()
        if flag not in _TRUE | _FALSE:
            raise DataContractError(
                f"{path}, line {number}: column 'ad_locus' must be True or False; "
                f"got {rec['ad_locus']!r}."
            )
        rec["ad_locus"] = flag in _TRUE
        rec["line"] = number
        records.append(rec)
    panel = pd.DataFrame.from_records(records, columns=header + ["line"])
    return panel.astype({"start": np.int64, "end": np.int64, "ad_locus": bool, "line": np.int64})


def map_snps_to_genes(
    variants: pd.DataFrame, panel: pd.DataFrame, window_kb: float
) -> tuple[pd.DataFrame, int]:
    """Map SNPs to panel genes by GRCh37 position.

    A SNP maps to a gene when on the same chromosome and
    ``start - window <= pos <= end + window`` (bounds included). A SNP in several
    genes' windows maps to the nearest one (distance to the gene body, 0 inside it;
    ties go to the gene listed first in the panel); the others are reported in
    ``other_genes`` and counted in the log. SNPs in no window are dropped and counted.

    Parameters
    ----------
    variants : DataFrame
        ``snp``, ``chrom`` (``.bim`` codes: ``19``, ``chr19``, 23 = X, ...) and
        ``pos`` (GRCh37 bp).
    panel : DataFrame
        From :func:`read_gene_panel`: ``symbol``, ``chrom``, ``start``, ``end``.
    window_kb : float
        Window on each side of the gene, in kilobases (1 kb = 1000 bp), >= 0.

    Returns
    -------
    mapped : DataFrame
        One row per mapped SNP, in input order: ``snp``, ``gene``, ``chrom``,
        ``pos``, ``distance_bp``, ``n_genes`` (genes whose window holds the SNP) and
        ``other_genes`` (those not chosen, nearest first, ``;``-separated).
    n_unmapped : int
        SNPs in no gene window.
    """
    if not np.isfinite(window_kb) or window_kb < 0:
        raise ValueError(f"'window_kb' must be a number >= 0; got {window_kb!r}.")
    window = int(round(float(window_kb) * 1000))
    chrom = variants["chrom"].map(_chrom_lookup(variants["chrom"])).to_numpy(dtype=object)
    pos = variants["pos"].to_numpy(dtype=np.int64)
    gene_chrom = panel["chrom"].map(normalize_chrom).to_numpy(dtype=object)
    starts = panel["start"].to_numpy(dtype=np.int64)
    ends = panel["end"].to_numpy(dtype=np.int64)
    hit_snp, hit_gene, hit_dist = [], [], []
    for name in pd.unique(gene_chrom):
        on_chrom = np.flatnonzero(chrom == name)
        if not on_chrom.size:
            continue
        order = on_chrom[np.argsort(pos[on_chrom], kind="stable")]
        sorted_pos = pos[order]
        for g in np.flatnonzero(gene_chrom == name):
            a = np.searchsorted(sorted_pos, starts[g] - window, side="left")
            b = np.searchsorted(sorted_pos, ends[g] + window, side="right")
            idx = order[a:b]
            hit_snp.append(idx)
            hit_gene.append(np.full(idx.size, g))
            hit_dist.append(np.maximum(0, np.maximum(starts[g] - pos[idx], pos[idx] - ends[g])))
    columns = ["snp", "gene", "chrom", "pos", "distance_bp", "n_genes", "other_genes"]
    if not hit_snp or not sum(h.size for h in hit_snp):
        logger.info("mapped 0 of %d SNPs to genes (window %g kb)", len(variants), window_kb)
        return pd.DataFrame(columns=columns), len(variants)
    hits = pd.DataFrame(
        {"i": np.concatenate(hit_snp), "g": np.concatenate(hit_gene), "d": np.concatenate(hit_dist)}
    ).sort_values(["i", "d", "g"], kind="stable")
    symbols = panel["symbol"].to_numpy(dtype=object)
    grouped = hits.groupby("i", sort=True)
    best = grouped.head(1).set_index("i")
    n_genes = grouped.size()
    others = hits[hits.duplicated("i", keep="first")]
    other_text = others.assign(s=symbols[others["g"].to_numpy()]).groupby("i")["s"].agg(";".join)
    idx = best.index.to_numpy()
    mapped = pd.DataFrame(
        {
            "snp": variants["snp"].to_numpy()[idx],
            "gene": symbols[best["g"].to_numpy()],
            "chrom": chrom[idx],
            "pos": pos[idx],
            "distance_bp": best["d"].to_numpy(dtype=np.int64),
            "n_genes": n_genes.loc[idx].to_numpy(dtype=np.int64),
            "other_genes": other_text.reindex(idx, fill_value="").to_numpy(dtype=object),
        }
    )
    n_unmapped = len(variants) - len(mapped)
    n_multi = int((mapped["n_genes"] > 1).sum())
    logger.info(
        "mapped %d of %d SNPs to genes (window %g kb); %d unmapped dropped; %d in "
        "several genes' windows, mapped to the nearest", len(mapped), len(variants),
        window_kb, n_unmapped, n_multi,
    )
    if n_multi:
        logger.info(
            "SNPs in several genes: %s",
            ", ".join(f"{s}->{g} (also {o})" for s, g, o in
                      mapped.loc[mapped["n_genes"] > 1, ["snp", "gene", "other_genes"]]
                      .head(20).itertuples(index=False)),
        )
    return mapped, n_unmapped
