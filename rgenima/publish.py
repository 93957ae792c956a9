"""Publish the built book to a ``gh-pages`` branch with ghp-import.

``rgenima publish`` (``make publish``) commits ``_build/html`` as the whole content of
the ``gh-pages`` branch of the project's git repository (with ``.nojekyll``, so that
GitHub Pages serves Sphinx's ``_static`` folders) and pushes it to the remote. GitHub
Pages then serves it. A restricted cohort's book is published only if the privacy scan
of exactly the folder being published finds no subject identifier
(:func:`rgenima.privacy.scan_directory`, as ``rgenima check-privacy``).

The manifest the book was built from is read from ``_build/book.json``, which
:func:`rgenima.book.run_study` writes next to ``_build/html``; ``--manifest`` overrides
it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rgenima.book import BOOK_RECORD

logger = logging.getLogger(__name__)

#: Written by run_study next to _build/html: the manifest the book was built from.


@dataclass
class PublishResult:
    """What :func:`publish_book` did: ``commit`` on ``branch``, pushed to ``remote`` or not."""

    html_dir: Path
    branch: str
    remote: str | None
    commit: str
    cohort: str
    restricted: bool
    n_files: int


def book_manifest(html_dir: str | Path) -> Path | None:
    """The manifest recorded by the build of ``html_dir`` (``_build/book.json``), if any."""
    record = Path(html_dir).parent / BOOK_RECORD
    if not record.is_file():
        return None
    try:
        return Path(json.loads(record.read_text())["manifest"])
    except (ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _working_directory(path: Path):
    # ghp-import runs git in the current directory.
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _git_root(start: Path) -> Path:
    import subprocess

    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True)
    if proc.returncode:
        raise ValueError(
            f"{start} is not inside a git repository: `rgenima publish` commits the book to a "
            "gh-pages branch of the project's repository (clone it with git)"
        )
    return Path(proc.stdout.strip())


def publish_book(
    html_dir: str | Path = "_build/html",
    manifest: str | Path | None = None,
    remote: str | None = "origin",
    branch: str = "gh-pages",
    message: str | None = None,
    repository: str | Path | None = None,
) -> PublishResult:
    """Commit ``html_dir`` to ``branch`` with ghp-import and push it to ``remote``.

    Parameters
    ----------
    html_dir : path
        The built book (``_build/html`` of ``make book``).
    manifest : path, optional
        The manifest the book was built from; default: the one recorded in
        ``_build/book.json`` by ``rgenima run``.
    remote : str or None
        Git remote to push to; None commits the branch locally only.
    branch : str
        Branch whose whole content becomes the book (GitHub Pages: ``gh-pages``).
    message : str, optional
        Commit message; default names the cohort.
    repository : path, optional
        A folder inside the git repository; default: ``html_dir``'s.

    Raises
    ------
    FileNotFoundError
        When ``html_dir`` has no ``index.html`` (build the book first) or no manifest
        is known.
    rgenima.errors.PrivacyError
        For a restricted cohort whose book contains a subject identifier; nothing is
        committed or pushed. ``findings`` lists them (file and line).
    ValueError
        When ``repository`` is not a git repository.
    """
    from ghp_import import GhpError, ghp_import

    from rgenima.book import check_built_book

    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir / 'index.html'}: not found; build the book first (`make book`)")
    manifest = manifest if manifest is not None else book_manifest(html_dir)
    if manifest is None:
        raise FileNotFoundError(
            f"no record of the manifest the book in {html_dir} was built from "
            f"({html_dir.parent / BOOK_RECORD}); give it with --manifest"
        )
    m = check_built_book(
        html_dir,
        Path(manifest),
        advice=(f"rebuild it (`make book`) and check it with `rgenima check-privacy {html_dir} --manifest {manifest}`"),
    )
    files = [p for p in html_dir.rglob("*") if p.is_file()]
    if m.cohort.restricted:
        logger.info("privacy scan of %d files: no identifier of restricted cohort %r", len(files), m.cohort.name)
    repo = _git_root(Path(repository).resolve() if repository is not None else html_dir)
    message = message or f"Publish the rgenima book (cohort {m.cohort.name!r})"
    with _working_directory(repo):
        try:
            ghp_import(
                str(html_dir),
                mesg=message,
                branch=branch,
                remote=remote or "origin",
                push=remote is not None,
                nojekyll=True,
            )
        except GhpError as exc:
            raise RuntimeError(f"ghp-import could not publish {html_dir} to {branch!r}: {exc.message}") from None
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", branch], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    logger.info(
        "published %s to branch %s (%s)%s",
        html_dir,
        branch,
        commit[:12],
        f" and pushed it to {remote}" if remote else "",
    )
    return PublishResult(html_dir, branch, remote, commit, m.cohort.name, m.cohort.restricted, len(files))
