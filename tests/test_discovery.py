"""Tests of rgenima.data.discovery: BIDS (Clinica ADNI layout) and pattern modes."""

from __future__ import annotations

import pytest
from minimal_cohort import bids_t1w_path, write_image

from rgenima.data.discovery import find_mri, participant_id, ptid_from_participant
from rgenima.data.manifest import MriSpec
from rgenima.errors import DataContractError

PTIDS = ["991_S_9001", "992_S_9003", "993_S_9005"]


def test_participant_id_follows_clinica():
    assert participant_id("023_S_0031") == "ADNI023S0031"
    assert participant_id("991_S_9001") == "ADNI991S9001"


@pytest.mark.parametrize("label", ["ADNI991S9001", "sub-ADNI991S9001"])
def test_ptid_from_participant(label):
    assert ptid_from_participant(label) == "991_S_9001"


def test_participant_round_trip():
    for ptid in PTIDS:
        assert ptid_from_participant(participant_id(ptid)) == ptid


def test_participant_id_rejects_odd_ptid():
    with pytest.raises(DataContractError, match=r"cannot build a BIDS participant label from PTID '991 S/9001'"):
        participant_id("991 S/9001")


def test_ptid_from_participant_rejects_non_adni_label():
    with pytest.raises(DataContractError, match=r"participant label 'sub-01' is not in Clinica's ADNI form"):
        ptid_from_participant("sub-01")


# --- BIDS -------------------------------------------------------------------


def test_find_mri_bids(tmp_path):
    for ptid in PTIDS:
        write_image(bids_t1w_path(tmp_path, ptid))
    found, missing = find_mri(MriSpec(bids_root=tmp_path), PTIDS)
    assert list(found) == PTIDS
    assert found["991_S_9001"] == (
        tmp_path / "sub-ADNI991S9001" / "ses-M000" / "anat" / "sub-ADNI991S9001_ses-M000_T1w.nii.gz"
    )
    assert missing.empty and list(missing.columns) == ["PTID", "reason"]


def test_bids_prefers_ses_m000_over_ses_m00(tmp_path):
    ptid = PTIDS[0]
    new = write_image(bids_t1w_path(tmp_path, ptid, "ses-M000"))
    write_image(bids_t1w_path(tmp_path, ptid, "ses-M00"))
    found, _ = find_mri(MriSpec(bids_root=tmp_path), [ptid])
    assert found[ptid] == new


def test_bids_accepts_old_session_label_and_uncompressed(tmp_path):
    ptid = PTIDS[0]
    path = write_image(bids_t1w_path(tmp_path, ptid, "ses-M00", ext=".nii"))
    found, missing = find_mri(MriSpec(bids_root=tmp_path), [ptid])
    assert found == {ptid: path} and missing.empty


def test_bids_accepts_single_run_entity(tmp_path):
    ptid = PTIDS[0]
    anat = bids_t1w_path(tmp_path, ptid).parent
    path = write_image(anat / "sub-ADNI991S9001_ses-M000_run-01_T1w.nii.gz")
    found, _ = find_mri(MriSpec(bids_root=tmp_path), [ptid])
    assert found[ptid] == path


def test_bids_missing_reasons(tmp_path):
    a, b, c, d = PTIDS + ["994_S_9007"]
    write_image(bids_t1w_path(tmp_path, a))
    # b: participant folder without a baseline session
    write_image(bids_t1w_path(tmp_path, b, "ses-M012"))
    # c: no participant folder at all
    # d: two runs at baseline, no plain T1w
    anat = bids_t1w_path(tmp_path, d).parent
    write_image(anat / "sub-ADNI994S9007_ses-M000_run-01_T1w.nii.gz")
    write_image(anat / "sub-ADNI994S9007_ses-M000_run-02_T1w.nii.gz")
    found, missing = find_mri(MriSpec(bids_root=tmp_path), [a, b, c, d])
    assert list(found) == [a]
    reasons = dict(zip(missing["PTID"], missing["reason"]))
    assert reasons == {
        b: "no MRI: no baseline session (ses-M000 or ses-M00)",
        c: "no MRI: no BIDS participant folder",
        d: "no MRI: several baseline T1w files (sub-ADNI994S9007_ses-M000_run-01_T1w.nii.gz, "
        "sub-ADNI994S9007_ses-M000_run-02_T1w.nii.gz)",
    }


def test_bids_session_without_t1w(tmp_path):
    ptid = PTIDS[0]
    anat = bids_t1w_path(tmp_path, ptid).parent
    write_image(anat / "sub-ADNI991S9001_ses-M000_FLAIR.nii.gz")
    _, missing = find_mri(MriSpec(bids_root=tmp_path), [ptid])
    assert missing["reason"].tolist() == ["no MRI: no T1w NIfTI in ses-M000/anat"]


def test_missing_bids_root(tmp_path):
    with pytest.raises(DataContractError, match=r"MRI BIDS folder not found: .*nowhere \(cohort\.mri\.bids_root"):
        find_mri(MriSpec(bids_root=tmp_path / "nowhere"), PTIDS)


# --- pattern ----------------------------------------------------------------


def test_find_mri_pattern_with_ptid(tmp_path):
    for ptid in PTIDS[:2]:
        write_image(tmp_path / "gm" / f"{ptid}_gm.nii.gz")
    spec = MriSpec(pattern=str(tmp_path / "gm" / "{ptid}_gm.nii.gz"))
    found, missing = find_mri(spec, PTIDS)
    assert found == {p: tmp_path / "gm" / f"{p}_gm.nii.gz" for p in PTIDS[:2]}
    assert missing.to_dict("records") == [{"PTID": PTIDS[2], "reason": "no MRI: no file matches the pattern"}]


def test_find_mri_pattern_with_participant_and_glob(tmp_path):
    path = write_image(tmp_path / "sub-ADNI991S9001" / "anat" / "sub-ADNI991S9001_T1w_mni.nii.gz")
    spec = MriSpec(pattern=str(tmp_path / "sub-{participant}" / "*" / "sub-{participant}_T1w*.nii.gz"))
    found, _ = find_mri(spec, PTIDS[:1])
    assert found == {PTIDS[0]: path}


def test_pattern_with_several_matches_is_an_exclusion(tmp_path):
    write_image(tmp_path / "991_S_9001_a.nii.gz")
    write_image(tmp_path / "991_S_9001_b.nii.gz")
    found, missing = find_mri(MriSpec(pattern=str(tmp_path / "{ptid}_*.nii.gz")), PTIDS[:1])
    assert found == {}
    assert missing["reason"].tolist() == [
        "no MRI: several files match the pattern (991_S_9001_a.nii.gz, 991_S_9001_b.nii.gz)"
    ]


def test_pattern_folder_missing(tmp_path):
    spec = MriSpec(pattern=str(tmp_path / "nowhere" / "{ptid}.nii.gz"))
    with pytest.raises(
        DataContractError, match=r"MRI folder not found: .*nowhere \(the fixed part of cohort\.mri\.pattern"
    ):
        find_mri(spec, PTIDS)


def test_duplicate_ptids_are_looked_up_once(tmp_path):
    write_image(bids_t1w_path(tmp_path, PTIDS[0]))
    found, missing = find_mri(MriSpec(bids_root=tmp_path), [PTIDS[0], PTIDS[0]])
    assert len(found) == 1 and missing.empty
