"""The ADNI-format records of a synthetic cohort: ADNIMERGE-style visits and PLINK genotypes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

_MMSE_BASELINE = {"NC": (29.1, 1.0), "SMC": (28.9, 1.2), "EMCI": (28.2, 1.6), "LMCI": (27.1, 1.8), "AD": (23.2, 2.0)}
_MMSE_DECLINE_PER_YEAR = {"NC": 0.05, "SMC": 0.15, "EMCI": 0.4, "LMCI": 1.0, "AD": 2.5}
_VISIT_DX = {"NC": "CN", "SMC": "CN", "EMCI": "MCI", "LMCI": "MCI", "AD": "Dementia"}


def _months(viscode: str) -> int:
    return 0 if viscode == "bl" else int(viscode[1:])


def build_clinical_table(
    ptids: list[str],
    dx_bl: list[str],
    substage: list[str],
    age: np.ndarray,
    sex: np.ndarray,
    education: np.ndarray,
    apoe4: np.ndarray,
    rng: np.random.Generator,
    visits: tuple[str, ...],
) -> pd.DataFrame:
    """ADNIMERGE-style long table: one row per subject and visit."""
    rows = []
    for i, ptid in enumerate(ptids):
        sub = substage[i]
        m0, sd = _MMSE_BASELINE[sub]
        mmse0 = rng.normal(m0, sd)
        n_visits = int(rng.integers(2, len(visits) + 1))
        for viscode in visits[:n_visits]:
            months = _months(viscode)
            mmse = np.clip(round(mmse0 - _MMSE_DECLINE_PER_YEAR[sub] * months / 12 + rng.normal(0, 0.7)), 0, 30)
            rows.append(
                {
                    "RID": int(ptid.split("_S_")[1]),
                    "PTID": ptid,
                    "VISCODE": viscode,
                    "SITE": int(ptid[:3]),
                    "COLPROT": "ADNI2",
                    "ORIGPROT": "ADNI2",
                    "EXAMDATE": (pd.Timestamp("2012-01-02") + pd.Timedelta(days=int(3 * i + 30.44 * months))).strftime(
                        "%Y-%m-%d"
                    ),
                    "DX_bl": dx_bl[i],
                    "DX": _VISIT_DX.get(sub, ""),
                    "AGE": float(age[i]),
                    "PTGENDER": "Female" if sex[i] == 1 else "Male",
                    "PTEDUCAT": int(education[i]),
                    "APOE4": int(apoe4[i]),
                    "MMSE": int(mmse),
                    "Month": months,
                }
            )
    return pd.DataFrame(rows)


def _qc_failing_snps(
    rng: np.random.Generator, dosage: np.ndarray, snps: pd.DataFrame, protected: set[str]
) -> dict[str, str]:
    """Turn three non-causal SNPs into QC failures (in place) and say how.

    One with 15% of calls missing (fails call rate 0.95), one monomorphic (fails MAF
    0.01), one with 90% heterozygotes (fails HWE p 1e-6 from about 40 subjects on).
    Counts are fixed, not random, so that the failures hold for any cohort size.
    """
    candidates = [j for j, r in enumerate(snps["rsid"]) if r not in protected]
    miss, mono, hwe = (int(j) for j in rng.choice(candidates, size=3, replace=False))
    n = dosage.shape[0]
    order = rng.permutation(n)
    dosage[order[: int(np.ceil(0.15 * n))], miss] = np.nan
    dosage[:, mono] = 2.0
    dosage[:, hwe] = 0.0
    dosage[order[: int(np.ceil(0.90 * n))], hwe] = 1.0
    rs = snps["rsid"].to_numpy()
    return {rs[miss]: "call_rate", rs[mono]: "maf", rs[hwe]: "hwe"}


def write_plink(prefix: Path, ptids: list[str], sex: np.ndarray, dosage: np.ndarray, snps: pd.DataFrame) -> None:
    """Write PLINK 1 binary files with pandas-plink.

    ``dosage`` counts each SNP's ``a1`` allele. PLINK's A1 (column 5 of .bim) is the
    minor allele by convention, so ``a1`` goes to column 5 (pandas-plink's ``a0``) and
    pandas-plink is given the count of column 6's allele, 2 - dosage.
    """
    from pandas_plink import write_plink1_bin
    from xarray import DataArray

    prefix.parent.mkdir(parents=True, exist_ok=True)
    G = DataArray(
        (2.0 - dosage).astype(np.float32),
        dims=["sample", "variant"],
        coords=dict(
            sample=ptids,
            fid=("sample", ptids),
            iid=("sample", ptids),
            father=("sample", ["0"] * len(ptids)),
            mother=("sample", ["0"] * len(ptids)),
            gender=("sample", [("2" if s == 1 else "1") for s in sex]),
            trait=("sample", ["-9"] * len(ptids)),
            variant=[f"v{j}" for j in range(len(snps))],
            snp=("variant", snps["rsid"].tolist()),
            chrom=("variant", snps["chrom"].astype(str).tolist()),
            cm=("variant", [0.0] * len(snps)),
            pos=("variant", snps["pos"].astype(int).tolist()),
            a0=("variant", snps["a1"].tolist()),
            a1=("variant", snps["a2"].tolist()),
        ),
    )
    # Write to temporary names, then rename, so a failed run leaves no partial set.
    tmp = prefix.with_name(prefix.name + ".tmp")
    write_plink1_bin(G, f"{tmp}.bed", f"{tmp}.bim", f"{tmp}.fam", verbose=False)
    for ext in (".bed", ".bim", ".fam"):
        os.replace(f"{tmp}{ext}", f"{prefix}{ext}")
