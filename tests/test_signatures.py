"""Tests of rgenima.signatures on hand-made attribution arrays (no model, no explain step)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rgenima import STAGES
from rgenima.errors import DataContractError
from rgenima.signatures import (
    ATTRIBUTION_COLUMNS,
    MEAN_SUFFIX,
    ROI_GENE_COLUMNS,
    attribution_table,
    find_truth,
    load_attributions,
    mean_attribution,
    recovery,
    roi_gene_matrix,
    roi_gene_table,
    signatures_run,
    stage_signature,
)

# Unequal dimensions on purpose: 7 ROIs, 8 genes, 9 SNPs.
ROIS = np.array(["Hippocampus_L", "Hippocampus_R", "Amygdala_L", "Precuneus_L", "Caudate_L", "Putamen_L", "Cuneus_L"])
GENES = np.array(["ABCA7", "APOE", "BIN1", "CLU", "CR1", "PICALM", "SORL1", "TREM2"])
CAUSAL = ["APOE", "CLU", "CR1", "PICALM", "SORL1"]
SNPS = np.array([f"rs{i}" for i in range(1, 10)])
SNP_GENE = np.array(["APOE", "APOE", "BIN1", "CLU", "CR1", "PICALM", "SORL1", "TREM2", "ABCA7"])
COUNTS = {"NC": 40, "SMC": 20, "MCI": 30, "AD": 30}
PLANTED_ROI = 3  # Precuneus_L: higher attention in AD than in NC

TRUTH = {
    "causal_genes": CAUSAL,
    "causal_snps": [
        {"gene": "APOE", "rsid": "rs1", "effect_allele": "C", "beta": 1.1},
        {"gene": "CLU", "rsid": "rs4", "effect_allele": "C", "beta": 0.45},
    ],
    "planted_regions": {
        "NC": [],
        "SMC": ["Caudate_L", "Putamen_L"],
        "MCI": ["Hippocampus_L", "Hippocampus_R", "Amygdala_L"],
        "AD": ["Hippocampus_L", "Hippocampus_R", "Amygdala_L", "Precuneus_L"],
    },
    "interactions": [
        {"gene": "APOE", "rsid": "rs1", "regions": ["Hippocampus_L", "Amygdala_L"], "gamma": 0.04},
        {"gene": "CLU", "rsid": "rs4", "regions": ["Precuneus_L"], "gamma": 0.03},
    ],
}


def make_arrays(seed: int = 0, rois=ROIS, genes=GENES, modalities=("mri", "snp"), effect: float = 0.5) -> dict:
    """A synthetic attributions.npz content following the explain contract."""
    rng = np.random.default_rng(seed)
    label = np.concatenate([np.full(COUNTS[s], k) for k, s in enumerate(STAGES)])
    n, r, g = len(label), len(rois), len(genes)
    arrays = {
        "ptid": np.array([f"{i:03d}_S_{i:04d}" for i in range(n)]),
        "label": label,
        "pred": label.copy(),
        "fold": np.arange(n) % 5,
    }
    methods = ("attention", "rollout", "integrated_gradients", "attention_L0", "attention_L1")
    if "mri" in modalities:
        arrays["roi_names"] = np.asarray(rois)
        for m in methods:
            roi = rng.gamma(4.0, 0.05, size=(n, r))
            if m == "integrated_gradients":
                roi = rng.normal(0.0, 0.2, size=(n, r))
            roi[label == 3, PLANTED_ROI] += effect
            arrays[f"roi__{m}"] = roi
            arrays[f"random__roi__{m}"] = rng.gamma(4.0, 0.05, size=(n, r))
    if "snp" in modalities:
        arrays["gene_names"] = np.asarray(genes)
        arrays["snp_names"] = SNPS
        arrays["snp_gene"] = SNP_GENE
        for m in methods:
            gene = rng.gamma(4.0, 0.05, size=(n, g))
            gene[rng.random((n, g)) < 0.05] = np.nan  # genes missing from some prompts
            arrays[f"gene__{m}"] = gene
            arrays[f"snp__{m}"] = rng.gamma(4.0, 0.05, size=(n, len(SNPS)))
            arrays[f"random__gene__{m}"] = rng.gamma(4.0, 0.05, size=(n, g))
    if "mri" in modalities and "snp" in modalities:
        arrays["roi_gene__gene_to_roi"] = rng.gamma(4.0, 0.05, size=(n, r, g))
        arrays["roi_gene__roi_to_gene"] = np.zeros((n, r, g))  # causal backbone
    return arrays


def write_npz(path, arrays: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.fixture()
def attributions(tmp_path):
    return load_attributions(write_npz(tmp_path / "attributions.npz", make_arrays()))


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------
def test_load_attributions_shapes_and_methods(attributions):
    assert attributions.n_subjects == sum(COUNTS.values())
    assert attributions.stage_counts() == COUNTS
    assert attributions.methods("roi") == [
        "attention",
        "rollout",
        "integrated_gradients",
        "attention_L0",
        "attention_L1",
    ]
    assert attributions.methods("gene", random=True)[0] == "attention"
    assert attributions.get("roi", "attention").shape == (sum(COUNTS.values()), len(ROIS))
    assert attributions.roi_gene("gene_to_roi").shape == (sum(COUNTS.values()), len(ROIS), len(GENES))
    assert attributions.directions() == ["gene_to_roi", "roi_to_gene"]


def test_load_attributions_missing_key_names_file_and_key(tmp_path):
    arrays = make_arrays()
    del arrays["roi_names"]
    path = write_npz(tmp_path / "explain" / "cfg" / "attributions.npz", arrays)
    with pytest.raises(DataContractError, match=r"attributions\.npz: missing array 'roi_names'"):
        load_attributions(path)
    arrays = make_arrays()
    del arrays["label"]
    write_npz(path, arrays)
    with pytest.raises(DataContractError, match=r"cfg/attributions\.npz: missing array 'label'"):
        load_attributions(path)


def test_load_attributions_bad_shape_and_label(tmp_path):
    arrays = make_arrays()
    arrays["gene__attention"] = arrays["gene__attention"][:, :3]
    path = write_npz(tmp_path / "a.npz", arrays)
    with pytest.raises(DataContractError, match=r"a\.npz: array 'gene__attention' must have shape"):
        load_attributions(path)
    arrays = make_arrays()
    arrays["label"] = arrays["label"] + 1
    write_npz(path, arrays)
    with pytest.raises(DataContractError, match=r"'label' must lie in 0\.\.3"):
        load_attributions(path)


def test_load_attributions_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_attributions(tmp_path / "nothere.npz")


def test_unknown_method_names_file_and_choices(attributions):
    with pytest.raises(DataContractError, match=r"no array 'roi__saliency'.*'method' must be one of"):
        attributions.get("roi", "saliency")


# ---------------------------------------------------------------------------------
# Stage signatures
# ---------------------------------------------------------------------------------
def test_stage_signature_recovers_planted_difference(attributions):
    table = stage_signature(attributions, "roi", "attention", n_boot=500, seed=0)
    assert list(table.columns) == list(ATTRIBUTION_COLUMNS)
    assert set(table["stage"]) == {"SMC", "MCI", "AD"}
    ad = table[table["stage"] == "AD"].set_index("name")
    assert ad.loc["Precuneus_L", "rank"] == 1
    assert ad.loc["Precuneus_L", "ci_low"] > 0
    assert ad.loc["Precuneus_L", "score"] == pytest.approx(0.5, abs=0.1)
    # the point estimate is the difference of the group means
    values = attributions.get("roi", "attention")
    expected = values[attributions.label == 3, PLANTED_ROI].mean() - values[attributions.label == 0, PLANTED_ROI].mean()
    assert ad.loc["Precuneus_L", "score"] == pytest.approx(expected)


def test_stage_signature_signed_method(attributions):
    table = stage_signature(attributions, "roi", "integrated_gradients", n_boot=200, seed=1)
    ad = table[table["stage"] == "AD"].set_index("name")
    assert ad.loc["Precuneus_L", "rank"] == 1 and ad.loc["Precuneus_L", "ci_low"] > 0


def test_stage_signature_null_cis_cover_zero(tmp_path):
    rois = np.array([f"roi_{i:02d}" for i in range(40)])
    att = load_attributions(
        write_npz(tmp_path / "null.npz", make_arrays(seed=5, rois=rois, effect=0.0, modalities=("mri",)))
    )
    table = stage_signature(att, "roi", "attention", n_boot=400, seed=2)
    covered = (table["ci_low"] <= 0) & (table["ci_high"] >= 0)
    assert len(table) == 3 * 40
    assert covered.mean() >= 0.85
    assert (table["ci_low"] <= table["score"]).all() and (table["score"] <= table["ci_high"]).all()


def test_stage_signature_is_reproducible_and_nan_aware(attributions):
    a = stage_signature(attributions, "gene", "attention", n_boot=100, seed=7)
    b = stage_signature(attributions, "gene", "attention", n_boot=100, seed=7)
    c = stage_signature(attributions, "gene", "attention", n_boot=100, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    # genes with NaN in some subjects still get a finite score
    assert np.isfinite(a["score"]).all() and len(a) == 3 * len(GENES)
    values = attributions.get("gene", "attention")
    g = list(GENES).index("CLU")
    expected = np.nanmean(values[attributions.label == 2, g]) - np.nanmean(values[attributions.label == 0, g])
    got = a[(a["stage"] == "MCI") & (a["name"] == "CLU")]["score"].item()
    assert got == pytest.approx(expected)


def test_stage_signature_without_bootstrap(attributions):
    table = stage_signature(attributions, "roi", "rollout", n_boot=0)
    assert table["ci_low"].isna().all() and table["score"].notna().all()


def test_mean_attribution_levels(attributions):
    table = mean_attribution(attributions, "gene", "integrated_gradients", n_boot=50, seed=0)
    assert set(table["method"]) == {"integrated_gradients" + MEAN_SUFFIX}
    assert list(dict.fromkeys(table["stage"])) == [*STAGES, "all"]
    values = attributions.get("gene", "integrated_gradients")
    got = table[(table["stage"] == "all") & (table["name"] == "APOE")]["score"].item()
    assert got == pytest.approx(np.nanmean(np.abs(values[:, 1])))


def test_attribution_table_columns_and_ranks(attributions):
    table = attribution_table(attributions, "roi", n_boot=50, seed=0)
    assert list(table.columns) == list(ATTRIBUTION_COLUMNS)
    methods = attributions.methods("roi")
    assert set(table["method"]) == set(methods) | {m + MEAN_SUFFIX for m in methods}
    for (_, _), group in table.groupby(["stage", "method"]):
        assert sorted(group["rank"]) == list(range(1, len(ROIS) + 1))
        ordered = group.sort_values("rank")
        assert ordered["score"].is_monotonic_decreasing
    # contrasts for SMC/MCI/AD, levels for NC..AD and all
    assert set(table[table["method"] == "attention"]["stage"]) == {"SMC", "MCI", "AD"}
    assert set(table[table["method"] == "attention" + MEAN_SUFFIX]["stage"]) == {*STAGES, "all"}


def test_ties_broken_by_name(tmp_path):
    arrays = make_arrays(modalities=("mri",))
    arrays["roi__attention"] = np.ones_like(arrays["roi__attention"])
    att = load_attributions(write_npz(tmp_path / "ties.npz", arrays))
    table = stage_signature(att, "roi", "attention", n_boot=0)
    ad = table[table["stage"] == "AD"]
    assert list(ad.sort_values("rank")["name"]) == sorted(ROIS)


# ---------------------------------------------------------------------------------
# ROI x gene
# ---------------------------------------------------------------------------------
def test_roi_gene_table_and_matrix(attributions):
    table = roi_gene_table(attributions)
    assert list(table.columns) == list(ROI_GENE_COLUMNS)
    assert set(table["direction"]) == {"gene_to_roi"}  # the all-zero causal direction is omitted
    assert set(table["stage"]) == {*STAGES, "all"}
    for _, group in table.groupby(["stage", "direction"]):
        assert sorted(group["rank"]) == list(range(1, len(ROIS) * len(GENES) + 1))
    wide = roi_gene_matrix(attributions, "AD")
    assert wide.shape == (len(ROIS), len(GENES))
    assert list(wide.index) == list(ROIS) and list(wide.columns) == list(GENES)
    values = attributions.roi_gene("gene_to_roi")
    assert wide.loc["Precuneus_L", "CLU"] == pytest.approx(values[attributions.label == 3, 3, 3].mean())
    long = table[(table["stage"] == "AD")].set_index(["roi", "gene"])
    assert long.loc[("Precuneus_L", "CLU"), "score"] == pytest.approx(wide.loc["Precuneus_L", "CLU"])
    with pytest.raises(ValueError, match="'stage' must be one of"):
        roi_gene_matrix(attributions, "EMCI")


# ---------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------
def _with_gene_scores(tmp_path, scores: np.ndarray):
    arrays = make_arrays()
    n = len(arrays["label"])
    for m in ("attention", "rollout", "integrated_gradients", "attention_L0", "attention_L1"):
        arrays[f"gene__{m}"] = np.tile(scores, (n, 1))
    return load_attributions(write_npz(tmp_path / "genes.npz", arrays))


def test_recovery_perfect_and_reversed_gene_rankings(tmp_path):
    # APOE highest, then the other causal genes, then the rest
    order = ["APOE", "CLU", "CR1", "PICALM", "SORL1", "BIN1", "TREM2", "ABCA7"]
    scores = np.array([len(order) - order.index(g) for g in GENES], dtype=float)
    rec = recovery(_with_gene_scores(tmp_path, scores), TRUTH)
    m = rec["genes"]["methods"]["attention"]["all"]
    assert m["auroc"] == 1.0 and m["apoe_rank"] == 1.0 and m["precision_at_5"] == 1.0
    assert m["precision_at_10"] is None  # fewer than 10 genes
    assert rec["genes"]["methods"]["attention"]["AD"]["mean_abs"]["auroc"] == 1.0
    assert rec["genes"]["methods"]["attention"]["AD"]["contrast"]["auroc"] is not None
    rev = recovery(_with_gene_scores(tmp_path, -scores + 100), TRUTH)
    assert rev["genes"]["methods"]["attention"]["all"]["auroc"] == 0.0
    assert rev["genes"]["methods"]["attention"]["all"]["apoe_rank"] == 8.0


def test_recovery_ties_are_not_rewarded(tmp_path):
    rec = recovery(_with_gene_scores(tmp_path, np.ones(len(GENES))), TRUTH)
    m = rec["genes"]["methods"]["attention"]["all"]
    assert m["auroc"] == 0.5
    assert m["apoe_rank"] == pytest.approx((len(GENES) + 1) / 2)
    assert m["precision_at_5"] == pytest.approx(len(CAUSAL) / len(GENES))


def test_recovery_roi_auroc_per_stage(attributions):
    rec = recovery(attributions, TRUTH)
    ad = rec["rois"]["methods"]["attention"]["AD"]
    assert ad["planted"] == ["Hippocampus_L", "Hippocampus_R", "Amygdala_L", "Precuneus_L"]
    assert ad["contrast"]["planted_ranks"]["Precuneus_L"] == 1.0
    assert set(rec["rois"]["methods"]["attention"]) == {"SMC", "MCI", "AD"}
    assert rec["random"]["rois"]["attention"]["AD"]["mean_abs"]["auroc"] is not None
    assert rec["snps"]["causal"] == ["rs1", "rs4"]


def test_recovery_interaction_rank_on_hand_made_matrix(tmp_path):
    arrays = make_arrays()
    n, r, g = len(arrays["label"]), len(ROIS), len(GENES)
    perm = np.random.default_rng(3).permutation(r * g).reshape(r, g).astype(float)
    i, j = list(ROIS).index("Hippocampus_L"), list(GENES).index("APOE")
    top = perm.max()
    perm[perm == top] = perm[i, j]
    perm[i, j] = top  # (Hippocampus_L, APOE) is the strongest pair
    k, l = list(ROIS).index("Precuneus_L"), list(GENES).index("CLU")
    arrays["roi_gene__gene_to_roi"] = np.broadcast_to(perm, (n, r, g)).copy()
    rec = recovery(load_attributions(write_npz(tmp_path / "pairs.npz", arrays)), TRUTH)
    records = pd.DataFrame(rec["interactions"])
    assert set(records["stage"]) == {*STAGES, "all"}
    hip = records[(records["roi"] == "Hippocampus_L") & (records["stage"] == "AD")].iloc[0]
    assert hip["rank"] == 1.0 and hip["in_top_5_percent"] and hip["n_pairs"] == r * g
    assert hip["rank_within_gene"] == 1.0
    pre = records[(records["roi"] == "Precuneus_L") & (records["stage"] == "MCI")].iloc[0]
    expected = float((perm > perm[k, l]).sum() + 1)
    assert pre["rank"] == expected
    assert pre["top_percent"] == pytest.approx(100 * expected / (r * g))
    assert pre["in_top_5_percent"] == (expected <= 0.05 * r * g)
    assert pre["rank_within_gene"] == float((perm[:, l] > perm[k, l]).sum() + 1)


# ---------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------
def _run_dir(tmp_path, arrays, configuration="rgenima_mri+snp", with_truth=True):
    run = tmp_path / "run"
    write_npz(run / "explain" / configuration / "attributions.npz", arrays)
    cohort = tmp_path / "cohort"
    cohort.mkdir(exist_ok=True)
    if with_truth:
        (cohort / "truth.json").write_text(json.dumps(TRUTH))
    (run / "prepared").mkdir(parents=True)
    (run / "prepared" / "prepare.json").write_text(
        json.dumps({"manifest": {"cohort": {"name": "synthetic", "clinical": str(cohort / "ADNIMERGE.csv")}}})
    )
    return run


def test_signatures_run_writes_all_outputs(tmp_path):
    run = _run_dir(tmp_path, make_arrays())
    (run / "explain" / "rgenima_mri+snp" / "sanity.json").write_text(json.dumps({"summary": {"passed": True}}))
    assert find_truth(run) == tmp_path / "cohort" / "truth.json"
    result = signatures_run(run, n_boot=50, seed=0)
    roi = pd.read_csv(run / "roi_attribution.csv")
    gene = pd.read_csv(run / "gene_attribution.csv")
    pairs = pd.read_csv(run / "roi_gene.csv")
    assert list(roi.columns) == list(ATTRIBUTION_COLUMNS) == list(gene.columns)
    assert list(pairs.columns) == list(ROI_GENE_COLUMNS)
    assert len(roi) == len(result.roi_attribution) and len(gene) == len(result.gene_attribution)
    rec = json.loads((run / "recovery.json").read_text())
    assert rec["configuration"] == "rgenima_mri+snp"
    assert rec["sanity"] == {"passed": True}
    assert rec["genes"]["methods"]["attention"]["all"]["auroc"] is not None
    assert not list(run.glob(".*.tmp"))


def test_signatures_run_snp_only_without_truth(tmp_path):
    run = _run_dir(tmp_path, make_arrays(modalities=("snp",)), configuration="rgenima_snp", with_truth=False)
    result = signatures_run(run, n_boot=20)
    roi = pd.read_csv(run / "roi_attribution.csv")
    assert list(roi.columns) == list(ATTRIBUTION_COLUMNS) and roi.empty
    assert list(pd.read_csv(run / "roi_gene.csv").columns) == list(ROI_GENE_COLUMNS)
    assert len(result.gene_attribution) > 0
    assert result.recovery is None and not (run / "recovery.json").exists()


def test_recovery_snp_only(tmp_path):
    att = load_attributions(write_npz(tmp_path / "s.npz", make_arrays(modalities=("snp",))))
    rec = recovery(att, TRUTH)
    assert rec["rois"] == {} and rec["interactions"] == []
    assert rec["genes"]["methods"]["attention"]["all"]["auroc"] is not None
    with pytest.raises(DataContractError, match="no roi attributions"):
        stage_signature(att, "roi", "attention")


def test_signatures_run_chooses_configuration(tmp_path):
    run = _run_dir(tmp_path, make_arrays(modalities=("mri",)), configuration="rgenima_mri")
    write_npz(run / "explain" / "rgenima_snp" / "attributions.npz", make_arrays(modalities=("snp",)))
    with pytest.raises(FileNotFoundError, match="'configuration' must name one of them"):
        signatures_run(run, n_boot=10)
    result = signatures_run(run, configuration="rgenima_mri", n_boot=10)
    assert result.gene_attribution.empty and not result.roi_attribution.empty
    assert result.recovery["genes"] == {}
