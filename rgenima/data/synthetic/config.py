"""What the synthetic cohort plants and every choice of its generator.

The latent sub-stages and their ADNI codes, the planted regional atrophy per sub-stage,
the causal SNPs, the ROI x gene interactions, and :class:`SynthConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rgenima import DX_BL_TO_STAGE

#: Latent sub-stages of the generator, in order; DX_bl codes are these with NC -> CN.
SUBSTAGES: tuple[str, ...] = ("NC", "SMC", "EMCI", "LMCI", "AD")
SUBSTAGE_DX_BL: dict[str, str] = {
    "NC": "CN",
    "SMC": "SMC",
    "EMCI": "EMCI",
    "LMCI": "LMCI",
    "AD": "AD",
}
SUBSTAGE_TO_STAGE: dict[str, str] = {k: DX_BL_TO_STAGE[v] for k, v in SUBSTAGE_DX_BL.items()}

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
