"""Attributions of trained R-GenIMA models: which ROIs, genes and SNPs drive each prediction.

Every subject is explained by the model of the cross-validation fold in which it was a
**test** subject (``RUNDIR/folds.csv``), so no attribution comes from a model that saw
the subject during training; :func:`explain_run` checks this against each fold's
``predictions.csv`` before computing anything. The methods themselves live in
:mod:`rgenima.attribution`; this package runs them over a run's folds, aggregates them and
checks them.

Methods (``METHODS``). Token-level scores are aggregated to ROIs (one token each), SNPs
(the tokens of the SNP's span) and genes (the tokens of the gene's span); feature-level
ones are computed per ROI and per gene directly. The explained class (``ig_target``) is
the subject's **true stage** by default.

``attention``
    Raw attention from the **answer position** (where the class is read) to each token,
    averaged over heads, then over layers (per layer: ``attention_L{l}``): where the
    model reads, not how a token changes its answer.
``rollout``
    Attention rollout (Abnar & Zuidema 2020): per layer ``A' = 0.5 * A + 0.5 * I``, rows
    renormalised, multiplied through the layers; the answer's row. With a causal
    backbone it is shaped by token position and fails the randomisation tests.
``relevance``
    Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021) of the explained
    class's logit.
``integrated_gradients``
    Integrated Gradients (captum, Gauss-Legendre, ``ig_steps`` points) of the explained
    class's logit w.r.t. the input embeddings, from the reference input; a token's score
    is the signed sum over the hidden dimension (completeness: a subject's scores sum to
    ``logit(input) - logit(reference)`` up to the convergence delta); the L2 norm is
    stored as ``integrated_gradients_l2``.
``occlusion``
    Per ROI and gene: ``log p(class | x) - log p(class | x with the feature replaced by
    its reference)``.
``occlusion_contrast``
    Per ROI and gene: the drop of ``logit_class - logit_NC`` when the feature is
    replaced (0 for NC subjects): how much it moves the subject from NC to its stage.
``atrophy_sensitivity``
    Per ROI only: the rise of ``logit_class - logit_NC`` per unit relative loss of
    intensity in the ROI (voxel-level gradient x input summed over the ROI, sign flipped;
    0 for NC subjects). It keeps the direction of a region's effect, which occlusion
    loses once intensities are normalised (an unaffected region is relatively brighter in
    AD, and a model may read that too).

The **reference input** of IG and occlusion (:func:`rgenima.attribution.reference_embeddings`):
ROI tokens of the fold's average training anatomy (its ``cube_mean``), genotype tokens of
the training fold's most common genotype at every SNP (:func:`modal_genotype_ids`), every
other token unchanged.

A gene's span runs from its symbol to its last genotype, so it contains its SNPs' spans;
with the default tokenizer a gene's token-level score is exactly the sum of its SNPs'.

**Closed prompts.** A two-modality fold model whose fusion gates are all exactly closed
(:func:`prompt_closed`, e.g. a fold that kept its MRI-only start) cannot be changed by its
genetic prompt: it is explained on the sequences without the genetic segment (the same
outputs, the positions follow the full layout), and every gene- and SNP-level array,
including the raw-attention ROI x gene maps, is exactly 0 for it.

ROI x gene arrays (``roi_gene__*``, (n, R, G)):

- ``gene_to_roi[r, g]``: mean over gene ``g``'s tokens of their raw attention to ROI ``r``
  (heads and layers averaged); ``roi_to_gene[r, g]`` the reverse direction, structurally
  zero with a causal backbone (ROI tokens come first);
- ``occlusion[r, g]``: the change of ROI ``r``'s relevance (gradient x (input - reference)
  of the explained logit) when gene ``g`` is replaced by its reference
  (:func:`rgenima.attribution.roi_relevance_under_gene_occlusion`): non-zero only when
  what the model reads from the ROI depends on the gene. G + 1 forward and backward
  passes per subject, so it is computed on ``link_subjects`` subjects (NaN for others).

Sanity checks: the two randomisation tests of Adebayo et al. 2018, on the same target
class. *Model-parameter randomisation*: each fold model with its trainable parameters
re-initialised (:func:`randomized_model`), on ``sanity_subjects`` subjects drawn equally
from every fold. *Label randomisation*: fold 0 retrained from scratch on permuted labels
(:func:`label_randomised_model`), on up to ``sanity_subjects`` of fold 0's held-out
subjects. ``sanity.json`` reports, per method and level, the median and IQR over subjects
of the Spearman correlation between trained and randomised scores (``levels`` and
``label_randomisation``); a constant row (e.g. the contrast of an NC subject) gives no
correlation.

Cost (default cohort, 400 subjects, 2 CPU cores; ``benchmarks/bench_explain.py`` measures
it): the main pass over every method is about 1 min for the two-modality model whose
prompt is closed and about 5 min for the SNP-only model (768 and 647 tokens); the
randomisation checks, dominated by occlusion on the randomised models, add about 5 and
3 min. ``explain.json`` records the timings of each run.

Outputs, in ``RUNDIR/explain/<configuration>/`` (written atomically):

``attributions.npz`` (``np.load(..., allow_pickle=False)``)
    ``ptid`` (n,) str; ``label`` (n,) int, true stage index (rgenima.STAGES order NC, SMC,
    MCI, AD); ``pred`` (n,) int; ``target`` (n,) int, the explained class; ``proba``
    (n, 4); ``fold`` (n,) int, the fold whose model explained the subject; ``roi_names``
    (R,); ``gene_names`` (G,); ``snp_names`` (S,); ``snp_gene`` (S,); ``roi__{m}`` (n, R)
    for every method; ``gene__{m}`` (n, G) for every method but ``atrophy_sensitivity``;
    ``snp__{m}`` (n, S) for the token-level methods, ``integrated_gradients_l2`` and
    ``attention_L{l}``; NaN where a subject's prompt lacks the gene or SNP; the ROI x gene
    arrays; ``random__{level}__{m}`` and ``label_random__{level}__{m}`` (NaN outside the
    checked subjects) and the per-subject correlations ``sanity__{level}__{m}`` and
    ``sanity_label__{level}__{m}``; the IG bookkeeping ``ig_logit_input``,
    ``ig_logit_baseline``, ``ig_total``, ``ig_delta``, each (n,). An SNP-only
    configuration has R = 0; an MRI-only one G = S = 0.
``sanity.json``
    The two randomisation tests, per level (roi, gene) and method, and the permuted-label
    model's training record.
``explain.json``
    configuration, methods, settings, ``closed_prompt_folds``, ``seconds`` and
    ``timings`` (per method and per subject), n_subjects and the digest of the inputs
    (checkpoints, folds, prepared data, parameters): a rerun with the same digest reuses
    the files.
``label_randomised/fold_0/``
    The permuted-label model (reused while its seed is unchanged).

Modules: :mod:`~rgenima.explain.loop` (:func:`explain_run`, the loop over folds and
batches), :mod:`~rgenima.explain.held_out` (:func:`held_out_indices`, the check that
every subject is explained by a model that did not train on it),
:mod:`~rgenima.explain.sanity` (the randomisation checks' subsets and correlations) and
:mod:`~rgenima.explain.outputs` (the result arrays, the npz file and the digest of the
inputs); the fold models come from :mod:`rgenima.fold_models`. The public names are
re-exported here.
"""

from rgenima.attribution import (
    explain_batch,
    modal_dosage,
    modal_genotype_ids,
    prompt_closed,
    span_membership,
)
from rgenima.attribution_file import METHODS
from rgenima.explain.held_out import held_out_indices
from rgenima.explain.loop import explain_run
from rgenima.explain.outputs import EXPLAIN_VERSION, ROI_ONLY_METHODS
from rgenima.explain.sanity import rowwise_spearman
from rgenima.fold_models import (
    find_configuration,
    label_randomised_model,
    load_fold_model,
    randomized_model,
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
