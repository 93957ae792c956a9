"""One sentence for a failed command; for `rgenima run`, where it failed and how to resume."""

from __future__ import annotations

from pathlib import Path

from rgenima.errors import describe_error

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
    from papermill.exceptions import PapermillExecutionError

    notebook = getattr(exc, "notebook", None)
    if isinstance(exc, PapermillExecutionError):
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
    executed, run_log = getattr(exc, "executed", None), getattr(exc, "run_log", None)
    if executed is not None and Path(executed).is_file():
        logs.append(f"the executed notebook with the full traceback: {_short_path(executed)}")
    if run_log is not None:
        logs.append(f"full log: {_short_path(run_log)}")
    text = f"{where} failed: {what}." if where else f"{what}."
    if logs:
        text += " See " + "; ".join(logs) + "."
    return f"{text} {RUN_RESUMES}"


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
