"""The batch: every combination of the grid run (or skipped when finished), then the summary."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rgenima._utils.hashing import sha256_file
from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.params import Scalar
from rgenima.batch.combination import (
    DONE_FILE,
    CombinationResult,
    _available_cores,
    _Plan,
    _rerun_reason,
    _run_in_worker,
    run_combination,
)
from rgenima.batch.grid import (
    BATCH_NOTEBOOKS,
    check_grid,
    check_parameter_name,
    combination_name,
    combinations,
    declared_parameters,
)
from rgenima.batch.slurm import EXECUTORS, ClusterOptions, _run_on_cluster
from rgenima.batch.summary import SUMMARY_CSV, aggregate

# One logger for the whole batch (its records are named as before the split into modules).
logger = logging.getLogger("rgenima.batch")


@dataclass
class BatchResult:
    """Outcome of :func:`run_batch`: one :class:`CombinationResult` per combination."""

    runs_root: Path
    grid: Mapping[str, Sequence[Scalar]]
    results: list[CombinationResult] = field(default_factory=list)
    summary: pd.DataFrame | None = None

    @property
    def executed(self) -> list[CombinationResult]:
        return [r for r in self.results if r.status == "done"]

    @property
    def skipped(self) -> list[CombinationResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def failed(self) -> list[CombinationResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no combination failed."""
        return not self.failed

    def report(self) -> str:
        """Human-readable summary: counts, then one line per failed combination."""
        lines = [
            f"batch of {len(self.results)} combinations under {self.runs_root}: "
            f"{len(self.executed)} run, {len(self.skipped)} skipped (finished), "
            f"{len(self.failed)} failed"
        ]
        for r in self.failed:
            where = f" (log: {r.log})" if r.log else ""
            lines.append(f"FAILED {r.name}: {r.error}{where}")
        if self.summary is not None:
            lines.append(f"summary: {self.runs_root / SUMMARY_CSV} ({len(self.summary)} rows)")
        return "\n".join(lines)


def run_batch(
    manifest: str | Path,
    grid: Mapping[str, Sequence[Scalar]],
    notebooks: Sequence[str] = BATCH_NOTEBOOKS,
    runs_root: str | Path = "runs",
    jobs: int = 1,
    base_parameters: dict[str, Any] | None = None,
    root: str | Path | None = None,
    timeout_s: int | None = None,
    force: bool = False,
    executor: str = "local",
    cluster: ClusterOptions | None = None,
) -> BatchResult:
    """Run the batch notebooks once per grid combination, then summarise across seeds.

    Parameters
    ----------
    manifest : path
        data_manifest.yaml, injected as ``manifest`` (absolute path).
    grid : dict of str to list
        Parameter -> values (:func:`parse_grid`); names must be declared by the notebooks.
    notebooks : sequence of str
        Notebook stems in ``root/notebooks``, executed in order for each combination.
    runs_root : path
        Parent of the run directories (relative paths are relative to the current
        directory); each combination runs in ``runs_root/<combination_name>`` and gets
        that absolute path as ``run_dir``.
    jobs : int
        Combinations run at the same time; above 1 each runs in a worker process with
        ``cores // jobs`` BLAS/OpenMP threads and logs to ``run_dir/batch.log``.
    base_parameters : dict, optional
        Parameters injected into every combination (``-p NAME VALUE``); a name cannot be
        both a grid and a base parameter.
    root : path, optional
        Project root holding ``notebooks/``; default :func:`rgenima.book.project_root`.
    timeout_s : int, optional
        Per-cell wall-clock limit in seconds; None (default): none (a dead kernel is
        still detected).
    force : bool
        Rerun finished combinations too.
    executor : {"local", "slurm"}
        ``local``: this machine (``jobs`` at a time); ``slurm``: one SLURM job per
        combination through submitit, with the resources of ``cluster`` (``jobs`` is
        then ignored: the cluster schedules them).
    cluster : ClusterOptions, optional
        Resources of each job for ``executor="slurm"`` (default: ``ClusterOptions()``).

    Returns
    -------
    BatchResult
        Per-combination status; ``summary`` is the table of :func:`aggregate`.

    Raises
    ------
    ValueError, FileNotFoundError
        On an invalid grid or parameter, a missing manifest or notebook; checked before
        anything runs.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from rgenima.book import project_root
    from rgenima.progress import progress_bar

    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"'jobs' must be a positive integer; got {jobs!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"'executor' must be one of {EXECUTORS}; got {executor!r}")
    cluster = cluster or ClusterOptions()
    if executor == "slurm":
        cluster.check()
    root = Path(root).resolve() if root is not None else project_root()
    manifest = Path(manifest).resolve()
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest}: not found")
    notebooks = list(notebooks)
    if not notebooks:
        raise ValueError("'notebooks' is empty: name at least one batch notebook")
    declared = declared_parameters(root, notebooks)
    check_grid(grid, declared)
    base = {k: str(v) if isinstance(v, Path) else v for k, v in (base_parameters or {}).items()}
    for name in base:
        check_parameter_name(name, set(declared), what="parameter")
        if name in grid:
            raise ValueError(f"parameter {name!r} is both a grid parameter and a base parameter (-p)")
    grid = {k: list(v) for k, v in grid.items()}
    combos = combinations(grid)
    names = [combination_name(c) for c in combos]
    if len(set(names)) != len(names):
        clash = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two combinations map to the folder name {clash!r}; use distinct values")

    runs_root = Path(runs_root).resolve()
    runs_root.mkdir(parents=True, exist_ok=True)
    hashes = {n: sha256_file(root / "notebooks" / f"{n}.ipynb") for n in notebooks}
    manifest_sha = sha256_file(manifest)
    threads: int | None
    if executor == "slurm":
        threads = int(cluster.cpus_per_task)
    else:
        threads = max(1, _available_cores() // jobs) if jobs > 1 else None
    plans = []
    for combo, name in zip(combos, names):
        run_dir = runs_root / name
        params = {**base, **combo, "manifest": str(manifest), "run_dir": str(run_dir)}
        plans.append(
            _Plan(
                name=name,
                grid_values=json_safe(combo),
                parameters=params,
                run_dir=str(run_dir),
                root=str(root),
                notebooks=notebooks,
                notebook_sha256=hashes,
                manifest_sha256=manifest_sha,
                timeout_s=timeout_s,
                threads=threads,
            )
        )

    results: dict[str, CombinationResult] = {}
    todo: list[tuple[_Plan, str]] = []
    for plan in plans:
        reason = "forced (--force)" if force else _rerun_reason(Path(plan.run_dir) / DONE_FILE, plan)
        if reason is None:
            logger.info("skip %s: finished (%s)", plan.name, DONE_FILE)
            results[plan.name] = CombinationResult(
                plan.name, plan.grid_values, Path(plan.run_dir), "skipped", reason="finished, inputs unchanged"
            )
        else:
            todo.append((plan, reason))
    logger.info(
        "batch: %d combinations, %d to run, %d finished; %s%s",
        len(plans),
        len(todo),
        len(plans) - len(todo),
        f"jobs={jobs}" if executor == "local" else f"SLURM ({cluster.cluster}) jobs",
        f", {threads} threads each" if threads else "",
    )

    def record(plan: _Plan, reason: str, outcome: dict[str, Any], log: Path | None) -> None:
        res = CombinationResult(
            plan.name,
            plan.grid_values,
            Path(plan.run_dir),
            outcome["status"],
            reason=reason,
            error=outcome.get("error"),
            seconds=float(outcome.get("seconds", 0.0)),
            log=log,
        )
        results[plan.name] = res
        if res.status == "done":
            logger.info("finished %s in %.1f s", plan.name, res.seconds)
        else:
            logger.error("FAILED %s: %s", plan.name, res.error)

    with logging_redirect_tqdm(), progress_bar(total=len(todo), desc="batch", unit="run") as bar:
        for plan, _ in todo:
            Path(plan.run_dir).mkdir(parents=True, exist_ok=True)
            (Path(plan.run_dir) / DONE_FILE).unlink(missing_ok=True)
        if executor == "slurm" and todo:
            _run_on_cluster(todo, runs_root, cluster, record, bar)
        elif jobs == 1:
            for plan, reason in todo:
                logger.info("running %s (%s)", plan.name, reason)
                bar.set_postfix_str(plan.name)
                record(plan, reason, run_combination(plan), None)
                bar.update()
        elif todo:
            with (
                tempfile.TemporaryDirectory(prefix=".batch-", dir=runs_root) as tmp,
                ThreadPoolExecutor(max_workers=jobs) as pool,
            ):
                futures = {}
                for plan, reason in todo:
                    logger.info("running %s (%s); log: %s", plan.name, reason, Path(plan.run_dir) / "batch.log")
                    futures[pool.submit(_run_in_worker, plan, Path(tmp))] = (plan, reason)
                for future in as_completed(futures):
                    plan, reason = futures[future]
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. the worker could not start
                        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    record(plan, reason, outcome, Path(plan.run_dir) / "batch.log")
                    bar.set_postfix_str(plan.name)
                    bar.update()

    batch = BatchResult(runs_root=runs_root, grid=grid, results=[results[p.name] for p in plans])
    batch.summary = aggregate(runs_root, combos)
    return batch
