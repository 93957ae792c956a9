"""Tests of rgenima.data.validate and the ``rgenima validate`` command."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from minimal_cohort import AFFINE, SUBJECTS, write_image, write_minimal_cohort

from rgenima.cli import main
from rgenima.data.manifest import load_manifest, sha256_file
from rgenima.data.validate import DataReport, check_gene_panel, check_mri_header, validate_manifest
from rgenima.errors import DataContractError, ManifestError

PTIDS = [s[0] for s in SUBJECTS]


def _validate(cohort, **kwargs) -> DataReport:
    return validate_manifest(load_manifest(cohort.manifest), **kwargs)


def _excluded_cohort(tmp_path, **manifest):
    """Minimal cohort plus one subject of each exclusion kind."""
    extra_rows = [
        {"PTID": "994_S_9007", "VISCODE": "bl", "DX_bl": "Dementia"},  # unknown DX
        {"PTID": "994_S_9008", "VISCODE": "m06", "DX_bl": "CN"},  # no baseline
    ]
    return write_minimal_cohort(
        tmp_path,
        extra_rows=extra_rows,
        mri_for=[p for p in PTIDS if p != "991_S_9002"],  # no MRI
        genotypes_for=[p for p in PTIDS if p != "992_S_9003"],  # no genotypes
        extra_iids=["998_S_9998", "999_S_9999"],  # in .fam, not in the clinical table
        manifest=manifest,
    )


def test_validate_minimal_cohort(tmp_path):
    report = _validate(write_minimal_cohort(tmp_path))
    assert report.cohort_name == "minimal"
    assert report.n_subjects_in_clinical == 6
    assert report.counts_per_stage == {"NC": 2, "SMC": 1, "MCI": 2, "AD": 1}
    assert report.baseline_counts == report.counts_per_stage
    assert report.n_cohort == 6
    assert report.coverage == {"clinical": 6, "mri": 6, "genotypes": 6}
    assert report.exclusions.empty and list(report.exclusions.columns) == ["PTID", "reason"]
    assert report.warnings == []
    assert (report.n_fam_samples, report.n_snps) == (6, 10)
    assert (report.atlas_name, report.n_rois) == ("atlas", 3)
    assert report.cohort_ptids == PTIDS
    assert set(report.mri_paths) == set(PTIDS)


def test_validate_with_builtin_atlas(tmp_path):
    report = _validate(write_minimal_cohort(tmp_path, manifest={"atlas": "aal2"}))
    assert (report.atlas_name, report.n_rois) == ("aal2", 120)
    assert report.warnings == []  # the (7, 8, 9) x 20 mm grid overlaps MNI space


def test_exclusions_are_counted_not_errors(tmp_path):
    report = _validate(_excluded_cohort(tmp_path))
    assert report.n_subjects_in_clinical == 8
    assert report.baseline_counts == {"NC": 2, "SMC": 1, "MCI": 2, "AD": 1}
    assert report.coverage == {"clinical": 6, "mri": 5, "genotypes": 5}
    assert report.n_cohort == 4
    assert report.counts_per_stage == {"NC": 2, "SMC": 0, "MCI": 1, "AD": 1}
    reasons = dict(zip(report.exclusions["PTID"], report.exclusions["reason"]))
    assert reasons == {
        "994_S_9008": "no baseline visit (VISCODE bl, m00, init, sc, scmri)",
        "994_S_9007": "DX_bl 'Dementia' is not one of CN, SMC, EMCI, LMCI, AD",
        "992_S_9003": "no genotypes: PTID not an IID in the .fam",
        "991_S_9002": "no MRI: no BIDS participant folder",
    }
    assert report.n_excluded == 4
    assert report.n_fam_unmatched == 2
    assert report.fam_unmatched_examples == ["998_S_9998", "999_S_9999"]
    assert "no cohort subject has stage SMC." in report.warnings


def test_subject_with_two_reasons_has_two_rows(tmp_path):
    cohort = write_minimal_cohort(
        tmp_path,
        mri_for=PTIDS[1:],
        genotypes_for=PTIDS[1:],
    )
    report = _validate(cohort)
    assert report.exclusions["PTID"].tolist() == [PTIDS[0], PTIDS[0]]
    assert report.n_excluded == 1
    assert report.exclusion_counts() == {
        "no MRI: no BIDS participant folder": 1,
        "no genotypes: PTID not an IID in the .fam": 1,
    }


def test_to_text_summarises(tmp_path):
    text = _validate(_excluded_cohort(tmp_path)).to_text()
    assert "Subjects per class (cohort / labelled at baseline):" in text
    assert "  NC        2 / 2" in text
    assert "  SMC       0 / 1" in text
    assert "Modality coverage (of 6 labelled baseline subjects):" in text
    assert "  mri             5" in text
    assert "Excluded: 4 subjects" in text
    assert "1  DX_bl 'Dementia' is not one of CN, SMC, EMCI, LMCI, AD" in text
    assert "1  no MRI: no BIDS participant folder" in text
    assert "2 .fam IIDs match no PTID of the clinical table (e.g. 998_S_9998, 999_S_9999)" in text
    assert "991_S_9002" not in text  # counts, not lists of subjects


def test_restricted_report_has_no_subject_ids(tmp_path):
    report = _validate(_excluded_cohort(tmp_path, cohort={"restricted": True}))
    assert report.restricted
    assert report.fam_unmatched_examples == []
    text = report.to_text()
    payload = json.dumps(report.to_dict())
    for ptid in PTIDS + ["994_S_9007", "994_S_9008", "998_S_9998"]:
        assert ptid not in text
        assert ptid not in payload
        assert "ADNI" + ptid.replace("_", "") not in payload
    assert report.to_dict()["n_excluded"] == 4


def test_to_dict_and_write_json(tmp_path):
    report = _validate(_excluded_cohort(tmp_path / "cohort"))
    out = report.write_json(tmp_path / "runs" / "report.json")
    assert out == tmp_path / "runs" / "report.json"
    assert [p.name for p in out.parent.iterdir()] == ["report.json"]  # no temp file left
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["counts_per_stage"] == {"NC": 2, "SMC": 0, "MCI": 1, "AD": 1}
    assert data["exclusion_counts"]["no baseline visit"] == 1
    assert {"PTID": "991_S_9002", "reason": "no MRI: no BIDS participant folder"} in data["exclusions"]


def test_write_json_replaces_existing_file(tmp_path):
    report = _validate(write_minimal_cohort(tmp_path / "cohort"))
    target = tmp_path / "report.json"
    target.write_text("old")
    report.write_json(target)
    assert json.loads(target.read_text())["n_cohort"] == 6


def test_no_matching_iids_warns(tmp_path):
    cohort = write_minimal_cohort(tmp_path, genotypes_for=[], extra_iids=["ADNI991S9001"])
    report = _validate(cohort)
    assert report.n_cohort == 0
    assert any(
        w.startswith("no labelled subject has genotypes: .fam IIDs must equal clinical PTIDs") and "'ADNI991S9001'" in w
        for w in report.warnings
    )


def test_image_outside_mni_space_warns(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    far = AFFINE.copy()
    far[:3, 3] += 1000.0  # 1 m away from the atlas
    nib.save(nib.Nifti1Image(np.zeros((7, 8, 9), np.float32), far), cohort.t1w(PTIDS[0]))
    report = _validate(cohort)
    assert any("1 MRI images cover less than half of the atlas" in w for w in report.warnings)


# --- contract violations ------------------------------------------------------


def test_missing_clinical_file(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    cohort.clinical.unlink()
    with pytest.raises(DataContractError, match=r"clinical table not found: .*ADNIMERGE\.csv"):
        _validate(cohort)


def test_missing_clinical_column(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    table = pd.read_csv(cohort.clinical, dtype=str).rename(columns={"PTID": "ptid"})
    table.to_csv(cohort.clinical, index=False)
    with pytest.raises(
        DataContractError,
        match=r"ADNIMERGE\.csv: missing required column\(s\) 'PTID'.*Did you mean 'ptid' for 'PTID'\?",
    ):
        _validate(cohort)


def test_duplicate_baseline_rows(tmp_path):
    cohort = write_minimal_cohort(tmp_path, extra_rows=[{"PTID": "991_S_9001", "VISCODE": "bl", "DX_bl": "CN"}])
    with pytest.raises(DataContractError, match=r"several baseline rows .* 991_S_9001 \(lines 2, 20\)"):
        _validate(cohort)


def test_four_d_image(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    path = write_image(cohort.t1w(PTIDS[2]), shape=(7, 8, 9, 2))
    with pytest.raises(
        DataContractError,
        match=r"sub-ADNI992S9003_ses-M000_T1w\.nii\.gz: MRI image must be 3-D \(one volume per "
        r"subject\); got shape \(7, 8, 9, 2\)\.",
    ):
        _validate(cohort)
    assert path.exists()


def test_single_volume_4d_image_is_accepted(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    write_image(cohort.t1w(PTIDS[2]), shape=(7, 8, 9, 1))
    assert _validate(cohort).n_cohort == 6


def test_unreadable_image(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    cohort.t1w(PTIDS[3]).write_bytes(b"this is not a NIfTI file" * 20)
    with pytest.raises(
        DataContractError,
        match=r"sub-ADNI992S9004_ses-M000_T1w\.nii\.gz: cannot read MRI image as NIfTI",
    ):
        _validate(cohort)


def test_unreadable_image_can_be_excluded(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    cohort.t1w(PTIDS[3]).write_bytes(b"\x00garbage" * 50)
    report = _validate(cohort, bad_images="exclude")
    assert report.n_cohort == 5
    assert report.coverage["mri"] == 5
    assert report.exclusions["PTID"].tolist() == [PTIDS[3]]
    assert report.exclusion_counts() == {"unreadable MRI": 1}


def test_bad_images_option_is_checked(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    with pytest.raises(ValueError, match=r"'bad_images' must be one of \('raise', 'exclude'\)\. 'skip' was provided\."):
        _validate(cohort, bad_images="skip")


def test_check_mri_header_singular_affine(tmp_path):
    path = tmp_path / "x.nii.gz"
    img = nib.Nifti1Image(np.zeros((7, 8, 9), np.float32), None)
    singular = np.eye(4)
    singular[0, 0] = 0.0
    img.header.set_sform(singular, code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, path)
    with pytest.raises(
        DataContractError, match=r"x\.nii\.gz: MRI image has an invalid affine \(not finite or not invertible\)"
    ):
        check_mri_header(path)


def test_check_mri_header_missing_file(tmp_path):
    with pytest.raises(DataContractError, match=r"x\.nii\.gz: cannot read MRI image as NIfTI"):
        check_mri_header(tmp_path / "missing" / "x.nii.gz")


def test_missing_bids_root(tmp_path):
    cohort = write_minimal_cohort(tmp_path, manifest={"cohort": {"mri": {"bids_root": "data/elsewhere"}}})
    with pytest.raises(DataContractError, match=r"MRI BIDS folder not found: .*elsewhere"):
        _validate(cohort)


def test_truncated_bed(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    cohort.bed.write_bytes(cohort.bed.read_bytes()[:-3])
    with pytest.raises(
        DataContractError,
        match=r"cohort\.bed: size is 20 bytes but cohort\.bim lists 10 SNPs and cohort\.fam lists 6 samples",
    ):
        _validate(cohort)


def test_bim_fam_mismatch(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    lines = cohort.fam.read_text().splitlines()
    cohort.fam.write_text("\n".join(lines[:4]) + "\n")  # 4 samples: 1 byte per SNP, not 2
    with pytest.raises(
        DataContractError, match=r"cohort\.fam lists 4 samples, so it should be .* = 13 bytes \(too large\)"
    ):
        _validate(cohort)


def test_duplicate_fam_iids(tmp_path):
    cohort = write_minimal_cohort(tmp_path, extra_iids=[PTIDS[0]])
    with pytest.raises(
        DataContractError, match=r"cohort\.fam: IIDs must be unique \(IID = PTID\); 1 repeated: 991_S_9001"
    ):
        _validate(cohort)


def test_checksum_mismatch(tmp_path):
    cohort = write_minimal_cohort(tmp_path, manifest={"checksums": {"data/ADNIMERGE.csv": "a" * 64}})
    with pytest.raises(ManifestError, match=r"ADNIMERGE\.csv: sha256 checksum mismatch"):
        _validate(cohort)


def test_checksums_verified_are_reported(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    digest = sha256_file(cohort.bed)
    cohort = write_minimal_cohort(tmp_path, manifest={"checksums": {"data/genotypes/cohort.bed": digest}})
    assert _validate(cohort).checksums_verified == ["data/genotypes/cohort.bed"]


def test_missing_gene_panel(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    cohort.gene_panel.unlink()
    with pytest.raises(
        DataContractError, match=r"gene panel not found: .*gene_panel\.tsv \(gene_panel in the manifest\)"
    ):
        _validate(cohort)


def test_truth_entry_is_checked(tmp_path):
    cohort = write_minimal_cohort(tmp_path, manifest={"cohort": {"truth": "data/truth.json"}})
    with pytest.raises(
        DataContractError, match=r"truth file not found: .*truth\.json .*\(cohort\.truth in the manifest\)"
    ):
        _validate(cohort)
    (tmp_path / "data" / "truth.json").write_text("[1, 2]")
    with pytest.raises(DataContractError, match=r"truth\.json: expected a JSON object.*cohort\.truth"):
        _validate(cohort)
    (tmp_path / "data" / "truth.json").write_text('{"causal_genes": []}')
    assert _validate(cohort).n_subjects_in_clinical > 0


def test_gene_panel_missing_column(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    panel = pd.read_csv(cohort.gene_panel, sep="\t").drop(columns=["ad_locus"])
    panel.to_csv(cohort.gene_panel, sep="\t", index=False)
    with pytest.raises(
        DataContractError,
        match=r"gene_panel\.tsv, line 1: gene panel is missing column\(s\) 'ad_locus'; expected tab-separated columns "
        r"symbol, chrom, start, end, ad_locus, source",
    ):
        _validate(cohort)


def test_gene_panel_start_after_end(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    panel = pd.read_csv(cohort.gene_panel, sep="\t")
    panel.loc[1, "start"] = panel.loc[1, "end"] + 1
    panel.to_csv(cohort.gene_panel, sep="\t", index=False)
    with pytest.raises(DataContractError, match=r"gene_panel\.tsv, line 3: gene 'BIN1' has start \d+ > end \d+"):
        check_gene_panel(cohort.gene_panel)


def test_builtin_gene_panel_when_present(tmp_path):
    cohort = write_minimal_cohort(tmp_path, manifest={"gene_panel": "builtin"})
    manifest = load_manifest(cohort.manifest)
    if not manifest.gene_panel.exists():
        pytest.skip("rgenima/resources/gene_panel_grch37.tsv not written yet")
    assert len(check_gene_panel(manifest.gene_panel)) > 0


# --- command line ---------------------------------------------------------------


def test_cli_validate_valid_cohort(tmp_path, capsys):
    cohort = write_minimal_cohort(tmp_path / "cohort")
    out_json = tmp_path / "report.json"
    assert main(["validate", "--manifest", str(cohort.manifest), "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    assert "Subjects per class (cohort / labelled at baseline):" in captured.out
    assert captured.err == ""
    assert json.loads(out_json.read_text())["n_cohort"] == 6


def test_cli_validate_violation(tmp_path, capsys):
    cohort = write_minimal_cohort(tmp_path)
    cohort.bed.write_bytes(cohort.bed.read_bytes()[:10])
    assert main(["validate", "--manifest", str(cohort.manifest)]) == 1
    captured = capsys.readouterr()
    assert "rgenima validate: contract violation:" in captured.err
    assert "cohort.bed: size is 10 bytes" in captured.err
    assert captured.out == ""


def test_cli_validate_bad_manifest(tmp_path, capsys):
    cohort = write_minimal_cohort(tmp_path, manifest={"qc": {"min_maf": "abc"}})
    assert main(["validate", "--manifest", str(cohort.manifest)]) == 1
    err = capsys.readouterr().err
    assert "field 'qc.min_maf' must be a number in [0, 0.5]; got 'abc'." in err
