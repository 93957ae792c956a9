"""Checks on the shipped gene-panel resources (rgenima/resources/*.tsv).

The tables are built by ``tools/build_gene_panel.py`` from GENCODE (hg19) gene
records and the HapMap3 SNP list; see ``rgenima/resources/README.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

RESOURCES = Path(__file__).resolve().parents[1] / "rgenima" / "resources"
PANEL_COLUMNS = ["symbol", "chrom", "start", "end", "ad_locus", "source"]
SNP_COLUMNS = ["gene", "rsid", "chrom", "pos", "a1", "a2"]
AUTOSOMES = {str(i) for i in range(1, 23)}
WINDOW_BP = 10_000
STUDIES = {"Lambert2013", "Kunkle2019", "Jansen2019", "Bellenguez2022", "Raghavan2020"}

# GRCh37 positions of the APOE-defining SNPs (dbSNP).
RS429358 = 45_411_941
RS7412 = 45_412_079


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return pd.read_csv(
        RESOURCES / "gene_panel_grch37.tsv", sep="\t", dtype={"symbol": str, "chrom": str, "source": str}
    )


@pytest.fixture(scope="module")
def snps() -> pd.DataFrame:
    return pd.read_csv(RESOURCES / "panel_snps_grch37.tsv", sep="\t", dtype={"gene": str, "rsid": str, "chrom": str})


@pytest.fixture(scope="module")
def windows(panel, snps) -> pd.DataFrame:
    """Each SNP joined to its gene's bounds."""
    genes = panel.rename(columns={"symbol": "gene", "chrom": "gene_chrom"})
    return snps.merge(genes, on="gene", how="left", validate="many_to_one")


def length(df: pd.DataFrame) -> pd.Series:
    return df["end"] - df["start"] + 1


# --------------------------------------------------------------------- gene panel
def test_panel_columns_and_types(panel):
    assert list(panel.columns) == PANEL_COLUMNS
    assert panel["ad_locus"].dtype == bool  # written as True/False
    assert pd.api.types.is_integer_dtype(panel["start"])
    assert pd.api.types.is_integer_dtype(panel["end"])
    assert panel.notna().all().all()


def test_panel_counts(panel):
    assert panel["ad_locus"].sum() >= 40
    assert (~panel["ad_locus"]).sum() >= 60


def test_panel_coordinates(panel):
    assert (panel["start"] > 0).all()
    assert (panel["start"] < panel["end"]).all()
    assert set(panel["chrom"]) <= AUTOSOMES
    assert not panel["chrom"].str.startswith("chr").any()


def test_panel_symbols_unique_and_hgnc_like(panel):
    assert not panel["symbol"].duplicated().any()
    assert panel["symbol"].map(lambda s: re.fullmatch(r"[A-Z][A-Z0-9-]*", s) is not None).all()


def test_panel_sources(panel):
    ad, bg = panel[panel["ad_locus"]], panel[~panel["ad_locus"]]
    assert (bg["source"] == "background").all()
    for source in ad["source"]:
        studies = source.split(";")
        assert studies and set(studies) <= STUDIES, source
        assert len(studies) == len(set(studies)), source


def test_panel_order(panel):
    # AD genes first (APOE first), then background genes by chromosome/position
    flags = panel["ad_locus"].tolist()
    assert flags == sorted(flags, reverse=True)
    assert panel.iloc[0]["symbol"] == "APOE"
    bg = panel[~panel["ad_locus"]]
    key = list(zip(bg["chrom"].astype(int), bg["start"]))
    assert key == sorted(key)


def test_apoe_and_named_loci(panel):
    apoe = panel.set_index("symbol").loc["APOE"]
    assert apoe["chrom"] == "19"
    assert bool(apoe["ad_locus"])
    assert apoe["start"] <= RS429358 <= apoe["end"]
    assert apoe["start"] <= RS7412 <= apoe["end"]
    ad = set(panel.loc[panel["ad_locus"], "symbol"])
    # the loci the R-GenIMA abstract names, plus classic GWAS genes
    assert {"APOE", "BIN1", "CLU", "RBFOX1", "CR1", "PICALM", "SORL1", "ABCA7", "TREM2"} <= ad
    chrom = panel.set_index("symbol")["chrom"]
    assert chrom["BIN1"] == "2" and chrom["CLU"] == "8" and chrom["RBFOX1"] == "16"


def test_panel_windows_do_not_overlap(panel):
    # no two panel genes (+-10 kb) overlap, so each SNP belongs to exactly one gene
    for _, d in panel.groupby("chrom"):
        d = d.sort_values("start")
        lo = (d["start"] - WINDOW_BP).to_numpy()[1:]
        hi = (d["end"] + WINDOW_BP).to_numpy()[:-1]
        assert (lo > hi).all(), d[["symbol", "start", "end"]]


def test_background_far_from_ad_genes(panel):
    ad, bg = panel[panel["ad_locus"]], panel[~panel["ad_locus"]]
    for _, b in bg.iterrows():
        same = ad[ad["chrom"] == b["chrom"]]
        near = (same["start"] - 1_000_000 <= b["end"]) & (b["start"] <= same["end"] + 1_000_000)
        assert not near.any(), (b["symbol"], same.loc[near, "symbol"].tolist())


def test_background_excludes_known_dementia_genes(panel):
    bg = set(panel.loc[~panel["ad_locus"], "symbol"])
    known = {"APP", "PSEN1", "PSEN2", "MAPT", "GRN", "C9orf72", "TARDBP", "TREM2", "TOMM40", "CD33", "PLD3"}
    assert not bg & known


def test_background_length_matched(panel):
    ad, bg = panel[panel["ad_locus"]], panel[~panel["ad_locus"]]
    ratio = length(bg).median() / length(ad).median()
    assert 0.5 <= ratio <= 2.0, ratio


# --------------------------------------------------------------------- panel SNPs
def test_snp_columns_and_types(snps):
    assert list(snps.columns) == SNP_COLUMNS
    assert pd.api.types.is_integer_dtype(snps["pos"])
    assert snps["rsid"].str.fullmatch(r"rs\d+").all()
    assert snps["a1"].isin(list("ACGT")).all() and snps["a2"].isin(list("ACGT")).all()
    assert (snps["a1"] != snps["a2"]).all()
    assert set(snps["chrom"]) <= AUTOSOMES


def test_snps_unique(snps):
    assert not snps["rsid"].duplicated().any()
    assert not snps.duplicated(["chrom", "pos"]).any()


def test_apoe_defining_snps(snps):
    s = snps.set_index("rsid")
    for rsid, pos in (("rs429358", RS429358), ("rs7412", RS7412)):
        assert rsid in s.index, rsid
        row = s.loc[rsid]
        assert row["gene"] == "APOE" and row["chrom"] == "19" and row["pos"] == pos
    assert {s.loc["rs429358", "a1"], s.loc["rs429358", "a2"]} == {"C", "T"}
    assert {s.loc["rs7412", "a1"], s.loc["rs7412", "a2"]} == {"C", "T"}


def test_known_gwas_snps_kept(snps):
    gene = snps.set_index("rsid")["gene"]
    # rs664629 (PICALM) is the causal PICALM SNP of the synthetic cohort
    expected = {"rs6656401": "CR1", "rs11136000": "CLU", "rs11218343": "SORL1", "rs664629": "PICALM"}
    for rsid, sym in expected.items():
        assert gene.get(rsid) == sym, rsid


def test_snps_inside_gene_window(windows):
    assert windows["start"].notna().all(), "SNP gene missing from the panel"
    assert (windows["chrom"] == windows["gene_chrom"]).all()
    assert (windows["pos"] >= windows["start"] - WINDOW_BP).all()
    assert (windows["pos"] <= windows["end"] + WINDOW_BP).all()


def test_snps_per_gene(panel, snps):
    per_gene = snps.groupby("gene").size()
    assert per_gene.max() <= 8
    assert set(per_gene.index) == set(panel["symbol"]), "every panel gene carries >= 1 SNP"


def test_snps_spread_across_long_genes(windows):
    # with 8 SNPs chosen evenly across the window, they must not bunch in one end
    for gene, d in windows.groupby("gene"):
        if len(d) < 8 or (d["end"].iloc[0] - d["start"].iloc[0]) < 100_000:
            continue
        lo, hi = d["start"].iloc[0] - WINDOW_BP, d["end"].iloc[0] + WINDOW_BP
        frac = (d["pos"] - lo) / (hi - lo)
        assert frac.min() < 0.25 and frac.max() > 0.75, gene
