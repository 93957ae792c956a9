"""The whole study, end to end, on a small restricted synthetic cohort.

One module-scoped run executes every study notebook with papermill (quick profile,
2 folds, non-default parameters), builds the book strictly (``-W -n``), and then:
the parameters were injected into every notebook, the build is clean, a headless
browser finds every image and internal link, and the privacy scan passes the clean
book and catches a planted identifier.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from rgenima.book import STUDY_NOTEBOOKS, run_study

ROOT = Path(__file__).resolve().parents[1]


def _copy_project(dest: Path) -> Path:
    """The book's sources (config, toc, markdown chapters, notebooks) in a scratch root."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("generated", ".generated*"))
    return dest


@pytest.fixture(scope="module")
def restricted_manifest(small_cohort: Path, tmp_path_factory) -> Path:
    # Written outside the shared cohort folder, which other tests checksum.
    path = tmp_path_factory.mktemp("manifests") / "manifest_restricted.yaml"
    path.write_text(
        "cohort:\n"
        "  name: synthetic-restricted\n"
        "  restricted: true\n"
        f"  clinical: {small_cohort / 'ADNIMERGE.csv'}\n"
        f"  mri: {{bids_root: {small_cohort / 'bids'}}}\n"
        f"  genotypes: {small_cohort / 'genotypes' / 'cohort'}\n"
        "atlas: aal2\n"
        "gene_panel: builtin\n"
        "snp_gene_window_kb: 10\n"
        "qc: {min_call_rate: 0.95, min_maf: 0.01, hwe_p: 1.0e-6}\n"
    )
    return path


@pytest.fixture(scope="module")
def built_study(tmp_path_factory, restricted_manifest):
    root = _copy_project(tmp_path_factory.mktemp("project"))
    run_dir = root / "runs" / "small"
    parameters = {"run_dir": str(run_dir), "profile": "quick", "folds": 2, "seed": 1,
                  "ig_steps": 4, "n_permutations": 200}
    index = run_study(restricted_manifest, parameters, root=root)
    return root, run_dir, index


def test_every_notebook_ran_with_the_injected_parameters(built_study):
    root, run_dir, _ = built_study
    for name in STUDY_NOTEBOOKS:
        nb = nbformat.read(root / "book" / "generated" / f"{name}.ipynb", as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected, name
        assert str(run_dir) in injected[0].source and '"quick"' in injected[0].source, name
    # The injected values changed what ran: a quick model on 2 folds in the scratch run dir.
    training = run_dir / "models" / "rgenima_mri+snp__quick" / "training.json"
    assert training.is_file()
    assert (run_dir / "folds.csv").read_text().count("\n") > 1
    for name in ("metrics.json", "gene_attribution.csv", "roi_attribution.csv", "roi_gene.csv",
                 "enrichment.csv", "recovery.json"):
        assert (run_dir / name).is_file(), name


def test_book_has_every_chapter_and_figure(built_study):
    root, _, index = built_study
    html = root / "_build" / "html"
    assert index.is_file()
    for name in STUDY_NOTEBOOKS:
        page = html / "book" / "generated" / f"{name}.html"
        assert page.is_file(), name
    images = list((html / "_images").glob("*.png"))
    assert len(images) >= 15  # framework, performance, signatures, heatmaps, enrichment, ...
    assert (html / "book" / "references.html").read_text().count("Sundararajan") >= 1


def test_browser_loads_every_image_and_link(built_study, tmp_path):
    from rgenima.sitecheck import check_site

    from test_sitecheck import require_browser  # skips (or fails in CI) without chromium

    require_browser()
    root, _, _ = built_study
    report = check_site(root / "_build" / "html", screenshot_dir=tmp_path)
    report.raise_for_problems()
    assert report.pages_checked >= len(STUDY_NOTEBOOKS) + 3
    assert report.images_checked >= 15
    assert list(tmp_path.glob("*.png"))


def test_privacy_scan_passes_clean_book_and_finds_planted_id(built_study, restricted_manifest, tmp_path):
    from rgenima.privacy import cohort_identifiers, scan_directory

    root, _, _ = built_study
    ids = cohort_identifiers(restricted_manifest)
    assert ids.restricted
    html = root / "_build" / "html"
    assert scan_directory(html, ids) == []
    planted = tmp_path / "html"
    shutil.copytree(html, planted)
    ptid = sorted(ids.ptids)[0]
    page = planted / "book" / "generated" / "04_evaluation.html"
    page.write_text(page.read_text().replace("</body>", f"<p>{ptid}</p></body>"))
    findings = scan_directory(planted, ids)
    assert [f.identifier for f in findings] == [ptid]
    assert Path(findings[0].file).name == "04_evaluation.html"


def _write_tiny_notebook(root: Path, cells: list[str]) -> None:
    from nbtools import write_notebook  # tools/ (see the tools_on_path fixture)

    write_notebook(root / "notebooks" / "00_tiny.ipynb",
                   [("md", "# Tiny chapter"), ("parameters", 'manifest: str = ""\nvalue: int = 0'),
                    *[("code", c) for c in cells]])


def _tiny_project(root: Path, cells: list[str]) -> Path:
    """A scratch book whose only chapter is one notebook with the given code cells."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Tiny\n\nA test book.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/00_tiny\n")
    (root / "_config.yml").write_text('title: tiny\nexecute:\n  execute_notebooks: "off"\n'
                                      "exclude_patterns: [notebooks/*, _build/*]\n")
    _write_tiny_notebook(root, cells)
    return root


@pytest.fixture()
def tools_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))


def test_failed_notebook_keeps_previous_book(tools_on_path, tmp_path, small_manifest):
    import papermill as pm

    root = _tiny_project(tmp_path / "project", ["print('chapter value', value)"])
    index = run_study(small_manifest, {"value": 1}, root=root, notebooks=("00_tiny",))
    page = root / "_build" / "html" / "book" / "generated" / "00_tiny.html"
    assert index.is_file() and "chapter value 1" in page.read_text()
    # A second successful run replaces the book (the previous chapters must not leak
    # into the strict build as duplicate sources).
    run_study(small_manifest, {"value": 3}, root=root, notebooks=("00_tiny",))
    assert "chapter value 3" in page.read_text()
    run_study(small_manifest, {"value": 1}, root=root, notebooks=("00_tiny",))
    # A third run whose notebook fails: the error names the cell, the old book stays.
    _write_tiny_notebook(root, ["print('chapter value', value)", "raise RuntimeError('planted failure')"])
    with pytest.raises(pm.PapermillExecutionError, match="planted failure"):
        run_study(small_manifest, {"value": 2}, root=root, notebooks=("00_tiny",))
    assert "chapter value 1" in page.read_text()
    executed = nbformat.read(root / "book" / "generated" / "00_tiny.ipynb", as_version=4)
    assert "chapter value 1" in str(executed.cells)


def test_restricted_book_with_an_identifier_is_not_published(tools_on_path, tmp_path, restricted_manifest):
    from rgenima.errors import PrivacyError
    from rgenima.privacy import cohort_identifiers

    ptid = sorted(cohort_identifiers(restricted_manifest).ptids)[0]
    root = _tiny_project(tmp_path / "project", [f"print('subject {ptid}')"])
    with pytest.raises(PrivacyError, match="not published"):
        run_study(restricted_manifest, root=root, notebooks=("00_tiny",))
    assert not (root / "_build" / "html").exists()
    assert not (root / "book" / "generated").exists()
