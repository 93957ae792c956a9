"""Repeated cross-validation and external validation of the default study.

Usage: python benchmarks/bench_model.py [--seeds 0 1 2] [--manifest data_manifest.yaml]
       [--external manifests/synthetic_external.yaml] [--root runs/bench_model]
       [--profile default] [--profile-json '{"mixup_alpha": 0.4}'] [--json out.json]

For every seed of the outer split, the whole training step of the study (R-GenIMA with
both modalities, its two ablations, every baseline and the synthetic references, on the
same folds) runs in its own run directory, is evaluated (bootstrap CIs, paired tests),
and its fold models are applied to the external cohort. Printed and written: balanced
accuracy of every model per seed, mean and SD over seeds, on the training cohort (CV)
and on the external cohort; the paired bootstrap of R-GenIMA MRI+SNP against its
MRI-only ablation and against the best baseline; ratios to the truth-feature LDA; the
wall-clock time of each step. ``--profile-json`` overrides fields of the profile (the
design table of the Benchmarks chapter is made of such runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from rgenima.data.cohort import prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.truth import locate_truth
from rgenima.evaluate import evaluate_run
from rgenima.external import validate_external
from rgenima.train import get_profile, train_study

MAIN = "rgenima_mri+snp"


def profile_with(name: str, overrides: dict):
    profile = get_profile(name)
    if "rit" in overrides:
        overrides = {**overrides, "rit": replace(profile.rit, **overrides["rit"])}
    return replace(profile, **overrides)


def summarise(metrics: dict) -> dict:
    """Balanced accuracy of every configuration, the best baseline and the key comparisons."""
    configs = metrics["configurations"]
    bacc = {name: c["metrics"]["balanced_accuracy"] for name, c in configs.items()}
    baselines = {n: v for n, v in bacc.items() if configs[n]["role"] == "baseline"}
    best = max(baselines, key=baselines.get) if baselines else None
    out = {"balanced_accuracy": bacc, "best_baseline": best, "comparisons": {}}
    for other in ("rgenima_mri", "rgenima_snp", best):
        if other in metrics["comparisons"]:
            d = metrics["comparisons"][other]["balanced_accuracy_difference"]
            out["comparisons"][other] = {k: d[k] for k in ("estimate", "ci_low", "ci_high", "p_value")}
    for ref, r in metrics.get("references", {}).items():
        out.setdefault("ratio", {})[ref] = {"ratio": r["ratio"], "ci": r["ratio_ci"]}
    return out


def mean_sd(values: list[float]) -> dict:
    return {
        "mean": round(float(np.mean(values)), 4),
        "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
        "values": [round(v, 4) for v in values],
    }


def aggregate(per_seed: list[dict]) -> dict:
    names = sorted(set.intersection(*(set(s["balanced_accuracy"]) for s in per_seed)))
    out = {name: mean_sd([s["balanced_accuracy"][name] for s in per_seed]) for name in names}
    baselines = [n for n in names if n.startswith("baseline_")]
    best = max(baselines, key=lambda n: out[n]["mean"]) if baselines else None
    return {"balanced_accuracy": out, "best_baseline_by_mean": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--manifest", type=Path, default=Path("data_manifest.yaml"))
    parser.add_argument("--external", type=Path, default=Path("manifests/synthetic_external.yaml"))
    parser.add_argument("--root", type=Path, default=Path("runs/bench_model"))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--profile-json", default="{}")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("transformers", "accelerate", "httpx", "rgenima.train"):
        logging.getLogger(name).setLevel(logging.WARNING)

    overrides = json.loads(args.profile_json)
    profile = profile_with(args.profile, overrides)
    manifest = load_manifest(args.manifest)
    external = load_manifest(args.external) if args.external else None
    truth = locate_truth(manifest.cohort.truth, manifest.cohort.clinical)
    figures: dict = {
        "profile": args.profile,
        "overrides": overrides,
        "folds": args.folds,
        "seeds": args.seeds,
        "cv": [],
        "external": [],
        "seconds": [],
    }
    for seed in args.seeds:
        run = args.root / f"seed_{seed}"
        prepare_cohort(manifest, run)
        t0 = time.perf_counter()
        steps = train_study(
            run,
            truth,
            n_folds=args.folds,
            seed=seed,
            profile=profile,
        )
        seconds = {row.step: row.seconds for row in steps.itertuples()}
        seconds["training_total"] = round(sum(v for k, v in seconds.items() if k != "references"), 1)
        figures["cv"].append({"seed": seed, **summarise(evaluate_run(run, main=MAIN, seed=seed))})
        if external is not None:
            t1 = time.perf_counter()
            figures["external"].append(
                {"seed": seed, **summarise(validate_external(run, external, seed=seed, main=MAIN))}
            )
            seconds["external"] = round(time.perf_counter() - t1, 1)
        seconds["this_invocation"] = round(time.perf_counter() - t0, 1)
        figures["seconds"].append({"seed": seed, **seconds})
        logging.info("seed %d: %s", seed, json.dumps(figures["cv"][-1]["balanced_accuracy"]))
    figures["summary"] = {"cv": aggregate(figures["cv"])}
    if figures["external"]:
        figures["summary"]["external"] = aggregate(figures["external"])
    print(json.dumps(figures["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
