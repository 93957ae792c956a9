"""The data commands: ``synth``, ``validate``, ``prepare`` and ``qc``."""

from __future__ import annotations

import argparse
import sys

from rgenima.errors import DataContractError


def _cmd_synth(args: argparse.Namespace) -> int:
    from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort

    config = SynthConfig(
        n_subjects=args.n_subjects,
        seed=args.seed,
        voxel_mm=args.voxel_mm,
        first_subject=args.first_subject,
    )
    truth = write_synthetic_cohort(args.out, config)
    print(
        f"wrote synthetic cohort of {config.n_subjects} subjects to {args.out} "
        f"(oracle accuracy {truth['oracle']['accuracy']:.3f}, "
        f"balanced accuracy {truth['oracle']['balanced_accuracy']:.3f})"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from rgenima.data.manifest import load_manifest
    from rgenima.data.validate import validate_manifest

    try:
        manifest = load_manifest(args.manifest)
        report = validate_manifest(manifest)
    except DataContractError as exc:
        print(f"rgenima validate: contract violation: {exc}", file=sys.stderr)
        return 1
    print(report.to_text())
    if args.json:
        report.write_json(args.json)
    if report.n_cohort == 0:
        print(
            f"rgenima validate: no subject of {manifest.path} has a baseline label, an MRI and "
            "genotypes, so there is nothing to prepare; the exclusion reasons above say why.",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from rgenima.data.cohort import PrepareConfig, prepare_cohort
    from rgenima.data.manifest import load_manifest

    out = prepare_cohort(
        load_manifest(args.manifest), args.out, PrepareConfig(cube_size=args.cube_size), force=args.force
    )
    print(f"prepared data: {out}")
    return 0


def _cmd_qc(args: argparse.Namespace) -> int:
    from rgenima.data.genetics import qc_plink_fileset, qc_summary, write_qc_tables
    from rgenima.data.manifest import QCSpec

    qc = QCSpec(
        min_call_rate=args.min_call_rate,
        min_maf=args.min_maf,
        hwe_p=args.hwe_p,
        max_subject_missing=args.max_subject_missing,
    )
    try:
        snp_table, sample_table = qc_plink_fileset(args.bfile, qc, chunk_snps=args.chunk_snps)
    except DataContractError as exc:
        print(f"rgenima qc: contract violation: {exc}", file=sys.stderr)
        return 1
    paths = write_qc_tables(snp_table, sample_table, args.out)
    removed = int((~sample_table["pass"]).sum())
    print(
        f"{qc_summary(snp_table)}; {len(sample_table)} samples ({removed} removed: more than "
        f"{args.max_subject_missing:g} of their calls missing); wrote {paths['snp_qc']} and {paths['sample_qc']}"
    )
    return 0
