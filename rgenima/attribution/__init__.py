"""Token-level attribution methods for one batch of R-GenIMA inputs.

Each function takes a model in eval mode and one batch as rgenima.train builds it
(``input_ids``, ``attention_mask``, ``answer_positions``, ``position_ids``,
``prompt_mask``, ``cubes``, ``covariates``) and returns a score per input token or per
feature; :func:`explain_batch` aggregates them to ROIs, genes and SNPs, and
:mod:`rgenima.explain` runs them on the held-out subjects of every fold and checks them.

Methods
-------
Raw attention and rollout (:func:`answer_attention`)
    What the answer position attends to, and Abnar & Zuidema's rollout. Attention
    weights say where information is *read*, not how it changes the prediction (Jain &
    Wallace 2019): they are kept as what they are.
Gradient-weighted relevance (:func:`gradient_weighted_relevance`)
    Chefer, Gur & Wolf (CVPR 2021; the gradient-weighted rule of their ICCV 2021
    follow-up for self-attention): per layer ``A_bar = mean_heads((dy/dA * A)^+)``,
    ``R = I``, ``R <- R + A_bar R`` from the first layer to the last; a token's score is
    the answer position's row of ``R``.
Integrated Gradients (:func:`integrated_gradients`)
    Of one output per subject (the true class's logit by default) with respect to the
    input embeddings, from the reference input of :func:`reference_embeddings`.
Atrophy sensitivity (:func:`atrophy_sensitivity`)
    The derivative of the stage-vs-NC logit difference with respect to a uniform
    intensity loss in each ROI: which regions' atrophy drives a subject's stage.
Occlusion (:func:`occlusion_logits`)
    The logits when one feature (the token of one ROI, the tokens of one gene) is
    replaced by its reference: the training fold's average anatomy for a ROI, the
    training fold's most common genotypes for a gene. Every output of the ablated
    forward pass is kept, so one pass gives both the change of the true class's
    log-probability and of the stage-vs-NC logit difference.

Modules: :mod:`~rgenima.attribution.methods` (the methods above, on one batch),
:mod:`~rgenima.attribution.reference_input` (the reference input of IG and occlusion,
closed prompts) and :mod:`~rgenima.attribution.batch_scores` (:func:`explain_batch`:
every score of one batch, aggregated to ROIs, genes and SNPs); the public names are
re-exported here.
"""

from rgenima.attribution.batch_scores import explain_batch, span_membership
from rgenima.attribution.methods import (
    CHUNK_TOKENS,
    answer_attention,
    atrophy_sensitivity,
    chunk_size,
    gradient_weighted_relevance,
    integrated_gradients,
    occlusion_logits,
    occlusion_scores,
    relevance,
    roi_relevance_under_gene_occlusion,
    set_attention,
)
from rgenima.attribution.reference_input import (
    modal_dosage,
    modal_genotype_ids,
    prompt_closed,
    reference_embeddings,
    roi_baseline_tokens,
)

__all__ = [
    "CHUNK_TOKENS",
    "answer_attention",
    "atrophy_sensitivity",
    "chunk_size",
    "explain_batch",
    "gradient_weighted_relevance",
    "integrated_gradients",
    "modal_dosage",
    "modal_genotype_ids",
    "occlusion_logits",
    "occlusion_scores",
    "prompt_closed",
    "reference_embeddings",
    "relevance",
    "roi_baseline_tokens",
    "roi_relevance_under_gene_occlusion",
    "set_attention",
    "span_membership",
]
