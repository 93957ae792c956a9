"""Exceptions raised on bad input, and the one sentence the command line prints for them.

Every message names the file (and the row, column or field when there is one),
what was expected and what was found, so that a user can fix the input.
:func:`describe_error` turns any exception into that sentence for ``rgenima``'s
command line, which prints it instead of a traceback (``--debug`` shows both).
"""

from __future__ import annotations

import errno

__all__ = [
    "DataContractError",
    "ManifestError",
    "PrivacyError",
    "RunStateError",
    "describe_error",
]


class DataContractError(ValueError):
    """An input file does not follow the data contract (see DESIGN.md)."""


class ManifestError(DataContractError):
    """The data manifest is malformed or points at something that is not there."""


class PrivacyError(ValueError):
    """Output about to be published holds subject identifiers of a restricted cohort.

    Raised by :func:`rgenima.privacy.assert_publishable`; the message names the table
    or figure and where the identifiers are (digits masked), and the attribute
    ``findings`` lists them.
    """

    #: The identifiers found (list of :class:`rgenima.privacy.ObjectFinding`).
    findings: list = []


class RunStateError(RuntimeError):
    """A run folder cannot be used now (another process is writing it, or it is damaged).

    The message names the folder and what to do; no input is wrong.
    """


_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or choose an output folder on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or choose an output folder on another disk",
    errno.EACCES: "permission denied; choose a folder you can write to (e.g. another --out) or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write to (e.g. another --out) or fix its permissions",
    errno.EROFS: "the file system is read-only; choose an output folder on a writable disk",
    errno.ELOOP: "a symbolic link loop (a link that points, directly or not, at itself); fix or remove the link",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "a file with this name is in the way (a folder is needed here); choose another path or move the file",
    errno.EISDIR: "this is a folder, but a file was expected; point at the file inside it",
    errno.ENOTDIR: "a part of this path is a file, but a folder was expected",
    errno.ENAMETOOLONG: "the path is too long; use a shorter folder name",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and rerun",
}


def describe_error(exc: BaseException) -> str:
    """One sentence for an exception, without a traceback.

    Parameters
    ----------
    exc : BaseException
        What a command raised.

    Returns
    -------
    str
        For input and run-state errors (:class:`DataContractError`,
        :class:`PrivacyError`, :class:`RunStateError`, ``ValueError``): their message,
        which already names the file and the fix. For an ``OSError``: the file, what
        went wrong and what to do (a full disk, a read-only or forbidden folder, a
        symbolic link loop...). For anything else: the exception's type and message,
        marked as an internal error to report.
    """
    if isinstance(exc, OSError) and exc.errno is None:  # raised with a message of ours
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else None
        if exc.filename2 is not None:
            where = f"{exc.filename} -> {exc.filename2}"
        advice = _OS_ADVICE.get(exc.errno or -1, exc.strerror or str(exc))
        if exc.errno == errno.ENOSPC:
            advice += "; earlier results were kept: rerun when there is space"
        return f"{where}: {advice}." if where else f"{advice} ({exc})."
    if isinstance(exc, (DataContractError, PrivacyError, RunStateError)) or (
        type(exc) in (ValueError, RuntimeError) and str(exc)
    ):
        return str(exc)
    if isinstance(exc, (ValueError, RuntimeError)) and str(exc):
        return f"{type(exc).__name__}: {exc}"
    return (
        f"internal error ({type(exc).__name__}: {exc}). This is a bug in rgenima, not in "
        "your data: rerun with --debug for the traceback and report it."
    )
