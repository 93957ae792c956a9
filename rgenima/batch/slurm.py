"""SLURM execution of the batch through submitit: one job per combination."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rgenima.batch.combination import THREAD_VARIABLES, _Plan, run_combination

# One logger for the whole batch (its records are named as before the split into modules).
logger = logging.getLogger("rgenima.batch")


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
        params: dict[str, Any] = {
            "name": "rgenima-batch",
            "timeout_min": int(self.timeout_min),
            "gpus_per_node": int(self.gpus_per_node),
        }
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


def _run_on_cluster(
    todo: list[tuple[_Plan, str]], runs_root: Path, options: ClusterOptions, record, bar, poll_s: float = 2.0
) -> None:
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
                outcome = {
                    "status": "failed",
                    "error": f"job {job.job_id} {type(exc).__name__}: {text[-1] if text else ''}",
                }
            record(plan, reason, outcome, Path(job.paths.stdout))
            bar.set_postfix_str(plan.name)
            bar.update()
        pending = still
        if pending:
            time.sleep(poll_s)
