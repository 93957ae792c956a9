"""Univariate reference rankings (rgenima.references) on hand-made arrays and a tiny run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from minimal_cohort import write_minimal_cohort
from scipy import stats

from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.model.inputs import PreparedData
from rgenima.references import (
    cube_roi_means,
    gene_scan_scores,
    reference_scores,
    roi_t_scores,
    snp_scan_scores,
)

N_PER_STAGE = 12


def _labels(n_per_stage: int = N_PER_STAGE) -> np.ndarray:
    return np.repeat(np.arange(4), n_per_stage)


def test_planted_roi_lower_in_ad_gets_top_ad_score():
    rng = np.random.default_rng(0)
    labels = _labels()
    means = rng.normal(1.0, 0.05, size=(len(labels), 6))
    means[labels == 3, 4] -= 0.2  # atrophy of ROI 4 in AD only
    names = [f"roi{j}" for j in range(6)]
    scores = roi_t_scores(means, labels, names)
    assert list(scores.columns) == ["SMC", "MCI", "AD"]
    assert list(scores.index) == names
    assert scores["AD"].idxmax() == "roi4"
    assert scores.loc["roi4", "AD"] > 5  # NC minus AD: positive
    expected = stats.ttest_ind(means[labels == 0, 4], means[labels == 3, 4], equal_var=False).statistic
    assert scores.loc["roi4", "AD"] == pytest.approx(expected)


def test_roi_scores_nan_for_a_stage_with_one_subject():
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    means = np.arange(16, dtype=float).reshape(8, 2) + np.random.default_rng(1).normal(size=(8, 2))
    scores = roi_t_scores(means, labels, ["a", "b"])
    assert scores["SMC"].isna().all()
    assert scores[["MCI", "AD"]].notna().all().all()


def test_planted_snp_rising_with_stage_ranks_its_gene_first():
    rng = np.random.default_rng(2)
    labels = _labels()
    n = len(labels)
    dosage = rng.binomial(2, 0.3, size=(n, 6)).astype(float)
    # SNP 3 (gene G2) rises with stage: 0 copies in NC .. 2 copies in AD, with noise.
    dosage[:, 3] = np.clip(np.round(labels * 2 / 3 + rng.normal(0, 0.3, n)), 0, 2)
    genes = ["G0", "G0", "G1", "G2", "G2", "G3"]
    scores = gene_scan_scores(dosage, labels, genes, snp_names=[f"rs{j}" for j in range(6)])
    assert list(scores.columns) == ["all", "SMC", "MCI", "AD", "n_snps", "best_snp"]
    assert scores["all"].idxmax() == "G2"
    assert scores.loc["G2", "best_snp"] == "rs3"
    assert scores["AD"].idxmax() == "G2"
    # -log10 p of Kruskal-Wallis across the four stages.
    h = stats.kruskal(*[dosage[labels == s, 3] for s in range(4)])
    assert scores.loc["G2", "all"] == pytest.approx(-np.log10(h.pvalue))


def test_gene_score_is_max_over_its_snps():
    rng = np.random.default_rng(3)
    labels = _labels()
    dosage = rng.binomial(2, 0.4, size=(len(labels), 5)).astype(float)
    genes = ["A", "A", "A", "B", "B"]
    snps = snp_scan_scores(dosage, labels)
    genes_frame = gene_scan_scores(dosage, labels, genes, gene_names=["B", "A", "C"])
    assert list(genes_frame.index) == ["B", "A", "C"]
    for col in ["all", "SMC", "MCI", "AD"]:
        assert genes_frame.loc["A", col] == pytest.approx(snps[col].iloc[:3].max())
        assert genes_frame.loc["B", col] == pytest.approx(snps[col].iloc[3:].max())
    assert genes_frame.loc["A", "best_snp"] == snps["all"].iloc[:3].idxmax()
    assert genes_frame["n_snps"].tolist() == [2, 3, 0]
    assert genes_frame.loc["C", ["all", "AD"]].isna().all()  # a gene without SNPs


def test_nan_dosages_are_dropped_per_snp():
    rng = np.random.default_rng(4)
    labels = _labels()
    dosage = rng.binomial(2, 0.4, size=(len(labels), 3)).astype(float)
    holes = dosage.copy()
    holes[[0, 5, 20, 40], 1] = np.nan
    holes[:, 2] = np.nan
    holes[labels != 0, 2] = 1.0  # NC all missing: the per-stage tests are undefined
    snps = snp_scan_scores(holes, labels)
    assert snps.loc[0, "all"] == pytest.approx(snp_scan_scores(dosage, labels).loc[0, "all"])
    keep = ~np.isnan(holes[:, 1])
    ref = snp_scan_scores(dosage[keep][:, [1]], labels[keep])
    for col in ["all", "SMC", "MCI", "AD", "t_AD"]:
        assert snps.loc[1, col] == pytest.approx(ref.loc[0, col])
    assert snps.loc[2, ["SMC", "MCI", "AD"]].isna().all()
    assert np.isnan(snps.loc[2, "all"])  # constant over the 3 stages left
    genes = gene_scan_scores(holes, labels, ["A", "B", "C"])
    assert np.isnan(genes.loc["C", "all"]) and pd.isna(genes.loc["C", "best_snp"])
    assert np.isfinite(genes.loc["B", "all"])


def test_strong_association_gives_a_finite_score():
    labels = _labels(200)
    dosage = (labels[:, None] >= 2).astype(float) * 2 + (np.arange(len(labels))[:, None] % 2)
    scores = snp_scan_scores(dosage, labels)
    assert np.isfinite(scores[["all", "AD"]].to_numpy()).all()
    assert scores.loc[0, "AD"] > 50


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: roi_t_scores(np.zeros((8, 3)), np.zeros(7, int), ["a", "b", "c"]), "labels"),
        (lambda: roi_t_scores(np.zeros((8, 3)), np.zeros(8, int), ["a", "b"]), "roi_names"),
        (lambda: roi_t_scores(np.zeros(8), np.zeros(8, int), ["a"]), "roi_means"),
        (lambda: roi_t_scores(np.zeros((8, 1)), np.full(8, 4), ["a"]), "labels"),
        (lambda: gene_scan_scores(np.zeros((8, 3)), np.zeros(8, int), ["A", "B"]), "snp_genes"),
        (lambda: gene_scan_scores(np.zeros((8, 3)), np.zeros(9, int), ["A"] * 3), "labels"),
        (lambda: gene_scan_scores(np.zeros((8, 2)), np.zeros(8, int), ["A"] * 2, snp_names=["x"]), "snp_names"),
        (lambda: cube_roi_means(np.zeros((2, 3, 4, 4))), "cubes"),
    ],
)
def test_wrong_shapes_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        call()


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory) -> Path:
    """The 6-subject minimal cohort (3 ROIs, 10 SNPs of APOE), prepared with 4-voxel cubes."""
    root = tmp_path_factory.mktemp("references")
    cohort = write_minimal_cohort(root / "cohort")
    fam = pd.read_csv(cohort.fam, sep=r"\s+", header=None, dtype=str)
    fam[2], fam[3], fam[4], fam[5] = "0", "0", "0", "-9"  # founders: allele frequencies defined
    fam.to_csv(cohort.fam, sep=" ", header=False, index=False)
    return prepare_cohort(load_manifest(cohort.manifest), root / "run", PrepareConfig(cube_size=4))


def test_reference_scores_on_a_prepared_run(prepared_run):
    data = PreparedData.load(prepared_run)
    out = reference_scores(prepared_run)
    assert set(out) == {"roi", "gene"}
    pd.testing.assert_frame_equal(out["roi"], roi_t_scores(data.roi_features, data.labels, data.rois["name"].tolist()))
    assert list(out["roi"].index) == data.rois["name"].tolist()
    assert out["roi"]["SMC"].isna().all()  # one SMC subject
    assert out["roi"]["MCI"].notna().all()  # two NC, two MCI
    assert list(out["gene"].index) == ["APOE"]
    assert out["gene"].loc["APOE", "n_snps"] == len(data.snps)
    assert out["gene"].loc["APOE", "best_snp"] in set(data.snps["snp"])

    # Restricted to the subjects explained, in any order.
    ptids = data.subjects["PTID"].tolist()
    subset = [ptids[3], ptids[0], ptids[2], ptids[5]]
    rows = [3, 0, 2, 5]
    restricted = reference_scores(data, subset)
    pd.testing.assert_frame_equal(
        restricted["gene"],
        gene_scan_scores(
            data.dosage[rows], data.labels[rows], data.snps["gene"].tolist(), snp_names=data.snps["snp"].tolist()
        ),
    )
    assert restricted["roi"]["AD"].isna().all()  # no AD subject among them

    # Without prepared ROI features, the means come from the cubes in batches.
    from_cubes = reference_scores(replace(data, roi_features=None), subset, batch_size=3)
    means = cube_roi_means(data.cubes[rows])
    pd.testing.assert_frame_equal(from_cubes["roi"], roi_t_scores(means, data.labels[rows], data.rois["name"].tolist()))

    with pytest.raises(ValueError, match=r"subject_ptids: PTID '999_S_0000'"):
        reference_scores(data, [ptids[0], "999_S_0000"])
    with pytest.raises(ValueError, match="subject_ptids: .*twice"):
        reference_scores(data, [ptids[0], ptids[0]])
