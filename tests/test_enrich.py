"""Tests of rgenima.enrich: AD-locus enrichment of top-ranked genes."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom
from statsmodels.stats.multitest import multipletests

from rgenima.cli import main
from rgenima.data.genetics import read_gene_panel
from rgenima.data.manifest import builtin_gene_panel_path
from rgenima.enrich import (
    CONTROLS_COLUMNS,
    ENRICHMENT_COLUMNS,
    GSEA_COLUMNS,
    controls_table,
    enrich_run,
    enrichment_controls,
    enrichment_table,
    gsea_prerank,
    hypergeometric_enrichment,
    permutation_enrichment,
    positive_control_ranking,
    random_ranking,
    rank_genes,
)
from rgenima.errors import DataContractError

HAS_GSEAPY = importlib.util.find_spec("gseapy") is not None


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return read_gene_panel(builtin_gene_panel_path())


def _attribution(panel: pd.DataFrame, enriched: bool, seed: int = 0, n_drop: int = 10) -> pd.DataFrame:
    """gene_attribution-like table over the panel minus ``n_drop`` genes (not scored).

    ``enriched``: every locus gene outranks every background gene (noise within each).
    """
    rng = np.random.default_rng(seed)
    genes = panel.iloc[n_drop:]
    rows = []
    for stage in ("MCI", "AD"):
        for method in ("attention", "integrated_gradients"):
            score = rng.random(len(genes)) + (genes["ad_locus"].to_numpy() * 10.0 if enriched else 0.0)
            rank = pd.Series(score).rank(ascending=False, method="first").astype(int).to_numpy()
            rows.append(
                pd.DataFrame(
                    {
                        "name": genes["symbol"].to_numpy(),
                        "stage": stage,
                        "method": method,
                        "score": score,
                        "ci_low": score - 0.1,
                        "ci_high": score + 0.1,
                        "rank": rank,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------------
# hypergeometric_enrichment
# ---------------------------------------------------------------------------------
def test_hypergeometric_enrichment_hand_worked():
    # M=20 background genes, n=5 locus genes, N=4 top genes, 3 of them locus:
    # P(X >= 3) = [C(5,3) C(15,1) + C(5,4) C(15,0)] / C(20,4) = (150 + 5) / 4845.
    background = [f"g{i}" for i in range(20)]
    locus = background[:5]
    top = ["g0", "g1", "g2", "g10"]
    expected = (math.comb(5, 3) * math.comb(15, 1) + math.comb(5, 4) * math.comb(15, 0)) / math.comb(20, 4)
    overlap, p = hypergeometric_enrichment(top, locus, background)
    assert overlap == 3
    assert p == pytest.approx(155 / 4845, rel=1e-12)
    assert p == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(hypergeom.sf(2, 20, 5, 4), rel=1e-12)


def test_hypergeometric_enrichment_zero_overlap_is_one():
    background = [f"g{i}" for i in range(20)]
    assert hypergeometric_enrichment(background[10:14], background[:5], background) == (0, 1.0)


def test_hypergeometric_enrichment_rejects_genes_outside_background():
    background = [f"g{i}" for i in range(20)]
    with pytest.raises(ValueError, match="'top_genes' are not in the background.*XYZ"):
        hypergeometric_enrichment(["g0", "XYZ"], background[:5], background)
    with pytest.raises(ValueError, match="'locus_genes' are not in the background.*APOE"):
        hypergeometric_enrichment(["g0"], ["g1", "APOE"], background)


# ---------------------------------------------------------------------------------
# permutation_enrichment
# ---------------------------------------------------------------------------------
def test_rank_genes_breaks_ties_by_name():
    ranks = rank_genes(pd.Series([1.0, 3.0, 1.0, 2.0], index=["d", "a", "b", "c"]))
    assert list(ranks.index) == ["a", "c", "b", "d"]
    assert list(ranks) == [1, 2, 3, 4]


def test_permutation_enrichment_calibrated_under_null():
    # Scores unrelated to the locus labels: p-values ~ uniform (slightly conservative,
    # the statistic is discrete and p = (1 + b) / (1 + B)).
    rng = np.random.default_rng(12345)
    genes = [f"g{i}" for i in range(160)]
    locus = genes[:80]
    p_values = np.array(
        [
            permutation_enrichment(pd.Series(rng.random(160), index=genes), locus, k=10, n_permutations=200, seed=rng)
            for _ in range(300)
        ]
    )
    assert np.all((p_values >= 1 / 201) & (p_values <= 1))
    # 3 standard errors of a proportion over 300 repeats: 0.038 at 0.05, 0.087 at 0.5.
    assert np.mean(p_values <= 0.05) <= 0.05 + 0.04
    assert 0.5 - 0.12 <= np.mean(p_values <= 0.5) <= 0.5 + 0.09
    assert 0.2 <= np.mean(p_values <= 0.25) <= 0.25 + 0.08


def test_permutation_enrichment_weights_rank_within_top_k():
    # Same overlap (3 of the top 10), hence the same hypergeometric p, but locus genes at
    # ranks 1-3 are stronger evidence than at ranks 8-10.
    genes = [f"g{i:03d}" for i in range(100)]
    scores = pd.Series(-np.arange(100.0), index=genes)
    top_locus = genes[:3] + genes[50:57]
    low_locus = genes[7:10] + genes[50:57]
    assert hypergeometric_enrichment(genes[:10], top_locus, genes) == hypergeometric_enrichment(
        genes[:10], low_locus, genes
    )
    p_top = permutation_enrichment(scores, top_locus, 10, n_permutations=2000, seed=0)
    p_low = permutation_enrichment(scores, low_locus, 10, n_permutations=2000, seed=0)
    assert p_top < 0.05 < p_low


def test_permutation_enrichment_is_reproducible_and_bounded():
    genes = [f"g{i}" for i in range(160)]
    scores = pd.Series(-np.arange(160.0), index=genes)
    p1 = permutation_enrichment(scores, genes[:80], 10, n_permutations=10_000, seed=7)
    assert p1 == permutation_enrichment(scores, genes[:80], 10, n_permutations=10_000, seed=7)
    # All top 10 are locus: P(W = max) = C(80,10)/C(160,10) ~ 7e-4, so few null hits.
    assert 1 / 10_001 <= p1 < 0.005


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "'k' must be in"),
        ({"k": 11}, "'k' must be in"),
        ({"n_permutations": 0}, "'n_permutations' must be >= 1"),
        ({"locus_genes": ["nope"]}, "'locus_genes' are not in the background"),
    ],
)
def test_permutation_enrichment_rejects_bad_input(kwargs, match):
    args = {
        "scores_by_gene": pd.Series(np.arange(10.0), index=list("abcdefghij")),
        "locus_genes": ["a", "b"],
        "k": 3,
        "n_permutations": 10,
        "seed": 0,
    }
    with pytest.raises(ValueError, match=match):
        permutation_enrichment(**(args | kwargs))


def test_permutation_enrichment_rejects_duplicate_genes():
    with pytest.raises(ValueError, match="duplicated genes: a"):
        permutation_enrichment(pd.Series([1.0, 2.0, 3.0], index=["a", "a", "b"]), ["b"], 1)


# ---------------------------------------------------------------------------------
# enrichment_table
# ---------------------------------------------------------------------------------
def test_enrichment_table_strong_enrichment(panel):
    table = enrichment_table(_attribution(panel, enriched=True), panel, ks=(5, 10, 20), n_permutations=2000)
    assert list(table.columns) == list(ENRICHMENT_COLUMNS)
    assert table.shape == (2 * 2 * 3, len(ENRICHMENT_COLUMNS))
    scored = panel.iloc[10:]
    assert (table["n_background"] == len(scored)).all()
    assert (table["n_locus"] == scored["ad_locus"].sum()).all()
    assert (table["overlap"] == table["k"]).all()
    np.testing.assert_allclose(table["expected"], table["k"] * table["n_locus"] / table["n_background"])
    np.testing.assert_allclose(table["fold_enrichment"], table["overlap"] / table["expected"])
    locus = set(panel.loc[panel["ad_locus"], "symbol"])
    for genes, k in zip(table["overlap_genes"], table["k"]):
        assert len(genes.split(";")) == k and set(genes.split(";")) <= locus
    strong = table[table["k"] >= 10]
    assert (strong["p_hypergeom"] < 1e-3).all() and (strong["p_permutation"] < 2e-3).all()
    assert (strong["q_hypergeom"] < 0.05).all() and (strong["q_permutation"] < 0.05).all()
    assert strong["significant_fdr05"].all()


def test_enrichment_table_null_is_not_significant(panel):
    table = enrichment_table(_attribution(panel, enriched=False, seed=1), panel, ks=(10, 20), n_permutations=500)
    assert (table["q_hypergeom"] > 0.05).all()


def test_enrichment_table_bh_matches_statsmodels(panel):
    table = enrichment_table(_attribution(panel, enriched=False, seed=2), panel, ks=(5, 10, 20), n_permutations=200)
    for _, rows in table.groupby("method"):
        for p_col, q_col in (("p_hypergeom", "q_hypergeom"), ("p_permutation", "q_permutation")):
            expected = multipletests(rows[p_col].to_numpy(), method="fdr_bh")[1]
            np.testing.assert_allclose(rows[q_col].to_numpy(), expected, rtol=1e-12)
    assert (table["significant_fdr05"] == (table["q_hypergeom"] <= 0.05)).all()


def test_enrichment_table_skips_k_beyond_ranked_genes(panel):
    attribution = _attribution(panel, enriched=True)
    table = enrichment_table(attribution, panel, ks=(10, 1000), n_permutations=50)
    assert set(table["k"]) == {10}


def test_enrichment_table_rejects_genes_outside_panel(panel):
    attribution = _attribution(panel, enriched=True)
    attribution.loc[0, "name"] = "NOTAGENE"
    with pytest.raises(DataContractError, match="not in the gene panel: NOTAGENE"):
        enrichment_table(attribution, panel, n_permutations=10)


# ---------------------------------------------------------------------------------
# enrich_run and the CLI
# ---------------------------------------------------------------------------------
def test_enrich_run_writes_enrichment_csv(tmp_path, panel):
    _attribution(panel, enriched=True).to_csv(tmp_path / "gene_attribution.csv", index=False)
    table = enrich_run(tmp_path, ks=(5, 10), n_permutations=500, seed=3)
    written = pd.read_csv(tmp_path / "enrichment.csv")
    assert list(written.columns) == list(ENRICHMENT_COLUMNS)
    assert len(written) == len(table) == 2 * 2 * 2
    np.testing.assert_allclose(written["p_hypergeom"], table["p_hypergeom"], rtol=1e-5)
    assert not list(tmp_path.glob(".enrichment.csv.*"))  # no temporary file left behind
    again = enrich_run(tmp_path, ks=(5, 10), n_permutations=500, seed=3)
    pd.testing.assert_frame_equal(table, again)


def test_enrich_run_missing_column_names_file_and_column(tmp_path, panel):
    path = tmp_path / "gene_attribution.csv"
    _attribution(panel, enriched=True).drop(columns="rank").to_csv(path, index=False)
    with pytest.raises(DataContractError, match=r"gene_attribution\.csv: missing column\(s\) rank"):
        enrich_run(tmp_path, n_permutations=10)


def test_enrich_run_missing_file(tmp_path):
    with pytest.raises(DataContractError, match=r"gene_attribution\.csv"):
        enrich_run(tmp_path, n_permutations=10)


def test_enrich_cli(tmp_path, panel, capsys):
    _attribution(panel, enriched=True).to_csv(tmp_path / "gene_attribution.csv", index=False)
    code = main(["enrich", "--run", str(tmp_path), "--k", "5", "10", "--permutations", "200", "--seed", "1"])
    assert code == 0
    assert "enrichment.csv" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "enrichment.csv")
    assert sorted(set(written["k"])) == [5, 10]
    assert main(["enrich", "--run", str(tmp_path / "missing")]) == 1
    assert "gene_attribution.csv" in capsys.readouterr().err


# ---------------------------------------------------------------------------------
# GSEA (optional)
# ---------------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_GSEAPY, reason="gseapy not installed (optional extra [gsea])")
def test_gsea_prerank_enriched_set(tmp_path):
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(160)]
    scores = pd.Series(rng.random(160), index=genes)
    scores[genes[:30]] += 1.0
    result = gsea_prerank(scores, genes[:30] + ["UNSCORED"], tmp_path, permutation_num=200, seed=1)
    assert set(result) == {"nes", "p", "fdr"}
    assert result["nes"] > 1 and result["p"] < 0.05
    assert (tmp_path / "ad_loci.gmt").read_text().startswith("AD_LOCI\t")


@pytest.mark.skipif(not HAS_GSEAPY, reason="gseapy not installed (optional extra [gsea])")
def test_enrich_run_with_gsea(tmp_path, panel):
    _attribution(panel, enriched=True).to_csv(tmp_path / "gene_attribution.csv", index=False)
    table = enrich_run(tmp_path, ks=(10,), n_permutations=100, gsea=True)
    assert list(table.columns) == list(ENRICHMENT_COLUMNS) + list(GSEA_COLUMNS)
    assert (table["gsea_nes"] > 1).all()
    assert list(pd.read_csv(tmp_path / "enrichment.csv").columns) == list(table.columns)


def test_gsea_prerank_without_gseapy_raises_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gseapy", None)  # makes `import gseapy` fail
    with pytest.raises(ImportError, match="optional package gseapy"):
        gsea_prerank(pd.Series([1.0, 2.0], index=["a", "b"]), ["a"], tmp_path)


# ---------------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------------
# 200 ranked genes, 10 of them loci; 5 planted causal genes, 4 of them loci.
GENES = [f"g{i:03d}" for i in range(200)]
LOCI = [GENES[i] for i in (3, 17, 25, 48, 60, 91, 104, 133, 150, 187)]
CAUSAL = ["g104", "g017", "g150", "g003", "g050"]  # g050 is not a locus


def _no_nan(text: str) -> dict:
    def reject(constant):
        raise ValueError(f"non-JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_positive_control_ranking_puts_present_causal_genes_first(caplog):
    with caplog.at_level(logging.INFO, logger="rgenima.enrich"):
        ranks = positive_control_ranking(GENES, CAUSAL + ["APOE", "g017"], seed=1)
    assert "APOE" in caplog.text  # the missing planted gene is logged
    assert list(ranks.index[:5]) == CAUSAL and list(ranks) == list(range(1, 201))
    assert sorted(ranks.index) == GENES
    rest = list(ranks.index[5:])
    assert rest != sorted(rest)  # the other genes are shuffled ...
    pd.testing.assert_series_equal(ranks, positive_control_ranking(GENES, CAUSAL, seed=1))  # ... by the seed
    assert list(positive_control_ranking(GENES, CAUSAL, seed=2).index[5:]) != rest


def test_random_ranking_is_a_seeded_permutation():
    ranks = random_ranking(GENES, seed=4)
    assert sorted(ranks.index) == GENES and list(ranks) == list(range(1, 201))
    pd.testing.assert_series_equal(ranks, random_ranking(set(GENES), seed=4))  # a set is sorted first
    assert list(random_ranking(GENES, seed=5).index) != list(ranks.index)
    with pytest.raises(ValueError, match="duplicated genes: g000"):
        random_ranking(GENES + ["g000"], seed=0)


def test_positive_control_significant_when_causal_genes_are_loci():
    controls = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10, 20), n_random=200, seed=0)
    positive = controls["positive"]
    assert controls["causal_present"] == CAUSAL and controls["causal_missing"] == []
    assert (controls["n_background"], controls["n_locus"]) == (200, 10)
    assert positive["causal_locus_genes"] == ["g104", "g017", "g150", "g003"]
    assert positive["deciding_k"] == 5 and positive["passed"] is True and positive["note"] is None
    ranking = positive_control_ranking(GENES, CAUSAL, seed=np.random.SeedSequence(0).spawn(2)[0])
    for row in positive["rows"]:  # the same test as the main table
        assert (row["overlap"], row["p"]) == hypergeometric_enrichment(ranking.index[: row["k"]], LOCI, GENES)
        assert row["expected"] == pytest.approx(row["k"] * 10 / 200)
        assert row["overlap"] >= 4
    q = multipletests([r["p"] for r in positive["rows"]], method="fdr_bh")[1]
    np.testing.assert_allclose([r["q"] for r in positive["rows"]], q, rtol=1e-12)
    assert [r["significant_fdr05"] for r in positive["rows"]] == list(q <= 0.05)
    assert positive["rows"][0]["q"] < 1e-3


def test_positive_control_fails_when_causal_genes_are_not_loci():
    not_loci = ["g001", "g002", "g050", "g070", "g199"]
    positive = enrichment_controls(GENES, LOCI, not_loci, ks=(5, 10, 20), n_random=200, seed=0)["positive"]
    assert positive["passed"] is False and positive["deciding_k"] == 5
    assert positive["rows"][0]["overlap"] == 0 and positive["rows"][0]["p"] == 1.0
    assert not any(r["significant_fdr05"] for r in positive["rows"])
    assert "no planted causal gene is an AD locus" in positive["note"]


def test_positive_control_absent_without_causal_genes():
    controls = enrichment_controls(GENES, LOCI, None, ks=(5, 10), n_random=100, seed=0)
    assert controls["positive"] is None and controls["causal_present"] == []
    assert "positive control: no planted genes (real data)" in controls["notes"]
    assert controls["negative"]["calibrated"] is True


def test_negative_control_is_calibrated():
    n_random = 2000
    controls = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10, 20, 50), n_random=n_random, seed=3)
    negative = controls["negative"]
    margin = 3 * math.sqrt(0.05 * 0.95 / n_random)
    for row in negative["rows"]:
        assert row["fraction_p_below_alpha"] <= 0.05 + margin
        assert row["fraction_p_below_alpha"] <= row["fraction_upper95"]
        assert row["exact_size"] <= 0.05  # the discrete test is conservative
        assert row["calibrated"] is True and row["max_excess"] <= row["margin_at_max_excess"]
        assert all(c["t"] <= 0.5 and c["within_margin"] for c in row["checks"])
        null = row["null_distribution"]
        assert sum(d["n_rankings"] for d in null) == n_random
        assert sum(d["expected_fraction"] for d in null) == pytest.approx(1.0)
    assert negative["calibrated"] is True
    assert negative["fraction_any_significant_fdr05"] <= 0.05 + margin
    # The null p-values are those of the main table's test on a random ranking.
    ranking = random_ranking(GENES, seed=11)
    for row in negative["rows"]:
        overlap, p = hypergeometric_enrichment(ranking.index[: row["k"]], LOCI, GENES)
        assert row["null_distribution"][overlap]["p"] == pytest.approx(p, rel=1e-12)


def test_negative_control_flags_a_miscalibrated_test(monkeypatch):
    import rgenima.enrichment_controls as controls_module

    # A broken test that reports p = 0.01 whatever the ranking.
    monkeypatch.setattr(controls_module, "_null_p_values", lambda overlaps, *_: np.full(len(overlaps), 0.01))
    negative = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10, 20), n_random=2000, seed=0)["negative"]
    assert negative["calibrated"] is False
    for row in negative["rows"]:
        assert row["fraction_p_below_alpha"] == 1.0 and row["calibrated"] is False
        assert row["max_excess"] > row["margin_at_max_excess"]
    assert negative["fraction_any_significant_fdr05"] == 1.0


def test_enrichment_controls_is_deterministic_and_fast():
    first = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10, 20), n_random=500, seed=7)
    assert first == enrichment_controls(GENES, set(LOCI), CAUSAL, ks=[20, 10, 5], n_random=500, seed=7)
    other = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10, 20), n_random=500, seed=8)
    assert other["negative"] != first["negative"]
    many = [f"G{i}" for i in range(2000)]
    start = time.perf_counter()
    enrichment_controls(many, many[::20], many[:5], ks=(5, 10, 20, 50), n_random=1000, seed=0)
    assert time.perf_counter() - start < 1.0


def test_enrichment_controls_rejects_bad_input():
    with pytest.raises(ValueError, match="'ks' must be"):
        enrichment_controls(GENES, LOCI, None, ks=(0, 5))
    with pytest.raises(ValueError, match="'n_random' must be >= 1"):
        enrichment_controls(GENES, LOCI, None, ks=(5,), n_random=0)
    with pytest.raises(ValueError, match="'alpha' must be in"):
        enrichment_controls(GENES, LOCI, None, ks=(5,), alpha=1.5)
    with pytest.raises(TypeError, match="not a string"):
        enrichment_controls(GENES, LOCI, "APOE", ks=(5,))


def test_controls_table_one_row_per_control_and_k():
    controls = enrichment_controls(GENES, LOCI, CAUSAL, ks=(5, 10), n_random=300, seed=0)
    table = controls_table(controls)
    assert list(table.columns) == list(CONTROLS_COLUMNS)
    assert list(zip(table["control"], table["k"])) == [
        ("positive", 5),
        ("positive", 10),
        ("negative", 5),
        ("negative", 10),
    ]
    positive, negative = table.iloc[:2], table.iloc[2:]
    assert list(positive["significant_fdr05"]) == [r["significant_fdr05"] for r in controls["positive"]["rows"]]
    assert negative["p"].isna().all() and negative["overlap"].isna().all()
    assert list(negative["calibrated"]) == [True, True]
    np.testing.assert_allclose(
        negative["rejection_rate"], [r["fraction_p_below_alpha"] for r in controls["negative"]["rows"]]
    )
    real = controls_table(enrichment_controls(GENES, LOCI, None, ks=(5, 10), n_random=300, seed=0))
    assert list(real["control"]) == ["negative", "negative"]


def test_enrich_run_writes_enrichment_controls(tmp_path, panel):
    _attribution(panel, enriched=True).to_csv(tmp_path / "gene_attribution.csv", index=False)
    scored = panel.iloc[10:]
    planted = list(scored.loc[scored["ad_locus"], "symbol"][:10])
    truth = {"causal_genes": [panel["symbol"].iloc[0], *planted]}  # the first panel gene is not scored
    table = enrich_run(tmp_path, ks=(10, 20), n_permutations=100, seed=3, truth=truth, n_random=500)
    path = tmp_path / "enrichment_controls.json"
    assert table.attrs["enrichment_controls_path"] == str(path)
    written = _no_nan(path.read_text())
    assert written == table.attrs["enrichment_controls"]
    assert not list(tmp_path.glob(".enrichment_controls.json.*"))
    assert written["ks"] == [10, 20] and written["seed"] == 3 and written["n_random"] == 500
    assert written["n_background"] == len(scored) == table["n_background"].iloc[0]
    assert written["n_locus"] == table["n_locus"].iloc[0]
    assert written["causal_present"] == planted and written["causal_missing"] == [panel["symbol"].iloc[0]]
    assert written["background"]["identical_across_groups"] is True and written["background"]["n_groups"] == 4
    assert written["truth"] == "dict"
    assert written["positive"]["passed"] is True and written["positive"]["deciding_k"] == 10
    assert written["negative"]["calibrated"] is True
    assert [r["k"] for r in written["negative"]["rows"]] == [10, 20]

    # The same truth as a file, then no truth (real data): the negative control only.
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    again = enrich_run(tmp_path, ks=(10, 20), n_permutations=100, seed=3, truth=tmp_path / "truth.json", n_random=500)
    assert {k: v for k, v in again.attrs["enrichment_controls"].items() if k != "truth"} == {
        k: v for k, v in written.items() if k != "truth"
    }
    enrich_run(tmp_path, ks=(10, 20), n_permutations=100, seed=3, n_random=500)
    real = _no_nan(path.read_text())
    assert real["positive"] is None and "positive control: no planted genes (real data)" in real["notes"]
    assert real["negative"] == written["negative"]
    with pytest.raises(DataContractError, match="missing key 'causal_genes'"):
        enrich_run(tmp_path, ks=(10,), n_permutations=10, truth={"planted_regions": []})
