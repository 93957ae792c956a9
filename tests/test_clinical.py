"""Tests of rgenima.data.clinical: ADNIMERGE reading, baseline selection, labels."""

from __future__ import annotations

import pandas as pd
import pytest
from minimal_cohort import SUBJECTS, clinical_rows, write_clinical

from rgenima import STAGES
from rgenima.data.clinical import baseline_subjects, read_clinical, resolve_clinical_path
from rgenima.errors import DataContractError


def _row(ptid, viscode="bl", dx="CN", **extra):
    return {"PTID": ptid, "VISCODE": viscode, "DX_bl": dx, **extra}


def test_read_clinical_minimal(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", clinical_rows())
    table = read_clinical(path)
    assert table.shape[0] == len(SUBJECTS) * 3
    assert table.attrs["source"] == str(path)
    assert table["PTID"].map(type).eq(str).all()
    assert table["RID"].map(type).eq(str).all()


def test_ids_keep_leading_zeros_and_lose_whitespace(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    path.write_text("RID,PTID,VISCODE,DX_bl\n0042, 990_S_0042 ,bl ,CN\n")
    table = read_clinical(path)
    assert table.loc[0, ["RID", "PTID", "VISCODE", "DX_bl"]].tolist() == ["0042", "990_S_0042", "bl", "CN"]


@pytest.mark.parametrize("name", ["ADNIMERGE_27Nov2026.csv", "adnimerge.csv", "clinical.csv"])
def test_any_file_name_is_accepted(tmp_path, name):
    path = write_clinical(tmp_path / name, clinical_rows())
    assert len(read_clinical(path)) == 18


def test_folder_with_one_adnimerge_file(tmp_path):
    write_clinical(tmp_path / "ADNIMERGE_27Nov2026.csv", clinical_rows())
    (tmp_path / "README.txt").write_text("not a table")
    assert resolve_clinical_path(tmp_path).name == "ADNIMERGE_27Nov2026.csv"


def test_folder_with_two_adnimerge_files(tmp_path):
    write_clinical(tmp_path / "ADNIMERGE_01Jan2026.csv", clinical_rows())
    write_clinical(tmp_path / "ADNIMERGE_27Nov2026.csv", clinical_rows())
    with pytest.raises(
        DataContractError,
        match=r"expected exactly one ADNIMERGE\*\.csv in this folder \(cohort\.clinical\); found "
        r"ADNIMERGE_01Jan2026\.csv, ADNIMERGE_27Nov2026\.csv",
    ):
        read_clinical(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DataContractError, match=r"clinical table not found: .*ADNIMERGE\.csv \(cohort\.clinical"):
        read_clinical(tmp_path / "ADNIMERGE.csv")


def test_missing_column_lists_found_columns(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    pd.DataFrame([{"PTID": "991_S_9001", "VISCODE": "bl", "AGE": 70}]).to_csv(path, index=False)
    with pytest.raises(
        DataContractError,
        match=r"ADNIMERGE\.csv: missing required column\(s\) 'DX_bl'; found columns: 'PTID', "
        r"'VISCODE', 'AGE'\.$",
    ):
        read_clinical(path)


def test_misnamed_ptid_column_gets_hint(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    pd.DataFrame([{"ptid": "991_S_9001", "VISCODE": "bl", "DX_BL": "CN"}]).to_csv(path, index=False)
    with pytest.raises(
        DataContractError,
        match=r"missing required column\(s\) 'PTID', 'DX_bl'; found columns: 'ptid', 'VISCODE', "
        r"'DX_BL'\. Did you mean 'ptid' for 'PTID', 'DX_BL' for 'DX_bl'\? Column names are "
        r"case- and whitespace-sensitive\.",
    ):
        read_clinical(path)


def test_column_with_whitespace_gets_hint(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    path.write_text(" PTID,VISCODE,DX_bl\n991_S_9001,bl,CN\n")
    with pytest.raises(DataContractError, match=r"Did you mean ' PTID' for 'PTID'\?"):
        read_clinical(path)


def test_unknown_viscode_names_file_line_and_value(tmp_path):
    rows = clinical_rows()
    rows[4]["VISCODE"] = "M12"  # second subject's m06 row -> line 6
    path = write_clinical(tmp_path / "ADNIMERGE.csv", rows)
    with pytest.raises(
        DataContractError,
        match=r"ADNIMERGE\.csv: unknown VISCODE value\(s\) in column 'VISCODE': line 6 "
        r"\(PTID 991_S_9002\): 'M12'\. Expected 'bl', 'sc', 'scmri', 'init', 'y1' or 'm'",
    ):
        read_clinical(path)


def test_empty_viscode(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001", viscode="")])
    with pytest.raises(DataContractError, match=r"line 2 \(PTID 991_S_9001\): empty"):
        read_clinical(path)


@pytest.mark.parametrize("viscode", ["bl", "sc", "scmri", "init", "y1", "m03", "m108"])
def test_known_viscodes(tmp_path, viscode):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001", viscode=viscode)])
    assert read_clinical(path)["VISCODE"].tolist() == [viscode]


def test_empty_ptid(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001"), _row("")])
    with pytest.raises(DataContractError, match=r"column 'PTID' is empty on line\(s\) 3;"):
        read_clinical(path)


def test_not_a_csv(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    path.write_bytes(b"")
    with pytest.raises(DataContractError, match=r"ADNIMERGE\.csv: the clinical table is empty \(no header line\)"):
        read_clinical(path)


# --- baseline selection -------------------------------------------------------


def test_baseline_subjects_minimal(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", clinical_rows())
    subjects, exclusions = baseline_subjects(read_clinical(path))
    assert subjects["PTID"].tolist() == [s[0] for s in SUBJECTS]
    assert exclusions.empty
    assert list(exclusions.columns) == ["PTID", "reason"]
    assert list(subjects.columns) == ["PTID", "DX_bl", "stage", "AGE", "PTGENDER", "PTEDUCAT", "APOE4"]
    assert list(subjects["stage"].cat.categories) == list(STAGES)
    assert subjects["AGE"].dtype == float and subjects["APOE4"].tolist() == [0, 0, 1, 1, 2, 0]
    assert "MMSE" not in subjects.columns  # diagnostic criterion: never kept


@pytest.mark.parametrize(
    ("dx", "stage"), [("CN", "NC"), ("SMC", "SMC"), ("EMCI", "MCI"), ("LMCI", "MCI"), ("AD", "AD")]
)
def test_label_mapping(tmp_path, dx, stage):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001", dx=dx), _row("991_S_9001", "m06", dx)])
    subjects, exclusions = baseline_subjects(read_clinical(path))
    assert subjects["stage"].tolist() == [stage]
    assert exclusions.empty


def test_unknown_and_empty_dx_are_excluded_and_counted(tmp_path):
    rows = clinical_rows() + [
        _row("994_S_9007", dx="Dementia"),
        _row("994_S_9007", "m06", "Dementia"),
        _row("994_S_9008", dx=""),
    ]
    path = write_clinical(tmp_path / "ADNIMERGE.csv", rows)
    subjects, exclusions = baseline_subjects(read_clinical(path))
    assert len(subjects) == len(SUBJECTS)
    assert exclusions.to_dict("records") == [
        {"PTID": "994_S_9007", "reason": "DX_bl 'Dementia' is not one of CN, SMC, EMCI, LMCI, AD"},
        {"PTID": "994_S_9008", "reason": "DX_bl is empty"},
    ]


def test_subject_without_baseline_visit_is_excluded(tmp_path):
    rows = clinical_rows() + [_row("995_S_9009", "m06"), _row("995_S_9009", "m12")]
    path = write_clinical(tmp_path / "ADNIMERGE.csv", rows)
    subjects, exclusions = baseline_subjects(read_clinical(path))
    assert "995_S_9009" not in subjects["PTID"].tolist()
    assert exclusions.to_dict("records") == [
        {"PTID": "995_S_9009", "reason": "no baseline visit (VISCODE bl, m00, init, sc, scmri)"}
    ]


def test_duplicate_baseline_ptids_name_ptids_and_lines(tmp_path):
    rows = clinical_rows() + [_row("991_S_9002", dx="SMC"), _row("993_S_9005", dx="AD")]
    path = write_clinical(tmp_path / "ADNIMERGE.csv", rows)
    with pytest.raises(
        DataContractError,
        match=r"ADNIMERGE\.csv: several baseline rows \(VISCODE 'bl'\) for the same PTID: "
        r"991_S_9002 \(lines 5, 20\); 993_S_9005 \(lines 14, 21\)\.",
    ):
        baseline_subjects(read_clinical(path))


def test_covariates_optional(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001")])
    subjects, _ = baseline_subjects(read_clinical(path))
    assert list(subjects.columns) == ["PTID", "DX_bl", "stage"]


def test_non_numeric_covariate(tmp_path):
    path = write_clinical(
        tmp_path / "ADNIMERGE.csv",
        [_row("991_S_9001", AGE="71"), _row("991_S_9002", AGE="seventy")],
    )
    with pytest.raises(
        DataContractError, match=r"ADNIMERGE\.csv, line 3: column 'AGE' must be a number; got 'seventy'"
    ):
        baseline_subjects(read_clinical(path))


def test_empty_covariate_is_nan(tmp_path):
    path = write_clinical(tmp_path / "ADNIMERGE.csv", [_row("991_S_9001", APOE4=""), _row("991_S_9002", APOE4="1")])
    subjects, _ = baseline_subjects(read_clinical(path))
    assert subjects["APOE4"].isna().tolist() == [True, False]


def test_baseline_subjects_path_argument_is_used_in_messages(tmp_path):
    table = pd.DataFrame([_row("991_S_9001"), _row("991_S_9001")])
    with pytest.raises(DataContractError, match=r"^my_table\.csv: several baseline rows"):
        baseline_subjects(table, path="my_table.csv")
