"""Cohort assembly: the subjects present in every required modality.

Subjects left out are listed with the reason, never silently dropped.
"""

from __future__ import annotations

import logging

import pandas as pd

from rgenima.data.clinical import baseline_subjects, read_clinical
from rgenima.data.discovery import find_mri
from rgenima.data.manifest import Manifest
from rgenima.data.plink import read_fam_iids

logger = logging.getLogger(__name__)


def assemble_subjects(manifest: Manifest) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline subjects with a label, an MRI and genotypes.

    Returns
    -------
    subjects : DataFrame
        One row per cohort subject, in clinical-table order: ``PTID``, ``DX_bl``,
        ``stage``, the covariates present, and ``mri_path``.
    exclusions : DataFrame
        Columns ``PTID`` and ``reason``: one row per excluded subject.
    """
    clinical = read_clinical(manifest.cohort.clinical)
    subjects, exclusions = baseline_subjects(clinical, manifest.cohort.clinical)
    found, no_mri = find_mri(manifest.cohort.mri, subjects["PTID"])
    iids = set(read_fam_iids(manifest.cohort.genotypes))
    has_geno = subjects["PTID"].isin(iids)
    no_geno = pd.DataFrame(
        {
            "PTID": subjects.loc[~has_geno, "PTID"].to_numpy(),
            "reason": f"no genotypes (IID not in {manifest.cohort.genotypes}.fam)",
        }
    )
    keep = subjects["PTID"].isin(found.keys()) & has_geno
    cohort = subjects[keep].reset_index(drop=True)
    cohort["mri_path"] = cohort["PTID"].map(lambda p: str(found[p]))
    excluded = pd.concat([exclusions, no_mri, no_geno], ignore_index=True)
    logger.info("cohort: %d subjects, %d excluded", len(cohort), excluded["PTID"].nunique())
    return cohort, excluded
