"""Command line interface: ``rgenima <step> ...``.

Each subcommand is a thin wrapper over one library function, so that notebooks and
the command line run the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
import warnings
from pathlib import Path

from rgenima.errors import DataContractError, describe_error
from rgenima.run import Run


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


def _fraction(low: float, high: float):
    """argparse type: a float in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}]; got {text}")
        return value

    return parse


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
    from rgenima.model.backbone import BackboneError

    truth_dir = resolve_clinical_path(manifest.cohort.clinical).parent
    try:
        train_study(
            args.out,
            truth_dir if args.study and (truth_dir / "truth.json").is_file() else None,
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
    print(f"attributions: {out / 'attributions.npz'} ({timings['total_seconds']:.1f} s; per subject: {per_subject})")
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


#: Said after any failure or interruption of `rgenima run`.
RUN_RESUMES = (
    "The previous book was kept. Rerun the same command to resume: finished steps (prepared "
    "data, trained folds and configurations, attributions) are reused, not recomputed."
)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _short_path(path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def describe_run_failure(exc: BaseException) -> str:
    """The short message of a failed `rgenima run`: notebook, cell, last line, logs, resume.

    Uses the attributes that :func:`rgenima.book.run_study` sets on the error
    (``notebook``, ``executed``, ``run_log``); without them, the error's own sentence.
    """
    notebook = getattr(exc, "notebook", None)
    if type(exc).__name__ == "PapermillExecutionError":
        what = f"{exc.ename}: {_last_line(exc.evalue)}" if _last_line(exc.evalue) else exc.ename
        where = f"notebook {notebook}.ipynb, cell {exc.exec_count}"
    elif isinstance(exc, KeyboardInterrupt):
        what, where = "interrupted", f"notebook {notebook}.ipynb" if notebook else "the run"
    else:
        import subprocess

        what = _last_line(describe_error(exc)) or type(exc).__name__
        if isinstance(exc, subprocess.CalledProcessError):
            what = (
                f"the book build ended with exit status {exc.returncode} (its last lines are above; "
                "all of them in _build/logs/jupyter-book.log)"
            )
        if type(exc).__name__ == "DeadKernelError":
            what = f"the notebook's kernel died ({_last_line(str(exc))}); out of memory?"
        where = f"notebook {notebook}.ipynb" if notebook else ""
    logs = []
    if getattr(exc, "executed", None) is not None and Path(exc.executed).is_file():
        logs.append(f"the executed notebook with the full traceback: {_short_path(exc.executed)}")
    if getattr(exc, "run_log", None) is not None:
        logs.append(f"full log: {_short_path(exc.run_log)}")
    text = f"{where} failed: {what}." if where else f"{what}."
    if logs:
        text += " See " + "; ".join(logs) + "."
    return f"{text} {RUN_RESUMES}"


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
        f"rows significant at FDR 0.05; wrote {args.run / 'enrichment.csv'}"
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


def _int_at_least(low: int, high: int | None = None):
    """argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rgenima", description="R-GenIMA reproducible study")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars (they are also off when standard error is not a terminal)",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)

    p = sub.add_parser("synth", parents=[common], help="write a synthetic ADNI-format cohort")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--n-subjects", type=int, default=400, help="number of subjects")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--voxel-mm", type=float, default=2.0, help="isotropic voxel size in mm")
    p.add_argument(
        "--first-subject",
        type=int,
        default=0,
        help="number of the first subject ID (give cohorts used together disjoint ranges)",
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", parents=[common], help="check a manifest against the data contract")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "prepare", parents=[common], help="ROI cubes, genotype QC and prompts, cached under RUNDIR/prepared"
    )
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--cube-size", type=_int_at_least(2, 128), default=16, help="ROI cube edge in samples (2-128)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "qc", parents=[common], help="genotype QC of a PLINK file set (call rate, MAF, HWE as PLINK 1.9)"
    )
    p.add_argument("--bfile", type=Path, required=True, help="PLINK prefix (.bed/.bim/.fam)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output directory (snp_qc.tsv, sample_qc.tsv)",
    )
    p.add_argument(
        "--min-call-rate",
        type=_fraction(0.0, 1.0),
        default=0.95,
        help="minimum SNP call rate (default 0.95; PLINK --geno 0.05)",
    )
    p.add_argument(
        "--min-maf",
        type=_fraction(0.0, 0.5),
        default=0.01,
        help="minimum minor allele frequency (default 0.01)",
    )
    p.add_argument(
        "--hwe-p",
        type=_fraction(0.0, 1.0),
        default=1e-6,
        help="HWE exact-test p-value below which a SNP fails (default 1e-6)",
    )
    p.add_argument(
        "--max-subject-missing",
        type=_fraction(0.0, 1.0),
        default=0.1,
        help="remove samples with more than this fraction of calls missing before SNP QC "
        "(default 0.1; PLINK --mind 0.1; 1 keeps every sample)",
    )
    p.add_argument("--chunk-snps", type=_int_at_least(1), default=2000, help="SNPs decoded at a time (memory)")
    p.set_defaults(func=_cmd_qc)

    p = sub.add_parser("train", parents=[common], help="cross-validated training (R-GenIMA, ablations, baselines)")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--modalities", default="mri,snp", help="mri, snp or mri,snp (also written mri+snp)")
    p.add_argument("--folds", type=_int_at_least(2), default=5, help="outer cross-validation folds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="default", choices=["quick", "default", "gpu"])
    p.add_argument("--backbone", type=Path, default=None, help="local Hugging Face model directory")
    p.add_argument(
        "--study",
        action="store_true",
        help="all three configurations + baselines (+ oracle references on synthetic data)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate", parents=[common], help="metrics, bootstrap CIs and paired comparisons -> RUNDIR/metrics.json"
    )
    p.add_argument("--run", type=Path, required=True, help="run directory (models/*/predictions.csv)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of subjects")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--main", default=None, help="main configuration (default: rgenima_mri+snp)")
    p.add_argument(
        "--external",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="external validation: apply the run's fold models to the cohort of this manifest "
        "(-> RUNDIR/external/<cohort>/metrics.json)",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "explain",
        parents=[common],
        help="attention, rollout, relevance, Integrated Gradients and occlusion attributions on held-out folds",
    )
    p.add_argument("--run", type=Path, required=True, help="run directory (rgenima train --out)")
    p.add_argument(
        "--configuration",
        default=None,
        help="model folder under RUNDIR/models (default: the rgenima_mri+snp* configuration)",
    )
    p.add_argument("--ig-steps", type=_int_at_least(1), default=32, help="Integrated Gradients integration points")
    p.add_argument("--seed", type=int, default=0, help="seed of the randomised models (sanity check)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=8, help="subjects per forward pass")
    p.add_argument(
        "--ig-target",
        default="true",
        choices=["true", "pred"],
        help="class explained by relevance, IG and occlusion: true (default) or predicted",
    )
    p.add_argument(
        "--sanity-subjects",
        type=int,
        default=64,
        help="subjects explained again by randomised models for the sanity checks (-1: all)",
    )
    p.add_argument(
        "--no-label-randomisation",
        action="store_true",
        help="skip the label-randomisation check (retraining fold 0 on permuted labels)",
    )
    p.add_argument(
        "--link-subjects", type=int, default=64, help="subjects of the occlusion ROI x gene link map (-1: all)"
    )
    p.add_argument("--force", action="store_true", help="recompute even if the outputs are up to date")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("run", parents=[common], help="execute the study notebooks and build the book")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter (repeatable)",
    )
    p.add_argument(
        "--notebook",
        action="append",
        default=None,
        metavar="NAME",
        help="run only these notebooks (stems in notebooks/, repeatable; default: every chapter)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "batch",
        parents=[common],
        help="rerun the training/evaluation notebooks over a parameter grid (runs/<combination>/)",
    )
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="NAME=V1,V2",
        help="notebook parameter and its values, e.g. seed=0,1,2 (repeatable; all combinations run)",
    )
    p.add_argument("--jobs", type=_int_at_least(1), default=1, help="combinations run in parallel processes")
    p.add_argument("--runs-root", type=Path, default=Path("runs"), help="parent of the run directories")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter for every combination (repeatable)",
    )
    p.add_argument(
        "--notebook",
        action="append",
        default=None,
        metavar="NAME",
        help="notebook stem to execute per combination (repeatable; default 03_training 04_evaluation)",
    )
    p.add_argument(
        "--timeout",
        type=_int_at_least(1),
        default=None,
        help="per-cell wall-clock limit in seconds (default: none; a dead kernel is detected anyway)",
    )
    p.add_argument("--force", action="store_true", help="rerun finished combinations too")
    p.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: this machine (--jobs at a time); slurm: one SLURM job per combination (submitit)",
    )
    p.add_argument("--partition", default=None, help="SLURM partition (--executor slurm)")
    p.add_argument("--account", default=None, help="SLURM account (--executor slurm)")
    p.add_argument("--gpus", type=_int_at_least(0), default=0, help="GPUs per job (--executor slurm; default 0)")
    p.add_argument(
        "--cpus",
        type=_int_at_least(1),
        default=4,
        help="CPU cores per job, also its BLAS/OpenMP threads (--executor slurm; default 4)",
    )
    p.add_argument("--mem-gb", type=float, default=16.0, help="memory per job in GB (--executor slurm; default 16)")
    p.add_argument(
        "--time-min",
        type=_int_at_least(1),
        default=24 * 60,
        help="time limit per job in minutes (--executor slurm; default 1440); rerunning resumes",
    )
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "publish",
        parents=[common],
        help="push the built book to the gh-pages branch (refused for a restricted cohort's book with identifiers)",
    )
    p.add_argument(
        "build_dir",
        type=Path,
        nargs="?",
        default=Path("_build/html"),
        metavar="BUILD_DIR",
        help="built book (default: _build/html)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="manifest the book was built from (default: the one `rgenima run` recorded in _build/book.json)",
    )
    p.add_argument("--remote", default="origin", help="git remote to push to (default: origin)")
    p.add_argument("--branch", default="gh-pages", help="branch that receives the book (default: gh-pages)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--no-push", action="store_true", help="commit the branch locally, do not push")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser(
        "enrich", parents=[common], help="AD-locus enrichment of the top-ranked genes (RUNDIR/enrichment.csv)"
    )
    p.add_argument("--run", type=Path, required=True, help="run directory with gene_attribution.csv")
    p.add_argument("--k", type=_int_at_least(1), nargs="+", default=[5, 10, 20], help="top-k cut-offs")
    p.add_argument("--permutations", type=_int_at_least(1), default=10_000, help="label permutations per test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gsea", action="store_true", help="also preranked GSEA (needs gseapy)")
    p.set_defaults(func=_cmd_enrich)

    p = sub.add_parser(
        "check-privacy",
        parents=[common],
        help="scan a built book for subject identifiers (exit 1 if a restricted cohort's are found)",
    )
    p.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help="built book, e.g. _build/html")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.set_defaults(func=_cmd_check_privacy)
    return parser


_DEBUG_HELP = (
    "on an error, also show the Python traceback (for a restricted cohort it is not masked: do not publish it)"
)


class _RedactingStream:
    """A text stream that masks the cohort's identifiers in everything written to it."""

    def __init__(self, stream, identifiers) -> None:
        self._stream = stream
        self._identifiers = identifiers

    def write(self, text: str) -> int:
        from rgenima.privacy import redact

        return self._stream.write(redact(text, self._identifiers))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _restricted_identifiers(args: argparse.Namespace):
    """The identifiers to mask in this command's output, or None for an open cohort.

    The cohort is the one of ``--manifest`` (or ``--external``), else the one recorded
    in the run folder's prepared data. When its identifiers cannot be read (the
    error being reported may be about those very files), every ADNI-shaped PTID is
    still masked.
    """
    from rgenima.data.manifest import load_manifest
    from rgenima.privacy import IdentifierSet, cohort_identifiers

    manifest = None
    for name in ("manifest", "external"):
        path = getattr(args, name, None)
        if path is None:
            continue
        try:
            manifest = load_manifest(path)
        except Exception:  # noqa: BLE001 - reported by the command itself
            continue
        if manifest.cohort.restricted:
            break
    restricted = manifest is not None and manifest.cohort.restricted
    if not restricted:
        for name in ("run", "out"):
            folder = getattr(args, name, None)
            record = Run(folder).prepare_record() if folder is not None else None
            if record and record.get("manifest", {}).get("cohort", {}).get("restricted"):
                restricted = True
                try:
                    manifest = load_manifest(record["manifest"]["manifest"])
                except Exception:  # noqa: BLE001
                    manifest = None
    if not restricted:
        return None
    try:
        return cohort_identifiers(manifest)
    except Exception:  # noqa: BLE001 - mask ADNI-shaped identifiers at least
        return IdentifierSet(restricted=True, cohort=manifest.cohort.name if manifest else "")


def _describe(exc: BaseException) -> str:
    """One sentence for an error of any command (see rgenima.errors.describe_error)."""
    import subprocess

    name = type(exc).__name__
    if name == "PapermillExecutionError":
        return (
            f"a notebook failed in cell {getattr(exc, 'exec_count', '?')}: {getattr(exc, 'ename', '')}: "
            f"{getattr(exc, 'evalue', '')}. The previous book was kept; fix the cause and rerun."
        )
    if isinstance(exc, subprocess.CalledProcessError):
        command = " ".join(map(str, exc.cmd)) if isinstance(exc.cmd, (list, tuple)) else str(exc.cmd)
        return (
            f"`{command}` failed with exit status {exc.returncode} (its messages are above); "
            "the previous book was kept."
        )
    return describe_error(exc)


@contextlib.contextmanager
def _command_output(identifiers, verbose: bool, debug: bool):
    """Logging (and warnings) to stderr; identifiers masked for a restricted cohort."""
    saved = sys.stdout, sys.stderr
    if identifiers is not None and not debug:
        sys.stdout = _RedactingStream(sys.stdout, identifiers)
        sys.stderr = _RedactingStream(sys.stderr, identifiers)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    level = root.level
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(level)
        sys.stdout, sys.stderr = saved


def main(argv: list[str] | None = None) -> int:
    """Run one command; an error prints one line (``rgenima <command>: ...``), not a traceback.

    Returns
    -------
    int
        0 on success; 1 when the command failed (bad input, a full disk, a folder it
        may not write...); 2 for a bad command line (argparse) and some argument
        checks; 130 when interrupted (Ctrl-C). ``--debug`` also prints the traceback.
    """
    args = build_parser().parse_args(argv)
    if args.quiet:
        from rgenima.progress import set_quiet

        set_quiet(True)
    debug = bool(getattr(args, "debug", False))
    identifiers = _restricted_identifiers(args)
    with _command_output(identifiers, args.verbose, debug):
        if debug and identifiers is not None:
            print(f"rgenima {args.command}: --debug output is not masked: do not publish it.", file=sys.stderr)
        try:
            return int(args.func(args))
        except KeyboardInterrupt as exc:
            if debug:
                traceback.print_exc()
            if args.command == "run":
                print(f"rgenima run: {describe_run_failure(exc)}", file=sys.stderr)
                return 130
            print(
                f"rgenima {args.command}: interrupted. Unfinished outputs were removed and earlier "
                "results kept; rerun the command to finish.",
                file=sys.stderr,
            )
            return 130
        except Exception as exc:  # noqa: BLE001 - every failure becomes one message
            if debug:
                traceback.print_exc()
            message = describe_run_failure(exc) if args.command == "run" else _describe(exc)
            print(f"rgenima {args.command}: {message}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
