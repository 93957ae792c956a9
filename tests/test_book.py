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
