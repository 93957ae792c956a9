"""Learning curve: R-GenIMA and linear models trained on 400, 1,000 and 2,000 subjects.

Usage: python benchmarks/bench_learning_curve.py [--sizes 400 1000 2000] [--folds 3]
       [--external manifests/synthetic_external.yaml] [--root runs/learning_curve] [--json out.json]

A larger synthetic cohort (2,000 subjects, another seed, identifiers disjoint from the
other cohorts) is written and prepared once; nested subsets of it (a stratified random
order, the first N subjects) are trained with ``--folds``-fold cross-validation
(fewer than the study's 5 to keep the largest size affordable on a CPU), and every
model's fold ensemble is applied to the same external cohort. Printed and written, per
size: balanced accuracy on the external cohort of R-GenIMA MRI+SNP and MRI-only, the
tuned ROI and ROI+APOE logistic regressions, the truth-feature LDA and the oracle, and
the ratio of each to the truth-feature LDA. This shows where, if anywhere, the
multimodal model overtakes the linear models and fusion starts to pay.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima.data.cohort import prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.truth import TRUTH_FILE
from rgenima.external import validate_external
from rgenima.fileio import atomic_write_text
from rgenima.train import get_profile, run_baselines, run_references, train_configuration

CONFIGURATIONS = (("mri",), ("mri", "snp"))
BASELINES = ("logistic_roi", "logistic_roi_apoe")
MANIFEST = """cohort:
  name: learning-curve
  restricted: false
  clinical: ADNIMERGE.csv
  mri: {bids_root: bids}
  genotypes: genotypes/cohort
atlas: aal2
gene_panel: builtin
snp_gene_window_kb: 10
qc: {min_call_rate: 0.95, min_maf: 0.01, hwe_p: 1.0e-6}
"""


def nested_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A random order of the subjects whose every prefix keeps the class proportions."""
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keys[idx] = (np.arange(len(idx)) + rng.random()) / len(idx)  # evenly spread ranks per class
        keys[idx] = keys[idx][rng.permutation(len(idx))]
    return np.argsort(keys, kind="stable")


def subset_prepared(source: Path, target: Path, rows: np.ndarray) -> Path:
    """A prepared folder holding only ``rows`` of ``source`` (cubes are linked, not copied)."""
    if (target / "prepare.json").is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "cubes").mkdir(parents=True)
    pd.read_csv(source / "subjects.csv", dtype={"PTID": str}).iloc[rows].to_csv(tmp / "subjects.csv", index=False)
    for new, old in enumerate(rows):
        (tmp / "cubes" / f"{new:05d}.npy").symlink_to((source / "cubes" / f"{old:05d}.npy").resolve())
    features = np.load(source / "roi_features.npz")
    np.savez(tmp / "roi_features.npz", **{k: features[k][rows] for k in features.files})
    np.save(tmp / "dosage.npy", np.load(source / "dosage.npy")[rows])
    prompts = (source / "prompts.jsonl").read_text().splitlines()
    lines = [json.dumps({**json.loads(prompts[old]), "row": new}) for new, old in enumerate(rows)]
    (tmp / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    for name in ("rois.tsv", "snps.tsv", "snp_qc.tsv", "sample_qc.tsv", "data_report.json"):
        shutil.copy(source / name, tmp / name)
    record = json.loads((source / "prepare.json").read_text())
    record.update(
        n_subjects=int(len(rows)),
        subset_of=str(source.resolve()),
        input_hash=f"{record['input_hash']}-rows-{len(rows)}",
    )
    atomic_write_text(tmp / "prepare.json", json.dumps(record, indent=1) + "\n")
    tmp.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 1000, 2000])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2, help="seed of the larger synthetic cohort")
    parser.add_argument("--external", type=Path, default=Path("manifests/synthetic_external.yaml"))
    parser.add_argument("--root", type=Path, default=Path("runs/learning_curve"))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("transformers", "accelerate", "httpx", "rgenima.train"):
        logging.getLogger(name).setLevel(logging.WARNING)

    cohort = args.root / "cohort"
    if not (cohort / TRUTH_FILE).is_file():  # written last by synth: the cohort is complete
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rgenima.cli",
                "synth",
                "--out",
                str(cohort),
                "--n-subjects",
                str(max(args.sizes)),
                "--seed",
                str(args.seed),
                "--first-subject",
                "20000",
            ],
            check=True,
        )
    (cohort / "manifest.yaml").write_text(MANIFEST)
    full = prepare_cohort(load_manifest(cohort / "manifest.yaml"), args.root / "full")
    labels = pd.read_csv(full / "subjects.csv")["label"].to_numpy()
    order = nested_order(labels, seed=0)
    external = load_manifest(args.external)
    profile = get_profile(args.profile)
    figures: dict = {
        "profile": args.profile,
        "folds": args.folds,
        "cohort_seed": args.seed,
        "external": str(args.external),
        "sizes": {},
    }
    for n in args.sizes:
        run = args.root / f"n{n}"
        subset_prepared(full, run / "prepared", np.sort(order[:n]))
        t0 = time.perf_counter()
        seconds = {}
        for modalities in CONFIGURATIONS:
            t = time.perf_counter()
            train_configuration(run, modalities, n_folds=args.folds, seed=0, profile=profile)
            seconds["+".join(modalities)] = round(time.perf_counter() - t, 1)
        run_baselines(run, n_folds=args.folds, seed=0, names=list(BASELINES))
        run_references(run, cohort, n_folds=args.folds, seed=0)
        t = time.perf_counter()
        metrics = validate_external(run, external, seed=0, main="rgenima_mri+snp")
        seconds["external"] = round(time.perf_counter() - t, 1)
        seconds["total"] = round(time.perf_counter() - t0, 1)
        bacc = {k: round(v["metrics"]["balanced_accuracy"], 4) for k, v in metrics["configurations"].items()}
        ci = {k: [round(x, 4) for x in v["ci"]["balanced_accuracy"]] for k, v in metrics["configurations"].items()}
        lda = bacc.get("reference_truth_feature_lda")
        fusion = metrics["comparisons"].get("rgenima_mri", {}).get("balanced_accuracy_difference", {})
        figures["sizes"][str(n)] = {
            "balanced_accuracy": bacc,
            "ci": ci,
            "ratio_to_truth_feature_lda": {k: round(v / lda, 3) for k, v in bacc.items()} if lda else None,
            "mri_snp_minus_mri": {k: round(fusion[k], 4) for k in ("estimate", "ci_low", "ci_high") if k in fusion},
            "seconds": seconds,
        }
        logging.info("n=%d: %s", n, json.dumps(bacc))
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
