"""A tiny, valid cohort written in the formats of the data contract, for tests.

Not a conftest: test modules import it explicitly, ``from minimal_cohort import ...``
(pytest's default "prepend" import mode puts ``tests/``, which has no ``__init__.py``,
on ``sys.path``).

Subject IDs use ADNI's format with sites 991-993 and numbers 9001-9006, which no real
ADNI subject has. Images are (7, 8, 9) voxels of 20 mm with an MNI-like affine, so
every axis has a different length; the atlas is a 3-ROI user atlas on the same grid.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

#: (PTID, DX_bl, AGE, PTGENDER, PTEDUCAT, APOE4) of the default subjects.
SUBJECTS: tuple[tuple[str, str, float, str, int, int], ...] = (
    ("991_S_9001", "CN", 71.5, "Female", 16, 0),
    ("991_S_9002", "SMC", 68.0, "Male", 18, 0),
    ("992_S_9003", "EMCI", 74.2, "Female", 14, 1),
    ("992_S_9004", "LMCI", 77.9, "Male", 12, 1),
    ("993_S_9005", "AD", 80.1, "Female", 15, 2),
    ("993_S_9006", "CN", 66.3, "Male", 20, 0),
)
#: Visits written for each subject (ADNIMERGE has one row per visit).
VISITS: tuple[str, ...] = ("bl", "m06", "m12")
#: Image grid: unequal axis lengths catch axis mix-ups.
SHAPE: tuple[int, int, int] = (7, 8, 9)
#: 20 mm voxels, LAS orientation like MNI152 templates; covers about the MNI brain box.
AFFINE = np.array(
    [
        [-20.0, 0.0, 0.0, 70.0],
        [0.0, 20.0, 0.0, -100.0],
        [0.0, 0.0, 20.0, -70.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
N_SNPS = 10
CLINICAL_COLUMNS = (
    "RID",
    "PTID",
    "VISCODE",
    "DX_bl",
    "AGE",
    "PTGENDER",
    "PTEDUCAT",
    "APOE4",
    "MMSE",
)


@dataclass
class MinimalCohort:
    """Paths of a cohort written by :func:`write_minimal_cohort`."""

    root: Path
    manifest: Path
    clinical: Path
    bids_root: Path
    plink_prefix: Path
    atlas_image: Path
    atlas_labels: Path
    gene_panel: Path
    ptids: list[str] = field(default_factory=list)

    def t1w(self, ptid: str) -> Path:
        """Expected BIDS path of a subject's baseline T1w."""
        return bids_t1w_path(self.bids_root, ptid)

    @property
    def bed(self) -> Path:
        return Path(f"{self.plink_prefix}.bed")

    @property
    def bim(self) -> Path:
        return Path(f"{self.plink_prefix}.bim")

    @property
    def fam(self) -> Path:
        return Path(f"{self.plink_prefix}.fam")


def participant(ptid: str) -> str:
    """Clinica's participant label, written here independently of rgenima."""
    return "ADNI" + ptid.replace("_", "")


def bids_t1w_path(bids_root: Path, ptid: str, session: str = "ses-M000", ext: str = ".nii.gz") -> Path:
    sub = f"sub-{participant(ptid)}"
    return bids_root / sub / session / "anat" / f"{sub}_{session}_T1w{ext}"


def clinical_rows(subjects=SUBJECTS, visits: Iterable[str] = VISITS) -> list[dict[str, Any]]:
    """ADNIMERGE-like rows: one per subject and visit; DX_bl repeated on each."""
    rows = []
    for rid, (ptid, dx, age, sex, edu, apoe4) in enumerate(subjects, start=1):
        for visit in visits:
            rows.append(
                {
                    "RID": str(9000 + rid),
                    "PTID": ptid,
                    "VISCODE": visit,
                    "DX_bl": dx,
                    "AGE": age,
                    "PTGENDER": sex,
                    "PTEDUCAT": edu,
                    "APOE4": apoe4,
                    "MMSE": 29 if dx in ("CN", "SMC") else 24,
                }
            )
    return rows


def write_clinical(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(rows[0]) if rows else CLINICAL_COLUMNS).to_csv(path, index=False)
    return path


def write_image(path: Path, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> Path:
    """A float32 NIfTI of the given shape on the MNI-like grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path


def atlas_data(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """Three ROIs (1, 2, 5) in the left, middle and right thirds along x; 0 elsewhere."""
    data = np.zeros(shape, dtype=np.int16)
    data[0:2, 1:-1, 1:-1] = 1
    data[2:4, 1:-1, 1:-1] = 2
    data[4:6, 1:-1, 1:-1] = 5
    return data


def write_atlas(image: Path, labels: Path, names=("Hippocampus_L", "Hippocampus_R", "Precuneus_L")) -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(atlas_data(), AFFINE), image)
    pd.DataFrame({"index": [1, 2, 5], "name": list(names)}).to_csv(labels, sep="\t", index=False)


def write_gene_panel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "symbol": ["APOE", "BIN1", "CLU"],
            "chrom": ["19", "2", "8"],
            "start": [45409039, 127805603, 27454434],
            "end": [45412650, 127864931, 27472548],
            "ad_locus": [True, True, True],
            "source": ["test", "test", "test"],
        }
    ).to_csv(path, sep="\t", index=False)
    return path


def write_plink(prefix: Path, iids: list[str], n_snps: int = N_SNPS, seed: int = 0) -> Path:
    """PLINK 1 binary fileset with pandas-plink (SNP-major), genotypes 0/1/2."""
    import xarray as xr
    from pandas_plink import write_plink1_bin

    prefix.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    G = xr.DataArray(
        rng.integers(0, 3, size=(len(iids), n_snps)).astype(np.float32),
        dims=["sample", "variant"],
        coords={
            "sample": list(iids),
            "fid": ("sample", list(iids)),
            "iid": ("sample", list(iids)),
            "variant": [f"v{i}" for i in range(n_snps)],
            "snp": ("variant", [f"rs{1000 + i}" for i in range(n_snps)]),
            "chrom": ("variant", ["19"] * n_snps),
            "pos": ("variant", [45_400_000 + 1000 * i for i in range(n_snps)]),
            "a0": ("variant", ["A"] * n_snps),
            "a1": ("variant", ["G"] * n_snps),
        },
    )
    write_plink1_bin(G, f"{prefix}.bed", f"{prefix}.bim", f"{prefix}.fam", verbose=False)
    return prefix


def default_manifest() -> dict[str, Any]:
    """Manifest content (relative paths) of the minimal cohort."""
    return {
        "cohort": {
            "name": "minimal",
            "restricted": False,
            "clinical": "data/ADNIMERGE.csv",
            "mri": {"bids_root": "data/bids"},
            "genotypes": "data/genotypes/cohort",
        },
        "atlas": {"image": "data/atlas/atlas.nii.gz", "labels": "data/atlas/atlas.tsv"},
        "gene_panel": "data/gene_panel.tsv",
        "snp_gene_window_kb": 10,
        "qc": {"min_call_rate": 0.95, "min_maf": 0.01, "hwe_p": 1.0e-6},
    }


def merge(base: dict, overrides: dict) -> dict:
    """Recursive dict update; a value of ``None`` deletes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_manifest(path: Path, content: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def write_minimal_cohort(
    root: Path,
    *,
    subjects=SUBJECTS,
    extra_rows: Iterable[dict[str, Any]] = (),
    mri_for: Iterable[str] | None = None,
    genotypes_for: Iterable[str] | None = None,
    extra_iids: Iterable[str] = (),
    manifest: dict[str, Any] | None = None,
) -> MinimalCohort:
    """Write the cohort under ``root`` and return its paths.

    Parameters
    ----------
    root : pathlib.Path
        Folder to write into (``tmp_path``).
    subjects : sequence of tuples
        See :data:`SUBJECTS`.
    extra_rows : iterable of dict
        Additional ADNIMERGE rows (e.g. a subject with an unknown DX_bl).
    mri_for, genotypes_for : iterable of str, optional
        PTIDs that get an image / a .fam row; default all subjects.
    extra_iids : iterable of str
        .fam IIDs that match no PTID.
    manifest : dict, optional
        Overrides merged into :func:`default_manifest` (``None`` values delete keys).
    """
    root = Path(root)
    data = root / "data"
    ptids = [s[0] for s in subjects]
    rows = clinical_rows(subjects) + list(extra_rows)
    clinical = write_clinical(data / "ADNIMERGE.csv", rows)
    bids = data / "bids"
    bids.mkdir(parents=True, exist_ok=True)
    for i, ptid in enumerate(ptids if mri_for is None else list(mri_for)):
        write_image(bids_t1w_path(bids, ptid), seed=i)
    iids = list(ptids if genotypes_for is None else genotypes_for) + list(extra_iids)
    prefix = write_plink(data / "genotypes" / "cohort", iids)
    atlas_image, atlas_labels = data / "atlas" / "atlas.nii.gz", data / "atlas" / "atlas.tsv"
    write_atlas(atlas_image, atlas_labels)
    panel = write_gene_panel(data / "gene_panel.tsv")
    content = merge(default_manifest(), manifest or {})
    path = write_manifest(root / "data_manifest.yaml", content)
    return MinimalCohort(
        root=root,
        manifest=path,
        clinical=clinical,
        bids_root=bids,
        plink_prefix=prefix,
        atlas_image=atlas_image,
        atlas_labels=atlas_labels,
        gene_panel=panel,
        ptids=ptids,
    )
