"""Benchmark: genotype QC (call rate, MAF, HWE) vs PLINK 1.9, same PLINK file set.

Usage: python benchmarks/bench_genotype_qc.py [--n-samples 2000] [--n-snps 20000]

Writes a PLINK 1 binary set to a temporary folder (Hardy-Weinberg genotypes with a1
frequencies uniform in [0.01, 0.5], 1% of calls missing; the .bed bytes are packed
with numpy), then times, in one run:
  * rgenima: ``qc_plink_fileset`` (contract checks of the file set, chunked decoding
    of the .bed, per-SNP counts, call rates, MAF, HWE exact test, per-sample call
    rates; tables in memory);
  * PLINK 1.9: one ``plink1.9 --bfile ... --freq --missing --hardy`` call (the same
    three computations, written to .frq/.lmiss/.imiss/.hwe), as a subprocess.
Both are repeated and the best and median wall times are reported; the first rgenima
call (which also builds the decoding tables) is reported separately.
Target (issue "Data preparation"): rgenima within 5x of PLINK.
Peak memory of rgenima's QC is measured with tracemalloc (Python allocations, numpy
included) in a separate, untimed call; PLINK's is its peak RSS (getrusage of children).
The results are checked against PLINK's (genotype counts exactly, figures at PLINK's
printed precision) before the timings are printed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.genetics import qc_plink_fileset


def write_random_plink(prefix: Path, n_samples: int, n_snps: int, missing: float, seed: int) -> None:
    """PLINK 1 set of HWE genotypes, written directly as .bed bytes (fast)."""
    rng = np.random.default_rng(seed)
    width = (n_samples + 3) // 4
    code_of_dosage = np.array([3, 2, 0], dtype=np.uint8)  # a1 count 0, 1, 2 -> .bed code
    with open(f"{prefix}.bed", "wb") as bed:
        bed.write(bytes([0x6C, 0x1B, 0x01]))
        for j0 in range(0, n_snps, 2000):
            m = min(2000, n_snps - j0)
            freq = rng.uniform(0.01, 0.5, size=(m, 1))
            dose = (rng.random((m, n_samples)) < freq).astype(np.uint8)
            dose += rng.random((m, n_samples)) < freq
            codes = np.zeros((m, 4 * width), dtype=np.uint8)
            codes[:, :n_samples] = code_of_dosage[dose]
            codes[:, :n_samples][rng.random((m, n_samples)) < missing] = 1
            c = codes.reshape(m, width, 4)
            bed.write((c[..., 0] | c[..., 1] << 2 | c[..., 2] << 4 | c[..., 3] << 6).astype(np.uint8).tobytes())
    with open(f"{prefix}.fam", "w") as fam:
        fam.writelines(f"F{i} S{i} 0 0 {1 + i % 2} -9\n" for i in range(n_samples))
    with open(f"{prefix}.bim", "w") as bim:
        bim.writelines(f"{1 + j * 22 // n_snps}\trs{j}\t0\t{1000 + 100 * j}\tA\tG\n" for j in range(n_snps))


def check_against_plink(snp: pd.DataFrame, samples: pd.DataFrame, out: Path) -> None:
    frq = pd.read_csv(f"{out}.frq", sep=r"\s+")
    lmiss = pd.read_csv(f"{out}.lmiss", sep=r"\s+")
    imiss = pd.read_csv(f"{out}.imiss", sep=r"\s+")
    hwe = pd.read_csv(f"{out}.hwe", sep=r"\s+", dtype={"GENO": str})
    geno = snp["n_hom_a1"].astype(str) + "/" + snp["n_het"].astype(str) + "/" + snp["n_hom_a2"].astype(str)
    assert (hwe["GENO"].to_numpy() == geno.to_numpy()).all(), "genotype counts differ"
    assert (lmiss["N_MISS"].to_numpy() == len(samples) - snp["n_called"].to_numpy()).all()
    assert (imiss["N_MISS"].to_numpy() == samples["n_missing"].to_numpy()).all()
    for ours, printed in ((snp["a1_freq"], frq["MAF"]), (snp["hwe_p"], hwe["P"])):
        value = printed.to_numpy(dtype=float)
        unit = 10.0 ** (np.floor(np.log10(np.where(value > 0, value, 1.0))) - 3)
        assert (np.abs(ours.to_numpy() - value) <= 0.5 * unit * (1 + 1e-9) + 1e-300).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--n-snps", type=int, default=20000)
    parser.add_argument("--missing", type=float, default=0.01)
    parser.add_argument("--chunk-snps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plink = shutil.which("plink1.9") or shutil.which("plink")
    if plink is None:
        raise SystemExit("plink1.9 not found (apt-get install plink1.9)")

    work = Path(tempfile.mkdtemp(prefix="bench_qc_"))
    try:
        prefix = work / "bench"
        t0 = time.perf_counter()
        write_random_plink(prefix, args.n_samples, args.n_snps, args.missing, args.seed)
        t_write = time.perf_counter() - t0

        t0 = time.perf_counter()
        qc_plink_fileset(prefix, chunk_snps=args.chunk_snps)
        t_first = time.perf_counter() - t0
        ours = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            snp, samples = qc_plink_fileset(prefix, chunk_snps=args.chunk_snps)
            ours.append(time.perf_counter() - t0)

        out = work / "plink"
        cmd = [
            plink,
            "--bfile",
            str(prefix),
            "--freq",
            "--missing",
            "--hardy",
            "--keep-allele-order",
            "--out",
            str(out),
        ]
        theirs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            theirs.append(time.perf_counter() - t0)
        plink_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        check_against_plink(snp, samples, out)

        tracemalloc.start()
        qc_plink_fileset(prefix, chunk_snps=args.chunk_snps)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        bed_mb = (prefix.with_suffix(".bed")).stat().st_size / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best_ours, best_plink = min(ours), min(theirs)
    med_ours, med_plink = statistics.median(ours), statistics.median(theirs)
    print(
        f"PLINK set                        {args.n_samples} samples x {args.n_snps} SNPs, "
        f"{args.missing:.0%} missing (.bed {bed_mb:.1f} MB, written in {t_write:.1f} s)"
    )
    print(
        f"rgenima qc_plink_fileset         best {best_ours * 1000:7.1f} ms  median {med_ours * 1000:7.1f} ms"
        f"  (first call {t_first * 1000:.1f} ms)"
    )
    print(
        f"plink1.9 --freq --missing --hardy best {best_plink * 1000:6.1f} ms  median {med_plink * 1000:7.1f} ms"
        f"  (subprocess, incl. start-up and writing 4 reports)"
    )
    print(
        f"ratio rgenima / PLINK            best {best_ours / best_plink:5.2f}  median "
        f"{med_ours / med_plink:5.2f}  (target <= 5)"
    )
    print(f"peak traced memory (rgenima QC)  {peak / 1e6:7.1f} MB  (tracemalloc; chunk {args.chunk_snps} SNPs)")
    print(f"peak RSS (plink1.9 process)      {plink_rss_mb:7.1f} MB  (getrusage RUSAGE_CHILDREN)")
    print("results checked against PLINK: genotype counts exact, MAF/HWE p at printed precision")


if __name__ == "__main__":
    main()
