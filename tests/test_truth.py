"""Where a synthetic cohort's planted truth is, and how it is read (rgenima.data.truth)."""

from __future__ import annotations

import numpy as np
import pytest

from rgenima.data.truth import (
    locate_truth,
    oracle_posterior_table,
    read_truth,
    read_truth_features,
)
from rgenima.errors import DataContractError

TRUTH = {
    "subjects": [
        {"PTID": "a", "posterior": {"NC": 0.7, "AD": 0.3}},
        {"PTID": "b", "posterior": {"NC": 0.1, "AD": 0.9}},
    ]
}


def test_locate_truth_prefers_the_manifest_entry(tmp_path):
    (tmp_path / "truth.json").write_text("{}")
    entry = tmp_path / "elsewhere.json"
    assert locate_truth(entry, tmp_path / "ADNIMERGE.csv") == entry
    assert locate_truth(None, tmp_path / "ADNIMERGE.csv") == tmp_path / "truth.json"
    assert locate_truth(None, tmp_path / "real" / "ADNIMERGE.csv") is None
    assert locate_truth(None, None) is None


def test_read_truth_from_file_or_folder_with_errors_naming_the_file(tmp_path):
    (tmp_path / "truth.json").write_text('{"causal_genes": ["APOE"]}')
    assert read_truth(tmp_path) == read_truth(tmp_path / "truth.json") == {"causal_genes": ["APOE"]}
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        read_truth(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataContractError, match=r"bad\.json: not valid JSON"):
        read_truth(tmp_path / "bad.json")


def test_oracle_posterior_table_orders_rows_and_names_missing_subjects():
    table = oracle_posterior_table(TRUTH, ["b", "a"], ["NC", "AD"])
    np.testing.assert_allclose(table, [[0.1, 0.9], [0.7, 0.3]])
    with pytest.raises(DataContractError, match=r"t\.json: no posterior for 1 subject\(s\), e\.g\. \['c'\]"):
        oracle_posterior_table(TRUTH, ["a", "c"], ["NC", "AD"], source="t.json")
    with pytest.raises(DataContractError, match="posterior is missing"):
        oracle_posterior_table(TRUTH, ["a"], ["NC", "MCI"])


def test_read_truth_features_beside_the_truth_file(tmp_path):
    (tmp_path / "truth.json").write_text("{}")
    (tmp_path / "truth_features.csv").write_text("PTID,x\na,1.5\nb,2.5\n")
    table = read_truth_features(tmp_path / "truth.json", ["b", "a"])
    assert table["x"].tolist() == [2.5, 1.5]
    with pytest.raises(DataContractError, match=r"truth_features\.csv: no row for 1 subject"):
        read_truth_features(tmp_path, ["z"])
