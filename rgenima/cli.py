"""Command line interface: ``rgenima <step> ...``.

Each subcommand is a thin wrapper over one library function, so that notebooks and
the command line run the same code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rgenima.errors import DataContractError


def _cmd_synth(args: argparse.Namespace) -> int:
    from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort

    config = SynthConfig(
        n_subjects=args.n_subjects, seed=args.seed, voxel_mm=args.voxel_mm
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
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from rgenima.data.cohort import PrepareConfig, prepare_cohort
    from rgenima.data.manifest import load_manifest

    try:
        out = prepare_cohort(
            load_manifest(args.manifest), args.out, PrepareConfig(cube_size=args.cube_size), force=args.force
        )
    except DataContractError as exc:
        print(f"rgenima prepare: {exc}", file=sys.stderr)
        return 1
    print(f"prepared data: {out}")
    return 0


def _parse_parameter(value: str):
    """A ``-p name value`` value: YAML scalars (numbers, booleans), else a string."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _cmd_run(args: argparse.Namespace) -> int:
    from rgenima.book import run_study

    params = {name: _parse_parameter(value) for name, value in args.parameter}
    index = run_study(args.manifest, params)
    print(f"book built: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rgenima", description="R-GenIMA reproducible study"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic ADNI-format cohort")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--n-subjects", type=int, default=400, help="number of subjects")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--voxel-mm", type=float, default=2.0, help="isotropic voxel size in mm"
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", help="check a manifest against the data contract")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("prepare", help="ROI cubes, genotype QC and prompts, cached under RUNDIR/prepared")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--cube-size", type=int, default=16, help="ROI cube edge in samples")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("run", help="execute the study notebooks and build the book")
    p.add_argument("--manifest", type=Path, required=True, help="data_manifest.yaml")
    p.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[],
        metavar=("NAME", "VALUE"), help="notebook parameter (repeatable)",
    )
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
