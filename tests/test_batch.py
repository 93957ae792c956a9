"""Batch reruns over a parameter grid (rgenima.batch, ``rgenima batch``).

The notebooks here are tiny throwaway ones written into a temporary project: they
train nothing and write a fake metrics.json whose values depend on seed and modalities.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import nbformat
import pytest

from rgenima.batch import (
    DONE_FILE,
    aggregate,
    combination_name,
    combinations,
    format_summary,
    load_batch_summary,
    parse_grid,
    run_batch,
)
from rgenima.cli import main

PARAMETERS_CELL = """\
manifest: str = "data_manifest.yaml"  # data manifest
run_dir: str = "runs/default"  # run directory
seed: int = 0  # random seed
profile: str = "default"  # quick, default or gpu
modalities: str = "mri+snp"  # mri, snp or mri+snp
backbone = None  # local Hugging Face model directory
folds: int = 5  # outer CV folds
"""

METRICS_CELL = """\
import json, os, pathlib
out = pathlib.Path(run_dir)
out.mkdir(parents=True, exist_ok=True)
{extra}
ba = 0.5 + 0.01 * seed + (0.1 if modalities == "snp" else 0.0)
main = "rgenima_" + modalities
metrics = {{"main": main, "configurations": {{
    main: {{"role": "main", "metrics": {{"balanced_accuracy": ba, "accuracy": ba + 0.05,
            "macro_f1": ba - 0.05, "macro_auroc": ba + 0.2}}, "ci": {{}}}},
    "baseline_lr": {{"role": "baseline", "metrics": {{"balanced_accuracy": 0.4 + 0.02 * seed,
            "accuracy": 0.45, "macro_f1": 0.35, "macro_auroc": None if seed == 0 else 0.6}}, "ci": {{}}}},
}}}}
(out / "metrics.json").write_text(json.dumps(metrics))
(out / "env.json").write_text(json.dumps({{"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                                          "pid": os.getpid()}}))
print(f"seed={{seed}} modalities={{modalities}} folds={{folds}} manifest={{manifest}}")
"""

#: Parallel check: each run waits until the other has started; serial runs time out.
BARRIER = """\
import time
barrier = pathlib.Path(run_dir).parent / "barrier"
barrier.mkdir(exist_ok=True)
(barrier / pathlib.Path(run_dir).name).touch()
deadline = time.time() + 60
while len(list(barrier.iterdir())) < 2:
    if time.time() > deadline:
        raise RuntimeError("the other combination never started: runs were not parallel")
    time.sleep(0.05)
"""


def _write_notebook(root: Path, name: str, extra: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(METRICS_CELL.format(extra=extra))]
    path = root / "notebooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    _write_notebook(root, "fake_eval")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (root / "manifest.yaml").write_text("cohort: {name: fake}\n")
    return root


def _outputs(path: Path) -> tuple[str, str]:
    """(injected-parameters cell source, all printed text) of an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    injected = [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    return (injected[0] if injected else ""), text


# ---------------------------------------------------------------------------------
# Grid parsing and names (no kernel)
# ---------------------------------------------------------------------------------
def test_parse_grid_coerces_types():
    grid = parse_grid(
        [
            "seed=0,1,2",
            "modalities=mri, snp,mri+snp",
            "backbone=None,/models/llama 1b",
            "other=null",
            "lr=0.1,1e-3",
            "flag=true,False",
            "tag='0',x",
        ]
    )
    assert grid["seed"] == [0, 1, 2] and all(type(v) is int for v in grid["seed"])
    assert grid["modalities"] == ["mri", "snp", "mri+snp"]
    assert grid["lr"] == [0.1, 0.001] and all(type(v) is float for v in grid["lr"])
    assert grid["flag"] == [True, False]
    assert grid["tag"] == ["0", "x"]
    assert grid["backbone"] == [None, "/models/llama 1b"] and grid["other"] == [None]
    assert list(grid) == ["seed", "modalities", "backbone", "other", "lr", "flag", "tag"]


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        (["seed"], r"'seed': expected NAME=V1,V2"),
        (["seed:0,1"], r"expected NAME=V1,V2"),
        (["seed="], r"no values for 'seed'"),
        (["seed=0,,1"], r"value 2 of 'seed' is empty"),
        (["=0,1"], r"'' is not a parameter name"),
        (["2x=0"], r"'2x' is not a parameter name"),
        (["seed=0", "seed=1"], r"parameter 'seed' is given twice"),
        (["seed=0,1,0"], r"value 0 is given twice"),
        (["run_dir=a,b"], r"'run_dir' is set by the batch itself"),
        (["manifest=a.yaml"], r"'manifest' is set by the batch itself"),
        ([], r"the grid is empty"),
    ],
)
def test_parse_grid_errors(specs, match):
    with pytest.raises(ValueError, match=match):
        parse_grid(specs)


def test_parse_grid_rejects_undeclared_names_listing_allowed():
    with pytest.raises(
        ValueError,
        match=r"'sed' is not declared by the batch notebooks; "
        r"allowed: folds, modalities, seed$",
    ):
        parse_grid(["sed=0,1"], allowed={"seed", "modalities", "folds", "run_dir", "manifest"})


def test_combinations_are_a_deterministic_product():
    combos = combinations({"seed": [0, 1], "modalities": ["mri", "snp", "mri+snp"]})
    assert len(combos) == 6
    assert combos[:3] == [{"seed": 0, "modalities": m} for m in ("mri", "snp", "mri+snp")]
    assert combos[3] == {"seed": 1, "modalities": "mri"}


def test_combination_name_is_sorted_safe_and_stable():
    assert combination_name({"seed": 0, "modalities": "mri+snp"}) == "modalities-mri+snp__seed-0"
    assert combination_name({"modalities": "mri+snp", "seed": 0}) == "modalities-mri+snp__seed-0"
    assert combination_name({"backbone": None, "lr": 0.001, "flag": True}) == "backbone-None__flag-True__lr-0.001"
    name = combination_name({"backbone": "/models/my llama:1b"})
    assert name == "backbone-_models_my_llama_1b"
    long = combination_name({"backbone": "/very/long/path/" * 10})
    assert len(long) < 60 and long == combination_name({"backbone": "/very/long/path/" * 10})
    assert long != combination_name({"backbone": "/very/long/path/" * 11})


def test_run_batch_checks_parameters_against_notebooks(project, tmp_path):
    manifest = project / "manifest.yaml"
    with pytest.raises(
        ValueError,
        match=r"grid parameter 'sed' is not declared by the batch "
        r"notebooks; allowed: backbone, folds, modalities, profile, seed",
    ):
        run_batch(manifest, {"sed": [0]}, notebooks=("fake_eval",), root=project, runs_root=tmp_path / "r")
    with pytest.raises(ValueError, match=r"parameter 'fold' is not declared"):
        run_batch(
            manifest,
            {"seed": [0]},
            notebooks=("fake_eval",),
            root=project,
            runs_root=tmp_path / "r",
            base_parameters={"fold": 3},
        )
    with pytest.raises(FileNotFoundError, match=r"batch notebook .*missing\.ipynb: not found"):
        run_batch(manifest, {"seed": [0]}, notebooks=("missing",), root=project, runs_root=tmp_path / "r")
    nb = nbformat.read(project / "notebooks" / "fake_eval.ipynb", as_version=4)
    nb.cells[0].source = "seed = 0\n"
    nbformat.write(nb, project / "notebooks" / "no_run_dir.ipynb")
    with pytest.raises(ValueError, match=r"no_run_dir\.ipynb does not declare a 'run_dir' parameter"):
        run_batch(manifest, {"seed": [0]}, notebooks=("no_run_dir",), root=project, runs_root=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing ran


# ---------------------------------------------------------------------------------
# Executions (papermill, one small kernel each)
# ---------------------------------------------------------------------------------
GRID = {"seed": [0, 1], "modalities": ["mri", "snp"]}


@pytest.fixture(scope="module")
def batch_2x2(tmp_path_factory):
    """A 2 x 2 grid run once: (project root, runs root, BatchResult)."""
    tmp = tmp_path_factory.mktemp("batch")
    root = tmp / "project"
    _write_notebook(root, "fake_eval")
    (root / "manifest.yaml").write_text("cohort: {name: fake}\n")
    runs = tmp / "runs"
    result = run_batch(
        root / "manifest.yaml", GRID, notebooks=("fake_eval",), runs_root=runs, root=root, base_parameters={"folds": 3}
    )
    return root, runs, result


def test_run_batch_runs_every_combination_into_its_folder(batch_2x2):
    root, runs, result = batch_2x2
    assert result.ok and len(result.executed) == 4 and not result.skipped
    names = ["modalities-mri__seed-0", "modalities-snp__seed-0", "modalities-mri__seed-1", "modalities-snp__seed-1"]
    assert [r.name for r in result.results] == names
    for r in result.results:
        run_dir = runs / r.name
        assert r.run_dir == run_dir and (run_dir / DONE_FILE).is_file()
        injected, text = _outputs(run_dir / "notebooks" / "fake_eval.ipynb")
        seed, modalities = r.parameters["seed"], r.parameters["modalities"]
        assert f"seed = {seed}" in injected and f'run_dir = "{run_dir}"' in injected
        assert f"seed={seed} modalities={modalities} folds=3 manifest={root / 'manifest.yaml'}" in text
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["main"] == f"rgenima_{modalities}"
        assert metrics["configurations"][metrics["main"]]["metrics"]["balanced_accuracy"] == pytest.approx(
            0.5 + 0.01 * seed + (0.1 if modalities == "snp" else 0)
        )
        done = json.loads((run_dir / DONE_FILE).read_text())
        assert done["parameters"]["seed"] == seed and done["parameters"]["folds"] == 3
        assert done["notebooks"][0]["name"] == "fake_eval" and len(done["notebooks"][0]["sha256"]) == 64
        assert done["notebooks"][0]["seconds"] > 0 and done["versions"]["rgenima"]


def test_run_batch_skips_finished_combinations(batch_2x2, caplog):
    root, runs, _ = batch_2x2
    executed = sorted(runs.glob("*/notebooks/fake_eval.ipynb"))
    mtimes = [p.stat().st_mtime_ns for p in executed]
    with caplog.at_level(logging.INFO, logger="rgenima.batch"):
        again = run_batch(
            root / "manifest.yaml",
            GRID,
            notebooks=("fake_eval",),
            runs_root=runs,
            root=root,
            base_parameters={"folds": 3},
        )
    assert again.ok and len(again.skipped) == 4 and not again.executed
    assert [p.stat().st_mtime_ns for p in executed] == mtimes
    assert caplog.text.count("skip modalities-") == 4


def test_aggregate_mean_and_sd_across_seeds(batch_2x2):
    _, runs, result = batch_2x2
    table = result.summary
    assert list(table.columns[:5]) == ["modalities", "configuration", "role", "n_seeds", "seeds"]
    assert len(table) == 4  # 2 modalities x 2 configurations
    row = table[(table.modalities == "snp") & (table.configuration == "rgenima_snp")].iloc[0]
    assert row.n_seeds == 2 and row.seeds == "0,1" and row.role == "main"
    assert row.balanced_accuracy_mean == pytest.approx(0.605)
    assert row.balanced_accuracy_sd == pytest.approx(0.01 / math.sqrt(2))
    assert (row.balanced_accuracy_min, row.balanced_accuracy_max) == pytest.approx((0.6, 0.61))
    assert row.macro_f1_mean == pytest.approx(0.555) and row.accuracy_mean == pytest.approx(0.655)
    base = table[(table.modalities == "mri") & (table.configuration == "baseline_lr")].iloc[0]
    assert base.balanced_accuracy_mean == pytest.approx(0.41)
    assert base.macro_auroc_mean == pytest.approx(0.6) and math.isnan(base.macro_auroc_sd)  # null skipped
    assert base.accuracy_sd == pytest.approx(0.0)

    loaded = load_batch_summary(runs)
    assert loaded.attrs["grid"] == GRID and (runs / "batch_summary.csv").is_file()
    assert loaded.drop(columns="seeds").equals(table.drop(columns="seeds"))
    # Aggregating again over the same combinations gives the same table.
    assert aggregate(runs, combinations(GRID)).equals(table)
    shown = format_summary(table)
    assert shown.loc[("snp", "rgenima_snp"), "balanced_accuracy"] == "0.605 ± 0.007"


def test_changed_notebook_or_parameter_reruns(project, tmp_path, caplog):
    runs, manifest = tmp_path / "runs", project / "manifest.yaml"
    grid = {"modalities": ["mri", "snp"]}
    kwargs = dict(notebooks=("fake_eval",), runs_root=runs, root=project)
    assert len(run_batch(manifest, grid, **kwargs).executed) == 2
    _write_notebook(project, "fake_eval", extra="print('edited')")
    with caplog.at_level(logging.INFO, logger="rgenima.batch"):
        rerun = run_batch(manifest, grid, **kwargs)
    assert len(rerun.executed) == 2 and "notebook fake_eval.ipynb changed" in rerun.executed[0].reason
    assert "notebook fake_eval.ipynb changed" in caplog.text
    assert "edited" in _outputs(runs / "modalities-mri" / "notebooks" / "fake_eval.ipynb")[1]
    changed = run_batch(manifest, grid, base_parameters={"folds": 2}, **kwargs)
    assert [r.reason for r in changed.executed] == ["parameter folds: '<unset>' -> 2"] * 2


def test_failed_combination_is_reported_and_rerun_next_time(project, tmp_path, monkeypatch, capsys):
    _write_notebook(
        project, "fake_eval", extra=("if seed == 1:\n    raise RuntimeError(f'planted failure for seed {seed}')")
    )
    runs = tmp_path / "runs"
    monkeypatch.chdir(project)
    argv = [
        "batch",
        "--manifest",
        "manifest.yaml",
        "--grid",
        "seed=0,1",
        "--notebook",
        "fake_eval",
        "--runs-root",
        str(runs),
        "-p",
        "folds",
        "4",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "1 run, 0 skipped (finished), 1 failed" in out
    assert "FAILED seed-1: fake_eval.ipynb cell 3: RuntimeError: planted failure for seed 1" in out
    assert (runs / "seed-0" / DONE_FILE).is_file() and not (runs / "seed-1" / DONE_FILE).exists()
    assert (runs / "seed-1" / "notebooks" / "fake_eval.ipynb").is_file()  # kept for debugging
    summary = load_batch_summary(runs)
    assert set(summary.seeds) == {"0"}
    assert [c["finished"] for c in summary.attrs["combinations"]] == [True, False]
    # Next call: the finished one is skipped, the failed one runs again.
    result = run_batch(
        project / "manifest.yaml",
        {"seed": [0, 1]},
        notebooks=("fake_eval",),
        runs_root=runs,
        base_parameters={"folds": 4},
    )
    assert [r.status for r in result.results] == ["skipped", "failed"]
    assert result.failed[0].reason == "previous run did not finish"
    assert (
        main(
            [
                "batch",
                "--manifest",
                "manifest.yaml",
                "--grid",
                "sed=0",
                "--notebook",
                "fake_eval",
                "--runs-root",
                str(runs),
            ]
        )
        == 2
    )
    assert "'sed' is not declared" in capsys.readouterr().err


def test_jobs_2_runs_combinations_in_parallel_processes(tmp_path):
    root = tmp_path / "project"
    _write_notebook(root, "fake_eval", extra=BARRIER)
    (root / "manifest.yaml").write_text("cohort: {name: fake}\n")
    runs = tmp_path / "runs"
    result = run_batch(
        root / "manifest.yaml",
        {"seed": [0, 1]},
        notebooks=("fake_eval",),
        runs_root=runs,
        root=root,
        jobs=2,
        timeout_s=120,
    )
    assert result.ok, result.report()
    assert len(result.executed) == 2
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    envs = [json.loads((runs / f"seed-{s}" / "env.json").read_text()) for s in (0, 1)]
    assert [e["OMP_NUM_THREADS"] for e in envs] == [threads, threads]
    assert envs[0]["pid"] != envs[1]["pid"]
    for s in (0, 1):
        assert (runs / f"seed-{s}" / "batch.log").is_file()
        assert json.loads((runs / f"seed-{s}" / DONE_FILE).read_text())["threads"] == int(threads)
    assert not list(runs.glob(".batch-*"))  # worker specs cleaned up


def test_slurm_executor_through_submitit_local_gives_the_local_outputs(project, tmp_path, monkeypatch):
    from rgenima.batch import SUMMARY_CSV, ClusterOptions

    grid = {"seed": [0, 1], "modalities": ["snp"]}
    local = run_batch(
        project / "manifest.yaml",
        grid,
        notebooks=("fake_eval",),
        runs_root=tmp_path / "local",
        root=project,
        base_parameters={"folds": 3},
    )
    options = ClusterOptions(cluster="local", gpus_per_node=0, cpus_per_task=1, timeout_min=10)
    slurm = run_batch(
        project / "manifest.yaml",
        grid,
        notebooks=("fake_eval",),
        runs_root=tmp_path / "slurm",
        root=project,
        base_parameters={"folds": 3},
        executor="slurm",
        cluster=options,
    )
    assert local.ok and slurm.ok and len(slurm.executed) == 2
    assert [r.name for r in slurm.results] == [r.name for r in local.results]
    for r in slurm.results:
        # Each combination ran as its own submitit job, with the requested threads.
        assert r.log is not None and r.log.is_file() and ".submitit" in str(r.log)
        env = json.loads((r.run_dir / "env.json").read_text())
        assert env["OMP_NUM_THREADS"] == "1" and env["pid"] != os.getpid()
        same = tmp_path / "local" / r.name
        assert json.loads((r.run_dir / "metrics.json").read_text()) == json.loads((same / "metrics.json").read_text())
        assert (r.run_dir / DONE_FILE).is_file()
    summary = lambda root: (root / SUMMARY_CSV).read_text()  # noqa: E731
    assert summary(tmp_path / "slurm") == summary(tmp_path / "local")
    # Finished combinations are skipped as with the local executor: nothing is submitted.
    again = run_batch(
        project / "manifest.yaml",
        grid,
        notebooks=("fake_eval",),
        runs_root=tmp_path / "slurm",
        root=project,
        base_parameters={"folds": 3},
        executor="slurm",
        cluster=options,
    )
    assert len(again.skipped) == 2 and not again.executed
    job_folders = [p for p in (tmp_path / "slurm" / ".submitit").iterdir() if p.name.isdigit()]
    assert len(job_folders) == 2


def test_slurm_options_are_checked_before_anything_runs(project, tmp_path, capsys):
    from rgenima.batch import ClusterOptions

    with pytest.raises(ValueError, match="cpus >= 1"):
        run_batch(
            project / "manifest.yaml",
            {"seed": [0]},
            notebooks=("fake_eval",),
            runs_root=tmp_path / "r",
            root=project,
            executor="slurm",
            cluster=ClusterOptions(cpus_per_task=0),
        )
    with pytest.raises(ValueError, match="'executor' must be one of"):
        run_batch(
            project / "manifest.yaml",
            {"seed": [0]},
            notebooks=("fake_eval",),
            runs_root=tmp_path / "r",
            root=project,
            executor="pbs",
        )
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        main(["batch", "--manifest", str(project / "manifest.yaml"), "--grid", "seed=0", "--executor", "pbs"])
    assert "invalid choice: 'pbs'" in capsys.readouterr().err
