"""`rgenima prepare`: cache, rebuild on change, no partial cache, layouts and atlases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rgenima.cli import main
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort

CONFIG = PrepareConfig(cube_size=6)


def _manifest(root: Path, mri: str, atlas: str = "aal2") -> Path:
    path = root / "manifest.yaml"
    path.write_text(
        "cohort:\n  name: t\n  clinical: ADNIMERGE.csv\n"
        f"  mri: {mri}\n  genotypes: genotypes/cohort\n"
        f"atlas: {atlas}\ngene_panel: builtin\nsnp_gene_window_kb: 10\n"
        "qc: {min_call_rate: 0.95, min_maf: 0.01, hwe_p: 1.0e-6}\n"
    )
    return path


@pytest.fixture()
def cohort_copy(small_cohort, tmp_path) -> Path:
    dst = tmp_path / "cohort"
    shutil.copytree(small_cohort, dst)
    return dst


def test_prepare_writes_aligned_outputs(cohort_copy, tmp_path):
    manifest = load_manifest(_manifest(cohort_copy, "{bids_root: bids}"))
    out = prepare_cohort(manifest, tmp_path / "run", CONFIG)
    subjects = pd.read_csv(out / "subjects.csv")
    n = len(subjects)
    truth = json.loads((cohort_copy / "truth.json").read_text())
    assert n == len(truth["subjects"])  # every complete subject, no defective one
    rois = pd.read_csv(out / "rois.tsv", sep="\t")
    assert len(rois) == 120
    assert len(list((out / "cubes").glob("*.npy"))) == n
    cube = np.load(out / "cubes" / "00000.npy")
    assert cube.shape == (120, 6, 6, 6) and cube.dtype == np.float16
    feats = np.load(out / "roi_features.npz")
    assert feats["mean_intensity_norm"].shape == (n, 120)
    dosage = np.load(out / "dosage.npy")
    snps = pd.read_csv(out / "snps.tsv", sep="\t")
    assert dosage.shape == (n, len(snps))
    # QC-failing SNPs planted by the generator are not kept.
    assert not set(truth["qc_failing_snps"]) & set(snps["snp"])
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [p["row"] for p in prompts] == list(range(n))
    # Genes in genomic order: the prompt starts on chromosome 1 and APOE (chr19) is late.
    first_gene = prompts[0]["text"].split(":", 1)[0]
    assert str(snps.loc[snps["gene"] == first_gene, "chrom"].iloc[0]) == "1"
    assert "; APOE: " in prompts[0]["text"]
    # Covariates only: no diagnostic scores among the columns.
    assert not {"MMSE", "DX", "CDR"} & set(subjects.columns)
    report = json.loads((out / "data_report.json").read_text())
    assert report["n_cohort"] == n


def test_prepare_reuses_cache_and_rebuilds_on_change(cohort_copy, tmp_path, caplog):
    manifest_path = _manifest(cohort_copy, "{bids_root: bids}")
    out = prepare_cohort(load_manifest(manifest_path), tmp_path / "run", CONFIG)
    stamp = json.loads((out / "prepare.json").read_text())
    first_mtime = (out / "dosage.npy").stat().st_mtime_ns
    caplog.set_level("INFO")
    prepare_cohort(load_manifest(manifest_path), tmp_path / "run", CONFIG)
    assert "reusing" in caplog.text
    assert (out / "dosage.npy").stat().st_mtime_ns == first_mtime
    # Change one input: the clinical table (one subject's age).
    clinical = pd.read_csv(cohort_copy / "ADNIMERGE.csv", dtype=str, keep_default_na=False)
    clinical.loc[0, "AGE"] = "88.8"
    clinical.to_csv(cohort_copy / "ADNIMERGE.csv", index=False)
    out = prepare_cohort(load_manifest(manifest_path), tmp_path / "run", CONFIG)
    assert json.loads((out / "prepare.json").read_text())["input_hash"] != stamp["input_hash"]
    # A setting change also rebuilds.
    prepare_cohort(load_manifest(manifest_path), tmp_path / "run", PrepareConfig(cube_size=4))
    assert np.load(out / "cubes" / "00000.npy").shape == (120, 4, 4, 4)


def test_failed_prepare_leaves_no_partial_cache(cohort_copy, tmp_path):
    from rgenima.errors import DataContractError

    manifest = load_manifest(_manifest(cohort_copy, "{bids_root: bids}"))
    # A non-finite image passes header checks but fails during extraction.
    import nibabel as nib

    victim = sorted((cohort_copy / "bids").glob("sub-*/ses-M000/anat/*.nii.gz"))[5]
    img = nib.load(victim)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), victim)
    run = tmp_path / "run"
    with pytest.raises(DataContractError, match=rf"{victim.name}: MRI image holds 1 non-finite"):
        prepare_cohort(manifest, run, CONFIG)
    assert not (run / "prepared").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".prepared")]


def test_prepare_at_1_5mm_with_desikan_killiany_and_glob_pattern(tmp_path):
    cohort = tmp_path / "c15"
    write_synthetic_cohort(cohort, SynthConfig(n_subjects=8, seed=2, voxel_mm=1.5, n_defective=0))
    flat = cohort / "flat"
    flat.mkdir()
    for img in (cohort / "bids").glob("sub-*/ses-M000/anat/*_T1w.nii.gz"):
        participant = img.name.split("_")[0][len("sub-ADNI") :]
        ptid = f"{participant[:3]}_S_{participant[4:]}"
        shutil.copy(img, flat / f"{ptid}_T1w.nii.gz")
    manifest = load_manifest(_manifest(cohort, '{pattern: "flat/{ptid}_T1w.nii.gz"}', atlas="desikan_killiany"))
    out = prepare_cohort(manifest, tmp_path / "run", CONFIG)
    rois = pd.read_csv(out / "rois.tsv", sep="\t")
    assert len(rois) == 83
    assert np.load(out / "cubes" / "00000.npy").shape == (83, 6, 6, 6)
    assert (rois["n_voxels"] > 0).all()


def test_prepare_cli(cohort_copy, tmp_path, capsys):
    manifest = _manifest(cohort_copy, "{bids_root: bids}")
    assert main(["prepare", "--manifest", str(manifest), "--out", str(tmp_path / "r"), "--cube-size", "4"]) == 0
    assert "prepared data" in capsys.readouterr().out
    (cohort_copy / "genotypes" / "cohort.bim").write_text("1 rs1 0 100 A G\n")  # .bim no longer matches .bed
    assert main(["prepare", "--manifest", str(manifest), "--out", str(tmp_path / "r")]) == 1
    assert "cohort.bed" in capsys.readouterr().err
