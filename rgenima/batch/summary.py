"""Summary of a batch across seeds: ``batch_summary.csv`` and ``batch_summary.json``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.params import Scalar
from rgenima.batch.combination import DONE_FILE
from rgenima.batch.grid import SEED_PARAMETER, combination_name
from rgenima.evaluate.tables import SUMMARY_METRICS  # summarised across seeds
from rgenima.fileio import atomic_write_text
from rgenima.run import Run

# One logger for the whole batch (its records are named as before the split into modules).
logger = logging.getLogger("rgenima.batch")

#: Summary files under runs_root.
SUMMARY_CSV = "batch_summary.csv"
SUMMARY_JSON = "batch_summary.json"


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
        has_metrics = finished and Run(run_dir).metrics_json.is_file()
        states.append({"name": name, "parameters": json_safe(combo), "finished": finished, "metrics": has_metrics})
        if finished and not has_metrics:
            logger.warning(
                "combination %s finished without %s; left out of the summary", name, Run(run_dir).metrics_json
            )
        if not has_metrics:
            continue
        metrics = load_metrics(run_dir)
        key_values = {k: combo[k] for k in group_names}
        group = groups.setdefault(json.dumps(key_values), {"values": key_values, "configs": {}})
        for config, entry in metrics["configurations"].items():
            c = group["configs"].setdefault(
                config, {"role": entry.get("role"), "seeds": [], **{m: [] for m in SUMMARY_METRICS}}
            )
            c["seeds"].append(combo.get(seed_parameter))
            for m in SUMMARY_METRICS:
                c[m].append(_float(entry["metrics"].get(m)))

    rows = []
    for group in groups.values():
        for config, c in group["configs"].items():
            row = {
                **group["values"],
                "configuration": config,
                "role": c["role"],
                "n_seeds": len(c["seeds"]),
                "seeds": ",".join(str(s) for s in c["seeds"]),
            }
            for m in SUMMARY_METRICS:
                values = pd.Series(c[m], dtype=float)
                row.update(
                    {
                        f"{m}_mean": values.mean(),
                        f"{m}_sd": values.std(ddof=1),
                        f"{m}_min": values.min(),
                        f"{m}_max": values.max(),
                    }
                )
            rows.append(row)
    columns = [
        *group_names,
        "configuration",
        "role",
        "n_seeds",
        "seeds",
        *(f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "sd", "min", "max")),
    ]
    table = pd.DataFrame(rows, columns=columns)

    grid: dict[str, list[Any]] = {}
    for combo in combinations:
        for k, v in combo.items():
            if v not in grid.setdefault(k, []):
                grid[k].append(v)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.astype(object).to_dict(orient="records")
    ]
    payload = {
        "grid": json_safe(grid),
        "seed_parameter": seed_parameter,
        "metrics": list(SUMMARY_METRICS),
        "columns": columns,
        "combinations": states,
        "rows": records,
    }
    atomic_write_text(runs_root / SUMMARY_CSV, table.to_csv(index=False))
    atomic_write_text(runs_root / SUMMARY_JSON, json.dumps(payload, indent=2, default=str) + "\n")
    logger.info(
        "batch summary: %d rows from %d finished combinations -> %s",
        len(table),
        sum(s["metrics"] for s in states),
        runs_root / SUMMARY_CSV,
    )
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
    index = [
        c
        for c in table.columns
        if c not in ("role", "n_seeds", "seeds") and not c.endswith(("_mean", "_sd", "_min", "_max"))
    ]
    out = table[index].copy()
    for m in SUMMARY_METRICS:
        mean, sd = table[f"{m}_mean"], table[f"{m}_sd"]
        out[m] = [
            "n/a" if math.isnan(a) else f"{a:.{digits}f}" if math.isnan(s) else f"{a:.{digits}f} ± {s:.{digits}f}"
            for a, s in zip(mean, sd)
        ]
    out["n_seeds"] = table["n_seeds"]
    return out.set_index(index)
