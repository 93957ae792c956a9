"""Tests of rgenima.model.baselines and the APOE doses they read (rgenima.data.genetics)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rgenima.data.genetics import apoe_doses
from rgenima.model.baselines import (
    BASELINE_FEATURES,
    BASELINES,
    C_GRID,
    INNER_FOLDS,
    cross_validated_proba,
    feature_matrix,
    make_baseline,
)


def test_apoe_doses_count_e4_and_e2_in_any_allele_order_and_strand():
    snps = pd.DataFrame(
        {
            "snp": ["rs1", "rs429358", "rs7412"],
            "a1": ["A", "T", "T"],  # rs429358 counted on its T allele: e4 dose = 2 - dosage
            "a2": ["G", "C", "C"],
        }
    )
    dosage = np.array([[0, 2, 0], [1, 1, 1], [2, 0, 2], [0, np.nan, 0]], dtype=float)
    doses = apoe_doses(dosage, snps)
    np.testing.assert_array_equal(doses[:3], [[0, 0], [1, 1], [2, 2]])
    assert np.isnan(doses[3, 0]) and doses[3, 1] == 0
    # The reverse strand: C/T written G/A; rs429358 counted on G (= C, e4).
    flipped = pd.DataFrame({"snp": ["rs429358", "rs7412"], "a1": ["G", "C"], "a2": ["A", "T"]})
    np.testing.assert_array_equal(apoe_doses(np.array([[2.0, 2.0], [0.0, 1.0]]), flipped), [[2, 0], [0, 1]])


def test_apoe_doses_are_nan_when_not_typed():
    snps = pd.DataFrame({"snp": ["rs1"], "a1": ["A"], "a2": ["G"]})
    assert np.isnan(apoe_doses(np.zeros((3, 1)), snps)).all()


def test_feature_matrix_blocks_and_untyped_apoe_columns_dropped():
    roi, dose, cov = np.ones((5, 7)), np.zeros((5, 3)), np.full((5, 2), 2.0)
    apoe = np.column_stack([np.arange(5.0), np.full(5, np.nan)])  # e2 not typed
    X, blocks = feature_matrix(roi, dose, cov, apoe)
    assert X.shape == (5, 7 + 3 + 1 + 2)
    assert blocks == {"mri": slice(0, 7), "snp": slice(7, 10), "apoe": slice(10, 11), "covariates": slice(11, 13)}
    np.testing.assert_array_equal(X[:, blocks["apoe"]].ravel(), np.arange(5.0))


def _toy(n=120, seed=0):
    """Labels driven by ROI 0 and the e4 dose; SNP columns are pure noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    roi = rng.normal(size=(n, 6))
    roi[:, 0] += 2 * y
    dose = rng.integers(0, 3, size=(n, 9)).astype(float)
    e4 = np.clip(np.round(y / 2 + rng.normal(0, 0.5, n)), 0, 2)
    apoe = np.column_stack([e4, rng.integers(0, 2, n)]).astype(float)
    cov = rng.normal(size=(n, 3))
    X, blocks = feature_matrix(roi, dose, cov, apoe)
    return X, y, blocks


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_reads_only_its_feature_blocks(name):
    X, y, blocks = _toy()
    model = make_baseline(name, 0, blocks).fit(X, y)
    unused = [n for n in blocks if n not in BASELINE_FEATURES[name]]
    X_changed = X.copy()
    rng = np.random.default_rng(1)
    for block in unused:
        X_changed[:, blocks[block]] = rng.normal(size=X_changed[:, blocks[block]].shape)
    np.testing.assert_allclose(model.predict_proba(X_changed), model.predict_proba(X))
    proba = model.predict_proba(X)
    assert proba.shape == (len(y), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_tuned_logistic_equals_a_hand_made_nested_grid_search():
    X, y, blocks = _toy()
    columns = list(range(blocks["mri"].start, blocks["mri"].stop)) + list(
        range(blocks["covariates"].start, blocks["covariates"].stop)
    )
    hand = GridSearchCV(
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000)),
        {"logisticregression__C": list(C_GRID)},
        cv=StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=3),
        scoring="neg_log_loss",
    ).fit(X[:, columns], y)
    model = make_baseline("logistic_roi", 3, blocks).fit(X, y)
    assert model.best_params_ == hand.best_params_
    np.testing.assert_allclose(model.predict_proba(X), hand.predict_proba(X[:, columns]), atol=1e-10)
    # The toy labels depend on ROI 0: a tuned model finds it.
    assert (model.predict(X) == y).mean() > 0.6


def test_regularisation_is_chosen_without_the_test_fold():
    X, y, blocks = _toy()
    folds = np.arange(len(y)) % 3
    proba = cross_validated_proba(make_baseline("logistic_roi_apoe", 0, blocks), X, y, folds)
    # Scrambling the test fold's labels cannot change what its fold model predicts.
    y_scrambled = y.copy()
    y_scrambled[folds == 0] = np.random.default_rng(5).permutation(y[folds == 0])
    again = cross_validated_proba(make_baseline("logistic_roi_apoe", 0, blocks), X, y_scrambled, folds)
    np.testing.assert_allclose(again[folds == 0], proba[folds == 0])


def test_external_probabilities_average_the_fold_models():
    X, y, blocks = _toy()
    folds = np.arange(len(y)) % 3
    X_ext, _, _ = _toy(40, seed=9)
    estimator = make_baseline("logistic_apoe", 0, blocks)
    oof, external = cross_validated_proba(estimator, X, y, folds, X_external=X_ext)
    np.testing.assert_allclose(oof, cross_validated_proba(estimator, X, y, folds))
    by_hand = np.mean(
        [
            make_baseline("logistic_apoe", 0, blocks).fit(X[folds != k], y[folds != k]).predict_proba(X_ext)
            for k in range(3)
        ],
        axis=0,
    )
    np.testing.assert_allclose(external, by_hand)


def test_unknown_baseline_and_missing_block_are_refused():
    X, y, blocks = _toy()
    with pytest.raises(ValueError, match="'name' must be one of"):
        make_baseline("forest", 0, blocks)
    _, blocks_without_apoe = feature_matrix(np.ones((4, 2)), np.ones((4, 2)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="no apoe columns"):
        make_baseline("logistic_apoe", 0, blocks_without_apoe)


def test_platt_svm_calibrates_even_with_a_single_subject_in_a_class():
    from rgenima.model.baselines import PlattLinearSVM

    rng = np.random.default_rng(0)
    y = np.array([0] * 6 + [1] + [2] * 6 + [3] * 6)
    X = rng.normal(size=(len(y), 3)) + y[:, None]
    proba = PlattLinearSVM(random_state=0).fit(X, y).predict_proba(X)
    assert proba.shape == (len(y), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
