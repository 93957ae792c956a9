"""Benchmark of the default training: three R-GenIMA configurations x k folds + baselines.

Usage: python benchmarks/bench_training.py [--run runs/bench] [--manifest data_manifest.yaml]
       [--folds 5] [--profile default] [--json out.json]

Prints wall time and peak memory of the whole study (target: within 20 minutes on the
2-core reference CPU), training throughput (subjects per second, forward+backward) per
configuration on CPU (and on GPU when present), and balanced accuracies against the
synthetic cohort's oracle and truth-feature learner, with paired bootstrap differences.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima.model.baselines import BASELINES
from rgenima.train import build_model, configuration_name, ensure_default_backbone, get_profile, train_study

CONFIGURATIONS = [("mri", "snp"), ("mri",), ("snp",)]


def balanced_accuracy(table: pd.DataFrame) -> float:
    return float(np.mean([(table.y_pred[table.y_true == c] == c).mean() for c in table.y_true.unique()]))


def paired_bootstrap(a: pd.DataFrame, b: pd.DataFrame, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Balanced-accuracy difference a - b with a 95% bootstrap CI over subjects."""
    a = a.set_index("PTID")
    b = b.set_index("PTID").loc[a.index]
    y = a["y_true"].to_numpy()
    ca, cb = (a["y_pred"].to_numpy() == y), (b["y_pred"].to_numpy() == y)
    classes = np.unique(y)
    rng = np.random.default_rng(seed)

    def bacc(correct, idx):
        return np.mean([correct[idx][y[idx] == c].mean() for c in classes if (y[idx] == c).any()])

    full = np.arange(len(y))
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(bacc(ca, idx) - bacc(cb, idx))
    return float(bacc(ca, full) - bacc(cb, full)), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def throughput(run: Path, modalities, profile, device: str, batch_size: int = 16, steps: int = 5) -> float:
    """Subjects per second, forward + backward + optimizer step, on random-label batches."""
    from rgenima.model.inputs import PreparedData, batch_tensors, model_sequences

    data = PreparedData.load(run / "prepared")
    backbone = ensure_default_backbone(run, data, profile, 0)
    model, tok = build_model(
        backbone,
        data.cubes.shape[1],
        data.cubes.shape[2],
        modalities,
        profile,
        0,
        covariates=data.covariate_names(),
        prompt_length=len(data.snps) + 1,
    )
    model.fit_input_statistics(
        torch.from_numpy(data.cubes[:64].astype(np.float32)) if "mri" in modalities else None,
        torch.from_numpy(data.covariates()[:64]),
    )
    seq = model_sequences(model, tok, data)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    batch = batch_tensors(np.arange(batch_size), seq, data, torch.device(device), modalities)
    batch["labels"] = torch.from_numpy(data.labels[:batch_size]).to(device)
    for i in range(steps + 1):
        if i == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - t0)


def measure_throughput_only(args) -> None:
    """Throughput of every configuration on every available device, for one profile."""
    profile = get_profile(args.profile)
    figures = {"profile": args.profile, "torch": torch.__version__, "throughput_subjects_per_s": {}}
    if torch.cuda.is_available():
        figures["gpu"] = torch.cuda.get_device_name(0)
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for modalities in CONFIGURATIONS:
            key = f"{configuration_name(modalities)} ({device})"
            figures["throughput_subjects_per_s"][key] = round(throughput(args.run, modalities, profile, device), 1)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/bench"))
    parser.add_argument("--manifest", type=Path, default=Path("data_manifest.yaml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only measure throughput on an already prepared run (e.g. on a GPU machine)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("transformers", "accelerate", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.throughput_only:
        measure_throughput_only(args)
        return
    # Imported here so that --throughput-only runs without the imaging stack (GPU machine).
    from rgenima.data.cohort import prepare_cohort
    from rgenima.data.manifest import load_manifest
    from rgenima.data.truth import locate_truth

    manifest = load_manifest(args.manifest)
    prepare_cohort(manifest, args.run)
    profile = get_profile(args.profile)
    figures: dict = {"profile": args.profile, "folds": args.folds}
    truth = locate_truth(manifest.cohort.truth, manifest.cohort.clinical)
    t_all = time.perf_counter()
    steps = train_study(
        args.run,
        truth,
        n_folds=args.folds,
        seed=0,
        profile=args.profile,
    )
    figures["this_invocation_s"] = round(time.perf_counter() - t_all, 1)
    # Seconds of each step when it was trained (timings.json): on a finished run (for
    # example the book's), steps are reused and keep the timing of their first run.
    figures["seconds"] = {row.step: row.seconds for row in steps.itertuples()}
    figures["seconds"]["total"] = round(sum(v for k, v in figures["seconds"].items() if k != "references"), 1)
    figures["reused"] = {row.step: bool(row.reused) for row in steps.itertuples()}
    figures["peak_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    baselines = {b: pd.read_csv(args.run / "models" / f"baseline_{b}" / "predictions.csv") for b in BASELINES}

    figures["throughput_subjects_per_s"] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for modalities in CONFIGURATIONS:
            key = f"{configuration_name(modalities)} ({device})"
            figures["throughput_subjects_per_s"][key] = round(throughput(args.run, modalities, profile, device), 1)

    models = {
        configuration_name(m): pd.read_csv(
            args.run / "models" / configuration_name(m, args.profile) / "predictions.csv"
        )
        for m in CONFIGURATIONS
    }
    models.update({f"baseline_{k}": v for k, v in baselines.items()})
    for ref in ("oracle", "truth_feature_lda"):
        path = args.run / "models" / f"reference_{ref}" / "predictions.csv"
        if path.is_file():
            models[f"reference_{ref}"] = pd.read_csv(path)
    figures["balanced_accuracy"] = {k: round(balanced_accuracy(v), 4) for k, v in models.items()}
    ba = figures["balanced_accuracy"]
    main_model = models["rgenima_mri+snp"]
    if "reference_oracle" in ba:
        figures["ratio_to_oracle"] = round(ba["rgenima_mri+snp"] / ba["reference_oracle"], 3)
        figures["ratio_to_truth_feature_lda"] = round(ba["rgenima_mri+snp"] / ba["reference_truth_feature_lda"], 3)
    figures["paired_bootstrap_vs_rgenima_mri+snp"] = {
        k: [round(x, 4) for x in paired_bootstrap(main_model, v)]
        for k, v in models.items()
        if k != "rgenima_mri+snp" and not k.startswith("reference")
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
