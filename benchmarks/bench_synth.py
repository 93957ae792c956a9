"""Benchmark of `rgenima synth`: wall time, peak memory, size on disk, determinism.

Usage: python benchmarks/bench_synth.py [--n-subjects 400] [--voxel-mm 2] [--out DIR]

Targets (issue "Foundation"): 400 subjects in under 2 minutes and under 300 MB on disk
on the 2-core reference machine; two runs with one seed byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-subjects", type=int, default=400)
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    config = SynthConfig(n_subjects=args.n_subjects, seed=args.seed, voxel_mm=args.voxel_mm)
    work = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        t0 = time.perf_counter()
        truth = write_synthetic_cohort(work / "a", config)
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size_mb = sum(p.stat().st_size for p in (work / "a").rglob("*") if p.is_file()) / 1e6
        write_synthetic_cohort(work / "b", config)
        identical = tree_digest(work / "a") == tree_digest(work / "b")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "n_subjects": args.n_subjects,
        "voxel_mm": args.voxel_mm,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb),
        "size_mb": round(size_mb, 1),
        "byte_identical_rerun": identical,
        "oracle_accuracy": round(truth["oracle"]["accuracy"], 3),
        "oracle_balanced_accuracy": round(truth["oracle"]["balanced_accuracy"], 3),
        "oracle_accuracy_without_interactions": round(truth["oracle_without_interactions"]["accuracy"], 3),
    }
    for key, value in figures.items():
        print(f"{key:40s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
