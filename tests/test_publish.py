"""`rgenima publish`: the built book onto a gh-pages branch, never a restricted book with identifiers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from rgenima.cli import main
from rgenima.privacy import cohort_identifiers

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "rgenima test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "rgenima test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


def _git(*args, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def project(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A git clone whose origin is a local bare repository, with a built book in _build/html."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    bare = tmp_path / "remote.git"
    _git("init", "--bare", "-q", str(bare), cwd=tmp_path)
    repo = tmp_path / "project"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("project\n")
    _git("add", "README.md", cwd=repo)
    _git("commit", "-q", "-m", "first", cwd=repo)
    _git("remote", "add", "origin", str(bare), cwd=repo)
    html = repo / "_build" / "html"
    (html / "book" / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html><body><p>The book</p></body></html>\n")
    (html / "book" / "intro.html").write_text("<html><body><p>Introduction</p></body></html>\n")
    (html / "book" / "_static" / "style.css").write_text("body {}\n")
    return repo, bare


@pytest.fixture()
def restricted_manifest(small_cohort: Path, tmp_path) -> Path:
    path = tmp_path / "manifest_restricted.yaml"
    path.write_text(
        "cohort:\n  name: synthetic-restricted\n  restricted: true\n"
        f"  clinical: {small_cohort / 'ADNIMERGE.csv'}\n  mri: {{bids_root: {small_cohort / 'bids'}}}\n"
        f"  genotypes: {small_cohort / 'genotypes' / 'cohort'}\n"
    )
    return path


def test_publish_puts_the_book_on_gh_pages_of_a_bare_remote(project, small_manifest, capsys):
    repo, bare = project
    assert main(["publish", str(repo / "_build" / "html"), "--manifest", str(small_manifest)]) == 0
    assert "to branch gh-pages" in capsys.readouterr().out
    files = set(_git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare).split())
    assert files == {".nojekyll", "index.html", "book/intro.html", "book/_static/style.css"}
    assert _git("show", "gh-pages:index.html", cwd=bare) == "<html><body><p>The book</p></body></html>\n"
    # The project's own branch is untouched; a second publish adds a commit on gh-pages.
    assert _git("ls-tree", "--name-only", "main", cwd=repo).split() == ["README.md"]
    (repo / "_build" / "html" / "index.html").write_text("<html><body><p>Second edition</p></body></html>\n")
    assert main(["publish", str(repo / "_build" / "html"), "--manifest", str(small_manifest)]) == 0
    assert "Second edition" in _git("show", "gh-pages:index.html", cwd=bare)
    assert len(_git("log", "--format=%H", "gh-pages", cwd=bare).split()) == 2


def test_publish_reads_the_manifest_recorded_by_the_build(project, small_manifest, capsys):
    import json

    repo, bare = project
    assert main(["publish", str(repo / "_build" / "html")]) == 1
    assert "give it with --manifest" in capsys.readouterr().err
    (repo / "_build" / "book.json").write_text(json.dumps({"manifest": str(small_manifest)}))
    assert main(["publish", str(repo / "_build" / "html")]) == 0
    assert "index.html" in _git("ls-tree", "--name-only", "gh-pages", cwd=bare)


def test_publish_refuses_a_restricted_book_with_identifiers(project, restricted_manifest, capsys):
    repo, bare = project
    html = repo / "_build" / "html"
    ptid = sorted(cohort_identifiers(restricted_manifest).ptids)[0]
    page = html / "book" / "intro.html"
    clean = page.read_text()
    page.write_text(clean.replace("Introduction", f"Introduction {ptid}"))
    assert main(["publish", str(html), "--manifest", str(restricted_manifest)]) == 1
    err = capsys.readouterr().err
    assert "not published" in err and "book/intro.html" in err and "synthetic-restricted" in err
    assert ptid not in err  # findings are printed masked
    assert _git("branch", "--list", "gh-pages", cwd=bare).strip() == ""
    assert _git("branch", "--list", "gh-pages", cwd=repo).strip() == ""
    # The same restricted book once its scan is clean is published.
    page.write_text(clean)
    assert main(["publish", str(html), "--manifest", str(restricted_manifest)]) == 0
    assert "book/intro.html" in _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare)


def test_publish_without_a_built_book_says_what_to_do(tmp_path, small_manifest, capsys):
    assert main(["publish", str(tmp_path / "_build" / "html"), "--manifest", str(small_manifest)]) == 1
    assert "build the book first (`make book`)" in capsys.readouterr().err


def test_workflow_builds_the_synthetic_book_on_main_and_publishes_it():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"]["contents"] == "write"
    steps = [step.get("run", "") for step in workflow["jobs"]["book"]["steps"]]
    build = next(i for i, run in enumerate(steps) if run.strip() == "make book")
    publish = next(i for i, run in enumerate(steps) if "make publish" in run)
    assert build < publish
    makefile = (ROOT / "Makefile").read_text()
    assert "rgenima publish _build/html --manifest $(MANIFEST)" in makefile
