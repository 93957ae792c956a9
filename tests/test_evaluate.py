"""Tests of rgenima.evaluate: metrics, bootstrap intervals, paired comparisons, a run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
    roc_auc_score,
)
from sklearn.metrics import (
    auc as sklearn_auc,
)

from rgenima import STAGES
from rgenima.cli import main as cli_main
from rgenima.errors import DataContractError
from rgenima.evaluate import (
    PROBA_COLUMNS,
    bootstrap_ci,
    bootstrap_indices,
    bootstrap_metrics,
    classification_metrics,
    comparison_table,
    evaluate_run,
    find_main_configuration,
    load_predictions,
    metrics_table,
    paired_comparison,
    roc_curves,
    scalar_metrics,
)

# 12 subjects, every stage present, one tie in p_NC.
Y_TRUE = np.array(["NC", "NC", "NC", "SMC", "SMC", "MCI", "MCI", "MCI", "MCI", "AD", "AD", "AD"])
Y_PRED = np.array(["NC", "SMC", "NC", "SMC", "MCI", "MCI", "NC", "MCI", "AD", "AD", "MCI", "AD"])


def _proba(y_pred, seed=0, strength=2.0):
    """Probabilities of shape (n, 4) whose argmax is y_pred."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y_pred), len(STAGES)))
    logits[np.arange(len(y_pred)), [STAGES.index(s) for s in y_pred]] += strength + 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(proba / proba.sum(axis=1, keepdims=True), 6)


def test_classification_metrics_match_sklearn():
    proba = _proba(Y_PRED)
    proba[1, 0] = proba[0, 0]  # a tie
    proba /= proba.sum(axis=1, keepdims=True)
    m = classification_metrics(Y_TRUE, Y_PRED, proba)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    recall = recall_score(Y_TRUE, Y_PRED, labels=list(STAGES), average=None)
    assert [m["recall"][s] for s in STAGES] == pytest.approx(recall)
    for k, stage in enumerate(STAGES):
        assert m["auroc"][stage] == pytest.approx(roc_auc_score(Y_TRUE == stage, proba[:, k]))
    codes = np.array([STAGES.index(s) for s in Y_TRUE])
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(codes, proba, multi_class="ovr", average="macro"))
    expected = confusion_matrix(Y_TRUE, Y_PRED, labels=list(STAGES))
    np.testing.assert_array_equal(m["confusion_matrix"], expected)
    assert m["confusion_matrix"].shape == (4, 4)
    # rows are true labels: 3 true NC, of which 2 predicted NC and 1 SMC
    assert m["confusion_matrix"][0].tolist() == [2, 1, 0, 0]


def test_classification_metrics_absent_stage_is_nan():
    y_true, y_pred = np.array(["NC", "MCI", "AD", "AD"]), np.array(["NC", "MCI", "AD", "MCI"])
    m = classification_metrics(y_true, y_pred, _proba(y_pred))
    assert np.isnan(m["recall"]["SMC"]) and np.isnan(m["auroc"]["SMC"])
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_classification_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="labels must be one of"):
        classification_metrics(["NC", "XX"], ["NC", "NC"], np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="proba must have shape"):
        classification_metrics(["NC", "AD"], ["NC", "NC"], np.full((2, 3), 0.3))


def test_bootstrap_metrics_equal_metrics_of_resampled_rows():
    proba = _proba(Y_PRED, seed=1)
    indices = bootstrap_indices(len(Y_TRUE), n_boot=5, seed=3)
    values = bootstrap_metrics(Y_TRUE, Y_PRED, proba, indices)
    assert all(v.shape == (5,) for v in values.values())
    for b, idx in enumerate(indices):
        expected = scalar_metrics(classification_metrics(Y_TRUE[idx], Y_PRED[idx], proba[idx]))
        got = {name: v[b] for name, v in values.items()}
        assert got.keys() == expected.keys()
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], err_msg=name, equal_nan=True)


def test_bootstrap_ci_covers_true_accuracy():
    """Correctness ~ Bernoulli(0.7), n = 200: the 95% interval covers 0.7 ~95% of the time."""
    rng = np.random.default_rng(0)
    n, p, n_rep = 200, 0.7, 200
    y_true = np.zeros(n, dtype=int)
    proba = np.full((n, 4), 0.25)
    indices = bootstrap_indices(n, n_boot=300, seed=1)
    covered = 0
    for _ in range(n_rep):
        y_pred = np.where(rng.random(n) < p, 0, 2)
        low, high = bootstrap_ci(y_true, y_pred, proba, indices=indices)["accuracy"]
        covered += low <= p <= high
    assert 0.88 <= covered / n_rep <= 0.99


def test_bootstrap_ci_is_reproducible_and_ordered():
    proba = _proba(Y_PRED)
    a = bootstrap_ci(Y_TRUE, Y_PRED, proba, n_boot=50, seed=7)
    b = bootstrap_ci(Y_TRUE, Y_PRED, proba, n_boot=50, seed=7)
    assert a == b
    low, high = a["balanced_accuracy"]
    assert low <= classification_metrics(Y_TRUE, Y_PRED, proba)["balanced_accuracy"] <= high


def test_paired_comparison_mcnemar_exact_matches_binomial():
    # a correct & b wrong on 3 subjects, a wrong & b correct on 9, 10 concordant.
    y_true = np.arange(22) % 4
    wrong = (y_true + 1) % 4
    correct_a = np.array([True] * 3 + [False] * 9 + [True] * 5 + [False] * 5)
    correct_b = np.array([False] * 3 + [True] * 9 + [True] * 5 + [False] * 5)
    pred_a, pred_b = np.where(correct_a, y_true, wrong), np.where(correct_b, y_true, wrong)
    result = paired_comparison(y_true, pred_a, pred_b, n_boot=20)
    assert result["mcnemar"]["n10"] == 3 and result["mcnemar"]["n01"] == 9
    assert result["mcnemar"]["statistic"] == 3
    assert result["mcnemar"]["p_value"] == pytest.approx(binomtest(3, 12, 0.5).pvalue)


def test_paired_comparison_identical_predictions():
    result = paired_comparison(Y_TRUE, Y_PRED, Y_PRED.copy(), n_boot=100)
    d = result["balanced_accuracy_difference"]
    assert (d["estimate"], d["ci_low"], d["ci_high"]) == (0.0, 0.0, 0.0)
    assert d["p_value"] == 1.0
    assert result["mcnemar"]["p_value"] == 1.0


def test_paired_comparison_better_model_has_ci_above_zero():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)
    good = np.where(rng.random(200) < 0.8, y_true, rng.integers(0, 4, size=200))
    poor = np.where(rng.random(200) < 0.3, y_true, rng.integers(0, 4, size=200))
    d = paired_comparison(y_true, good, poor, n_boot=300, seed=0)["balanced_accuracy_difference"]
    assert d["ci_low"] > 0 and d["estimate"] > 0.3
    assert d["p_value"] < 0.01
    assert d["estimate"] == pytest.approx(balanced_accuracy_score(y_true, good) - balanced_accuracy_score(y_true, poor))


# ---------------------------------------------------------------------------------
# A tiny run directory
# ---------------------------------------------------------------------------------
def _write_predictions(path, ptids, folds, y_true, y_pred, proba):
    table = pd.DataFrame({"PTID": ptids, "fold": folds, "y_true": y_true, "y_pred": y_pred})
    for k, column in enumerate(PROBA_COLUMNS):
        table[column] = proba[:, k]
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6f")


@pytest.fixture
def tiny_run(tmp_path):
    """40 subjects, four configurations incl. reference_oracle; rows shuffled per file."""
    rng = np.random.default_rng(0)
    n = 40
    ptids = [f"{i:03d}_S_{i:04d}" for i in range(n)]
    y_true = np.array(STAGES)[np.arange(n) % 4]
    folds = np.arange(n) % 5
    accuracy = {"rgenima_mri+snp": 0.7, "rgenima_mri": 0.6, "baseline_logistic": 0.5, "reference_oracle": 0.95}
    for name, p in accuracy.items():
        y_pred = np.where(rng.random(n) < p, y_true, np.array(STAGES)[rng.integers(0, 4, n)])
        order = rng.permutation(n)
        _write_predictions(
            tmp_path / "models" / name / "predictions.csv",
            np.array(ptids)[order],
            folds[order],
            y_true[order],
            y_pred[order],
            _proba(y_pred[order], seed=1),
        )
    return tmp_path


def test_load_predictions_aligns_subjects(tiny_run):
    predictions = load_predictions(tiny_run)
    assert sorted(predictions) == ["baseline_logistic", "reference_oracle", "rgenima_mri", "rgenima_mri+snp"]
    first = predictions["baseline_logistic"]
    for table in predictions.values():
        assert table.shape == (40, 8)
        assert table["PTID"].tolist() == first["PTID"].tolist()
        assert table["y_true"].tolist() == first["y_true"].tolist()


def test_evaluate_run_writes_metrics_json(tiny_run):
    result = evaluate_run(tiny_run, n_boot=200, seed=0)
    written = json.loads((tiny_run / "metrics.json").read_text())
    assert written == result
    assert written["main"] == "rgenima_mri+snp"
    assert written["n_subjects"] == 40
    assert list(written["configurations"]) == [
        "rgenima_mri+snp",
        "rgenima_mri",
        "baseline_logistic",
        "reference_oracle",
    ]
    entry = written["configurations"]["rgenima_mri+snp"]
    assert entry["role"] == "main"
    assert {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "recall", "auroc", "confusion_matrix"} <= set(
        entry["metrics"]
    )
    assert np.sum(entry["metrics"]["confusion_matrix"]) == 40
    low, high = entry["ci"]["balanced_accuracy"]
    assert low <= entry["metrics"]["balanced_accuracy"] <= high
    assert set(written["comparisons"]) == {"rgenima_mri", "baseline_logistic", "reference_oracle"}
    comparison = written["comparisons"]["baseline_logistic"]
    assert set(comparison["mcnemar"]) >= {"statistic", "p_value", "n01", "n10"}
    assert set(comparison["balanced_accuracy_difference"]) >= {"estimate", "ci_low", "ci_high", "p_value"}
    oracle = written["references"]["reference_oracle"]
    assert oracle["ratio"] == pytest.approx(
        entry["metrics"]["balanced_accuracy"]
        / written["configurations"]["reference_oracle"]["metrics"]["balanced_accuracy"]
    )
    assert len(oracle["ratio_ci"]) == 2

    table = metrics_table(written)
    assert table.shape == (4, 7) and table.index[0] == "rgenima_mri+snp"
    assert table.loc["rgenima_mri", "balanced_accuracy"] == pytest.approx(
        written["configurations"]["rgenima_mri"]["metrics"]["balanced_accuracy"]
    )
    comparisons = comparison_table(written)
    assert comparisons.shape == (3, 10)
    assert (comparisons["p_mcnemar_holm"] >= comparisons["p_mcnemar"]).all()


def test_evaluate_run_is_reproducible(tiny_run):
    assert evaluate_run(tiny_run, n_boot=50, seed=3) == evaluate_run(tiny_run, n_boot=50, seed=3)


def test_load_predictions_mismatched_ptids_names_file(tiny_run):
    path = tiny_run / "models" / "rgenima_mri" / "predictions.csv"
    table = pd.read_csv(path, dtype={"PTID": str})
    table.loc[0, "PTID"] = "999_S_9999"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"rgenima_mri/predictions.csv: covers a different subject set"):
        load_predictions(tiny_run)


def test_load_predictions_missing_column_names_file(tiny_run):
    path = tiny_run / "models" / "baseline_logistic" / "predictions.csv"
    pd.read_csv(path).drop(columns="p_SMC").to_csv(path, index=False)
    with pytest.raises(DataContractError, match=r"baseline_logistic/predictions.csv: missing column\(s\) \['p_SMC'\]"):
        load_predictions(tiny_run)


def test_load_predictions_probabilities_must_sum_to_one(tiny_run):
    path = tiny_run / "models" / "reference_oracle" / "predictions.csv"
    table = pd.read_csv(path, dtype={"PTID": str})
    table.loc[2, "p_NC"] += 0.1
    table.to_csv(path, index=False)
    with pytest.raises(DataContractError, match=r"reference_oracle/predictions.csv: probabilities .* sum to 1"):
        load_predictions(tiny_run)


def test_find_main_configuration():
    assert find_main_configuration(["rgenima_mri+snp__quick", "rgenima_mri"]) == "rgenima_mri+snp__quick"
    assert find_main_configuration(["rgenima_mri+snp__a", "rgenima_mri+snp"]) == "rgenima_mri+snp"
    with pytest.raises(DataContractError, match="several main configurations"):
        find_main_configuration(["rgenima_mri+snp__a", "rgenima_mri+snp__b"])
    with pytest.raises(DataContractError, match="no configuration named"):
        find_main_configuration(["baseline_logistic"])


def test_roc_curves():
    proba = _proba(Y_PRED)
    table = pd.DataFrame({"y_true": Y_TRUE, **{c: proba[:, k] for k, c in enumerate(PROBA_COLUMNS)}})
    curves = roc_curves(table)
    assert list(curves) == list(STAGES)
    fpr, tpr, auc = curves["AD"]
    assert fpr.shape == tpr.shape and fpr[0] == 0 and tpr[-1] == 1
    assert auc == pytest.approx(sklearn_auc(fpr, tpr))


def test_cli_evaluate(tiny_run, capsys):
    assert cli_main(["evaluate", "--run", str(tiny_run), "--n-boot", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "rgenima_mri+snp" in out and "baseline_logistic" in out
    assert str(tiny_run / "metrics.json") in out
    assert (tiny_run / "metrics.json").is_file()


def test_cli_evaluate_reports_contract_error(tmp_path, capsys):
    assert cli_main(["evaluate", "--run", str(tmp_path)]) == 1
    assert "no */predictions.csv found" in capsys.readouterr().err
