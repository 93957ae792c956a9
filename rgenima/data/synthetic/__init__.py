"""Synthetic ADNI-format cohort with a planted, known truth.

The generator writes exactly the files of the data contract (ADNIMERGE-style CSV,
Clinica-style BIDS T1w images in MNI space, PLINK 1 binary genotypes) so that every
later step runs unchanged on it, and it writes ``truth.json`` with every planted effect
and, for each subject, the oracle posterior ``P(stage | atrophy, genotypes, age)`` of
the true generative model.

Generative model (all effects are listed in ``truth.json``)
-----------------------------------------------------------
1. Covariates: age (years), sex, education (years).
2. Genotypes at SNPs inside the gene panel (real rsIDs and GRCh37 positions from
   ``resources/panel_snps_grch37.tsv``), Hardy-Weinberg genotypes; APOE is drawn as
   e2/e3/e4 haplotypes and written as rs429358/rs7412.
3. A genetic liability ``L = sum_j beta_j * dose_j`` over a few causal SNPs (APOE e4
   and e2 doses included).
4. A latent sub-stage ``k`` in (NC, SMC, EMCI, LMCI, AD) drawn from a multinomial
   logit ``P(k | L, age) ~ exp(b_k + s_k * L + t_k * z_age)``. ``DX_bl`` is ``k``
   written with ADNI's codes (CN for NC); the study's four stages merge EMCI and LMCI.
5. Regional atrophy (fraction of grey matter lost) for every atlas ROI ``r``:
   ``a_r = age_r * z_age + E[k, r] + sum_pairs gamma_(r,g) * dose_g * severity_k + eps_r``
   with ``eps_r ~ N(0, sigma^2)``. The interaction terms are the planted ROI x gene
   associations (APOE e4 dose amplifies medial temporal atrophy, ...).
6. The image: the MNI152 T1 template (shipped with nilearn) at the requested voxel
   size, grey matter in ROI ``r`` darkened by ``a_r``, times a subject gain and a
   smooth bias field, plus Gaussian noise, stored as int16.

Because ``a`` is observed in the image only through noise, the posterior given the
true ``a`` (the oracle) bounds what any classifier of the images can reach.

Modules
-------
:mod:`~rgenima.data.synthetic.config`
    The planted effects (stage atrophy, causal SNPs, ROI x gene interactions) and
    :class:`SynthConfig`.
:mod:`~rgenima.data.synthetic.latent`
    Steps 1-5 without images: the latent cohort, the intercept calibration and the
    oracle posterior.
:mod:`~rgenima.data.synthetic.images`
    Step 6: the image model and the rendering of each subject's T1w image.
:mod:`~rgenima.data.synthetic.adni_files`
    The ADNIMERGE-style clinical table, the planted QC failures and the PLINK writer.
:mod:`~rgenima.data.synthetic.cohort`
    :func:`write_synthetic_cohort`, which draws the cohort and writes every file.

The public names are re-exported here.
"""

from rgenima.data.synthetic.adni_files import build_clinical_table, write_plink
from rgenima.data.synthetic.cohort import load_aal2, load_panel_snps, synthetic_ptid, write_synthetic_cohort
from rgenima.data.synthetic.config import (
    SUBSTAGE_DX_BL,
    SUBSTAGE_TO_STAGE,
    SUBSTAGES,
    CausalSNP,
    Interaction,
    SynthConfig,
    default_causal_snps,
    default_interactions,
    default_stage_effects,
)
from rgenima.data.synthetic.images import ImageModel, build_image_model, render_t1
from rgenima.data.synthetic.latent import (
    LatentCohort,
    calibration_sample,
    classification_summary,
    draw_allele_frequencies,
    draw_covariates,
    oracle_posterior,
    sample_latent,
)
from rgenima.data.synthetic.latent import (
    _calibrate_intercepts as _calibrate_intercepts,  # used by tests/test_synthetic.py
)

__all__ = [
    "SUBSTAGES",
    "SUBSTAGE_DX_BL",
    "SUBSTAGE_TO_STAGE",
    "CausalSNP",
    "ImageModel",
    "Interaction",
    "LatentCohort",
    "SynthConfig",
    "build_clinical_table",
    "build_image_model",
    "calibration_sample",
    "classification_summary",
    "default_causal_snps",
    "default_interactions",
    "default_stage_effects",
    "draw_allele_frequencies",
    "draw_covariates",
    "load_aal2",
    "load_panel_snps",
    "oracle_posterior",
    "render_t1",
    "sample_latent",
    "synthetic_ptid",
    "write_plink",
    "write_synthetic_cohort",
]
