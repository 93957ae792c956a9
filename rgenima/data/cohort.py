"""Cohort assembly: the subjects present in every required modality.

Subjects left out are listed with the reason in the data report
(:func:`rgenima.data.validate.validate_manifest`), never silently dropped.
"""

from __future__ import annotations

import logging

import pandas as pd

from rgenima.data.clinical import baseline_subjects, read_clinical
from rgenima.data.manifest import Manifest
from rgenima.data.validate import DataReport, validate_manifest

logger = logging.getLogger(__name__)


def assemble_subjects(manifest: Manifest, report: DataReport | None = None) -> pd.DataFrame:
    """Baseline subjects with a study label, an MRI and genotypes.

    Parameters
    ----------
    manifest : Manifest
    report : DataReport, optional
        The manifest's data report, if already computed (it is computed otherwise).

    Returns
    -------
    subjects : DataFrame
        One row per cohort subject, in clinical-table order: ``PTID``, ``DX_bl``,
        ``stage``, the covariates present, and ``mri_path``.
    """
    report = report or validate_manifest(manifest)
    subjects, _ = baseline_subjects(read_clinical(manifest.cohort.clinical), manifest.cohort.clinical)
    cohort = subjects[subjects["PTID"].isin(set(report.cohort_ptids))].reset_index(drop=True)
    cohort["mri_path"] = cohort["PTID"].map(lambda p: str(report.mri_paths[p]))
    logger.info("cohort: %d subjects (%d excluded)", len(cohort), report.n_excluded)
    return cohort
