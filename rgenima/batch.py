"""Batch reruns: one papermill execution of the study notebooks per grid combination.

``rgenima batch --manifest FILE --grid seed=0,1,2 --grid modalities=mri,snp,mri+snp``
runs the batch notebooks (by default ``03_training`` then ``04_evaluation``) once for
every combination of the grid's values, each into its own run directory, and
summarises the metrics across seeds for the book's performance chapter.

Folder layout (``runs_root`` defaults to ``runs/``)::

    runs/
      batch_summary.csv               one row per (parameters except seed, configuration)
      batch_summary.json              the same rows, the grid and each combination's state
      modalities-mri__seed-0/         run_dir of one combination (see combination_name)
        notebooks/03_training.ipynb   executed notebooks (kept, with the error, on failure)
        notebooks/04_evaluation.ipynb
        metrics.json ...              whatever the notebooks write into run_dir
        batch.log                     worker log (only when jobs > 1)
        batch_done.json               written atomically, last: the combination is finished

A combination is *finished* when ``batch_done.json`` exists. It records the injected
parameters, the manifest's and every notebook's sha256, timings and versions. A
finished combination is skipped on the next call unless its parameters, the manifest
or a notebook changed, in which case it reruns (the reason is logged). A failed
combination leaves no ``batch_done.json``, so the next call reruns it.

With ``executor="slurm"`` (``rgenima batch --executor slurm``) every combination to
run is one SLURM job submitted through submitit (:class:`ClusterOptions`: partition,
GPUs, CPUs, memory, time); the submitting process waits for them, then aggregates as
the local executor does. The jobs' submitit files (pickled job, stdout, stderr) are
under ``runs_root/.submitit/``.

With ``jobs > 1`` every combination runs in its own worker process
(``python -m rgenima.batch SPEC.json``) whose environment limits the BLAS/OpenMP
threads to ``cores // jobs`` (the papermill kernel inherits that environment). Two
combinations never share a run directory; the notebooks must write only under their
``run_dir`` parameter, which every batch notebook has to declare.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from rgenima.fileio import atomic_write_text

logger = logging.getLogger(__name__)

#: Notebooks executed for every combination, in order (file stems in notebooks/).
BATCH_NOTEBOOKS: tuple[str, ...] = ("03_training", "04_evaluation")
#: Parameters the batch sets itself; they cannot be grid or base parameters.
RESERVED_PARAMETERS: tuple[str, ...] = ("manifest", "run_dir")
#: The grid parameter that the summary averages over.
SEED_PARAMETER = "seed"
#: Written last, atomically, into a combination's run_dir when it has finished.
DONE_FILE = "batch_done.json"
#: Summary files under runs_root.
SUMMARY_CSV = "batch_summary.csv"
SUMMARY_JSON = "batch_summary.json"
#: Metrics summarised across seeds (keys of metrics.json ``configurations.*.metrics``).
SUMMARY_METRICS: tuple[str, ...] = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auroc")
#: Thread-count variables set per worker when jobs > 1.
THREAD_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_VALUE_CHARS = 40
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")

Scalar = str | int | float | bool | None


# ---------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------
def coerce_value(text: str) -> Scalar:
    """A value typed on the command line: int, float, bool, None or str.

    YAML scalars as for ``rgenima run -p`` (:func:`rgenima.cli._parse_parameter`), plus
    Python's ``None`` and floats in exponent notation (``1e-3``), which YAML 1.1 reads as
    strings. Quote a value to keep it a string (``'"0"'``). Anything YAML would read as
    a list, mapping or date stays the text it was typed as.
    """
    from rgenima.cli import _parse_parameter

    if text.strip() == "None":
        return None
    value = _parse_parameter(text)
    if isinstance(value, str) and _FLOAT_RE.match(text.strip()):
        return float(text)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return text


def parse_grid(specs: Iterable[str], allowed: Iterable[str] | None = None) -> dict[str, list[Scalar]]:
    """Parse ``NAME=V1,V2,...`` specifications into a grid.

    Parameters
    ----------
    specs : iterable of str
        One specification per parameter, e.g. ``["seed=0,1,2", "modalities=mri,snp"]``.
        Values are coerced by :func:`coerce_value`; commas cannot occur inside a value.
    allowed : iterable of str, optional
        Parameter names the batch notebooks declare (:func:`declared_parameters`); when
        given, any other name is an error.

    Returns
    -------
    grid : dict of str to list
        Parameter name -> its values, in the order given.

    Raises
    ------
    ValueError
        On a specification without ``=``, an empty or invalid name, a name given twice,
        an empty value, a value given twice, a reserved or an undeclared name.
    """
    grid: dict[str, list[Scalar]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"grid {spec!r}: expected NAME=V1,V2,... (e.g. seed=0,1,2)")
        if not _NAME_RE.match(name):
            raise ValueError(f"grid {spec!r}: {name!r} is not a parameter name (a Python identifier)")
        if name in grid:
            raise ValueError(f"grid {spec!r}: parameter {name!r} is given twice; list all its values once")
        items = [v.strip() for v in values.split(",")]
        if not values.strip():
            raise ValueError(f"grid {spec!r}: no values for {name!r}")
        empty = [i + 1 for i, v in enumerate(items) if not v]
        if empty:
            raise ValueError(f"grid {spec!r}: value {empty[0]} of {name!r} is empty")
        grid[name] = [coerce_value(v) for v in items]
    check_grid(grid, allowed)
    return grid


def check_grid(grid: dict[str, Sequence[Scalar]], allowed: Iterable[str] | None = None) -> None:
    """Check a grid built in Python or by :func:`parse_grid`; raise ValueError if invalid."""
    if not grid:
        raise ValueError("the grid is empty: give at least one NAME=V1,V2 (e.g. seed=0,1,2)")
    allowed_set = set(allowed) if allowed is not None else None
    for name, values in grid.items():
        check_parameter_name(name, allowed_set, what="grid parameter")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid parameter {name!r} must be a list of values; got {values!r}")
        if not values:
            raise ValueError(f"grid parameter {name!r} has no values")
        seen: list[str] = []
        for value in values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ValueError(
                    f"grid parameter {name!r}: values must be str, int, float, bool or None; "
                    f"got {value!r} ({type(value).__name__})"
                )
            key = json.dumps(value)
            if key in seen:
                raise ValueError(f"grid parameter {name!r}: value {value!r} is given twice")
            seen.append(key)


def check_parameter_name(name: str, allowed: set[str] | None, what: str = "parameter") -> None:
    """Raise ValueError if ``name`` is reserved or (when ``allowed`` is given) undeclared."""
    if name in RESERVED_PARAMETERS:
        raise ValueError(
            f"{what} {name!r} is set by the batch itself (--manifest and the combination's "
            f"run directory); it cannot be varied or overridden"
        )
    if allowed is not None and name not in allowed:
        choices = ", ".join(sorted(set(allowed) - set(RESERVED_PARAMETERS)))
        raise ValueError(
            f"{what} {name!r} is not declared by the batch notebooks; allowed: {choices}"
        )


def declared_parameters(root: Path, notebooks: Sequence[str] = BATCH_NOTEBOOKS) -> dict[str, list[str]]:
    """Parameters declared by the batch notebooks: name -> the notebooks declaring it.

    Raises
    ------
    FileNotFoundError
        When a notebook is missing from ``root/notebooks``.
    ValueError
        When a notebook does not declare ``run_dir``: its outputs could not be kept
        apart per combination.
    """
    import papermill as pm

    declared: dict[str, list[str]] = {}
    for name in notebooks:
        path = Path(root) / "notebooks" / f"{name}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"batch notebook {path}: not found")
        try:
            params = pm.inspect_notebook(str(path))
        except ValueError as exc:  # e.g. no kernelspec in the notebook's metadata
            raise ValueError(f"batch notebook {path}: cannot read its parameters: {exc}") from exc
        if "run_dir" not in params:
            raise ValueError(
                f"batch notebook {path} does not declare a 'run_dir' parameter in its "
                f"parameters cell; batch runs need it to keep combinations apart"
            )
        for p in params:
            declared.setdefault(p, []).append(name)
    return declared


def combinations(grid: dict[str, Sequence[Scalar]]) -> list[dict[str, Scalar]]:
    """Every combination of the grid's values (cartesian product).

    The order is deterministic: parameters in the grid's order, the first one varying
    slowest, values in the order given.
    """
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def _format_value(value: Scalar) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, float) else str(value)
    safe = _UNSAFE_RE.sub("_", text)
    if len(safe) > _MAX_VALUE_CHARS or (isinstance(value, str) and not value):
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[:_MAX_VALUE_CHARS - 9]}-{digest}" if safe else f"empty-{digest}"
    return safe


def combination_name(params: dict[str, Scalar]) -> str:
    """Folder name of a combination, e.g. ``modalities-mri+snp__seed-0``.

    Keys sorted; ``NAME-VALUE`` pairs joined by ``__``; characters outside
    ``[A-Za-z0-9._+-]`` become ``_``; a value longer than 40 characters is cut and
    suffixed with a hash of the full value, so that the name stays readable and stable.
    """
    if not params:
        raise ValueError("a combination needs at least one parameter")
    return "__".join(f"{_UNSAFE_RE.sub('_', k)}-{_format_value(params[k])}" for k in sorted(params))


# ---------------------------------------------------------------------------------
# One combination
# ---------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """Parameters as stored in batch_done.json (tuples -> lists, paths -> str)."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class _Plan:
    """What one combination runs: everything a worker process needs."""

    name: str
    grid_values: dict[str, Any]
    parameters: dict[str, Any]
    run_dir: str
    root: str
    notebooks: list[str]
    notebook_sha256: dict[str, str]
    manifest_sha256: str
    timeout_s: int | None
    threads: int | None = None


@dataclass
class CombinationResult:
    """Outcome of one combination in :func:`run_batch`.

    ``status`` is ``"done"`` (executed now), ``"skipped"`` (finished before, unchanged)
    or ``"failed"``; ``reason`` says why it ran or was skipped; ``error`` is the failing
    notebook and cell's error summary; ``seconds`` is wall time of this call.
    """

    name: str
    parameters: dict[str, Any]
    run_dir: Path
    status: str
    reason: str = ""
    error: str | None = None
    seconds: float = 0.0
    log: Path | None = None


def _rerun_reason(done_path: Path, plan: _Plan) -> str | None:
    """Why a combination must run; None when it finished with the same inputs."""
    if not done_path.is_file():
        return "previous run did not finish" if done_path.parent.exists() else "not run yet"
    try:
        done = json.loads(done_path.read_text())
        old_params = dict(done["parameters"])
        old_hashes = {nb["name"]: nb["sha256"] for nb in done["notebooks"]}
        old_manifest = done["manifest_sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"{done_path.name} unreadable ({exc})"
    reasons = []
    new_params = _jsonable(plan.parameters)
    ignore = set(RESERVED_PARAMETERS)  # location of the run and of the manifest: hashes count
    for key in sorted((set(old_params) | set(new_params)) - ignore):
        old, new = old_params.get(key, "<unset>"), new_params.get(key, "<unset>")
        if old != new:
            reasons.append(f"parameter {key}: {old!r} -> {new!r}")
    if old_manifest != plan.manifest_sha256:
        reasons.append("manifest changed")
    if list(old_hashes) != plan.notebooks:
        reasons.append(f"notebooks {list(old_hashes)} -> {plan.notebooks}")
    else:
        reasons += [f"notebook {n}.ipynb changed" for n in plan.notebooks
                    if old_hashes[n] != plan.notebook_sha256[n]]
    return "; ".join(reasons) or None


def _error_summary(notebook: str, exc: BaseException) -> str:
    """One line: notebook, cell and error (papermill's cell error when there is one)."""
    import papermill as pm

    if isinstance(exc, pm.PapermillExecutionError):
        return f"{notebook}.ipynb cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    text = str(exc).strip().splitlines()
    return f"{notebook}.ipynb: {type(exc).__name__}: {text[0] if text else ''}"


def run_combination(plan: _Plan) -> dict[str, Any]:
    """Execute one combination's notebooks; write batch_done.json last if all succeed.

    Returns ``{"status": "done"|"failed", "error": str|None, "seconds": float}``.
    """
    from rgenima import __version__
    from rgenima.book import _kernel_name, execute_notebooks

    run_dir = Path(plan.run_dir)
    (run_dir / DONE_FILE).unlink(missing_ok=True)
    out_dir = run_dir / "notebooks"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    started, t0 = _now(), time.perf_counter()
    timings = []
    for name in plan.notebooks:
        t = time.perf_counter()
        try:
            execute_notebooks(plan.parameters, Path(plan.root), out_dir, notebooks=(name,),
                              timeout_s=plan.timeout_s)
        except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
            logger.debug("combination %s failed", plan.name, exc_info=True)
            return {"status": "failed", "error": _error_summary(name, exc),
                    "seconds": time.perf_counter() - t0}
        timings.append({"name": name, "sha256": plan.notebook_sha256[name],
                        "executed": f"notebooks/{name}.ipynb",
                        "seconds": round(time.perf_counter() - t, 3)})
    import papermill

    record = {
        "name": plan.name,
        "grid": plan.grid_values,
        "parameters": _jsonable(plan.parameters),
        "manifest_sha256": plan.manifest_sha256,
        "notebooks": timings,
        "started_at": started,
        "finished_at": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "threads": plan.threads,
        "kernel": _kernel_name(),
        "versions": {"rgenima": __version__, "papermill": papermill.__version__,
                     "python": sys.version.split()[0]},
    }
    atomic_write_text(run_dir / DONE_FILE, json.dumps(record, indent=2) + "\n")
    return {"status": "done", "error": None, "seconds": time.perf_counter() - t0}


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_in_worker(plan: _Plan, tmp: Path) -> dict[str, Any]:
    """Run one combination in ``python -m rgenima.batch`` with its own thread limits."""
    import rgenima

    spec, result_path = tmp / f"{plan.name}.spec.json", tmp / f"{plan.name}.result.json"
    spec.write_text(json.dumps({"plan": asdict(plan), "result": str(result_path)}))
    env = dict(os.environ)
    env.update({var: str(plan.threads) for var in THREAD_VARIABLES})
    package_parent = str(Path(rgenima.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    log = Path(plan.run_dir) / "batch.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "rgenima.batch", str(spec)], env=env,
                              stdout=fh, stderr=subprocess.STDOUT, cwd=plan.root)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    return {"status": "failed", "seconds": time.perf_counter() - t0,
            "error": f"worker exited with code {proc.returncode}" + (f": {tail[0]}" if tail else "")}


def _worker_main(spec_path: str) -> int:
    """Entry of ``python -m rgenima.batch SPEC.json`` (one combination, jobs > 1)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = json.loads(Path(spec_path).read_text())
    plan = _Plan(**spec["plan"])
    logger.info("combination %s in process %d with %s threads", plan.name, os.getpid(), plan.threads)
    result = run_combination(plan)
    if result["error"]:
        logger.error("combination %s failed: %s", plan.name, result["error"])
    atomic_write_text(spec["result"], json.dumps(result))
    return 0 if result["status"] == "done" else 1


# ---------------------------------------------------------------------------------
# SLURM through submitit
# ---------------------------------------------------------------------------------
#: Executors of :func:`run_batch`.
EXECUTORS: tuple[str, ...] = ("local", "slurm")
#: Folder of submitit's job files under runs_root.
SUBMITIT_FOLDER = ".submitit"


@dataclass
class ClusterOptions:
    """Resources requested for each combination's job when ``executor="slurm"``.

    Parameters
    ----------
    partition : str, optional
        SLURM partition (``--partition``); default: the cluster's default.
    gpus_per_node : int
        GPUs per job (``--gpus-per-node``); 0 for CPU-only jobs.
    cpus_per_task : int
        CPU cores per job; the BLAS/OpenMP threads of the job are set to this.
    mem_gb : float
        Memory per job in GB.
    timeout_min : int
        Time limit of the job in minutes (``--time``). A combination whose job hits it
        is reported failed; rerunning the batch resumes it from its finished folds.
    account : str, optional
        SLURM account (``--account``).
    cluster : str
        submitit's cluster: ``"slurm"``, or ``"local"`` to run the same jobs as local
        processes through submitit (used by the tests, and to try a grid on one machine).
    """

    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 4
    mem_gb: float = 16.0
    timeout_min: int = 24 * 60
    account: str | None = None
    cluster: str = "slurm"

    def check(self) -> None:
        """Raise ValueError naming the option that is out of range."""
        if self.cluster not in ("slurm", "local"):
            raise ValueError(f"ClusterOptions.cluster must be 'slurm' or 'local'; got {self.cluster!r}")
        if self.gpus_per_node < 0 or self.cpus_per_task < 1 or self.mem_gb <= 0 or self.timeout_min < 1:
            raise ValueError(
                f"cluster options: gpus >= 0, cpus >= 1, memory > 0 and time >= 1 minute; got {asdict(self)}"
            )

    def executor(self, folder: Path):
        """A configured ``submitit.AutoExecutor`` writing its files to ``folder``."""
        import submitit

        self.check()
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=self.cluster)
        params: dict[str, Any] = {"name": "rgenima-batch", "timeout_min": int(self.timeout_min),
                                  "gpus_per_node": int(self.gpus_per_node)}
        if self.cluster == "slurm":
            params.update(cpus_per_task=int(self.cpus_per_task), mem_gb=float(self.mem_gb))
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.account:
                params["slurm_account"] = self.account
        executor.update_parameters(**params)
        return executor


def _run_cluster_job(plan: _Plan) -> dict[str, Any]:
    """Body of one submitit job: the combination with ``plan.threads`` BLAS/OpenMP threads."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if plan.threads:
        os.environ.update({var: str(plan.threads) for var in THREAD_VARIABLES})
    logger.info("combination %s in job process %d with %s threads", plan.name, os.getpid(), plan.threads)
    return run_combination(plan)


def _run_on_cluster(todo: list[tuple[_Plan, str]], runs_root: Path, options: ClusterOptions, record, bar,
                    poll_s: float = 2.0) -> None:
    """Submit one job per combination, wait for all, ``record`` each outcome as it ends."""
    executor = options.executor(runs_root / SUBMITIT_FOLDER)
    jobs = []
    for plan, reason in todo:
        job = executor.submit(_run_cluster_job, plan)
        logger.info("submitted %s (%s) as job %s; log: %s", plan.name, reason, job.job_id, job.paths.stdout)
        jobs.append((job, plan, reason))
    pending = list(jobs)
    while pending:
        still = []
        for job, plan, reason in pending:
            if not job.done():
                still.append((job, plan, reason))
                continue
            try:
                outcome = job.result()
            except Exception as exc:  # noqa: BLE001 - a job that died, was cancelled or timed out
                text = str(exc).strip().splitlines()
                outcome = {"status": "failed", "error": f"job {job.job_id} {type(exc).__name__}: "
                                                        f"{text[-1] if text else ''}"}
            record(plan, reason, outcome, Path(job.paths.stdout))
            bar.set_postfix_str(plan.name)
            bar.update()
        pending = still
        if pending:
            time.sleep(poll_s)


# ---------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """Outcome of :func:`run_batch`: one :class:`CombinationResult` per combination."""

    runs_root: Path
    grid: dict[str, list[Any]]
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
    grid: dict[str, Sequence[Scalar]],
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

    from rgenima.progress import progress_bar

    from rgenima.book import project_root

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
    hashes = {n: _sha256(root / "notebooks" / f"{n}.ipynb") for n in notebooks}
    manifest_sha = _sha256(manifest)
    if executor == "slurm":
        threads = int(cluster.cpus_per_task)
    else:
        threads = max(1, _available_cores() // jobs) if jobs > 1 else None
    plans = []
    for combo, name in zip(combos, names):
        run_dir = runs_root / name
        params = {**base, **combo, "manifest": str(manifest), "run_dir": str(run_dir)}
        plans.append(_Plan(name=name, grid_values=_jsonable(combo), parameters=params, run_dir=str(run_dir),
                           root=str(root), notebooks=notebooks, notebook_sha256=hashes,
                           manifest_sha256=manifest_sha, timeout_s=timeout_s, threads=threads))

    results: dict[str, CombinationResult] = {}
    todo: list[tuple[_Plan, str]] = []
    for plan in plans:
        reason = "forced (--force)" if force else _rerun_reason(Path(plan.run_dir) / DONE_FILE, plan)
        if reason is None:
            logger.info("skip %s: finished (%s)", plan.name, DONE_FILE)
            results[plan.name] = CombinationResult(plan.name, plan.grid_values, Path(plan.run_dir),
                                                   "skipped", reason="finished, inputs unchanged")
        else:
            todo.append((plan, reason))
    logger.info("batch: %d combinations, %d to run, %d finished; %s%s", len(plans), len(todo),
                len(plans) - len(todo), f"jobs={jobs}" if executor == "local" else f"SLURM ({cluster.cluster}) jobs",
                f", {threads} threads each" if threads else "")

    def record(plan: _Plan, reason: str, outcome: dict[str, Any], log: Path | None) -> None:
        res = CombinationResult(plan.name, plan.grid_values, Path(plan.run_dir), outcome["status"],
                                reason=reason, error=outcome.get("error"),
                                seconds=float(outcome.get("seconds", 0.0)), log=log)
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
            with tempfile.TemporaryDirectory(prefix=".batch-", dir=runs_root) as tmp, \
                    ThreadPoolExecutor(max_workers=jobs) as pool:
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


# ---------------------------------------------------------------------------------
# Summary across seeds
# ---------------------------------------------------------------------------------
def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def aggregate(
    runs_root: str | Path,
    combinations: Sequence[dict[str, Scalar]],
    seed_parameter: str = SEED_PARAMETER,
) -> pd.DataFrame:
    """Summarise the finished combinations' metrics.json across seeds.

    Parameters
    ----------
    runs_root : path
        Parent of the run directories.
    combinations : sequence of dict
        The grid's combinations (:func:`combinations`); only those with
        ``batch_done.json`` and ``metrics.json`` in their run directory are read.
    seed_parameter : str
        The parameter averaged over; every other parameter defines a group.

    Returns
    -------
    summary : DataFrame of shape (n_groups * n_configurations, n_parameters + 4 + 4 * 4)
        One row per (parameters except the seed, configuration), in grid then
        metrics.json order. Columns: the grid parameters except the seed,
        ``configuration``, ``role``, ``n_seeds``, ``seeds`` (comma-separated), then for
        each of balanced_accuracy, accuracy, macro_f1, macro_auroc: ``<metric>_mean``,
        ``<metric>_sd`` (sample SD, ddof=1; NaN for one seed), ``<metric>_min``,
        ``<metric>_max``. Undefined (null) metric values are skipped.

    Also writes ``runs_root/batch_summary.csv`` and ``runs_root/batch_summary.json``
    (the rows, the grid and each combination's state) atomically.
    """
    from rgenima.evaluate import load_metrics

    runs_root = Path(runs_root)
    group_names = [k for k in (combinations[0] if combinations else {}) if k != seed_parameter]
    groups: dict[str, dict[str, Any]] = {}
    states = []
    for combo in combinations:
        name = combination_name(combo)
        run_dir = runs_root / name
        finished = (run_dir / DONE_FILE).is_file()
        has_metrics = finished and (run_dir / "metrics.json").is_file()
        states.append({"name": name, "parameters": _jsonable(combo), "finished": finished,
                       "metrics": has_metrics})
        if finished and not has_metrics:
            logger.warning("combination %s finished without %s; left out of the summary",
                           name, run_dir / "metrics.json")
        if not has_metrics:
            continue
        metrics = load_metrics(run_dir)
        key_values = {k: combo[k] for k in group_names}
        group = groups.setdefault(json.dumps(key_values), {"values": key_values, "configs": {}})
        for config, entry in metrics["configurations"].items():
            c = group["configs"].setdefault(config, {"role": entry.get("role"), "seeds": [],
                                                     **{m: [] for m in SUMMARY_METRICS}})
            c["seeds"].append(combo.get(seed_parameter))
            for m in SUMMARY_METRICS:
                c[m].append(_float(entry["metrics"].get(m)))

    rows = []
    for group in groups.values():
        for config, c in group["configs"].items():
            row = {**group["values"], "configuration": config, "role": c["role"],
                   "n_seeds": len(c["seeds"]), "seeds": ",".join(str(s) for s in c["seeds"])}
            for m in SUMMARY_METRICS:
                values = pd.Series(c[m], dtype=float)
                row.update({f"{m}_mean": values.mean(), f"{m}_sd": values.std(ddof=1),
                            f"{m}_min": values.min(), f"{m}_max": values.max()})
            rows.append(row)
    columns = [*group_names, "configuration", "role", "n_seeds", "seeds",
               *(f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "sd", "min", "max"))]
    table = pd.DataFrame(rows, columns=columns)

    grid: dict[str, list[Any]] = {}
    for combo in combinations:
        for k, v in combo.items():
            if v not in grid.setdefault(k, []):
                grid[k].append(v)
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
               for row in table.astype(object).to_dict(orient="records")]
    payload = {"grid": _jsonable(grid), "seed_parameter": seed_parameter, "metrics": list(SUMMARY_METRICS),
               "columns": columns, "combinations": states, "rows": records}
    atomic_write_text(runs_root / SUMMARY_CSV, table.to_csv(index=False))
    atomic_write_text(runs_root / SUMMARY_JSON, json.dumps(payload, indent=2, default=str) + "\n")
    logger.info("batch summary: %d rows from %d finished combinations -> %s", len(table),
                sum(s["metrics"] for s in states), runs_root / SUMMARY_CSV)
    return table


def load_batch_summary(runs_root: str | Path = "runs") -> pd.DataFrame:
    """Read the summary written by :func:`aggregate` (for the book's performance chapter).

    Returns the table of :func:`aggregate` (None grid values stay None); the grid,
    the seed parameter and each combination's state are in ``table.attrs``.

    Raises
    ------
    FileNotFoundError
        When ``runs_root/batch_summary.json`` does not exist (run ``rgenima batch``).
    """
    path = Path(runs_root) / SUMMARY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `rgenima batch --manifest ... --grid ...` first")
    payload = json.loads(path.read_text())
    table = pd.DataFrame(payload["rows"], columns=payload["columns"])
    for column in table.columns:
        if column.endswith(("_mean", "_sd", "_min", "_max")):
            table[column] = table[column].astype(float)
    table.attrs.update({k: payload[k] for k in ("grid", "seed_parameter", "combinations")})
    return table


def format_summary(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Display form of a summary: ``mean ± sd (n=…)`` per metric, for the book.

    Returns a DataFrame indexed by the grid parameters and configuration, with one
    text column per metric.
    """
    index = [c for c in table.columns if c not in ("role", "n_seeds", "seeds") and
             not c.endswith(("_mean", "_sd", "_min", "_max"))]
    out = table[index].copy()
    for m in SUMMARY_METRICS:
        mean, sd = table[f"{m}_mean"], table[f"{m}_sd"]
        out[m] = [
            "n/a" if math.isnan(a) else f"{a:.{digits}f}" if math.isnan(s) else f"{a:.{digits}f} ± {s:.{digits}f}"
            for a, s in zip(mean, sd)
        ]
    out["n_seeds"] = table["n_seeds"]
    return out.set_index(index)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m rgenima.batch SPEC.json (internal: one batch combination)", file=sys.stderr)
        sys.exit(2)
    sys.exit(_worker_main(sys.argv[1]))
