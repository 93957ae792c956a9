"""The model commands: ``train``, ``explain``, ``run`` (the study book) and ``batch``."""

from __future__ import annotations

import argparse
import sys

from rgenima.errors import DataContractError
from rgenima.run import Run


def _cmd_train(args: argparse.Namespace) -> int:
    from rgenima.data.cohort import prepare_cohort
    from rgenima.data.manifest import load_manifest
    from rgenima.study import parse_modalities
    from rgenima.train import train_study

    try:
        modalities = parse_modalities(args.modalities)
    except ValueError as exc:
        print(f"rgenima train: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(args.manifest)
        prepare_cohort(manifest, args.out)
    except DataContractError as exc:
        print(f"rgenima train: {exc}", file=sys.stderr)
        return 1
    from rgenima.data.clinical import resolve_clinical_path
    from rgenima.data.truth import locate_truth
    from rgenima.model.backbone import BackboneError

    # The manifest's cohort.truth, else the file beside the clinical table; None for real data.
    truth = locate_truth(manifest.cohort.truth, resolve_clinical_path(manifest.cohort.clinical))
    try:
        train_study(
            args.out,
            truth if args.study else None,
            modalities=modalities,
            ablations=args.study,
            baselines=args.study,
            n_folds=args.folds,
            seed=args.seed,
            profile=args.profile,
            backbone=args.backbone,
        )
    except BackboneError as exc:
        print(f"rgenima train: {exc}", file=sys.stderr)
        return 1
    print(f"trained: {args.out / 'models'}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    import json

    from rgenima.explain import explain_run

    try:
        out = explain_run(
            args.run,
            configuration=args.configuration,
            ig_steps=args.ig_steps,
            seed=args.seed,
            batch_size=args.batch_size,
            ig_target=args.ig_target,
            sanity_subjects=None if args.sanity_subjects < 0 else args.sanity_subjects,
            label_randomisation=not args.no_label_randomisation,
            link_subjects=None if args.link_subjects < 0 else args.link_subjects,
            force=args.force,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"rgenima explain: {exc}", file=sys.stderr)
        return 1
    timings = json.loads(Run(args.run).explain_json(out.name).read_text())["timings"]
    per_subject = ", ".join(
        f"{k.removesuffix('_seconds_per_subject').replace('_', ' ')} {v:.3f} s"
        for k, v in timings.items()
        if k.endswith("_seconds_per_subject") and "random" not in k
    )
    print(
        f"attributions: {Run(args.run).attributions_npz(out.name)} ({timings['total_seconds']:.1f} s; per subject: {per_subject})"
    )
    from rgenima.signatures import signatures_run

    try:
        result = signatures_run(args.run, configuration=out.name, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"rgenima explain: {exc}", file=sys.stderr)
        return 1
    for path in result.paths.values():
        print(f"written: {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from rgenima._utils.params import parse_parameter
    from rgenima.book import STUDY_NOTEBOOKS, run_study

    params = {name: parse_parameter(value) for name, value in args.parameter}
    index = run_study(args.manifest, params, notebooks=tuple(args.notebook or STUDY_NOTEBOOKS))
    print(f"book built: {index}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from rgenima.batch import BATCH_NOTEBOOKS, ClusterOptions, coerce_value, parse_grid, run_batch

    try:
        grid = parse_grid(args.grid)
        base = {name: coerce_value(value) for name, value in args.parameter}
        cluster = ClusterOptions(
            partition=args.partition,
            gpus_per_node=args.gpus,
            cpus_per_task=args.cpus,
            mem_gb=args.mem_gb,
            timeout_min=args.time_min,
            account=args.account,
        )
        result = run_batch(
            args.manifest,
            grid,
            notebooks=tuple(args.notebook or BATCH_NOTEBOOKS),
            runs_root=args.runs_root,
            jobs=args.jobs,
            base_parameters=base,
            timeout_s=args.timeout,
            force=args.force,
            executor=args.executor,
            cluster=cluster,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"rgenima batch: {exc}", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.ok else 1
