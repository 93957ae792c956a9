"""Shared fixtures: a small synthetic cohort written once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort


def plink_executable() -> str:
    """Path of plink1.9; skips the test when it is missing, unless CI requires it.

    ``.ci/run`` installs plink1.9 and sets RGENIMA_REQUIRE_PLINK=1, so the comparison
    tests always run in CI and fail there, rather than skip, if PLINK is absent.
    """
    for name in ("plink1.9", "plink"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("RGENIMA_REQUIRE_PLINK") == "1":
        pytest.fail("plink1.9 is required (RGENIMA_REQUIRE_PLINK=1) but not on PATH")
    pytest.skip("plink1.9 not installed (apt-get install plink1.9)")


#: Small but complete: every stage present, 4 mm voxels to keep the suite fast.
SMALL_COHORT = SynthConfig(n_subjects=40, seed=3, voxel_mm=4.0)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "cohort"
    write_synthetic_cohort(out, SMALL_COHORT)
    return out


@pytest.fixture(scope="session")
def small_manifest(small_cohort: Path) -> Path:
    path = small_cohort / "manifest.yaml"
    path.write_text(
        "cohort:\n"
        "  name: synthetic-small\n"
        "  clinical: ADNIMERGE.csv\n"
        "  mri: {bids_root: bids}\n"
        "  genotypes: genotypes/cohort\n"
        "atlas: aal2\n"
        "gene_panel: builtin\n"
        "snp_gene_window_kb: 10\n"
        "qc: {min_call_rate: 0.95, min_maf: 0.01, hwe_p: 1.0e-6}\n"
    )
    return path
