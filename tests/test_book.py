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
    """The book's sources (config, toc, markdown chapters, notebooks, the benchmarks'
    latest figures that the Performance chapter reads) in a scratch root."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("generated", ".generated*"))
    (dest / "benchmarks").mkdir()
    for path in ROOT.glob("benchmarks/latest_*.json"):
        shutil.copy(path, dest / "benchmarks" / path.name)
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
    parameters = {
        "run_dir": str(run_dir),
        "profile": "quick",
        "folds": 2,
        "seed": 1,
        "ig_steps": 4,
        "n_permutations": 200,
    }
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
    for name in (
        "metrics.json",
        "gene_attribution.csv",
        "roi_attribution.csv",
        "roi_gene.csv",
        "enrichment.csv",
        "recovery.json",
    ):
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
    from sitecheck import check_site
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


def _write_notebook(path: Path, parameters: str, cells: list[str]) -> None:
    """A chapter tagged as the study notebooks are: a title, the ``parameters`` cell, code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "rgenima", "display_name": "rgenima (Python 3.11)", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell("# Tiny chapter"))
    nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters", "hide-input"]}))
    nb.cells += [nbformat.v4.new_code_cell(c, metadata={"tags": ["hide-input"]}) for c in cells]
    nbformat.write(nb, str(path))


def _write_tiny_notebook(root: Path, cells: list[str]) -> None:
    _write_notebook(root / "notebooks" / "00_tiny.ipynb", 'manifest: str = ""\nvalue: int = 0', cells)


def _tiny_project(root: Path, cells: list[str]) -> Path:
    """A scratch book whose only chapter is one notebook with the given code cells."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Tiny\n\nA test book.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/00_tiny\n")
    (root / "_config.yml").write_text(
        'title: tiny\nexecute:\n  execute_notebooks: "off"\nexclude_patterns: [notebooks/*, _build/*]\n'
    )
    _write_tiny_notebook(root, cells)
    return root


def test_failed_notebook_keeps_previous_book(tmp_path, small_manifest):
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


def test_restricted_book_with_an_identifier_is_not_published(tmp_path, restricted_manifest):
    from rgenima.errors import PrivacyError
    from rgenima.privacy import cohort_identifiers

    ptid = sorted(cohort_identifiers(restricted_manifest).ptids)[0]
    root = _tiny_project(tmp_path / "project", [f"print('subject {ptid}')"])
    with pytest.raises(PrivacyError, match="not published"):
        run_study(restricted_manifest, root=root, notebooks=("00_tiny",))
    assert not (root / "_build" / "html").exists()
    assert not (root / "book" / "generated").exists()


# ---------------------------------------------------------------------------------
# Progress, no wall-clock limit, short failure messages and resuming
# ---------------------------------------------------------------------------------
def _log_times(lines: list[str]) -> list[float]:
    from datetime import datetime

    return [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() for line in lines]


def test_book_run_log_shows_each_notebook_and_the_training_progress(built_study):
    root, _, _ = built_study
    log = (root / "_build" / "logs" / "run.log").read_text()
    lines = log.splitlines()
    n = len(STUDY_NOTEBOOKS)
    for i, name in enumerate(STUDY_NOTEBOOKS):
        assert f"notebook {i + 1}/{n}: {name}.ipynb running" in log, name
        assert f"notebook {i + 1}/{n}: {name}.ipynb done in " in log, name
    # The library's lines from inside the training kernel: configuration -> fold -> epoch,
    # with the validation figures; and the preparation and attribution steps.
    training = [line for line in lines if "[03_training]" in line]
    assert any("rgenima_mri+snp__quick fold 2/2 epoch 1/" in line and "val bacc" in line for line in training)
    assert any("training step 1/" in line for line in training)
    assert any("[02_preparation]" in line and "ROI cubes: " in line and " images" in line for line in lines)
    assert any("[05_brain_signatures]" in line or "explaining fold" in line for line in lines)
    # One line per step: papermill's own lines are not repeated (nor shown), no kernel warnings.
    assert "Input Notebook" not in log and "Executing notebook with kernel" not in log
    assert "without encryption" not in log and "frozen modules" not in log
    assert len(lines) == len(set(lines))
    # While the notebooks run, a line comes at least once a minute.
    start = next(i for i, line in enumerate(lines) if "notebook 1/" in line)
    end = next(i for i, line in enumerate(lines) if f"notebook {n}/{n}:" in line and " done in " in line)
    times = _log_times(lines[start : end + 1])
    assert max(b - a for a, b in zip(times, times[1:])) < 60


def test_injected_parameters_cell_is_hidden_from_the_reader(built_study):
    root, run_dir, _ = built_study
    for name in STUDY_NOTEBOOKS:
        nb = nbformat.read(root / "book" / "generated" / f"{name}.ipynb", as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert "remove-cell" in injected[0].metadata["tags"], name
        page = (root / "_build" / "html" / "book" / "generated" / f"{name}.html").read_text()
        assert str(run_dir) not in page and str(root) not in page, name


def test_a_slow_silent_cell_is_not_failed_by_a_time_limit(tmp_path, small_manifest):
    from rgenima.book import execute_notebooks

    root = _tiny_project(tmp_path / "project", ["import time\ntime.sleep(4)\nprint('slow step finished')"])
    (written,) = execute_notebooks({"manifest": str(small_manifest)}, root, tmp_path / "out", notebooks=("00_tiny",))
    assert "slow step finished" in str(nbformat.read(written, as_version=4).cells)
    # The same cell under a limit shorter than it fails: the default has no such limit.
    with pytest.raises(Exception, match="(?i)timed? ?out|timeout"):
        execute_notebooks(
            {"manifest": str(small_manifest)}, root, tmp_path / "limited", notebooks=("00_tiny",), timeout_s=1
        )


def test_a_dead_kernel_is_reported_in_one_short_message(tmp_path, small_manifest, monkeypatch, capsys):
    from rgenima.cli import main

    root = _tiny_project(tmp_path / "project", ["import os\nos._exit(1)"])
    monkeypatch.chdir(root)
    assert main(["run", "--manifest", str(small_manifest), "--notebook", "00_tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rgenima run: notebook 00_tiny.ipynb failed: the notebook's kernel died")
    assert "full log: _build/logs/run.log" in err and "Rerun the same command to resume" in err


_TRAINING_CELL = """\
from dataclasses import replace
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.train import PROFILES, train_configuration

prepare_cohort(load_manifest(manifest), run_dir, PrepareConfig(cube_size=8))
profile = replace(PROFILES["quick"], max_epochs=3, patience=3, batch_size=8)
result = train_configuration(run_dir, ("snp",), n_folds=2, seed=0, profile=profile,
                             max_epochs_this_run=max_epochs_this_run or None)
if result is None:
    raise RuntimeError("training stopped before the end\\nstopped after %d epoch(s)" % max_epochs_this_run)
print("trained", len(result), "subjects")"""


def test_interrupted_run_ends_in_a_short_message_and_resumes_from_finished_folds(
    tmp_path, small_manifest, monkeypatch, capsys
):
    from rgenima.cli import main

    root = _tiny_project(tmp_path / "project", [])
    _write_notebook(
        root / "notebooks" / "00_tiny.ipynb",
        'manifest: str = ""\nrun_dir: str = ""\nmax_epochs_this_run: int = 0',
        [_TRAINING_CELL],
    )
    run_dir = tmp_path / "run"
    monkeypatch.chdir(root)
    argv = ["run", "--manifest", str(small_manifest), "--notebook", "00_tiny", "-p", "run_dir", str(run_dir)]
    # First run: stopped after one epoch of fold 1 (as if the machine had been switched off).
    assert main([*argv, "-p", "max_epochs_this_run", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    message = err[-1]
    assert message.startswith("rgenima run: notebook 00_tiny.ipynb, cell ")
    assert "RuntimeError: stopped after 1 epoch(s)." in message  # the error's last line
    assert "full log: _build/logs/run.log" in message and "book/.generated.staging/00_tiny.ipynb" in message
    assert "Rerun the same command to resume" in message and "Traceback" not in "\n".join(err)
    assert len(message) < 600
    assert not (root / "_build" / "html").exists()
    # Rerun: fold 1 resumes after its finished epoch, fold 2 trains, the book is built.
    assert main(argv) == 0
    log = (root / "_build" / "logs" / "run.log").read_text()
    assert "[00_tiny] rgenima_snp__quick fold 1/2: resuming after epoch 1" in log
    assert "[00_tiny] rgenima_snp__quick fold 2/2 done" in log
    import re

    assert re.search(
        r"trained \d+ subjects", (root / "_build" / "html" / "book" / "generated" / "00_tiny.html").read_text()
    )
    # A third run trains nothing: both folds are reused.
    assert main(argv) == 0
    log = (root / "_build" / "logs" / "run.log").read_text()
    assert "fold 1/2 already trained (done.json): reused" in log
    assert "fold 2/2 already trained (done.json): reused" in log and " epoch 1/3" not in log


def test_every_run_directory_of_the_book_has_a_model_card(built_study):
    _, run_dir, _ = built_study
    text = (run_dir / "MODEL_CARD.md").read_text()
    for section in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Evaluation results",
        "## Limitations",
        "## Ethical considerations",
    ):
        assert section in text
    assert "R-GenIMA (MRI + SNP)" in text and "[" in text.split("## Evaluation results")[1]


def test_run_directory_owner_finds_every_file_the_book_reads(built_study):
    from rgenima.run import Run

    _, run_dir, _ = built_study
    files = Run(run_dir).book_files()
    missing = [name for name, path in files.items() if not path.is_file()]
    assert not missing, missing
    assert Run(run_dir).truth_path() is not None  # the synthetic cohort's planted truth, found for validation
