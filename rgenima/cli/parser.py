"""The ``rgenima`` command line: its options and subcommands (argparse)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rgenima.cli.data_commands import _cmd_prepare, _cmd_qc, _cmd_synth, _cmd_validate
from rgenima.cli.model_commands import _cmd_batch, _cmd_explain, _cmd_run, _cmd_train
from rgenima.cli.results_commands import _cmd_check_privacy, _cmd_enrich, _cmd_evaluate, _cmd_publish

_DEBUG_HELP = (
    "on an error, also show the Python traceback (for a restricted cohort it is not masked: do not publish it)"
)


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
    """The ``rgenima`` parser: global options and one subcommand per step."""
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
    for add_command in (
        _add_synth,
        _add_validate,
        _add_prepare,
        _add_qc,
        _add_train,
        _add_evaluate,
        _add_explain,
        _add_run,
        _add_batch,
        _add_publish,
        _add_enrich,
        _add_check_privacy,
    ):
        add_command(sub, common)
    return parser


def _add_synth(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``synth``: write a synthetic ADNI-format cohort."""
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


def _add_validate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``validate``: check a manifest against the data contract."""
    p = sub.add_parser("validate", parents=[common], help="check a manifest against the data contract")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=_cmd_validate)


def _add_prepare(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``prepare``: ROI cubes, genotype QC and prompts of a run."""
    p = sub.add_parser(
        "prepare", parents=[common], help="ROI cubes, genotype QC and prompts, cached under RUNDIR/prepared"
    )
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--cube-size", type=_int_at_least(2, 128), default=16, help="ROI cube edge in samples (2-128)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.set_defaults(func=_cmd_prepare)


def _add_qc(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``qc``: genotype QC of a PLINK file set."""
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


def _add_train(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``train``: cross-validated training."""
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


def _add_evaluate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``evaluate``: metrics.json of a run, or of an external cohort."""
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


def _add_explain(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``explain``: attributions on held-out folds."""
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


def _add_run(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``run``: execute the study notebooks and build the book."""
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


def _add_batch(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``batch``: the training and evaluation notebooks over a parameter grid."""
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


def _add_publish(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``publish``: push the built book to gh-pages."""
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


def _add_enrich(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``enrich``: AD-locus enrichment of the top-ranked genes."""
    p = sub.add_parser(
        "enrich", parents=[common], help="AD-locus enrichment of the top-ranked genes (RUNDIR/enrichment.csv)"
    )
    p.add_argument("--run", type=Path, required=True, help="run directory with gene_attribution.csv")
    p.add_argument("--k", type=_int_at_least(1), nargs="+", default=[5, 10, 20], help="top-k cut-offs")
    p.add_argument("--permutations", type=_int_at_least(1), default=10_000, help="label permutations per test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gsea", action="store_true", help="also preranked GSEA (needs gseapy)")
    p.set_defaults(func=_cmd_enrich)


def _add_check_privacy(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``check-privacy``: scan a built book for subject identifiers."""
    p = sub.add_parser(
        "check-privacy",
        parents=[common],
        help="scan a built book for subject identifiers (exit 1 if a restricted cohort's are found)",
    )
    p.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help="built book, e.g. _build/html")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.set_defaults(func=_cmd_check_privacy)
