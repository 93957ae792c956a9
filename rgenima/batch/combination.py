"""One combination of the grid: its plan, whether it must rerun, its execution (here or in a
worker process, ``python -m rgenima.batch SPEC.json``) and ``batch_done.json``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rgenima._utils.jsonsafe import json_safe
from rgenima.batch.grid import RESERVED_PARAMETERS
from rgenima.fileio import atomic_write_text

# One logger for the whole batch (its records are named as before the split into modules).
logger = logging.getLogger("rgenima.batch")

#: Written last, atomically, into a combination's run_dir when it has finished.
DONE_FILE = "batch_done.json"
#: Thread-count variables set per worker when jobs > 1.
THREAD_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    new_params = json_safe(plan.parameters)
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
        reasons += [f"notebook {n}.ipynb changed" for n in plan.notebooks if old_hashes[n] != plan.notebook_sha256[n]]
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
            execute_notebooks(plan.parameters, Path(plan.root), out_dir, notebooks=(name,), timeout_s=plan.timeout_s)
        except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
            logger.debug("combination %s failed", plan.name, exc_info=True)
            return {"status": "failed", "error": _error_summary(name, exc), "seconds": time.perf_counter() - t0}
        timings.append(
            {
                "name": name,
                "sha256": plan.notebook_sha256[name],
                "executed": f"notebooks/{name}.ipynb",
                "seconds": round(time.perf_counter() - t, 3),
            }
        )
    import papermill

    record = {
        "name": plan.name,
        "grid": plan.grid_values,
        "parameters": json_safe(plan.parameters),
        "manifest_sha256": plan.manifest_sha256,
        "notebooks": timings,
        "started_at": started,
        "finished_at": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "threads": plan.threads,
        "kernel": _kernel_name(),
        "versions": {"rgenima": __version__, "papermill": papermill.__version__, "python": sys.version.split()[0]},
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
        proc = subprocess.run(
            [sys.executable, "-m", "rgenima.batch", str(spec)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=plan.root,
        )
    if result_path.is_file():
        return json.loads(result_path.read_text())
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    return {
        "status": "failed",
        "seconds": time.perf_counter() - t0,
        "error": f"worker exited with code {proc.returncode}" + (f": {tail[0]}" if tail else ""),
    }


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
