"""Genotype QC (call rate, MAF, HWE) against PLINK 1.9, SNP-to-gene mapping, imputation.

PLINK 1.9 is the reference: ``--freq``, ``--missing``, ``--hardy`` and ``--freqx`` are
run on the same files and compared figure by figure. PLINK prints frequencies,
missingness and p-values with 4 significant digits, so printed values are compared at
that precision (half a unit of the 4th digit); the exact values are compared through
the integer counts PLINK prints (``.frqx`` genotype counts, ``.lmiss``/``.imiss``
N_MISS and N_GENO), from which its figures are computed. HWE p-values are checked to
1e-10 relative against an exact enumeration in rational arithmetic.
"""

from __future__ import annotations

import json
import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import plink_executable

from rgenima.cli import main
from rgenima.data.genetics import (
    SNP_QC_COLUMNS,
    dosage_matrix,
    genotype_counts,
    genotype_qc,
    hwe_exact_p,
    impute_with_training_mean,
    map_snps_to_genes,
    normalize_chrom,
    qc_plink_fileset,
    read_gene_panel,
    read_genotypes,
    sample_call_rate,
)
from rgenima.data.manifest import QCSpec, builtin_gene_panel_path
from rgenima.data.synthetic import write_plink
from rgenima.errors import DataContractError

#: PLINK is run without --mind in these comparisons: keep every sample here too.
NO_MIND = QCSpec(max_subject_missing=1.0)
PRINTED_DIGITS = 4  # significant digits of PLINK 1.9's .frq/.lmiss/.imiss/.hwe figures


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------
def edge_case_dosage(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Dosage matrix (n, n_snps) with the cases QC must get right, and their names."""
    rng = np.random.default_rng(seed)
    cols: list[np.ndarray] = []
    names: list[str] = []

    def add(name: str, values) -> None:
        cols.append(np.asarray(values, dtype=np.float64))
        names.append(name)

    for k in range(24):  # HWE genotypes, missing rates from 0 to 23%
        q = rng.uniform(0.02, 0.98)
        d = rng.binomial(2, q, n).astype(float)
        d[rng.random(n) < k / 100] = np.nan
        add(f"hwe_{k}", d)
    for k in range(8):  # genotype proportions far from HWE, random
        d = rng.choice(3, size=n, p=rng.dirichlet([1, 1, 1])).astype(float)
        d[rng.random(n) < 0.03] = np.nan
        add(f"nonhwe_{k}", d)
    add("mono_0", np.zeros(n))
    add("mono_2", np.full(n, 2.0))
    add("mono_2_missing", np.where(rng.random(n) < 0.1, np.nan, 2.0))
    add("all_missing", np.full(n, np.nan))
    add("one_called", np.r_[1.0, np.full(n - 1, np.nan)])
    add("all_het", np.ones(n))
    add("all_het_missing", np.where(rng.random(n) < 0.2, np.nan, 1.0))
    add("excess_hom", np.where(np.arange(n) % 2 == 0, 0.0, 2.0))
    add("het_deficit", rng.permutation(np.r_[np.zeros(n // 3), np.full(n // 3, 2.0), np.ones(n - 2 * (n // 3))]))
    add("singleton_het", np.r_[1.0, np.zeros(n - 1)])
    add("singleton_hom", np.r_[2.0, np.zeros(n - 1)])
    add("doubleton", np.r_[1.0, 1.0, np.zeros(n - 2)])
    add("tripleton", np.r_[2.0, 1.0, np.zeros(n - 2)])
    add("rare_major_a1", np.r_[1.0, 1.0, 0.0, np.full(n - 3, 2.0)])
    add("rare_missing", np.where(rng.random(n) < 0.3, np.nan, rng.binomial(2, 0.004, n)))
    add("half", np.r_[np.zeros(n // 4), np.ones(n - n // 2), np.full(n // 2 - n // 4, 2.0)])
    dosage = np.stack(cols, axis=1)
    # A few samples with many missing calls (per-sample call rates vary).
    for i, rate in ((0, 0.5), (1, 0.2), (n - 1, 0.9)):
        dosage[i, rng.random(dosage.shape[1]) < rate] = np.nan
    return dosage, names


def write_edge_set(prefix: Path, n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    dosage, names = edge_case_dosage(n, seed)
    rng = np.random.default_rng(seed + 1)
    alleles = np.array(list("ACGT"))
    pairs = np.array([rng.choice(alleles, size=2, replace=False) for _ in names])
    snps = pd.DataFrame(
        {
            "rsid": [f"rs{1000 + j}_{name}" for j, name in enumerate(names)],
            "chrom": ["1"] * (len(names) // 2) + ["7"] * (len(names) - len(names) // 2),
            "pos": 10_000 + 137 * np.arange(len(names)),
            "a1": pairs[:, 0],
            "a2": pairs[:, 1],
        }
    )
    ptids = [f"990_S_{9000 + i:04d}" for i in range(n)]
    write_plink(prefix, ptids, rng.integers(1, 3, n), dosage, snps)
    return dosage, snps


def run_plink(prefix: Path, out: Path, *flags: str) -> Path:
    """Run plink1.9 with --keep-allele-order (A1 stays .bim column 5)."""
    result = subprocess.run(
        [plink_executable(), "--bfile", str(prefix), "--keep-allele-order", *flags, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def plink_reports(prefix: Path, tmp_path: Path) -> dict[str, pd.DataFrame]:
    """.frq, .lmiss, .imiss, .hwe (one run, as a user would) and .frqx (own run:
    PLINK 1.9 refuses --freq and --freqx together); plus .hwe with midp."""
    base = run_plink(prefix, tmp_path / "plink", "--freq", "--missing", "--hardy")
    counts = run_plink(prefix, tmp_path / "plinkx", "--freqx")
    midp = run_plink(prefix, tmp_path / "plinkm", "--hardy", "midp")
    ws = dict(sep=r"\s+", keep_default_na=False, dtype=str)
    return {
        "frq": pd.read_csv(f"{base}.frq", **ws),
        "lmiss": pd.read_csv(f"{base}.lmiss", **ws),
        "imiss": pd.read_csv(f"{base}.imiss", **ws),
        "hwe": pd.read_csv(f"{base}.hwe", **ws),
        "hwe_midp": pd.read_csv(f"{midp}.hwe", **ws),
        "frqx": pd.read_csv(f"{counts}.frqx", sep="\t", keep_default_na=False, dtype=str),
    }


def assert_printed(ours, printed, what: str, digits: int = PRINTED_DIGITS) -> None:
    """``ours`` rounds to PLINK's printed value (``digits`` significant digits)."""
    ours = np.asarray(ours, dtype=np.float64)
    text = pd.Series(printed).astype(str)
    na = text.isin(["NA", "nan"]).to_numpy()
    assert np.isnan(ours[na]).all(), f"{what}: PLINK prints NA where we have a value"
    value = text[~na].astype(float).to_numpy()
    mine = ours[~na]
    scale = np.where(value != 0, 10.0 ** (np.floor(np.log10(np.abs(np.where(value != 0, value, 1)))) - digits + 1), 0)
    tol = 0.5 * scale * (1 + 1e-9) + 1e-300
    bad = np.abs(mine - value) > tol
    assert not bad.any(), (
        f"{what}: {bad.sum()} value(s) differ from PLINK's printed ones, e.g. ours "
        f"{mine[bad][:3]} vs PLINK {value[bad][:3]}"
    )


def compare_with_plink(snp: pd.DataFrame, samples: pd.DataFrame, reports: dict, n: int) -> None:
    frq, frqx, lmiss, imiss, hwe = (reports[k] for k in ("frq", "frqx", "lmiss", "imiss", "hwe"))
    # Same SNPs, same allele order.
    for table in (frq, frqx, lmiss, hwe):
        assert table["SNP"].tolist() == snp["snp"].tolist()
    assert frq["A1"].tolist() == snp["a1"].tolist() and frq["A2"].tolist() == snp["a2"].tolist()
    # Exact genotype counts (.frqx) and PLINK's frequency computed from them.
    hom1 = frqx["C(HOM A1)"].astype(int).to_numpy()
    het = frqx["C(HET)"].astype(int).to_numpy()
    hom2 = frqx["C(HOM A2)"].astype(int).to_numpy()
    miss = frqx["C(MISSING)"].astype(int).to_numpy()
    np.testing.assert_array_equal(snp["n_hom_a1"], hom1)
    np.testing.assert_array_equal(snp["n_het"], het)
    np.testing.assert_array_equal(snp["n_hom_a2"], hom2)
    np.testing.assert_array_equal(snp["n_called"], n - miss)
    alleles = 2 * (hom1 + het + hom2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1_freq = np.where(alleles > 0, (2 * hom1 + het) / alleles, np.nan)
    np.testing.assert_allclose(snp["a1_freq"], a1_freq, rtol=0, atol=1e-12)
    np.testing.assert_allclose(snp["maf"], np.minimum(a1_freq, 1 - a1_freq), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(frq["NCHROBS"].astype(int), alleles)
    # Printed figures, at PLINK's precision (--keep-allele-order: MAF = a1 frequency).
    assert_printed(snp["a1_freq"], frq["MAF"], ".frq MAF")
    # Missingness: exact from N_MISS / N_GENO, and at printed precision.
    np.testing.assert_array_equal(lmiss["N_GENO"].astype(int), n)
    np.testing.assert_allclose(snp["call_rate"], 1 - lmiss["N_MISS"].astype(int) / n, rtol=0, atol=1e-12)
    assert_printed(1 - snp["call_rate"], lmiss["F_MISS"], ".lmiss F_MISS")
    assert samples["iid"].tolist() == imiss["IID"].tolist()
    n_geno = imiss["N_GENO"].astype(int).to_numpy()
    np.testing.assert_array_equal(samples["n_missing"], imiss["N_MISS"].astype(int))
    np.testing.assert_allclose(samples["call_rate"], 1 - imiss["N_MISS"].astype(int) / n_geno, rtol=0, atol=1e-12)
    assert_printed(1 - samples["call_rate"], imiss["F_MISS"], ".imiss F_MISS")
    # HWE: same genotype counts, p-values at printed precision (both variants).
    geno = snp["n_hom_a1"].astype(str) + "/" + snp["n_het"].astype(str) + "/" + snp["n_hom_a2"].astype(str)
    assert hwe["GENO"].tolist() == geno.tolist()
    assert_printed(snp["hwe_p"], hwe["P"], ".hwe P")
    midp = hwe_exact_p(snp["n_het"], snp["n_hom_a1"], snp["n_hom_a2"], midp=True)
    assert_printed(midp, reports["hwe_midp"]["P"], ".hwe P (midp)")


def exact_hwe_p(het: int, hom1: int, hom2: int, midp: bool = False) -> Fraction:
    """Exact HWE p-value by enumerating every table with the same allele counts, in
    integer arithmetic (Wigginton et al. 2005, eq. 1, and the two-sided rule).

    Given n people and r rare alleles, the probability of h heterozygotes is
    proportional to the integer ``M(h) = n! / (r_hom! h! c_hom!) * 2**h``.
    """
    n = het + hom1 + hom2
    rare = min(2 * hom1 + het, 2 * hom2 + het)
    if n == 0:
        return Fraction(1, 2) if midp else Fraction(1)
    h = rare % 2
    r_hom, c_hom = (rare - h) // 2, n - (rare - h) // 2 - h
    weight = {h: math.comb(n, r_hom) * math.comb(n - r_hom, h) * 2**h}
    while r_hom > 0:  # M(h + 2) = M(h) * 4 r_hom c_hom / ((h + 2)(h + 1)), exactly
        weight[h + 2] = weight[h] * 4 * r_hom * c_hom // ((h + 2) * (h + 1))
        h, r_hom, c_hom = h + 2, r_hom - 1, c_hom - 1
    observed = weight[het]
    total = sum(weight.values())
    tail = sum(w for w in weight.values() if w <= observed)
    if midp:
        tail = Fraction(tail) - Fraction(1, 2) * sum(w == observed for w in weight.values()) * observed
    return Fraction(tail, total) if not midp else tail / total


# ---------------------------------------------------------------------------------
# Against PLINK 1.9
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [301, 302, 304])
def test_genetics_qc_matches_plink_on_edge_cases(tmp_path, n):
    prefix = tmp_path / "edge"
    dosage, _ = write_edge_set(prefix, n)
    reports = plink_reports(prefix, tmp_path)
    snp, samples = qc_plink_fileset(prefix, NO_MIND, chunk_snps=7)  # several chunks
    assert list(snp.columns) == list(SNP_QC_COLUMNS)
    compare_with_plink(snp, samples, reports, n)
    # In memory (genotype_qc / sample_call_rate) gives the same table.
    geno = read_genotypes(prefix)
    in_memory = genotype_qc(geno.dosage, geno.variants)
    pd.testing.assert_frame_equal(in_memory, snp, check_dtype=False)
    pd.testing.assert_frame_equal(
        sample_call_rate(geno.dosage, geno.samples),
        samples.drop(columns=["pass", "fail_reason"]),
        check_dtype=False,
    )
    np.testing.assert_array_equal(np.isnan(geno.dosage), np.isnan(dosage))


def test_genetics_qc_plink_special_snps(tmp_path):
    """How PLINK 1.9 treats degenerate SNPs, and that we do the same."""
    prefix = tmp_path / "edge"
    _, snps = write_edge_set(prefix, 301)
    reports = plink_reports(prefix, tmp_path)
    snp, _ = qc_plink_fileset(prefix, NO_MIND)
    by_name = snp.set_index(snps["rsid"].str.split("_", n=1).str[1].to_numpy())
    frq = reports["frq"].set_index(by_name.index)
    hwe = reports["hwe"].set_index(by_name.index)
    # All calls missing: PLINK prints MAF "NA" and HWE p 1; we give NaN, p 1, and
    # fail the SNP for call rate and for MAF ("maf=NA").
    assert frq.loc["all_missing", "MAF"] == "NA" and hwe.loc["all_missing", "P"] == "1"
    row = by_name.loc["all_missing"]
    assert np.isnan(row["maf"]) and row["hwe_p"] == 1 and row["call_rate"] == 0
    assert not row["pass"] and row["fail_reason"] == "call_rate<0.95;maf=NA"
    # Monomorphic: MAF 0 (PLINK prints the a1 frequency, 0 or 1), HWE p exactly 1.
    for name in ("mono_0", "mono_2", "mono_2_missing"):
        assert by_name.loc[name, "maf"] == 0 and by_name.loc[name, "hwe_p"] == 1
        assert hwe.loc[name, "P"] == "1"
        assert "maf<0.01" in by_name.loc[name, "fail_reason"]
    assert frq.loc["mono_2", "MAF"] == "1"
    # All heterozygous: p far below 1e-6 (PLINK prints e.g. 7.551e-90).
    assert by_name.loc["all_het", "hwe_p"] < 1e-80
    assert by_name.loc["all_het", "fail_reason"] == "hwe_p<1e-06"
    # a1 the major allele: maf is the minor allele's frequency.
    assert by_name.loc["rare_major_a1", "a1_freq"] > 0.99
    row = by_name.loc["rare_major_a1"]
    assert row["maf"] == pytest.approx(1 - row["a1_freq"]) and 0 < row["maf"] < 0.01


def test_genetics_qc_matches_plink_on_small_cohort(small_cohort, tmp_path):
    prefix = small_cohort / "genotypes" / "cohort"
    reports = plink_reports(prefix, tmp_path)
    snp, samples = qc_plink_fileset(prefix)
    n = len(samples)
    compare_with_plink(snp, samples, reports, n)
    assert snp["call_rate"].lt(1).any()  # the cohort has missing calls to compare


def test_genetics_qc_founders_only_like_plink(tmp_path):
    """Non-founders (a parent ID in the .fam) count for call rates but not for
    frequencies and HWE, as in PLINK 1.9."""
    prefix = tmp_path / "edge"
    write_edge_set(prefix, 301)
    fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
    fam.loc[[0, 5, 6, 100], 2] = fam.loc[10, 1]  # father present in the data
    fam.loc[[7, 300], 3] = "someone_else"  # mother not in the data: still non-founder
    fam.to_csv(f"{prefix}.fam", sep=" ", header=False, index=False)
    reports = plink_reports(prefix, tmp_path)
    snp, samples = qc_plink_fileset(prefix, NO_MIND, chunk_snps=5)
    log = Path(tmp_path / "plink.log").read_text()
    assert "295 founders and 6 nonfounders" in log
    hom1 = reports["frqx"]["C(HOM A1)"].astype(int).to_numpy()
    het = reports["frqx"]["C(HET)"].astype(int).to_numpy()
    hom2 = reports["frqx"]["C(HOM A2)"].astype(int).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        a1_freq = (2 * hom1 + het) / (2 * (hom1 + het + hom2))
    np.testing.assert_allclose(snp["a1_freq"], a1_freq, rtol=0, atol=1e-12)
    assert_printed(snp["a1_freq"], reports["frq"]["MAF"], ".frq MAF (founders)")
    assert_printed(snp["hwe_p"], reports["hwe"]["P"], ".hwe P (founders)")
    np.testing.assert_allclose(snp["call_rate"], 1 - reports["lmiss"]["N_MISS"].astype(int) / 301, atol=1e-12)
    np.testing.assert_array_equal(samples["n_missing"], reports["imiss"]["N_MISS"].astype(int))
    # The in-memory path with the same founders agrees.
    geno = read_genotypes(prefix)
    founders = ~fam.index.isin([0, 5, 6, 100, 7, 300])
    in_memory = genotype_qc(geno.dosage, geno.variants, founders=founders)
    np.testing.assert_allclose(in_memory["hwe_p"], snp["hwe_p"], rtol=1e-12)
    np.testing.assert_allclose(in_memory["maf"], snp["maf"], rtol=0, atol=1e-15)


def test_genetics_qc_chunking_does_not_change_results(tmp_path):
    prefix = tmp_path / "edge"
    write_edge_set(prefix, 303, seed=4)
    whole = qc_plink_fileset(prefix, chunk_snps=10_000)
    for chunk in (1, 3, 64):
        parts = qc_plink_fileset(prefix, chunk_snps=chunk)
        pd.testing.assert_frame_equal(parts[0], whole[0])
        pd.testing.assert_frame_equal(parts[1], whole[1])


def test_genetics_qc_ignores_bed_padding_bits(tmp_path):
    """The unused bits after the last sample of each SNP are ignored, even if set."""
    prefix = tmp_path / "edge"
    write_edge_set(prefix, 301)
    before = qc_plink_fileset(prefix)
    raw = np.frombuffer(Path(f"{prefix}.bed").read_bytes(), dtype=np.uint8).copy()
    width = (301 + 3) // 4
    raw[3:].reshape(-1, width)[:, -1] |= 0b11111100  # 301 = 4 * 75 + 1: 6 padding bits
    Path(f"{prefix}.bed").write_bytes(raw.tobytes())
    after = qc_plink_fileset(prefix)
    pd.testing.assert_frame_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1], before[1])


def test_genetics_qc_thresholds_and_reasons():
    dosage = np.array([[2, 1, np.nan, 0], [1, 1, 0, 0], [0, 1, 1, 0], [2, 1, 2, 0]], dtype=float)
    variants = pd.DataFrame({"snp": ["a", "b", "c", "d"], "chrom": "1", "pos": [1, 2, 3, 4], "a1": "A", "a2": "G"})
    table = genotype_qc(dosage, variants, QCSpec(min_call_rate=0.8, min_maf=0.1, hwe_p=0.05))
    assert table["call_rate"].tolist() == [1, 1, 0.75, 1]
    assert table["fail_reason"].tolist()[2:] == ["call_rate<0.8", "maf<0.1"]
    assert table["pass"].tolist()[2:] == [False, False]
    # Thresholds are inclusive on the passing side (as PLINK --geno/--maf/--hwe).
    row = table.iloc[0]
    at_edge = genotype_qc(dosage[:, :1], variants.iloc[:1], QCSpec(1.0, row["maf"], row["hwe_p"]))
    assert bool(at_edge["pass"].iloc[0])
    with pytest.raises(ValueError, match="must hold 0, 1, 2 or NaN; column 1 holds 0.5"):
        genotype_qc(np.array([[0, 0.5], [1, 1]]), variants.iloc[:2])
    np.testing.assert_array_equal(genotype_counts(dosage)[2], [1, 1, 1, 1])


# ---------------------------------------------------------------------------------
# HWE exact test
# ---------------------------------------------------------------------------------
def test_hwe_exact_p_equals_exact_enumeration():
    cases = [
        (het, hom1, n - het - hom1) for n in (1, 2, 3, 4, 7, 12) for het in range(n + 1) for hom1 in range(n - het + 1)
    ]
    rng = np.random.default_rng(7)
    for n in (60, 150, 301, 1000):
        for _ in range(25):
            g = rng.multinomial(n, rng.dirichlet([2, 2, 2]))
            cases.append((g[1], g[0], g[2]))
        q = rng.uniform(0.01, 0.5)
        for _ in range(25):
            g = rng.multinomial(n, [q * q, 2 * q * (1 - q), (1 - q) ** 2])
            cases.append((g[1], g[0], g[2]))
    cases += [(1000, 0, 0), (0, 500, 500), (1, 0, 999), (0, 1, 999), (998, 1, 1)]
    het, hom1, hom2 = np.array(cases).T
    for midp in (False, True):
        ours = hwe_exact_p(het, hom1, hom2, midp=midp)
        exact = np.array([float(exact_hwe_p(*map(int, c), midp=midp)) for c in cases])
        np.testing.assert_allclose(ours, exact, rtol=1e-10, atol=0)


def test_hwe_exact_p_hand_checked_cases():
    # Two people, alleles A A a a: P(AA + aa) = 1/3, P(Aa + Aa) = 2/3.
    assert hwe_exact_p(2, 0, 0) == pytest.approx(1.0)  # the likelier table: p = 1
    assert hwe_exact_p(0, 1, 1) == pytest.approx(1 / 3)
    assert hwe_exact_p(0, 1, 1, midp=True) == pytest.approx(1 / 6)
    # n = 3 with rare count 2: het 0 (1 aa) has P = 1/5, het 2 has P = 4/5.
    assert hwe_exact_p(0, 1, 2) == pytest.approx(1 / 5)
    # 100 people, 21 rare alleles: 5 rare homozygotes (11 het) lies in the deficit
    # tail, 21 heterozygotes at the excess end.
    assert float(hwe_exact_p(11, 5, 84)) == pytest.approx(float(exact_hwe_p(11, 5, 84)), rel=1e-12)
    assert float(hwe_exact_p(21, 0, 79)) == pytest.approx(float(exact_hwe_p(21, 0, 79)), rel=1e-12)


def test_hwe_exact_p_degenerate_inputs():
    assert hwe_exact_p(0, 0, 0) == 1.0 and hwe_exact_p(0, 0, 0, midp=True) == 0.5
    assert hwe_exact_p(0, 50, 0) == 1.0 and hwe_exact_p(0, 0, 7) == 1.0
    assert hwe_exact_p(1, 0, 9) == 1.0  # a single rare allele: one possible table
    out = hwe_exact_p([[0, 1], [2, 3]], 5, [[5], [6]])
    assert out.shape == (2, 2) and ((out > 0) & (out <= 1)).all()
    assert hwe_exact_p(20_000, 0, 0) == 0.0  # underflows, as in PLINK (prints 0)
    with pytest.raises(ValueError, match="'n_hom1' must hold non-negative integer counts"):
        hwe_exact_p(1, -1, 3)
    with pytest.raises(ValueError, match="'n_het' must hold non-negative integer counts"):
        hwe_exact_p(1.5, 1, 3)


def test_hwe_exact_p_large_and_tiny():
    """Large samples (wide distributions) and p-values down to ~1e-300 stay exact."""
    cases = [
        (6800, 1600, 1600),
        (6500, 1750, 1750),
        (4000, 3000, 3000),
        (5000, 2400, 2600),
        (5200, 2000, 2800),
        (600, 100, 9300),
        (1400, 0, 8600),
    ]
    het, hom1, hom2 = np.array(cases).T
    ours = hwe_exact_p(het, hom1, hom2)
    exact = np.array([float(exact_hwe_p(*c)) for c in cases])
    np.testing.assert_allclose(ours, exact, rtol=1e-9, atol=0)
    assert exact.min() < 1e-280 and exact.max() > 0.5


# ---------------------------------------------------------------------------------
# Gene panel and SNP-to-gene mapping
# ---------------------------------------------------------------------------------
PANEL_TEXT = (
    "symbol\tchrom\tstart\tend\tad_locus\tsource\n"
    "GA\tchr1\t10000\t20000\tTrue\tTest\n"
    "GB\t1\t21500\t30000\tFalse\tTest\n"
    "GC\tchr2\t10000\t20000\tFalse\tTest\n"
    "GD\t3\t100\t1000\tFalse\tTest\n"
    "GE\t3\t500\t2000\tTrue\tTest\n"
    "GX\tchrX\t5000\t6000\tFalse\tTest\n"
)


@pytest.fixture()
def panel_file(tmp_path) -> Path:
    path = tmp_path / "panel.tsv"
    path.write_text(PANEL_TEXT)
    return path


def test_read_gene_panel_strips_chr_prefix(panel_file):
    panel = read_gene_panel(panel_file)
    assert panel["chrom"].tolist() == ["1", "1", "2", "3", "3", "X"]
    assert panel["start"].dtype == np.int64 and panel["ad_locus"].tolist()[:2] == [True, False]
    assert panel["line"].tolist() == [2, 3, 4, 5, 6, 7]


def test_read_gene_panel_builtin():
    panel = read_gene_panel(builtin_gene_panel_path())
    assert len(panel) == 160 and "APOE" in set(panel["symbol"])
    assert set(panel["chrom"]) <= {str(c) for c in range(1, 23)}


@pytest.mark.parametrize("bad", ["chr23", "Un_gl000", "23", "chrZ", ""])
def test_read_gene_panel_unknown_chromosome(tmp_path, bad):
    path = tmp_path / "panel.tsv"
    path.write_text(PANEL_TEXT.replace("GB\t1\t", f"GB\t{bad}\t"))
    with pytest.raises(
        DataContractError, match=rf"panel\.tsv, line 3: column 'chrom' must be one of 1\.\.22, X, Y, MT .*got '{bad}'"
    ):
        read_gene_panel(path)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("GD\t3\t100\t1000", "GD\t3\t1000\t100", r"line 5: gene 'GD' has start 1000 > end 100"),
        (
            "GD\t3\t100\t",
            "GD\t3\t1e2\t",
            r"line 5: column 'start' must be a positive integer GRCh37 position; got '1e2'",
        ),
        ("GE\t3", "GA\t3", r"line 6: gene symbol 'GA' repeats line 2"),
        ("\tad_locus", "\tlocus", r"line 1: gene panel is missing column\(s\) 'ad_locus'"),
        ("False\tTest\nGC", "maybe\tTest\nGC", r"line 3: column 'ad_locus' must be True or False; got 'maybe'"),
    ],
)
def test_read_gene_panel_errors(tmp_path, old, new, message):
    path = tmp_path / "panel.tsv"
    path.write_text(PANEL_TEXT.replace(old, new, 1))
    with pytest.raises(DataContractError, match=message):
        read_gene_panel(path)


def test_map_snps_to_genes_windows_overlaps_and_unmapped(panel_file):
    panel = read_gene_panel(panel_file)
    variants = pd.DataFrame(
        [
            ("below", "1", 8999),  # start - window - 1: outside
            ("lower_edge", "1", 9000),  # start - window: inside (inclusive)
            ("inside_a", "chr1", 15000),
            ("between", "1", 20400),  # only GA (GB's window starts at 20500)
            ("nearer_b", "1", 20800),  # GA at 800 bp, GB at 700 bp
            ("tie", "1", 20750),  # 750 bp from both: panel order -> GA
            ("in_both_bodies", "3", 700),  # inside GD and GE: panel order -> GD
            ("nearer_e", "3", 1500),  # inside GE, 500 bp from GD
            ("chr2_prefixed", "chr2", 15000),
            ("upper_edge", "2", 21000),  # end + window: inside (inclusive)
            ("above", "2", 21001),  # end + window + 1: outside
            ("x_as_23", "23", 4000),
            ("other_chrom", "4", 15000),
            ("after_all", "1", 31001),
        ],
        columns=["snp", "chrom", "pos"],
    )
    mapped, n_unmapped = map_snps_to_genes(variants, panel, window_kb=1)
    got = dict(zip(mapped["snp"], mapped["gene"]))
    assert got == {
        "lower_edge": "GA",
        "inside_a": "GA",
        "upper_edge": "GC",
        "between": "GA",
        "nearer_b": "GB",
        "tie": "GA",
        "in_both_bodies": "GD",
        "nearer_e": "GE",
        "chr2_prefixed": "GC",
        "x_as_23": "GX",
    }
    assert n_unmapped == 4
    assert mapped["snp"].tolist() == [s for s in variants["snp"] if s in got]  # input order
    row = mapped.set_index("snp")
    assert row.loc["lower_edge", "distance_bp"] == 1000 and row.loc["inside_a", "distance_bp"] == 0
    assert row.loc["nearer_b", "n_genes"] == 2 and row.loc["nearer_b", "other_genes"] == "GA"
    assert row.loc["tie", "other_genes"] == "GB" and row.loc["in_both_bodies", "other_genes"] == "GE"
    assert row.loc["inside_a", "n_genes"] == 1 and row.loc["inside_a", "other_genes"] == ""
    # Window 0: gene bodies only, bounds included.
    mapped0, unmapped0 = map_snps_to_genes(variants, panel, window_kb=0)
    assert set(mapped0["snp"]) == {"inside_a", "in_both_bodies", "nearer_e", "chr2_prefixed"}
    assert unmapped0 == len(variants) - 4
    edges = pd.DataFrame({"snp": ["s", "e"], "chrom": ["2", "2"], "pos": [10000, 20000]})
    assert map_snps_to_genes(edges, panel, 0)[0]["gene"].tolist() == ["GC", "GC"]
    with pytest.raises(ValueError, match="'window_kb' must be a number >= 0"):
        map_snps_to_genes(variants, panel, -1)


def test_map_snps_to_genes_on_small_cohort(small_cohort):
    geno = read_genotypes(small_cohort / "genotypes" / "cohort")
    panel = read_gene_panel(builtin_gene_panel_path())
    mapped, n_unmapped = map_snps_to_genes(geno.variants, panel, window_kb=10)
    # The generator draws every SNP from inside the panel genes' windows.
    assert n_unmapped == 0 and len(mapped) == len(geno.variants)
    assert mapped.set_index("snp").loc["rs429358", "gene"] == "APOE"


def test_normalize_chrom():
    assert [normalize_chrom(c) for c in ("chr1", "01", "X", "chrx", "23", "24", "25", "26", "chrM", "MT")] == [
        "1",
        "1",
        "X",
        "X",
        "X",
        "Y",
        "X",
        "MT",
        "MT",
        "MT",
    ]
    assert normalize_chrom("chr23") is None and normalize_chrom("Un_gl000") is None
    assert normalize_chrom("27") is None and normalize_chrom("0") is None


# ---------------------------------------------------------------------------------
# Dosages and imputation
# ---------------------------------------------------------------------------------
def test_impute_with_training_mean_uses_training_fold_only():
    rng = np.random.default_rng(0)
    train = rng.binomial(2, 0.3, size=(9, 5)).astype(float)
    test = rng.binomial(2, 0.3, size=(7, 5)).astype(float)
    train[rng.random(train.shape) < 0.2] = np.nan
    train[:, 4] = np.nan  # no call in the training fold
    test[rng.random(test.shape) < 0.3] = np.nan
    train_f, test_f, means = impute_with_training_mean(train, test)
    col_means = np.array([np.nanmean(train[:, j]) for j in range(4)])
    np.testing.assert_allclose(means, np.r_[col_means, 0.0])
    assert not np.isnan(train_f).any() and not np.isnan(test_f).any()
    holes = np.isnan(test)
    np.testing.assert_allclose(test_f[holes], np.broadcast_to(means, test.shape)[holes])
    np.testing.assert_array_equal(test_f[~holes], test[~holes])
    # Changing the test fold's called values changes neither the means nor the
    # values imputed into either fold.
    test2 = np.where(holes, np.nan, 2.0 - np.nan_to_num(test))
    train_f2, test_f2, means2 = impute_with_training_mean(train, test2)
    np.testing.assert_array_equal(means2, means)
    np.testing.assert_array_equal(train_f2, train_f)
    np.testing.assert_array_equal(test_f2[holes], test_f[holes])
    # ... while changing the training fold does.
    train3 = train.copy()
    train3[~np.isnan(train3[:, 0]), 0] = 2.0
    assert impute_with_training_mean(train3, test)[2][0] == 2.0


def test_impute_with_training_mean_dataframes():
    train = pd.DataFrame({"rs1": [0.0, np.nan, 2.0], "rs2": [1.0, 1.0, np.nan]}, index=["a", "b", "c"])
    test = pd.DataFrame({"rs1": [np.nan], "rs2": [np.nan]}, index=["d"])
    train_f, test_f, means = impute_with_training_mean(train, test)
    assert isinstance(test_f, pd.DataFrame) and test_f.index.tolist() == ["d"]
    assert test_f.loc["d"].tolist() == [1.0, 1.0] and train_f.loc["b", "rs1"] == 1.0
    with pytest.raises(ValueError, match="same columns"):
        impute_with_training_mean(train, test[["rs2", "rs1"]])
    with pytest.raises(ValueError, match="same number of SNP columns"):
        impute_with_training_mean(train.to_numpy(), np.zeros((2, 3)))


def test_dosage_matrix_selects_in_requested_order(small_cohort):
    geno = read_genotypes(small_cohort / "genotypes" / "cohort")
    iids = geno.samples["iid"].tolist()[::-1][:5]
    snps = ["rs7412", "rs429358"]
    table = dosage_matrix(geno, snps=snps, iids=iids)
    assert table.shape == (5, 2) and table.index.tolist() == iids and table.columns.tolist() == snps
    j = geno.variants["snp"].tolist().index("rs429358")
    i = geno.samples["iid"].tolist().index(iids[0])
    assert table.loc[iids[0], "rs429358"] == geno.dosage[i, j]
    with pytest.raises(DataContractError, match="genotype files have no SNP 'rs0'"):
        dosage_matrix(geno, snps=["rs0"])


# ---------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------
def test_cli_qc_on_small_cohort(small_cohort, tmp_path, capsys):
    out = tmp_path / "qc"
    code = main(["qc", "--bfile", str(small_cohort / "genotypes" / "cohort"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "SNPs pass QC" in printed and "by reason" in printed
    assert sorted(p.name for p in out.iterdir()) == ["sample_qc.tsv", "snp_qc.tsv"]  # no temp files
    snp = pd.read_csv(
        out / "snp_qc.tsv",
        sep="\t",
        dtype={"chrom": str, "fail_reason": str},
        keep_default_na=False,
        float_precision="round_trip",
    )
    assert list(snp.columns[:9]) == ["snp", "chrom", "pos", "a1", "a2", "maf", "call_rate", "hwe_p", "pass"]
    samples = pd.read_csv(out / "sample_qc.tsv", sep="\t")
    assert {"iid", "call_rate"} <= set(samples.columns)
    truth = json.loads((small_cohort / "truth.json").read_text())
    reason_key = {"call_rate": "call_rate", "maf": "maf", "hwe": "hwe_p"}
    table = snp.set_index("snp")
    for rsid, reason in truth["qc_failing_snps"].items():
        labels = table.loc[rsid, "fail_reason"].split(";")
        keys = {label.split("<")[0].split("=")[0] for label in labels}
        assert keys == {reason_key[reason]}, (rsid, reason, labels)
        assert not table.loc[rsid, "pass"]
    # The written table is the library's.
    ours, _ = qc_plink_fileset(small_cohort / "genotypes" / "cohort")
    np.testing.assert_array_equal(snp["hwe_p"], ours["hwe_p"])  # written losslessly
    np.testing.assert_array_equal(snp["maf"], ours["maf"])


def test_cli_qc_thresholds_and_errors(small_cohort, tmp_path, capsys):
    out = tmp_path / "qc"
    prefix = str(small_cohort / "genotypes" / "cohort")
    assert main(["qc", "--bfile", prefix, "--out", str(out), "--min-maf", "0.5", "--hwe-p", "0"]) == 0
    snp = pd.read_csv(out / "snp_qc.tsv", sep="\t", keep_default_na=False)
    assert snp["fail_reason"].str.contains("maf<0.5").mean() > 0.9  # nearly all SNPs
    assert not snp["fail_reason"].str.contains("hwe_p").any()  # p < 0 never happens
    capsys.readouterr()
    assert main(["qc", "--bfile", str(tmp_path / "nothing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "rgenima qc: contract violation" in err and "nothing.bed" in err
    with pytest.raises(SystemExit):
        main(["qc", "--bfile", prefix, "--out", str(out), "--min-maf", "0.7"])
