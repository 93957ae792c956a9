"""Figures of the book. Each function takes plain arrays/tables and returns a Figure.

Inputs are the tables and dicts the analysis modules write (``metrics.json`` of
:mod:`rgenima.evaluate`, ``roi_attribution.csv`` / ``gene_attribution.csv`` /
``roi_gene.csv`` of :mod:`rgenima.signatures`, ``enrichment.csv`` of
:mod:`rgenima.enrich`, training histories from ``state.json``), already loaded as
pandas/numpy/dict objects; the only readers here are the two small helpers
:func:`load_training_histories` and :func:`load_sanity_correlations`.

Style: seaborn's "colorblind" palette, one colour per stage (:data:`STAGE_COLORS`) and
per configuration role (:data:`ROLE_COLORS`) in every figure, ``constrained_layout``.
Functions that draw on a single axes accept ``ax=`` to draw into an existing figure.

Figures never show subject identifiers: example images are titled by stage only, and
everything else is an aggregate over subjects.

The figures live in topic modules (:mod:`~rgenima.plots.cohort`,
:mod:`~rgenima.plots.framework`, :mod:`~rgenima.plots.performance`,
:mod:`~rgenima.plots.signatures`, :mod:`~rgenima.plots.enrichment`,
:mod:`~rgenima.plots.robustness`); every public name is re-exported here, so that
``from rgenima import plots; plots.plot_brain_signature(...)`` is the way to call them.
"""

from rgenima.plots._style import CHANCE_BALANCED_ACCURACY, LOCUS_COLORS, ROLE_COLORS, STAGE_COLORS
from rgenima.plots.cohort import (
    cohens_d,
    plot_class_counts,
    plot_example_slices,
    plot_genotype_summary,
    plot_roi_features_by_stage,
)
from rgenima.plots.enrichment import plot_enrichment
from rgenima.plots.framework import plot_framework
from rgenima.plots.performance import (
    LEARNING_CURVE_MODELS,
    load_training_histories,
    plot_confusion_matrices,
    plot_learning_curve,
    plot_performance,
    plot_roc_curves,
    plot_training_curves,
)
from rgenima.plots.robustness import load_sanity_correlations, plot_batch_summary, plot_sanity_check
from rgenima.plots.signatures import (
    plot_brain_signature,
    plot_gene_signature,
    plot_gene_signatures,
    plot_roi_gene_heatmap,
    plot_roi_gene_heatmaps,
    plot_top_rois,
    roi_score_image,
)

__all__ = [
    "CHANCE_BALANCED_ACCURACY",
    "LEARNING_CURVE_MODELS",
    "STAGE_COLORS",
    "ROLE_COLORS",
    "LOCUS_COLORS",
    "plot_class_counts",
    "plot_example_slices",
    "plot_genotype_summary",
    "cohens_d",
    "plot_roi_features_by_stage",
    "plot_framework",
    "plot_performance",
    "plot_confusion_matrices",
    "plot_roc_curves",
    "load_training_histories",
    "plot_training_curves",
    "roi_score_image",
    "plot_brain_signature",
    "plot_top_rois",
    "plot_gene_signature",
    "plot_gene_signatures",
    "plot_roi_gene_heatmap",
    "plot_roi_gene_heatmaps",
    "plot_enrichment",
    "plot_batch_summary",
    "plot_learning_curve",
    "load_sanity_correlations",
    "plot_sanity_check",
]
