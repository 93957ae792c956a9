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
