"""Genotypes from PLINK 1 binary files (pandas-plink), GRCh37, and genotype QC.

Allele convention used throughout rgenima: a dosage counts the allele in column 5 of
the ``.bim`` file (PLINK's A1, usually the minor allele), called ``a1`` here; ``a2``
is column 6. pandas-plink names these ``a0`` and ``a1`` and by default counts its
``a1`` (our ``a2``), which silently flips effect directions (pandas-plink #28, #15),
so ``ref="a0"`` is always passed explicitly.

Quality control reproduces PLINK 1.9 (``--freq``, ``--missing``, ``--hardy``):

- ``call_rate`` = 1 - ``F_MISS`` of ``plink --missing`` (``.lmiss`` per SNP, ``.imiss``
  per sample), over all samples;
- ``a1_freq`` = the ``MAF`` column of ``plink --freq --keep-allele-order`` (the a1
  allele's frequency among called founder alleles); ``maf = min(a1_freq, 1 - a1_freq)``;
- ``hwe_p`` = the ``P`` column of ``plink --hardy`` (two-sided exact test of Wigginton,
  Cutler & Abecasis 2005, founders only; PLINK 1.9's default, not ``midp``).

Like PLINK, allele frequencies and HWE use founders only (``.fam`` father and mother
both ``0``); unrelated cohorts such as ADNI are all founders. Every SNP is treated as
diploid: on X, Y and MT PLINK treats male (or all) genotypes as haploid, so figures for
those chromosomes differ from PLINK's (a warning is logged when such SNPs are present).

``qc_plink_fileset`` decodes the ``.bed`` itself, ``chunk_snps`` SNPs at a time (a few
megabytes whatever the file size), from its 2-bit codes; the allele coding is pinned
by tests against both pandas-plink and PLINK.

The code lives in modules by step: :mod:`~rgenima.data.genetics.dosage` (reading,
alignment, imputation), :mod:`~rgenima.data.genetics.bed` (``.bed`` decoding),
:mod:`~rgenima.data.genetics.hwe` (the exact test), :mod:`~rgenima.data.genetics.qc`
and :mod:`~rgenima.data.genetics.panel` (gene panel, SNP-to-gene mapping); the public
names are re-exported here.
"""

from rgenima.data.genetics.dosage import (
    Genotypes,
    align_to_reference,
    apoe_doses,
    dosage_matrix,
    impute_with_training_mean,
    read_genotypes,
    snp_allele_stats,
)
from rgenima.data.genetics.hwe import hwe_exact_p
from rgenima.data.genetics.panel import (
    GENE_PANEL_COLUMNS,
    PANEL_CHROMOSOMES,
    map_snps_to_genes,
    normalize_chrom,
    read_gene_panel,
)
from rgenima.data.genetics.qc import (
    SNP_QC_COLUMNS,
    genotype_counts,
    genotype_qc,
    qc_plink_fileset,
    qc_summary,
    sample_call_rate,
    snp_qc_table,
    write_qc_tables,
)

__all__ = [
    "GENE_PANEL_COLUMNS",
    "PANEL_CHROMOSOMES",
    "SNP_QC_COLUMNS",
    "Genotypes",
    "align_to_reference",
    "apoe_doses",
    "dosage_matrix",
    "genotype_counts",
    "genotype_qc",
    "hwe_exact_p",
    "impute_with_training_mean",
    "map_snps_to_genes",
    "normalize_chrom",
    "qc_plink_fileset",
    "qc_summary",
    "read_gene_panel",
    "read_genotypes",
    "sample_call_rate",
    "snp_allele_stats",
    "snp_qc_table",
    "write_qc_tables",
]
