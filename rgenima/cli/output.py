"""A command's output: logging and warnings to stderr, a restricted cohort's identifiers masked."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings

from rgenima.run import Run


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
