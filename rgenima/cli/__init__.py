"""Command line interface (being split into submodules)."""

from rgenima.cli.entry import RUN_RESUMES, build_parser, describe_run_failure, main

__all__ = [
    "RUN_RESUMES",
    "build_parser",
    "describe_run_failure",
    "main",
]
