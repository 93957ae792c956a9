"""The results commands: ``enrich``, ``evaluate``, ``check-privacy`` and ``publish``."""

from __future__ import annotations

import argparse
import sys

from rgenima.errors import DataContractError
from rgenima.run import Run


def _cmd_enrich(args: argparse.Namespace) -> int:
    from rgenima.enrich import enrich_run
    from rgenima.signatures import find_truth

    try:
        table = enrich_run(
            args.run,
            ks=args.k,
            n_permutations=args.permutations,
            seed=args.seed,
            gsea=args.gsea,
            truth=find_truth(args.run),
        )
    except (ValueError, ImportError) as exc:  # DataContractError is a ValueError
        print(f"rgenima enrich: {exc}", file=sys.stderr)
        return 1
    print(
        f"enrichment: {int(table['significant_fdr05'].sum())} of {len(table)} (stage, method, k) "
        f"rows significant at FDR 0.05; wrote {Run(args.run).enrichment_csv}"
    )
    controls = table.attrs.get("enrichment_controls")
    if controls:
        positive = controls.get("positive") or {}
        print(
            f"controls: positive (planted genes first) passed: {positive.get('passed')}; negative (random "
            f"rankings) calibrated: {controls['negative']['calibrated']}; wrote "
            f"{table.attrs.get('enrichment_controls_path')}"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rgenima.evaluate import evaluate_run, format_metrics

    if args.n_boot < 1:
        print(f"rgenima evaluate: --n-boot must be at least 1; got {args.n_boot}", file=sys.stderr)
        return 2
    try:
        if args.external is not None:
            from rgenima.data.manifest import load_manifest
            from rgenima.external import external_dir, validate_external

            manifest = load_manifest(args.external)
            metrics = validate_external(args.run, manifest, n_boot=args.n_boot, seed=args.seed)
            where = Run(external_dir(args.run, manifest.cohort.name)).metrics_json
        else:
            metrics = evaluate_run(args.run, main=args.main, n_boot=args.n_boot, seed=args.seed)
            where = Run(args.run).metrics_json
    except (DataContractError, FileNotFoundError) as exc:
        print(f"rgenima evaluate: {exc}", file=sys.stderr)
        return 1
    print(format_metrics(metrics))
    print(f"metrics: {where}")
    return 0


def _cmd_check_privacy(args: argparse.Namespace) -> int:
    from rgenima.privacy import cohort_identifiers, list_build_files, scan_files

    try:
        identifiers = cohort_identifiers(args.manifest)
        files, partial = list_build_files(args.build_dir)
    except (DataContractError, NotADirectoryError) as exc:
        print(f"rgenima check-privacy: {exc}", file=sys.stderr)
        return 2
    findings = scan_files(files, identifiers)
    n_files = len(files)
    read_partly = f"; {len(partial)} files (fonts, PDF, video...) searched for raw strings only" if partial else ""
    if not identifiers.restricted:
        found = (
            f"{len(findings)} identifier occurrences in {len({f.file for f in findings})} of {n_files} files"
            if findings
            else f"no identifiers found in {n_files} files"
        )
        print(
            f"cohort {identifiers.cohort!r} is not restricted (publishing its IDs is "
            f"allowed): {found} under {args.build_dir}{read_partly}"
        )
        return 0
    if not findings:
        print(
            f"no identifiers found in {n_files} files under {args.build_dir} "
            f"(restricted cohort {identifiers.cohort!r}{read_partly})"
        )
        return 0
    for finding in findings:
        print(finding.masked())  # file and line locate it; the identifier is not printed
    print(
        f"rgenima check-privacy: {len(findings)} identifier occurrences in "
        f"{len({f.file for f in findings})} of {n_files} files under {args.build_dir}: "
        f"cohort {identifiers.cohort!r} is restricted, do not publish this build",
        file=sys.stderr,
    )
    return 1


def _cmd_publish(args: argparse.Namespace) -> int:
    from rgenima.publish import publish_book

    try:
        result = publish_book(
            args.build_dir,
            manifest=args.manifest,
            remote=None if args.no_push else args.remote,
            branch=args.branch,
            message=args.message,
        )
    except (FileNotFoundError, ValueError) as exc:  # PrivacyError and DataContractError are ValueErrors
        for finding in getattr(exc, "findings", []):
            print(finding.masked(), file=sys.stderr)
        print(f"rgenima publish: {exc}", file=sys.stderr)
        return 1
    pushed = f", pushed to {result.remote}" if result.remote else " (not pushed: --no-push)"
    print(
        f"published {result.n_files} files of {result.html_dir} to branch {result.branch} "
        f"(commit {result.commit[:12]}{pushed})"
    )
    return 0
