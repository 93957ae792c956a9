"""Synthetic cohort: determinism, formats read back by their own readers, planted truth."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_COHORT, plink_executable

from rgenima import DX_BL_TO_STAGE, STAGES
from rgenima.data import synthetic as syn
from rgenima.data.discovery import participant_id
from rgenima.data.genetics import read_genotypes


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.yaml"
    }


def test_synthetic_same_seed_same_bytes(small_cohort, tmp_path):
    again = tmp_path / "again"
    syn.write_synthetic_cohort(again, SMALL_COHORT)
    assert _tree_digest(again) == _tree_digest(small_cohort)


def test_synthetic_other_seed_other_data(small_cohort, tmp_path):
    other = tmp_path / "other"
    config = syn.SynthConfig(n_subjects=SMALL_COHORT.n_subjects, seed=SMALL_COHORT.seed + 1, voxel_mm=4.0)
    syn.write_synthetic_cohort(other, config)
    a = pd.read_csv(small_cohort / "ADNIMERGE.csv")
    b = pd.read_csv(other / "ADNIMERGE.csv")
    assert not a["AGE"].equals(b["AGE"])


def test_first_subject_changes_identifiers_only(small_cohort, tmp_path):
    from dataclasses import replace

    other = tmp_path / "shifted"
    syn.write_synthetic_cohort(other, replace(SMALL_COHORT, first_subject=2500))
    a, b = pd.read_csv(small_cohort / "ADNIMERGE.csv"), pd.read_csv(other / "ADNIMERGE.csv")
    assert set(a["PTID"]).isdisjoint(b["PTID"])
    assert b["PTID"].iloc[0] == "990_S_11500" and b["RID"].iloc[0] == 11500
    assert b["RID"].nunique() == b["PTID"].nunique()
    # The same draws: identical covariates, labels and genotypes.
    for column in ("AGE", "DX_bl", "PTEDUCAT", "APOE4", "MMSE"):
        pd.testing.assert_series_equal(a[column], b[column])
    assert (other / "genotypes" / "cohort.bed").read_bytes() == (small_cohort / "genotypes" / "cohort.bed").read_bytes()
    with pytest.raises(ValueError, match="'first_subject' must be 0 or more"):
        syn.SynthConfig(first_subject=-1)


def test_synthetic_clinical_table(small_cohort):
    clinical = pd.read_csv(small_cohort / "ADNIMERGE.csv", dtype={"PTID": str})
    for column in ("PTID", "VISCODE", "DX_bl", "AGE", "PTGENDER", "PTEDUCAT", "APOE4", "MMSE"):
        assert column in clinical.columns
    assert (clinical.groupby("PTID")["VISCODE"].apply(lambda v: (v == "bl").sum()) == 1).all()
    assert clinical.groupby("PTID").size().min() >= 2  # several visits per subject
    assert clinical["PTID"].str.fullmatch(r"99\d_S_9\d{3}").all()  # never an ADNI site
    codes = set(clinical["DX_bl"].dropna())
    assert codes <= set(DX_BL_TO_STAGE)
    assert {"CN", "SMC", "EMCI", "LMCI", "AD"} <= codes
    # DX_bl is a baseline attribute: constant across a subject's visits.
    assert (clinical.groupby("PTID")["DX_bl"].nunique(dropna=False) == 1).all()


def test_synthetic_images_are_mni_t1w(small_cohort):
    images = sorted((small_cohort / "bids").glob("sub-ADNI*/ses-M000/anat/sub-ADNI*_ses-M000_T1w.nii.gz"))
    truth = json.loads((small_cohort / "truth.json").read_text())
    defects = truth["defective_subjects"]
    assert len(images) == SMALL_COHORT.n_subjects + defects["count"] - defects["by_defect"]["no_mri"]
    img = nib.load(images[0])
    assert img.ndim == 3
    np.testing.assert_allclose(np.abs(np.diag(img.affine)[:3]), 4.0)
    assert int(img.header["sform_code"]) == 4  # MNI152
    data = np.asarray(img.dataobj)
    assert data.dtype == np.int16 and np.isfinite(data).all() and data.max() > 500
    # The world origin (MNI 0,0,0) lies inside the brain.
    ijk = np.round(np.linalg.inv(img.affine) @ [0, 0, 0, 1]).astype(int)[:3]
    assert data[tuple(ijk)] > 0


def test_synthetic_participant_folder_matches_clinica(small_cohort):
    assert participant_id("023_S_0031") == "ADNI023S0031"
    ptid = pd.read_csv(small_cohort / "ADNIMERGE.csv", dtype=str)["PTID"].iloc[0]
    label = participant_id(ptid)
    assert (small_cohort / "bids" / f"sub-{label}" / "ses-M000" / "anat" / f"sub-{label}_ses-M000_T1w.nii.gz").is_file()


def test_synthetic_apoe4_column_matches_genotypes(small_cohort):
    clinical = pd.read_csv(small_cohort / "ADNIMERGE.csv", dtype={"PTID": str})
    baseline = clinical[clinical["VISCODE"] == "bl"].set_index("PTID")
    geno = read_genotypes(small_cohort / "genotypes" / "cohort")
    j = int(np.flatnonzero(geno.variants["snp"] == "rs429358")[0])
    var = geno.variants.iloc[j]
    c_count = geno.dosage[:, j] if var["a1"] == "C" else 2 - geno.dosage[:, j]
    assert not np.isnan(c_count).any()
    apoe4 = baseline.loc[geno.samples["iid"], "APOE4"].to_numpy()
    np.testing.assert_array_equal(c_count, apoe4)
    # rs429358 at its GRCh37 position, rs7412 too.
    pos = geno.variants.set_index("snp")["pos"]
    assert pos["rs429358"] == 45411941 and pos["rs7412"] == 45412079


def test_synthetic_genotypes_read_by_plink(small_cohort, tmp_path):
    from rgenima.data.genetics import snp_allele_stats

    plink = plink_executable()
    out = tmp_path / "plink"
    prefix = small_cohort / "genotypes" / "cohort"
    # --keep-allele-order: A1 stays .bim column 5, the allele rgenima's dosages count,
    # and PLINK's "MAF" column is then that allele's frequency.
    subprocess.run(
        [plink, "--bfile", str(prefix), "--freq", "--keep-allele-order", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    frq = pd.read_csv(f"{out}.frq", sep=r"\s+")
    geno = read_genotypes(prefix)
    assert len(frq) == geno.dosage.shape[1]
    assert (frq["SNP"].to_numpy() == geno.variants["snp"].to_numpy()).all()
    assert (frq["A1"].to_numpy() == geno.variants["a1"].to_numpy()).all()
    ours = snp_allele_stats(geno.dosage)["a1_freq"].to_numpy()
    np.testing.assert_allclose(frq["MAF"].to_numpy(), ours, atol=1e-4)  # PLINK prints 4 digits
    assert frq.set_index("SNP").loc["rs429358", "A1"] == "C"


def test_synthetic_qc_failures_and_missingness(small_cohort):
    truth = json.loads((small_cohort / "truth.json").read_text())
    geno = read_genotypes(small_cohort / "genotypes" / "cohort")
    snps = geno.variants["snp"].to_numpy()
    assert np.isnan(geno.dosage).any()  # a little missingness
    failing = truth["qc_failing_snps"]
    assert sorted(failing.values()) == ["call_rate", "hwe", "maf"]
    by_kind = {v: k for k, v in failing.items()}
    miss = geno.dosage[:, snps == by_kind["call_rate"]]
    assert np.isnan(miss).mean() > 0.05
    mono = geno.dosage[:, snps == by_kind["maf"]]
    assert np.nanmin([np.nanmean(mono) / 2, 1 - np.nanmean(mono) / 2]) < 0.01 + 1 / len(mono)
    het = geno.dosage[:, snps == by_kind["hwe"]]
    assert np.nanmean(het == 1) > 0.7


def test_synthetic_truth_file(small_cohort):
    truth = json.loads((small_cohort / "truth.json").read_text())
    subjects = truth["subjects"]
    assert len(subjects) == SMALL_COHORT.n_subjects
    post = np.array([[s["posterior"][c] for c in STAGES] for s in subjects])
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-5)
    assert "APOE" in truth["causal_genes"]
    assert any(i["gene"] == "APOE" and "Hippocampus_L" in i["regions"] for i in truth["interactions"])
    features = pd.read_csv(small_cohort / "truth_features.csv")
    assert len(features) == SMALL_COHORT.n_subjects
    assert features.filter(like="atrophy_").shape[1] == 120  # one per AAL2 ROI
    clinical = pd.read_csv(small_cohort / "ADNIMERGE.csv", dtype={"PTID": str})
    dx = clinical[clinical["VISCODE"] == "bl"].set_index("PTID")["DX_bl"]
    for s in subjects:
        assert DX_BL_TO_STAGE[dx[s["PTID"]]] == s["stage"]


def _latent_oracle(config: syn.SynthConfig, n: int = 6000):
    snps = syn.load_panel_snps(config.max_snps_per_gene)
    from rgenima.data.atlas import load_atlas

    rois = load_atlas("aal2").labels["name"].tolist()
    liab, z = syn.calibration_sample(config, snps)
    b = syn._calibrate_intercepts(config, liab, z)
    latent = syn.sample_latent(config, np.random.default_rng(11), snps, rois, b, n)
    y = np.array([STAGES.index(syn.SUBSTAGE_TO_STAGE[syn.SUBSTAGES[k]]) for k in latent.substage])
    full = syn.oracle_posterior(config, b, rois, latent.age, latent.effect_doses, latent.atrophy)
    noint = syn.oracle_posterior(
        config, b, rois, latent.age, latent.effect_doses, latent.atrophy, with_interactions=False
    )
    return y, syn.classification_summary(y, full), syn.classification_summary(y, noint)


def test_oracle_design_targets():
    """The default generator: oracle 4-way accuracy near 0.80, SMC the hardest class,
    and the ROI x gene interactions worth accuracy (measured on 6,000 latent draws)."""
    y, full, noint = _latent_oracle(syn.SynthConfig())
    assert 0.75 <= full["accuracy"] <= 0.86
    assert min(full["recall"], key=full["recall"].get) == "SMC"
    assert full["accuracy"] - noint["accuracy"] > 0.03
    fractions = np.bincount(y, minlength=4) / len(y)
    assert fractions.min() > 0.10  # every stage well represented


def test_oracle_is_calibrated():
    """Posterior probabilities match observed frequencies (it is the true model)."""
    config = syn.SynthConfig()
    snps = syn.load_panel_snps(config.max_snps_per_gene)
    from rgenima.data.atlas import load_atlas

    rois = load_atlas("aal2").labels["name"].tolist()
    liab, z = syn.calibration_sample(config, snps)
    b = syn._calibrate_intercepts(config, liab, z)
    latent = syn.sample_latent(config, np.random.default_rng(5), snps, rois, b, 6000)
    y = np.array([STAGES.index(syn.SUBSTAGE_TO_STAGE[syn.SUBSTAGES[k]]) for k in latent.substage])
    post = syn.oracle_posterior(config, b, rois, latent.age, latent.effect_doses, latent.atrophy)
    top = post.max(axis=1)
    correct = post.argmax(axis=1) == y
    assert abs(top.mean() - correct.mean()) < 0.02


def test_synth_config_rejects_bad_values():
    with pytest.raises(ValueError, match="'voxel_mm' must be in"):
        syn.SynthConfig(voxel_mm=10)
    with pytest.raises(ValueError, match="'n_subjects' must be at least 8"):
        syn.SynthConfig(n_subjects=2)


def test_synth_cli(tmp_path, capsys):
    from rgenima.cli import main

    assert main(["synth", "--out", str(tmp_path / "c"), "--n-subjects", "12", "--seed", "1", "--voxel-mm", "4"]) == 0
    assert "oracle accuracy" in capsys.readouterr().out
    assert (tmp_path / "c" / "truth.json").is_file()
