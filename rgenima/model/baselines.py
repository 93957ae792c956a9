"""Baselines on the same folds as R-GenIMA: ROI summary features, SNP dosages, covariates.

All follow scikit-learn's estimator contract (``__init__`` only stores parameters,
``fit`` validates and returns ``self``, learned state ends in ``_``). Missing genotype
calls are imputed inside ``fit`` with the training fold's means only, and every
regularisation strength chosen by cross-validation is chosen inside the training fold
(nested cross-validation), never on the subjects a model is tested on.

Each baseline reads some blocks of one feature matrix (:func:`feature_matrix`):
``mri`` (normalised ROI mean intensity), ``snp`` (every SNP's allele dose), ``apoe``
(APOE e4 and e2 doses) and ``covariates`` (age, sex, education).

The references a reviewer holds the model to, with C chosen by an inner 5-fold CV over
:data:`C_GRID`:

- ``logistic_roi``: L2 logistic regression on ROI means + covariates (log-loss picks C);
- ``svm_roi``: linear SVM on ROI means + covariates, Clinica's region-based reference
  classifier (balanced accuracy picks C, as in Clinica), Platt-scaled probabilities;
- ``logistic_roi_apoe``: the same logistic regression with the APOE doses;
- ``logistic_apoe``: APOE doses + covariates, the genetics-only reference;
- ``gradient_boosting_roi_apoe``: histogram gradient boosting on ROI + APOE + covariates.

Naive early-fusion baselines on everything (fixed regularisation):

- ``logistic``: multinomial logistic regression on ROI + all SNP doses + covariates;
- ``linear_svm``: linear SVM on the same features;
- ``gradient_boosting``: histogram gradient boosting on the same features;
- ``mlp_late_fusion``: one MLP per modality (ROI features + covariates; SNP dosages +
  covariates), probabilities averaged (late fusion).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

#: Regularisation strengths searched by the tuned baselines (inverse L2 penalty).
C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 13))
#: Inner cross-validation folds used to choose C.
INNER_FOLDS = 5

#: Feature blocks each baseline reads (see :func:`feature_matrix`).
BASELINE_FEATURES: dict[str, tuple[str, ...]] = {
    "logistic_roi": ("mri", "covariates"),
    "svm_roi": ("mri", "covariates"),
    "logistic_roi_apoe": ("mri", "apoe", "covariates"),
    "logistic_apoe": ("apoe", "covariates"),
    "gradient_boosting_roi_apoe": ("mri", "apoe", "covariates"),
    "logistic": ("mri", "snp", "covariates"),
    "linear_svm": ("mri", "snp", "covariates"),
    "gradient_boosting": ("mri", "snp", "covariates"),
    "mlp_late_fusion": ("mri", "snp", "covariates"),
}
BASELINES: tuple[str, ...] = tuple(BASELINE_FEATURES)


def feature_matrix(
    roi_features: np.ndarray, dosage: np.ndarray, covariates: np.ndarray, apoe: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Concatenate features and describe the column blocks.

    Parameters
    ----------
    roi_features : ndarray of shape (n_subjects, n_rois)
    dosage : ndarray of shape (n_subjects, n_snps), NaN for missing calls
    covariates : ndarray of shape (n_subjects, n_covariates)
    apoe : ndarray of shape (n_subjects, n_apoe), optional
        APOE allele doses (:func:`rgenima.data.genetics.apoe_doses`); columns that are
        NaN for every subject (a SNP that was not typed) are left out.

    Returns
    -------
    X : ndarray of shape (n_subjects, n_features), NaN for missing calls
    blocks : dict
        ``{"mri": slice, "snp": slice, "apoe": slice, "covariates": slice}``.
    """
    if apoe is None:
        apoe = np.zeros((len(roi_features), 0))
    apoe = apoe[:, ~np.isnan(apoe).all(axis=0)] if apoe.size else apoe
    parts = {"mri": roi_features, "snp": dosage, "apoe": apoe, "covariates": covariates}
    blocks, start = {}, 0
    for name, part in parts.items():
        blocks[name] = slice(start, start + part.shape[1])
        start += part.shape[1]
    X = np.hstack([np.asarray(p, dtype=np.float64) for p in parts.values()])
    return X, blocks


def select_columns(X, columns):
    """The given column indices of X (a picklable FunctionTransformer body)."""
    return np.asarray(X)[:, columns]


def _columns(blocks: dict, names: tuple[str, ...]) -> list[int]:
    missing = [n for n in names if n not in blocks or blocks[n].stop == blocks[n].start]
    if missing:
        raise ValueError(f"the feature matrix has no {', '.join(missing)} columns (see feature_matrix).")
    return [i for n in names for i in range(blocks[n].start, blocks[n].stop)]


class InnerFolds(StratifiedKFold):
    """Stratified k-fold that uses fewer folds when a class has fewer than k subjects,
    so that every inner validation fold holds every class (small cohorts)."""

    def _k(self, y) -> int:
        counts = np.unique(np.asarray(y), return_counts=True)[1]
        return int(max(2, min(self.n_splits, counts.min())))

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits if y is None else self._k(y)

    def split(self, X, y, groups=None):
        yield from StratifiedKFold(self._k(y), shuffle=self.shuffle, random_state=self.random_state).split(X, y)


def _tuned(estimator, param: str, scoring: str, random_state):
    """Grid search of ``param`` over :data:`C_GRID` by inner stratified CV."""
    inner = InnerFolds(INNER_FOLDS, shuffle=True, random_state=random_state)
    return GridSearchCV(estimator, {param: list(C_GRID)}, cv=inner, scoring=scoring, error_score="raise")


def make_baseline(name: str, random_state: int | None = 0, blocks: dict | None = None):
    """A fresh, unfitted baseline estimator by name (see the module docstring).

    Parameters
    ----------
    name : str
        One of :data:`BASELINES`.
    random_state : int or None
        Seeds the inner folds and the stochastic learners.
    blocks : dict
        Column blocks of the feature matrix (:func:`feature_matrix`).
    """
    if name not in BASELINE_FEATURES:
        raise ValueError(f"'name' must be one of {BASELINES}; got {name!r}.")
    if blocks is None:
        raise ValueError("'blocks' is required (see feature_matrix).")
    if name == "mlp_late_fusion":
        return LateFusionMLP(blocks=blocks, random_state=random_state)
    select = FunctionTransformer(select_columns, kw_args={"columns": _columns(blocks, BASELINE_FEATURES[name])})
    # Mean imputation and scaling are fitted within each training fold (never on test data).
    prep = [select, SimpleImputer(strategy="mean")]
    if name in ("logistic_roi", "logistic_roi_apoe", "logistic_apoe"):
        pipe = make_pipeline(*prep, StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
        return _tuned(pipe, "logisticregression__C", "neg_log_loss", random_state)
    if name == "svm_roi":
        pipe = make_pipeline(*prep, StandardScaler(), PlattLinearSVM(random_state=random_state))
        return _tuned(pipe, "plattlinearsvm__C", "balanced_accuracy", random_state)
    if name in ("gradient_boosting", "gradient_boosting_roi_apoe"):
        return make_pipeline(
            *prep,
            HistGradientBoostingClassifier(
                max_iter=200,
                learning_rate=0.05,
                max_leaf_nodes=15,
                l2_regularization=1.0,
                class_weight="balanced",
                random_state=random_state,
            ),
        )
    if name == "logistic":
        return make_pipeline(
            *prep, StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000)
        )
    # linear_svm
    return make_pipeline(*prep, StandardScaler(), PlattLinearSVM(C=0.01, random_state=random_state))


class PlattLinearSVM(ClassifierMixin, BaseEstimator):
    """Class-balanced linear SVM (libsvm) with Platt-scaled probabilities.

    The sigmoid calibration is fitted on cross-validated decision values of the training
    data (:class:`~sklearn.calibration.CalibratedClassifierCV`, ``ensemble=False``), with
    as many stratified folds as the smallest class allows (at most 5); when a class has a
    single training subject (tiny test cohorts), a logistic map of the training decision
    values replaces it.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    random_state : int or None
        Seeds the calibration folds.
    """

    def __init__(self, C=1.0, random_state=None):
        self.C = C
        self.random_state = random_state

    def fit(self, X, y):
        X, y = check_X_y(X, y)
        self.n_features_in_ = X.shape[1]
        svm = SVC(kernel="linear", C=self.C, class_weight="balanced")
        if np.unique(y, return_counts=True)[1].min() < 2:
            # Too few subjects to cross-validate a calibration: a logistic map of the
            # training decision values instead.
            svm.fit(X, y)
            self.calibrated_ = make_pipeline(
                FunctionTransformer(svm.decision_function), LogisticRegression(max_iter=1000)
            ).fit(X, y)
        else:
            folds = InnerFolds(INNER_FOLDS, shuffle=True, random_state=self.random_state)
            cv = StratifiedKFold(folds.get_n_splits(y=y), shuffle=True, random_state=self.random_state)
            self.calibrated_ = CalibratedClassifierCV(svm, ensemble=False, cv=cv).fit(X, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "calibrated_")
        X = validate_data(self, X, reset=False)
        return self.calibrated_.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


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
        mlp = make_pipeline(
            SimpleImputer(strategy="mean"),
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=self.hidden_layer_sizes,
                alpha=self.alpha,
                max_iter=2000,
                early_stopping=True,
                random_state=self.random_state,
            ),
        )
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


def _proba(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities, with zero columns for classes absent from training."""
    out = np.zeros((len(X), n_classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def cross_validated_proba(
    estimator, X: np.ndarray, y: np.ndarray, folds: np.ndarray, n_classes: int = 4, X_external: np.ndarray | None = None
):
    """Out-of-fold probabilities on the given fold assignment.

    Parameters
    ----------
    estimator : scikit-learn classifier (cloned for each fold)
    X : ndarray of shape (n_subjects, n_features)
    y : ndarray of shape (n_subjects,), int labels 0..n_classes-1
    folds : ndarray of shape (n_subjects,)
        Outer test fold of each subject.
    X_external : ndarray of shape (n_external, n_features), optional
        Another cohort's features: each fold's model predicts it too.

    Returns
    -------
    proba : ndarray of shape (n_subjects, n_classes)
        Each subject predicted by the model of its held-out fold.
    external : ndarray of shape (n_external, n_classes)
        Only with ``X_external``: the fold models' probabilities, averaged.
    """
    proba = np.zeros((len(y), n_classes))
    external = []
    for k in np.unique(folds):
        test = folds == k
        model = clone(estimator).fit(X[~test], y[~test])
        proba[test] = _proba(model, X[test], n_classes)
        if X_external is not None:
            external.append(_proba(model, X_external, n_classes))
    if X_external is None:
        return proba
    return proba, np.mean(external, axis=0)
