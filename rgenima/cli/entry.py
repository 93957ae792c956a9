"""The ``rgenima`` entry point: parse, run one command, report an error in one line."""

from __future__ import annotations

import sys
import traceback

from rgenima.cli.failures import _describe, describe_run_failure
from rgenima.cli.output import _command_output, _restricted_identifiers
from rgenima.cli.parser import build_parser


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
