"""Cohort description tables: demographics by stage, genotype overview.

Tables carry no subject identifiers, so they may be published for restricted cohorts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rgenima import STAGES


def _mean_sd(values: pd.Series, digits: int = 1) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "n/a"
    return f"{values.mean():.{digits}f} ({values.std(ddof=1):.{digits}f})"


def demographics_table(subjects: pd.DataFrame) -> pd.DataFrame:
    """Baseline characteristics per stage, as in a study's Table 1.

    Parameters
    ----------
    subjects : DataFrame
        One row per subject with column ``stage`` and optional ``AGE`` (years),
        ``PTGENDER`` ("Male"/"Female"), ``PTEDUCAT`` (years) and ``APOE4`` (0, 1, 2).

    Returns
    -------
    DataFrame indexed by characteristic, one column per stage plus ``All``.
    """
    groups = [(s, subjects[subjects["stage"] == s]) for s in STAGES]
    groups.append(("All", subjects))
    rows: dict[str, dict[str, str]] = {}
    for name, g in groups:
        col: dict[str, str] = {"N": str(len(g))}
        if "AGE" in g:
            col["Age, years: mean (SD)"] = _mean_sd(g["AGE"])
        if "PTGENDER" in g:
            female = (g["PTGENDER"].astype(str).str.lower() == "female").mean() if len(g) else np.nan
            col["Female, %"] = "n/a" if np.isnan(female) else f"{100 * female:.1f}"
        if "PTEDUCAT" in g:
            col["Education, years: mean (SD)"] = _mean_sd(g["PTEDUCAT"])
        if "APOE4" in g:
            apoe = pd.to_numeric(g["APOE4"], errors="coerce").dropna()
            col["APOE ε4 carriers, %"] = f"{100 * (apoe > 0).mean():.1f}" if len(apoe) else "n/a"
            col["APOE ε4 homozygotes, %"] = f"{100 * (apoe == 2).mean():.1f}" if len(apoe) else "n/a"
        rows[name] = col
    return pd.DataFrame(rows)


def genes_snp_counts(variants: pd.DataFrame, gene_of_snp: pd.Series) -> pd.DataFrame:
    """Number of genotyped SNPs per panel gene (genes with none are listed with 0)."""
    counts = gene_of_snp.reindex(variants["snp"]).value_counts()
    return counts.rename_axis("gene").reset_index(name="n_snps")
