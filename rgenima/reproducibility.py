"""What a run was computed with: package versions, input checksums and step timings.

Plain tables for the book's Reproducibility chapter, read from the run directory's own
records (``prepared/prepare.json``, ``timings.json``, ``models/*/training.json``,
``explain/*/explain.json``), so they describe the run that produced the figures.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

#: Packages whose versions decide the results (and the book's rendering).
KEY_PACKAGES = (
    "rgenima",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "tokenizers",
    "safetensors",
    "captum",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "nibabel",
    "nilearn",
    "pandas-plink",
    "gseapy",
    "matplotlib",
    "seaborn",
    "papermill",
    "jupyter-book",
    "myst-nb",
)


def package_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> pd.DataFrame:
    """Installed version of each package (``"not installed"`` when absent), plus Python and the platform."""
    rows = [
        {"package": "python", "version": sys.version.split()[0]},
        {"package": "platform", "version": platform.platform()},
    ]
    for name in packages:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": name, "version": version})
    return pd.DataFrame(rows).set_index("package")


def data_hashes(run_dir: str | Path) -> pd.DataFrame:
    """sha256 of every input file of the run, from the preparation cache key.

    Returns
    -------
    DataFrame
        Index ``input`` (the manifest's role of the file), column ``sha256``; the row
        ``cache key`` is the hash over every input and setting.
    """
    from rgenima.run import Run

    path = Run(run_dir).prepare_json
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the data-preparation chapter first.")
    info = json.loads(path.read_text())
    inputs = info.get("inputs", {})
    rows = {"cache key": info.get("input_hash", inputs.get("hash"))}
    for role, digest in _flatten(inputs.get("files", {})).items():
        rows[role] = digest
    return pd.Series(rows, name="sha256").rename_axis("input").to_frame()


def _flatten(tree, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        return {prefix: str(tree)}
    out = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    return out


def step_timings(run_dir: str | Path) -> pd.DataFrame:
    """Wall-clock seconds of each recorded step of a run.

    Rows: preparation sub-steps (``prepare.json``), each trained configuration and the
    baselines (``timings.json``), and each attribution run (``explain.json``).
    """
    from rgenima.run import Run

    run = Run(run_dir)
    rows = []
    prepare = run.prepare_json
    if prepare.is_file():
        for step, seconds in json.loads(prepare.read_text()).get("seconds", {}).items():
            rows.append({"step": f"prepare: {step}", "seconds": seconds})
    timings = run.timings_json
    if timings.is_file():
        for step, seconds in json.loads(timings.read_text()).items():
            rows.append({"step": f"train: {step}", "seconds": seconds})
    for explain in run.explain_records():
        seconds = json.loads(explain.read_text())["seconds"]
        rows.append({"step": f"explain: {explain.parent.name}", "seconds": seconds})
    table = pd.DataFrame(rows, columns=["step", "seconds"]).set_index("step")
    table["minutes"] = (pd.to_numeric(table["seconds"], errors="coerce") / 60).round(2)
    return table


def benchmark_file(name: str) -> dict:
    """The latest output of a benchmark script, ``benchmarks/<name>`` of the project.

    Raises
    ------
    FileNotFoundError
        Naming the file and the script to run when it is missing.
    """
    from rgenima.book import project_root

    path = project_root() / "benchmarks" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the matching script in benchmarks/ to write it.")
    return json.loads(path.read_text())
