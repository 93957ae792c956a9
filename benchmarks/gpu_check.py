"""GPU smoke run and GPU throughput, for a machine with CUDA (not part of the CPU test suite).

Usage (on the GPU machine, from the repository root, with a small prepared run):

    python benchmarks/gpu_check.py --run runs/gpu_small --out gpu_check.json

1. Smoke: trains the quick profile of R-GenIMA (MRI + SNP) on 2 folds with CUDA and bf16
   autocast through the same ``train_configuration`` the study uses, then checks that
   both folds finished on the GPU and produced valid probabilities.
2. Throughput: subjects per second (forward + backward + optimiser step) for every
   configuration, for the ``default`` and ``gpu`` profiles, on CPU and CUDA.

The prepared run is made on any machine with ``rgenima prepare`` (and
``rgenima.train.ensure_default_backbone`` for each profile), so the GPU machine only
needs torch, transformers, peft, accelerate, safetensors, numpy and pandas.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import CONFIGURATIONS, throughput  # noqa: E402

from rgenima.train import configuration_name, get_profile, train_configuration  # noqa: E402


def smoke(run: Path, scratch: Path) -> dict:
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "prepared").symlink_to((run / "prepared").resolve())
    shutil.copytree(run / "backbone", scratch / "backbone")
    t0 = time.perf_counter()
    predictions = train_configuration(scratch, ("mri", "snp"), n_folds=2, seed=0, profile="quick")
    seconds = time.perf_counter() - t0
    name = configuration_name(("mri", "snp"), "quick")
    training = json.loads((scratch / "models" / name / "training.json").read_text())
    proba = predictions[[c for c in predictions if c.startswith("p_")]].to_numpy()
    checks = {
        "device": training["device"],
        "folds_done": len(training["folds"]),
        "n_predictions": len(predictions),
        "probabilities_sum_to_one": bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)),
        "seconds": round(seconds, 1),
    }
    checks["ok"] = (
        checks["device"].startswith("cuda") and checks["folds_done"] == 2 and checks["probabilities_sum_to_one"]
    )
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/gpu_small"))
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    figures = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check is for a GPU machine")
    figures["gpu"] = torch.cuda.get_device_name(0)
    figures["smoke"] = smoke(args.run, Path("/tmp/rgenima_gpu_smoke"))
    print(json.dumps(figures["smoke"]), flush=True)
    figures["throughput_subjects_per_s"] = {}
    for profile_name in ("default", "gpu"):
        profile = get_profile(profile_name)
        for device in ("cpu", "cuda"):
            for modalities in CONFIGURATIONS:
                key = f"{profile_name} {configuration_name(modalities)} ({device})"
                figures["throughput_subjects_per_s"][key] = round(throughput(args.run, modalities, profile, device), 1)
                print(key, figures["throughput_subjects_per_s"][key], flush=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    if not figures["smoke"]["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
