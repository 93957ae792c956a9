"""The latent cohort model: covariates, genotypes, sub-stages, true atrophy and the oracle.

Everything here is drawn or computed without images; :func:`oracle_posterior` is the
Bayes posterior of the true model, the bound that no classifier of the images can beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from rgenima import STAGES
from rgenima.data.synthetic.config import (
    SUBSTAGE_TO_STAGE,
    SUBSTAGES,
    SynthConfig,
    default_causal_snps,
    default_interactions,
    default_stage_effects,
)


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


def _draw_genotypes(rng: np.random.Generator, n: int, snps: pd.DataFrame, freq: np.ndarray) -> np.ndarray:
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
    return np.array([per_7y * (0.5 if n.startswith(("Cerebelum", "Vermis")) else 1.0) for n in roi_names])


def _stage_logits(config: SynthConfig, intercepts: np.ndarray, liability: np.ndarray, z_age: np.ndarray) -> np.ndarray:
    s = np.asarray(config.liability_slope)
    t = np.asarray(config.age_slope)
    return intercepts[None, :] + liability[:, None] * s[None, :] + z_age[:, None] * t[None, :]


def _calibrate_intercepts(config: SynthConfig, liability: np.ndarray, z_age: np.ndarray) -> np.ndarray:
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
        cols[f"{inter.rsid}_{inter.effect_allele}"] = _effect_dose(dosage, snps, inter.rsid, inter.effect_allele)
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
    mu = _conditional_means(config, roi_names, z_age, _interaction_doses(effect_doses), with_interactions)
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


def calibration_sample(config: SynthConfig, snps: pd.DataFrame, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Liability and standardised age of a large reference sample (fixed seed)."""
    rng = np.random.default_rng([config.seed, 7919])
    age, _, _ = draw_covariates(rng, n)
    dosage = _draw_genotypes(rng, n, snps, draw_allele_frequencies(config, snps))
    return _liability(_causal_effect_doses(dosage, snps)), _z_age(age)
