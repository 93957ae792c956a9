"""Human names of the study's internal labels, for every figure and table a reader sees.

One mapping (:data:`DISPLAY_NAMES`) and :func:`display_name`; plots and tables call it
instead of printing folder names such as ``rgenima_mri+snp__quick`` or
``baseline_gradient_boosting``.
"""

from __future__ import annotations

#: Internal name -> the name a reader sees.
DISPLAY_NAMES: dict[str, str] = {
    "rgenima_mri+snp": "R-GenIMA (MRI + SNP)",
    "rgenima_mri": "R-GenIMA (MRI only)",
    "rgenima_snp": "R-GenIMA (SNP only)",
    "baseline_logistic_roi": "Logistic regression (ROI means)",
    "baseline_svm_roi": "SVM (ROI means, Clinica)",
    "baseline_logistic_roi_apoe": "Logistic regression (ROI means + APOE)",
    "baseline_logistic_apoe": "Logistic regression (APOE + covariates)",
    "baseline_gradient_boosting_roi_apoe": "Gradient boosting (ROI means + APOE)",
    "baseline_logistic": "Logistic regression",
    "baseline_linear_svm": "Linear SVM",
    "baseline_gradient_boosting": "Gradient boosting",
    "baseline_mlp_late_fusion": "MLP (late fusion)",
    "reference_oracle": "Oracle (true posterior)",
    "reference_truth_feature_lda": "LDA on the true features",
    "attention": "Attention",
    "rollout": "Attention rollout",
    "integrated_gradients": "Integrated Gradients",
    "balanced_accuracy": "Balanced accuracy",
    "accuracy": "Accuracy",
    "macro_f1": "Macro F1",
    "macro_auroc": "Macro AUROC",
}


def display_name(name: str) -> str:
    """The reader's name of an internal label; unknown labels come back unchanged.

    A configuration's profile or backbone suffix (``rgenima_mri+snp__quick``) is kept
    in parentheses: ``R-GenIMA (MRI + SNP), quick profile``.
    """
    name = str(name)
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    base, sep, suffix = name.partition("__")
    if sep and base in DISPLAY_NAMES:
        return f"{DISPLAY_NAMES[base]}, {suffix.replace('_', ' ')} profile"
    return name


#: Column names of the study's tables, as a reader sees them.
COLUMN_NAMES: dict[str, str] = {
    "configuration": "model",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "macro_auroc": "macro AUROC",
    "role": "role",
    "balanced_accuracy_ci_low": "balanced accuracy, CI low",
    "balanced_accuracy_ci_high": "balanced accuracy, CI high",
    "balanced_accuracy_mean": "balanced accuracy, mean",
    "balanced_accuracy_sd": "balanced accuracy, SD",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "p_bootstrap": "p (bootstrap)",
    "p_bootstrap_holm": "p (bootstrap, Holm)",
    "p_mcnemar": "p (McNemar)",
    "p_mcnemar_holm": "p (McNemar, Holm)",
    "n10": "only R-GenIMA right",
    "n01": "only the other right",
    "n_seeds": "seeds",
}


def readable_table(table):
    """A copy of ``table`` (DataFrame) with human names: model and method names in the
    index and in a ``configuration``/``method`` column (:func:`display_name`), and
    column and index names from :data:`COLUMN_NAMES` (else ``display_name``, else
    underscores as spaces). Values are unchanged."""
    import pandas as pd

    def column(name):
        name = str(name)
        return COLUMN_NAMES.get(name) or (DISPLAY_NAMES.get(name) or name.replace("_", " "))

    out = table.copy()
    for key in ("configuration", "method", "versus"):
        if key in out.columns:
            out[key] = out[key].map(display_name)
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_levels(
            [level.map(display_name) if level.dtype == object else level for level in out.index.levels]
        )
    elif out.index.dtype == object:
        out.index = out.index.map(display_name)
    out.index.names = [column(n) if n is not None else None for n in out.index.names]
    out.columns = [column(c) for c in out.columns]
    return out
