"""Attributions of trained R-GenIMA models: which ROIs, genes and SNPs drive each prediction.

The module moved as is to :mod:`rgenima.explain.run`; its public names are re-exported here.
"""

from rgenima.explain.run import (
    EXPLAIN_VERSION,
    METHODS,
    ROI_ONLY_METHODS,
    explain_batch,
    explain_run,
    find_configuration,
    held_out_indices,
    label_randomised_model,
    load_fold_model,
    modal_dosage,
    modal_genotype_ids,
    prompt_closed,
    randomized_model,
    rowwise_spearman,
    span_membership,
)

__all__ = [
    "EXPLAIN_VERSION",
    "METHODS",
    "ROI_ONLY_METHODS",
    "explain_batch",
    "explain_run",
    "find_configuration",
    "held_out_indices",
    "label_randomised_model",
    "load_fold_model",
    "modal_dosage",
    "modal_genotype_ids",
    "prompt_closed",
    "randomized_model",
    "rowwise_spearman",
    "span_membership",
]
