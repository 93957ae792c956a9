"""Command line interface: ``rgenima <step> ...``.

Each subcommand is a thin wrapper over one library function, so that notebooks and
the command line run the same code.

Submodules
----------
- :mod:`~rgenima.cli.entry`: :func:`main`, which parses the command line, runs one
  command and reports an error in one line (the ``rgenima`` script).
- :mod:`~rgenima.cli.parser`: :func:`build_parser`, the options and subcommands.
- :mod:`~rgenima.cli.data_commands`: ``synth``, ``validate``, ``prepare``, ``qc``.
- :mod:`~rgenima.cli.model_commands`: ``train``, ``explain``, ``run``, ``batch``.
- :mod:`~rgenima.cli.results_commands`: ``enrich``, ``evaluate``, ``check-privacy``,
  ``publish``.
- :mod:`~rgenima.cli.output`: logging to stderr, a restricted cohort's identifiers
  masked in everything a command prints.
- :mod:`~rgenima.cli.failures`: the one-line message of a failed command
  (:func:`describe_run_failure` for ``rgenima run``).
"""

from rgenima.cli.entry import main
from rgenima.cli.failures import RUN_RESUMES, describe_run_failure
from rgenima.cli.parser import build_parser

__all__ = [
    "RUN_RESUMES",
    "build_parser",
    "describe_run_failure",
    "main",
]
