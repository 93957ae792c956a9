"""Run the study's notebooks with papermill and build the Jupyter Book.

Notebooks in ``notebooks/`` are the sources; executed copies go to
``book/generated/`` (the chapters listed in ``_toc.yml``), then Jupyter Book 1.x
renders them without executing anything (``execute_notebooks: off``).

A failed notebook stops the run with the failing cell's error, and the previous
executed chapters and the previous ``_build/html`` are left as they were. A run killed
in the middle of replacing them leaves the previous ones under ``_build/`` (see
:func:`run_study`); the next run puts them back before it starts.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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


def project_root() -> Path:
    """Repository root: the folder holding ``_toc.yml`` (searched upwards from cwd)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        f"no rgenima project (a folder with _toc.yml and notebooks/) at or above {here}"
    )


def _kernel_name() -> str:
    """The project's kernel if installed, else the default python3 kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


def execute_notebooks(
    parameters: dict[str, Any],
    root: Path,
    out_dir: Path,
    notebooks: tuple[str, ...] = STUDY_NOTEBOOKS,
    timeout_s: int = 3600,
) -> list[Path]:
    """Execute ``notebooks`` in order with papermill into ``out_dir``.

    Parameters
    ----------
    parameters : dict
        Values injected into each notebook's ``parameters`` cell (only the names that
        the notebook declares are passed to it).
    timeout_s : int
        Per-cell execution timeout in seconds, so that a dead kernel cannot hang a run.

    Raises
    ------
    papermill.PapermillExecutionError
        With the failing cell's error, when a notebook fails.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = _kernel_name()
    written = []
    for name in notebooks:
        source = root / "notebooks" / f"{name}.ipynb"
        declared = {p for p in pm.inspect_notebook(str(source))}
        params = {k: v for k, v in parameters.items() if k in declared}
        target = out_dir / f"{name}.ipynb"
        logger.info("executing %s with %s", source.name, params)
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            kernel_name=kernel,
            cwd=str(root),
            execution_timeout=timeout_s,
            progress_bar=False,
        )
        written.append(target)
    return written


def build_book(root: Path, strict: bool = True, output: Path | None = None) -> Path:
    """Build the book with Jupyter Book 1.x; returns the built ``index.html``.

    ``strict``: warnings are errors and every reference must resolve (``-W -n``);
    ``--keep-going`` still reports every warning, not only the first. ``output``: the
    folder that receives ``_build/html`` (default: ``root``).
    """
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--keep-going"]
    if strict:
        cmd += ["-W", "-n"]
    if output is not None:
        cmd += ["--path-output", str(output)]
    logger.info("building the book: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=root)
    index = (output or root) / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"Jupyter Book finished but {index} is missing")
    return index


def check_built_book(html_dir: Path, manifest: Path) -> None:
    """For a restricted cohort, refuse a built book that contains any subject identifier."""
    from rgenima.data.manifest import load_manifest
    from rgenima.errors import PrivacyError
    from rgenima.privacy import cohort_identifiers, scan_directory

    m = load_manifest(manifest)
    if not m.cohort.restricted:
        return
    findings = scan_directory(html_dir, cohort_identifiers(m))
    if findings:
        files = sorted({str(Path(f.file).relative_to(html_dir)) for f in findings})
        error = PrivacyError(
            f"the built book of restricted cohort {m.cohort.name!r} contains {len(findings)} subject "
            f"identifier(s) in {', '.join(files)}; it was not published (see `rgenima check-privacy`)"
        )
        error.findings = findings
        raise error


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


def run_study(manifest: Path, parameters: dict[str, Any] | None = None, root: Path | None = None,
              notebooks: tuple[str, ...] = STUDY_NOTEBOOKS) -> Path:
    """Execute every study notebook on ``manifest``, then build the book.

    Executed notebooks go to a staging folder first and the book is built into a
    staging ``_build``; only when every notebook ran, the strict build passed and (for
    a restricted cohort) the privacy scan found no identifier do they replace
    ``book/generated/`` and ``_build/html``. Otherwise the previous book is left as it
    was and the error is raised. Returns the path of the built ``index.html``.
    """
    from rgenima.data.manifest import load_manifest

    root = root or project_root()
    load_manifest(manifest)  # a bad manifest stops here, before any notebook starts
    params = {"manifest": str(Path(manifest).resolve()), **(parameters or {})}
    generated = root / "book" / "generated"
    staging = root / "book" / ".generated.staging"
    # Outside the book's sources, so that Sphinx never reads the previous chapters.
    backup = root / "_build" / ".generated.previous"
    _restore_interrupted(root)
    shutil.rmtree(staging, ignore_errors=True)
    execute_notebooks(params, root, staging, notebooks=notebooks)
    shutil.rmtree(backup, ignore_errors=True)
    backup.parent.mkdir(exist_ok=True)
    if generated.exists():
        generated.rename(backup)
    staging.rename(generated)
    build_staging = root / "_build" / ".staging"
    shutil.rmtree(build_staging, ignore_errors=True)
    try:
        staged_index = build_book(root, output=build_staging)
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
    shutil.rmtree(build_staging, ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)
    return html / "index.html"
