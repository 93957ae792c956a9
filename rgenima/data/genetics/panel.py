"""Gene panel (GRCh37 TSV) and SNP-to-gene mapping; chromosome-name normalisation."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rgenima.errors import DataContractError

logger = logging.getLogger("rgenima.data.genetics")

GENE_PANEL_COLUMNS: tuple[str, ...] = ("symbol", "chrom", "start", "end", "ad_locus", "source")
#: Chromosome names allowed in the gene panel (after removing a ``chr`` prefix).
PANEL_CHROMOSOMES: tuple[str, ...] = tuple(str(c) for c in range(1, 23)) + ("X", "Y", "MT")
# PLINK's numeric codes for the non-autosomes (.bim column 1); XY (25) is the
# pseudo-autosomal region, whose GRCh37 coordinates are X coordinates.
_PLINK_CHROM_CODES = {"23": "X", "24": "Y", "25": "X", "26": "MT"}
_CHROM_NAMES = {"X": "X", "Y": "Y", "XY": "X", "M": "MT", "MT": "MT"}
_INT_RE = re.compile(r"^[+-]?\d+$")
_GROUPED_INT_RE = re.compile(r"^\d{1,3}([,.' ]\d{3})+$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _chrom_lookup(values) -> dict:
    """``{value: normalize_chrom(value)}`` over the distinct values (fast for .bim)."""
    return {v: normalize_chrom(v) for v in pd.unique(pd.Series(values, dtype=object))}


def normalize_chrom(value) -> str | None:
    """Canonical chromosome name: ``1``..``22``, ``X``, ``Y``, ``MT``; None if unknown.

    Accepts a ``chr`` prefix (any case), ``M`` for MT, and the numeric codes PLINK
    writes in ``.bim`` files (without prefix): 23 (X), 24 (Y), 25 (XY, the
    pseudo-autosomal region, whose GRCh37 coordinates are X's) and 26 (MT).
    """
    text = str(value).strip()
    prefixed = text[:3].lower() == "chr"
    if prefixed:
        text = text[3:]
    text = text.upper()
    if text.isdigit():
        code = int(text)
        if 1 <= code <= 22:
            return str(code)
        return None if prefixed else _PLINK_CHROM_CODES.get(str(code))
    return _CHROM_NAMES.get(text)


def read_gene_panel(path: str | Path) -> pd.DataFrame:
    """Read and check a gene panel TSV.

    Parameters
    ----------
    path : str or Path
        Tab-separated with a header line and columns :data:`GENE_PANEL_COLUMNS`
        (others are kept): ``symbol``; ``chrom`` one of 1..22, X, Y, MT (or M),
        optionally prefixed ``chr``; ``start`` <= ``end`` GRCh37 bp (1-based, inclusive);
        ``ad_locus`` True/False; ``source``. Blank lines are skipped.

    Returns
    -------
    DataFrame
        One row per gene in file order; ``chrom`` without ``chr`` prefix, ``start``
        and ``end`` int64, ``ad_locus`` bool, and ``line`` (line number in the file).

    Raises
    ------
    DataContractError
        If the file is missing or empty, a column is missing, a symbol is repeated,
        or a value is invalid; the message names the file, the line and the value.
    """
    from rgenima.fileio import why_missing

    path = Path(path)
    if not path.is_file():
        raise DataContractError(
            f"gene panel not found: {path} (gene_panel in the manifest): the path {why_missing(path)}."
        )
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            # QUOTE_NONE: one row per physical line, so line numbers are exact.
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            lines = [(i, row) for i, row in enumerate(reader, start=1) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataContractError(f"{path}: gene panel is not a UTF-8 text file ({exc}).") from None
    if not lines:
        raise DataContractError(f"{path}: gene panel is empty (expected a header line).")
    header_line, header = lines[0]
    header = [h.strip() for h in header]
    missing = [c for c in GENE_PANEL_COLUMNS if c not in header]
    if missing:
        raise DataContractError(
            f"{path}, line {header_line}: gene panel is missing column(s) "
            f"{', '.join(map(repr, missing))}; expected tab-separated columns "
            f"{', '.join(GENE_PANEL_COLUMNS)}; found {', '.join(map(repr, header))}."
        )
    if len(lines) == 1:
        raise DataContractError(f"{path}: gene panel has no rows.")
    records = []
    seen: dict[str, int] = {}
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise DataContractError(
                f"{path}, line {number}: expected {len(header)} tab-separated fields "
                f"({', '.join(header)}); found {len(row)}."
            )
        rec: dict[str, Any] = dict(zip(header, (cell.strip() for cell in row)))
        symbol = rec["symbol"]
        if not symbol:
            raise DataContractError(f"{path}, line {number}: column 'symbol' is empty.")
        if symbol in seen:
            raise DataContractError(f"{path}, line {number}: gene symbol {symbol!r} repeats line {seen[symbol]}.")
        seen[symbol] = number
        chrom = rec["chrom"]
        name = chrom[3:] if chrom[:3].lower() == "chr" else chrom
        if name.upper() in ("X", "Y", "MT", "M"):
            name = "MT" if name.upper() == "M" else name.upper()
        if name not in PANEL_CHROMOSOMES:
            raise DataContractError(
                f"{path}, line {number}: column 'chrom' must be one of 1..22, X, Y, MT "
                f"(optionally prefixed 'chr'); got {chrom!r}."
            )
        rec["chrom"] = name
        for column in ("start", "end"):
            if not _INT_RE.match(rec[column]) or int(rec[column]) < 1:
                hint = ""
                if _GROUPED_INT_RE.match(rec[column]):
                    hint = " Remove the thousands separators (write 45409039, not 45,409,039)."
                raise DataContractError(
                    f"{path}, line {number}: column {column!r} must be a positive "
                    f"integer GRCh37 position; got {rec[column]!r}.{hint}"
                )
            rec[column] = int(rec[column])
        if rec["start"] > rec["end"]:
            raise DataContractError(
                f"{path}, line {number}: gene {symbol!r} has start {rec['start']} > end {rec['end']}."
            )
        flag = rec["ad_locus"].lower()
        if flag not in _TRUE | _FALSE:
            raise DataContractError(
                f"{path}, line {number}: column 'ad_locus' must be True or False; got {rec['ad_locus']!r}."
            )
        rec["ad_locus"] = flag in _TRUE
        rec["line"] = number
        records.append(rec)
    panel = pd.DataFrame.from_records(records, columns=header + ["line"])
    return panel.astype({"start": np.int64, "end": np.int64, "ad_locus": bool, "line": np.int64})


def map_snps_to_genes(variants: pd.DataFrame, panel: pd.DataFrame, window_kb: float) -> tuple[pd.DataFrame, int]:
    """Map SNPs to panel genes by GRCh37 position.

    A SNP maps to a gene when on the same chromosome and
    ``start - window <= pos <= end + window`` (bounds included). A SNP in several
    genes' windows maps to the nearest one (distance to the gene body, 0 inside it;
    ties go to the gene listed first in the panel); the others are reported in
    ``other_genes`` and counted in the log. SNPs in no window are dropped and counted.

    Parameters
    ----------
    variants : DataFrame
        ``snp``, ``chrom`` (``.bim`` codes: ``19``, ``chr19``, 23 = X, ...) and
        ``pos`` (GRCh37 bp).
    panel : DataFrame
        From :func:`read_gene_panel`: ``symbol``, ``chrom``, ``start``, ``end``.
    window_kb : float
        Window on each side of the gene, in kilobases (1 kb = 1000 bp), >= 0.

    Returns
    -------
    mapped : DataFrame
        One row per mapped SNP, in input order: ``snp``, ``gene``, ``chrom``,
        ``pos``, ``distance_bp``, ``n_genes`` (genes whose window holds the SNP) and
        ``other_genes`` (those not chosen, nearest first, ``;``-separated).
    n_unmapped : int
        SNPs in no gene window.
    """
    if not np.isfinite(window_kb) or window_kb < 0:
        raise ValueError(f"'window_kb' must be a number >= 0; got {window_kb!r}.")
    window = int(round(float(window_kb) * 1000))
    chrom = variants["chrom"].map(_chrom_lookup(variants["chrom"])).to_numpy(dtype=object)
    pos = variants["pos"].to_numpy(dtype=np.int64)
    gene_chrom = panel["chrom"].map(normalize_chrom).to_numpy(dtype=object)
    starts = panel["start"].to_numpy(dtype=np.int64)
    ends = panel["end"].to_numpy(dtype=np.int64)
    hit_snp, hit_gene, hit_dist = [], [], []
    for name in pd.unique(gene_chrom):
        on_chrom = np.flatnonzero(chrom == name)
        if not on_chrom.size:
            continue
        order = on_chrom[np.argsort(pos[on_chrom], kind="stable")]
        sorted_pos = pos[order]
        for g in np.flatnonzero(gene_chrom == name):
            a = np.searchsorted(sorted_pos, starts[g] - window, side="left")
            b = np.searchsorted(sorted_pos, ends[g] + window, side="right")
            idx = order[a:b]
            hit_snp.append(idx)
            hit_gene.append(np.full(idx.size, g))
            hit_dist.append(np.maximum(0, np.maximum(starts[g] - pos[idx], pos[idx] - ends[g])))
    columns = ["snp", "gene", "chrom", "pos", "distance_bp", "n_genes", "other_genes"]
    if not hit_snp or not sum(h.size for h in hit_snp):
        logger.info("mapped 0 of %d SNPs to genes (window %g kb)", len(variants), window_kb)
        return pd.DataFrame(columns=columns), len(variants)
    hits = pd.DataFrame(
        {"i": np.concatenate(hit_snp), "g": np.concatenate(hit_gene), "d": np.concatenate(hit_dist)}
    ).sort_values(["i", "d", "g"], kind="stable")
    symbols = panel["symbol"].to_numpy(dtype=object)
    grouped = hits.groupby("i", sort=True)
    best = grouped.head(1).set_index("i")
    n_genes = grouped.size()
    others = hits[hits.duplicated("i", keep="first")]
    other_text = others.assign(s=symbols[others["g"].to_numpy()]).groupby("i")["s"].agg(";".join)
    idx = best.index.to_numpy()
    mapped = pd.DataFrame(
        {
            "snp": variants["snp"].to_numpy()[idx],
            "gene": symbols[best["g"].to_numpy()],
            "chrom": chrom[idx],
            "pos": pos[idx],
            "distance_bp": best["d"].to_numpy(dtype=np.int64),
            "n_genes": n_genes.loc[idx].to_numpy(dtype=np.int64),
            "other_genes": other_text.reindex(idx, fill_value="").to_numpy(dtype=object),
        }
    )
    n_unmapped = len(variants) - len(mapped)
    n_multi = int((mapped["n_genes"] > 1).sum())
    logger.info(
        "mapped %d of %d SNPs to genes (window %g kb); %d unmapped dropped; %d in "
        "several genes' windows, mapped to the nearest",
        len(mapped),
        len(variants),
        window_kb,
        n_unmapped,
        n_multi,
    )
    if n_multi:
        logger.info(
            "SNPs in several genes: %s",
            ", ".join(
                f"{s}->{g} (also {o})"
                for s, g, o in mapped.loc[mapped["n_genes"] > 1, ["snp", "gene", "other_genes"]]
                .head(20)
                .itertuples(index=False)
            ),
        )
    return mapped, n_unmapped
