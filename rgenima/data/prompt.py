"""Genetic prompts: a subject's genotypes as structured text, with exact spans.

A prompt lists the panel genes in panel order, each with its SNPs::

    APOE: rs429358 C/T, rs7412 C/C; BIN1: rs4662703 G/A, ...

Genotypes are written with the ``.bim`` alleles: a dosage of 2 (two copies of ``a1``)
is ``a1/a1``, 1 is ``a1/a2``, 0 is ``a2/a2`` and a missing call is ``./.``.
:func:`build_prompt` returns the text with the character span of every gene and SNP,
and :func:`token_spans` maps those to token index ranges through any Hugging Face
fast tokenizer's offset mapping, so attributions on tokens map back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING_CALL = "./."


@dataclass(frozen=True)
class Span:
    """A named half-open range ``[start, end)`` (characters or tokens)."""

    kind: str  # "gene" or "snp"
    name: str  # gene symbol or rsID
    gene: str  # the gene a SNP belongs to (its own symbol for a gene)
    start: int
    end: int


@dataclass(frozen=True)
class GeneticPrompt:
    """One subject's prompt.

    Attributes
    ----------
    text : str
    spans : list of Span
        Character spans: one per gene (from the symbol to its last genotype) and one
        per SNP (``rsID genotype``), in text order.
    """

    text: str
    spans: tuple[Span, ...]


def genotype_text(dosage: float, a1: str, a2: str) -> str:
    """``a1/a1`` for 2, ``a1/a2`` for 1, ``a2/a2`` for 0, ``./.`` for NaN."""
    if dosage is None or np.isnan(dosage):
        return MISSING_CALL
    d = int(round(float(dosage)))
    if d == 2:
        return f"{a1}/{a1}"
    if d == 1:
        return f"{a1}/{a2}"
    if d == 0:
        return f"{a2}/{a2}"
    raise ValueError(f"dosage must be 0, 1, 2 or NaN; got {dosage!r}")


def genomic_gene_order(panel: pd.DataFrame) -> list[str]:
    """Panel genes sorted by chromosome (1-22, then X, Y, MT) and start position.

    The prompt lists genes in this order, which carries no information about them. Panel
    order would not do: a panel that lists its AD loci first puts every locus at the
    start of the prompt, and then any position effect of attention (rotary positions,
    causal masking) would look like an effect of being an AD locus.
    """
    rank = {str(c): c for c in range(1, 23)} | {"X": 23, "Y": 24, "MT": 25}
    key = panel["chrom"].astype(str).str.removeprefix("chr").map(rank).fillna(99)
    return panel.assign(_chrom=key).sort_values(["_chrom", "start"], kind="stable")["symbol"].tolist()


def prompt_layout(snp_genes: pd.DataFrame, gene_order: list[str]) -> list[tuple[str, list[int]]]:
    """Genes in ``gene_order`` with the row indices of their SNPs (genome order within a gene).

    Parameters
    ----------
    snp_genes : DataFrame
        One row per SNP column of the dosage matrix: ``snp``, ``gene``, ``pos``.
    gene_order : list of str
        Gene symbols in prompt order (see :func:`genomic_gene_order`); genes without
        SNPs are skipped.
    """
    layout = []
    by_gene = snp_genes.reset_index(drop=True).groupby("gene", sort=False)
    groups = {g: idx.sort_values("pos").index.tolist() for g, idx in by_gene}
    for gene in gene_order:
        if gene in groups:
            layout.append((gene, groups[gene]))
    return layout


def build_prompt(
    dosage: np.ndarray,
    snp_genes: pd.DataFrame,
    layout: list[tuple[str, list[int]]],
) -> GeneticPrompt:
    """One subject's genetic prompt.

    Parameters
    ----------
    dosage : ndarray of shape (n_snps,)
        Count of each SNP's ``a1`` allele, NaN for missing calls.
    snp_genes : DataFrame
        One row per SNP: ``snp``, ``gene``, ``a1``, ``a2`` (same order as ``dosage``).
    layout : list
        From :func:`prompt_layout`.
    """
    parts: list[str] = []
    spans: list[Span] = []
    cursor = 0
    snps = snp_genes["snp"].to_numpy()
    a1 = snp_genes["a1"].to_numpy()
    a2 = snp_genes["a2"].to_numpy()
    for g, (gene, rows) in enumerate(layout):
        if g:
            parts.append("; ")
            cursor += 2
        gene_start = cursor
        head = f"{gene}: "
        parts.append(head)
        cursor += len(head)
        for k, j in enumerate(rows):
            if k:
                parts.append(", ")
                cursor += 2
            item = f"{snps[j]} {genotype_text(dosage[j], a1[j], a2[j])}"
            spans.append(Span("snp", str(snps[j]), gene, cursor, cursor + len(item)))
            parts.append(item)
            cursor += len(item)
        spans.append(Span("gene", gene, gene, gene_start, cursor))
    spans.sort(key=lambda s: (s.start, s.kind != "gene"))
    return GeneticPrompt("".join(parts), tuple(spans))


def token_spans(offsets: list[tuple[int, int]], spans: tuple[Span, ...] | list[Span]) -> list[Span]:
    """Map character spans to token index ranges.

    Parameters
    ----------
    offsets : list of (int, int)
        Character offsets of each token, as returned by a fast tokenizer with
        ``return_offsets_mapping=True``. Special tokens with offset (0, 0) are ignored.
    spans : sequence of Span
        Character spans from :func:`build_prompt`.

    Returns
    -------
    list of Span
        Same names, ``start``/``end`` as token indices: the tokens whose characters
        overlap the span. A span that no token covers raises ValueError, since the
        attributions of that gene or SNP could not be mapped back.
    """
    starts = np.array([o[0] for o in offsets])
    ends = np.array([o[1] for o in offsets])
    real = ends > starts
    out = []
    for span in spans:
        hit = np.flatnonzero(real & (starts < span.end) & (ends > span.start))
        if hit.size == 0:
            raise ValueError(f"no token covers {span.kind} {span.name!r} (characters {span.start}-{span.end})")
        out.append(Span(span.kind, span.name, span.gene, int(hit[0]), int(hit[-1]) + 1))
    return out
