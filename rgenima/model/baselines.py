"""Baselines on the same folds as R-GenIMA: ROI summary features, SNP dosages, covariates.

All follow scikit-learn's estimator contract (``__init__`` only stores parameters,
``fit`` validates and returns ``self``, learned state ends in ``_``). Missing genotype
calls are imputed inside ``fit`` with the training fold's means only.

- ``logistic``: multinomial logistic regression (L2), early fusion of all features.
- ``linear_svm``: linear SVM on the same features, the region-based SVM that Clinica
  uses as its reference classifier, with Platt-scaled probabilities.
- ``gradient_boosting``: histogram gradient boosting.
- ``mlp_late_fusion``: one MLP per modality (ROI features + covariates; SNP dosages +
  covariates), probabilities averaged (late fusion).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data


def feature_matrix(roi_features: np.ndarray, dosage: np.ndarray, covariates: np.ndarray) -> tuple[np.ndarray, dict]:
    """Concatenate features and describe the column blocks.

    Returns
    -------
    X : ndarray of shape (n_subjects, n_rois + n_snps + n_covariates), NaN for missing calls
    blocks : dict
        ``{"mri": slice, "snp": slice, "covariates": slice}``.
    """
    r, s = roi_features.shape[1], dosage.shape[1]
    X = np.hstack([roi_features, dosage, covariates]).astype(np.float64)
    blocks = {"mri": slice(0, r), "snp": slice(r, r + s), "covariates": slice(r + s, X.shape[1])}
    return X, blocks


def _linear_pipeline(estimator):
    # Mean imputation is fitted within each training fold (never on test data).
    return make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), estimator)


def make_baseline(name: str, random_state: int | None = 0, blocks: dict | None = None):
    """A fresh, unfitted baseline estimator by name (see the module docstring)."""
    if name == "logistic":
        return _linear_pipeline(LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000))
    if name == "linear_svm":
        return _linear_pipeline(SVC(kernel="linear", C=0.01, class_weight="balanced", probability=True,
                                    random_state=random_state))
    if name == "gradient_boosting":
        return make_pipeline(SimpleImputer(strategy="mean"), HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
            class_weight="balanced", random_state=random_state))
    if name == "mlp_late_fusion":
        if blocks is None:
            raise ValueError("'blocks' is required for 'mlp_late_fusion' (see feature_matrix).")
        return LateFusionMLP(blocks=blocks, random_state=random_state)
    raise ValueError(f"'name' must be one of {BASELINES}; got {name!r}.")


BASELINES = ("logistic", "linear_svm", "gradient_boosting", "mlp_late_fusion")


class LateFusionMLP(ClassifierMixin, BaseEstimator):
    """One MLP per modality (each with the covariates), probabilities averaged.

    Parameters
    ----------
    blocks : dict
        Column slices ``{"mri", "snp", "covariates"}`` of X (from feature_matrix).
    hidden_layer_sizes : tuple of int
    alpha : float
        L2 penalty of each MLP.
    random_state : int or None
    """

    def __init__(self, blocks=None, hidden_layer_sizes=(32,), alpha=1.0, random_state=None):
        self.blocks = blocks
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.random_state = random_state

    def _columns(self, X, modality):
        return np.hstack([X[:, self.blocks[modality]], X[:, self.blocks["covariates"]]])

    def fit(self, X, y):
        X, y = check_X_y(X, y, ensure_all_finite="allow-nan")
        if self.blocks is None:
            raise ValueError("LateFusionMLP needs 'blocks' (see feature_matrix).")
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.unique(y)
        mlp = _linear_pipeline(MLPClassifier(hidden_layer_sizes=self.hidden_layer_sizes, alpha=self.alpha,
                                             max_iter=2000, early_stopping=True, random_state=self.random_state))
        self.estimators_ = {}
        for modality in ("mri", "snp"):
            self.estimators_[modality] = clone(mlp).fit(self._columns(X, modality), y)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        probas = [est.predict_proba(self._columns(X, m)) for m, est in self.estimators_.items()]
        return np.mean(probas, axis=0)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def cross_validated_proba(estimator, X: np.ndarray, y: np.ndarray, folds: np.ndarray, n_classes: int = 4) -> np.ndarray:
    """Out-of-fold probabilities on the given fold assignment, shape (n_subjects, n_classes)."""
    proba = np.zeros((len(y), n_classes))
    for k in np.unique(folds):
        test = folds == k
        model = clone(estimator).fit(X[~test], y[~test])
        p = model.predict_proba(X[test])
        proba[np.ix_(test, model.classes_)] = p
    return proba
