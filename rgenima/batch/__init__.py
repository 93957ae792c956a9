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

Modules: :mod:`~rgenima.batch.grid` (the grid and its combinations),
:mod:`~rgenima.batch.combination` (one combination, the worker process),
:mod:`~rgenima.batch.slurm` (submitit), :mod:`~rgenima.batch.runner` (:func:`run_batch`)
and :mod:`~rgenima.batch.summary` (across seeds); the public names are re-exported here.
"""

from rgenima._utils.params import Scalar, coerce_value
from rgenima.batch.combination import DONE_FILE, THREAD_VARIABLES, CombinationResult, run_combination
from rgenima.batch.grid import (
    BATCH_NOTEBOOKS,
    RESERVED_PARAMETERS,
    SEED_PARAMETER,
    check_grid,
    check_parameter_name,
    combination_name,
    combinations,
    declared_parameters,
    parse_grid,
)
from rgenima.batch.runner import BatchResult, run_batch
from rgenima.batch.slurm import EXECUTORS, SUBMITIT_FOLDER, ClusterOptions
from rgenima.batch.summary import (
    SUMMARY_CSV,
    SUMMARY_JSON,
    SUMMARY_METRICS,
    aggregate,
    format_summary,
    load_batch_summary,
)

__all__ = [
    "BATCH_NOTEBOOKS",
    "DONE_FILE",
    "EXECUTORS",
    "RESERVED_PARAMETERS",
    "SEED_PARAMETER",
    "SUBMITIT_FOLDER",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "SUMMARY_METRICS",
    "THREAD_VARIABLES",
    "BatchResult",
    "ClusterOptions",
    "CombinationResult",
    "Scalar",
    "aggregate",
    "check_grid",
    "check_parameter_name",
    "coerce_value",
    "combination_name",
    "combinations",
    "declared_parameters",
    "format_summary",
    "load_batch_summary",
    "parse_grid",
    "run_batch",
    "run_combination",
]
