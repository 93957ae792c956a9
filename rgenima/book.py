"""Run the study's notebooks with papermill and build the Jupyter Book.

Notebooks in ``notebooks/`` are the sources; executed copies go to
``book/generated/`` (the chapters listed in ``_toc.yml``), then Jupyter Book 1.x
renders them without executing anything (``execute_notebooks: off``).

A failed notebook stops the run with the failing cell's error, and the previous
executed chapters and the previous ``_build/html`` are left as they were. A run killed
in the middle of replacing them leaves the previous ones under ``_build/`` (see
:func:`run_study`); the next run puts them back before it starts. Rerunning resumes:
the notebooks call library steps that reuse what is finished (prepared data, trained
folds, attributions).

Progress: each notebook logs one line when it starts and ends, and the library's log
lines from inside its kernel (a fold's epochs, a configuration finished...) are
repeated as they come (see :mod:`rgenima.progress`). No cell has a wall-clock limit:
a slow machine only takes longer, and a kernel that dies is still reported by nbclient
(``DeadKernelError``). Everything (the notebooks' progress lines, Jupyter Book's
output) is also written to ``_build/logs/`` (:data:`LOG_DIR`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Folder of the run's logs, relative to the project root (never published).
LOG_DIR = Path("_build") / "logs"
#: The full log of ``rgenima run`` (progress lines of every notebook).
RUN_LOG = "run.log"
#: Jupyter Book's own output.
BUILD_LOG = "jupyter-book.log"
#: Kernel options: no "running over TCP without encryption" warning in the terminal.
KERNEL_ARGUMENTS: tuple[str, ...] = ("--IPKernelApp.log_level=ERROR",)
#: Environment of the notebook kernels: no debugger "frozen modules" warning.
KERNEL_ENVIRONMENT: dict[str, str] = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}

_ENV_LOCK = threading.Lock()

#: Notebooks of the study, in execution order (file stems in notebooks/).
STUDY_NOTEBOOKS: tuple[str, ...] = (
    "00_methods",
    "01_cohort",
    "02_preparation",
    "03_training",
    "04_evaluation",
    "05_brain_signatures",
    "06_gene_signatures",
    "07_roi_gene",
    "08_enrichment",
    "09_reproducibility",
)

#: Jupyter kernel installed into the project's environment by `make venv`.
KERNEL_NAME = "rgenima"
#: Written beside the built HTML: which manifest the book was built from (read by publish).
BOOK_RECORD = "book.json"


def project_root() -> Path:
    """Repository root: the folder holding ``_toc.yml`` (searched upwards from cwd)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no rgenima project (a folder with _toc.yml and notebooks/) at or above {here}")


def _kernel_name() -> str:
    """The project's kernel if installed, else the default python3 kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


@contextlib.contextmanager
def _kernel_environment(log_file: Path | None):
    """Environment variables for the kernels started inside the block.

    The kernel inherits this process's environment: ``RGENIMA_LOG_FILE`` (its
    ``rgenima`` log records go to that file, see :func:`rgenima.progress.attach_log_file`)
    and :data:`KERNEL_ENVIRONMENT`. papermill's own INFO lines (input, output and
    working directory of every notebook, also logged by ``inspect_notebook``) are
    silenced: the runner logs one line per notebook instead.
    """
    from rgenima.progress import LOG_FILE_ENV

    values = {**KERNEL_ENVIRONMENT, **({LOG_FILE_ENV: str(log_file)} if log_file else {})}
    papermill_log = logging.getLogger("papermill")
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        level = papermill_log.level
        papermill_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        with _ENV_LOCK:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            papermill_log.setLevel(level)


def _repeat_kernel_line(notebook: str):
    """Emit function of a :class:`rgenima.progress.LogFollower`: log under the same logger."""

    def emit(level: int, name: str, message: str) -> None:
        logging.getLogger(name).log(level, "[%s] %s", notebook, message)

    return emit


def _add_context(exc: BaseException, **context) -> None:
    """Attach where a run failed (notebook, executed copy, logs) to the error it raised,
    for :func:`rgenima.cli.describe_run_failure`; the error itself propagates unchanged."""
    for key, value in context.items():
        setattr(exc, key, value)


def execute_notebooks(
    parameters: dict[str, Any],
    root: Path,
    out_dir: Path,
    notebooks: tuple[str, ...] = STUDY_NOTEBOOKS,
    timeout_s: int | None = None,
    log_dir: Path | None = None,
) -> list[Path]:
    """Execute ``notebooks`` in order with papermill into ``out_dir``.

    Parameters
    ----------
    parameters : dict
        Values injected into each notebook's ``parameters`` cell (only the names that
        the notebook declares are passed to it).
    timeout_s : int, optional
        Per-cell wall-clock limit in seconds. None (the default): no limit, so that a
        slow machine never fails a run that is only slow; nbclient still stops at
        once with ``DeadKernelError`` if the kernel dies.
    log_dir : path, optional
        Folder of ``<notebook>.kernel.log``, the ``rgenima`` log records written from
        inside each kernel; default: ``out_dir``. Each line is also logged here, as it
        comes, prefixed with the notebook's name.

    Raises
    ------
    papermill.PapermillExecutionError
        With the failing cell's error, when a notebook fails. Any error raised here
        carries ``notebook`` (the stem), ``executed`` (the output notebook, with the
        traceback) and ``kernel_log`` attributes.
    """
    import papermill as pm

    from rgenima.progress import LogFollower, format_seconds

    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = Path(log_dir) if log_dir is not None else out_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    kernel = _kernel_name()
    written = []
    for i, name in enumerate(notebooks):
        source = root / "notebooks" / f"{name}.ipynb"
        target = out_dir / f"{name}.ipynb"
        kernel_log = log_dir / f"{name}.kernel.log"
        kernel_log.unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            with _kernel_environment(kernel_log):
                declared = {p for p in pm.inspect_notebook(str(source))}
                params = {k: v for k, v in parameters.items() if k in declared}
                logger.info("notebook %d/%d: %s running", i + 1, len(notebooks), source.name)
                logger.debug("%s parameters: %s", source.name, params)
                with LogFollower(kernel_log, _repeat_kernel_line(name)):
                    pm.execute_notebook(
                        str(source),
                        str(target),
                        parameters=params,
                        kernel_name=kernel,
                        cwd=str(root),
                        execution_timeout=timeout_s,
                        progress_bar=False,
                        extra_arguments=list(KERNEL_ARGUMENTS),
                    )
        except BaseException as exc:
            _add_context(exc, notebook=name, executed=target, kernel_log=kernel_log)
            raise
        hide_injected_parameters(target)
        logger.info(
            "notebook %d/%d: %s done in %s",
            i + 1,
            len(notebooks),
            source.name,
            format_seconds(time.perf_counter() - t0),
        )
        written.append(target)
    return written


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's ``injected-parameters`` cell ``remove-cell`` in an executed notebook.

    Jupyter Book 1.x leaves a cell tagged ``remove-cell`` out of the page, so that no
    chapter shows the absolute paths of the machine that built it; the cell stays in
    the ``.ipynb`` (and in the executed notebook's metadata) for the record.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            changed = True
    if changed:
        nbformat.write(nb, path)


def build_book(root: Path, strict: bool = True, output: Path | None = None, log: Path | None = None) -> Path:
    """Build the book with Jupyter Book 1.x; returns the built ``index.html``.

    ``strict``: warnings are errors and every reference must resolve (``-W -n``);
    ``--keep-going`` still reports every warning, not only the first. ``output``: the
    folder that receives ``_build/html`` (default: ``root``). ``log``: a file that
    receives Jupyter Book's output instead of the terminal (its last lines are logged
    if the build fails).
    """
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--keep-going"]
    if strict:
        cmd += ["-W", "-n"]
    if output is not None:
        cmd += ["--path-output", str(output)]
    logger.info("building the book with Jupyter Book%s", f" (its output: {log})" if log else "")
    logger.debug("%s", " ".join(cmd))
    if log is None:
        subprocess.run(cmd, check=True, cwd=root)
    else:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            proc = subprocess.run(cmd, cwd=root, stdout=handle, stderr=subprocess.STDOUT)
        if proc.returncode:
            tail = Path(log).read_text(errors="replace").strip().splitlines()[-15:]
            for line in tail:
                logger.error("jupyter-book: %s", line)
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    index = (output or root) / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"Jupyter Book finished but {index} is missing")
    return index


def check_built_book(html_dir: Path, manifest: Path, advice: str = "see `rgenima check-privacy`"):
    """For a restricted cohort, refuse a built book that contains any subject identifier.

    ``advice`` ends the refusal (what to do). Returns the loaded manifest.
    """
    from rgenima.data.manifest import load_manifest
    from rgenima.errors import PrivacyError
    from rgenima.privacy import cohort_identifiers, scan_directory

    m = load_manifest(manifest)
    if not m.cohort.restricted:
        return m
    findings = scan_directory(html_dir, cohort_identifiers(m))
    if findings:
        files = sorted({str(Path(f.file).relative_to(html_dir)) for f in findings})
        error = PrivacyError(
            f"the built book of restricted cohort {m.cohort.name!r} contains {len(findings)} subject "
            f"identifier(s) in {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}; "
            f"it was not published: {advice}"
        )
        error.findings = findings
        raise error
    return m


def _restore_interrupted(root: Path) -> None:
    """Undo what a killed run left half done, before a new run starts.

    ``_build/.generated.previous`` exists only while a run is between moving the
    previous chapters aside and publishing the new book: the chapters in
    ``book/generated`` are then unchecked, so the previous ones are put back.
    ``_build/.html.previous`` is the previous book, put back if ``_build/html`` is
    missing (the run was killed between the two renames).
    """
    generated, backup = root / "book" / "generated", root / "_build" / ".generated.previous"
    if backup.exists():
        shutil.rmtree(generated, ignore_errors=True)
        backup.rename(generated)
        logger.warning("put back the chapters of the previous book in %s (the last run was interrupted)", generated)
    html, old_html = root / "_build" / "html", root / "_build" / ".html.previous"
    if old_html.exists() and not html.exists():
        old_html.rename(html)
        logger.warning("put back the previous book in %s (the last run was interrupted)", html)
    shutil.rmtree(old_html, ignore_errors=True)
    shutil.rmtree(root / "_build" / ".staging", ignore_errors=True)


def run_study(
    manifest: Path,
    parameters: dict[str, Any] | None = None,
    root: Path | None = None,
    notebooks: tuple[str, ...] = STUDY_NOTEBOOKS,
) -> Path:
    """Execute every study notebook on ``manifest``, then build the book.

    Executed notebooks go to a staging folder first and the book is built into a
    staging ``_build``; only when every notebook ran, the strict build passed and (for
    a restricted cohort) the privacy scan found no identifier do they replace
    ``book/generated/`` and ``_build/html``. Otherwise the previous book is left as it
    was and the error is raised. Returns the path of the built ``index.html``.

    Every line logged meanwhile (one per notebook, the library's progress lines from
    inside the kernels) also goes to ``_build/logs/run.log``; Jupyter Book's output
    goes to ``_build/logs/jupyter-book.log``. An error raised here carries ``run_log``
    (that file) besides the attributes set by :func:`execute_notebooks`.
    """
    root = root or project_root()
    log_dir = root / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / RUN_LOG, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    package = logging.getLogger("rgenima")
    level = package.level
    if level == logging.NOTSET or level > logging.INFO:
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        return _run_study(manifest, parameters, root, notebooks, log_dir)
    except BaseException as exc:
        _add_context(exc, run_log=log_dir / RUN_LOG)
        raise
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


def _run_study(
    manifest: Path, parameters: dict[str, Any] | None, root: Path, notebooks: tuple[str, ...], log_dir: Path
) -> Path:
    """:func:`run_study` once its log file is set up."""
    from rgenima.data.manifest import load_manifest

    load_manifest(manifest)  # a bad manifest stops here, before any notebook starts
    params = {"manifest": str(Path(manifest).resolve()), **(parameters or {})}
    generated = root / "book" / "generated"
    staging = root / "book" / ".generated.staging"
    # Outside the book's sources, so that Sphinx never reads the previous chapters.
    backup = root / "_build" / ".generated.previous"
    _restore_interrupted(root)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("rgenima run: %d notebooks, then the book; full log: %s", len(notebooks), log_dir / RUN_LOG)
    execute_notebooks(params, root, staging, notebooks=notebooks, log_dir=log_dir)
    shutil.rmtree(backup, ignore_errors=True)
    backup.parent.mkdir(exist_ok=True)
    if generated.exists():
        generated.rename(backup)
    staging.rename(generated)
    build_staging = root / "_build" / ".staging"
    shutil.rmtree(build_staging, ignore_errors=True)
    try:
        staged_index = build_book(root, output=build_staging, log=log_dir / BUILD_LOG)
        check_built_book(staged_index.parent, Path(manifest))
    except Exception:
        # Put the previous chapters back so that the tree matches the previous book.
        shutil.rmtree(generated, ignore_errors=True)
        if backup.exists():
            backup.rename(generated)
        shutil.rmtree(build_staging, ignore_errors=True)
        raise
    html = root / "_build" / "html"
    old_html = root / "_build" / ".html.previous"
    shutil.rmtree(old_html, ignore_errors=True)
    if html.exists():
        html.rename(old_html)
    staged_index.parent.rename(html)
    shutil.rmtree(old_html, ignore_errors=True)
    import json

    from rgenima.fileio import atomic_write_text

    cohort = load_manifest(manifest).cohort
    atomic_write_text(
        root / "_build" / BOOK_RECORD,
        json.dumps(
            {
                "manifest": str(Path(manifest).resolve()),
                "cohort": cohort.name,
                "restricted": cohort.restricted,
                "notebooks": list(notebooks),
            },
            indent=1,
        )
        + "\n",
    )
    shutil.rmtree(build_staging, ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)
    return html / "index.html"
