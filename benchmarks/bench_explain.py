"""Attributions of a whole trained cohort: time per method, and the validation table.

Usage: python benchmarks/bench_explain.py --run runs/bench_model/seed_0 --truth data/synthetic/truth.json
       [--ig-steps 16] [--sanity-subjects 64] [--json benchmarks/latest_explain.json]

Explains the run's main configuration (``rgenima_mri+snp``) and the configuration the gene
chapters use (rgenima.validation.gene_configuration: the SNP-only model when every fold of
the main one kept its fusion gates closed), with the book's settings, from scratch
(with ``--force``; otherwise attributions already up to date are reused and their
recorded timings reported). Prints and writes, per configuration: wall time of the whole step, of the
main pass (every method on every subject) and of the randomisation checks (the randomised
and permuted-label models, including the latter's training), and the validation table of
rgenima.validation with the methods the chapters choose.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from rgenima.explain import explain_run
from rgenima.validation import GENE_CRITERIA, ROI_CRITERIA, choose_method, gene_configuration, validate_run


def _seconds(timings: dict, prefix: str) -> float:
    return round(
        sum(
            v
            for k, v in timings.items()
            if k.startswith(prefix) and k.endswith("_seconds") and not k.endswith("per_subject_seconds")
        ),
        1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--configuration", default="rgenima_mri+snp")
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--sanity-subjects", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="recompute attributions that are up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    truth = json.loads(args.truth.read_text())
    configurations = {"brain": args.configuration, "genes": gene_configuration(args.run, args.configuration)}
    out = {
        "run": str(args.run),
        "ig_steps": args.ig_steps,
        "sanity_subjects": args.sanity_subjects,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "configurations": {},
    }
    for chapter, configuration in configurations.items():
        if configuration in out["configurations"]:
            continue
        explain_dir = explain_run(
            args.run,
            configuration=configuration,
            ig_steps=args.ig_steps,
            sanity_subjects=args.sanity_subjects,
            force=args.force,
        )
        # The measured time of the run that computed the files (also when reused).
        timings = json.loads((explain_dir / "explain.json").read_text())["timings"]
        wall = timings["total_seconds"]
        main_pass = _seconds({k: v for k, v in timings.items() if "random" not in k and k != "total_seconds"}, "")
        table = validate_run(args.run, configuration, truth=truth)
        criteria = ROI_CRITERIA if chapter == "brain" else GENE_CRITERIA
        chosen, reason = choose_method(table, criteria)
        out["configurations"][configuration] = {
            "chapter": chapter,
            "seconds": round(wall, 1),
            "main_pass_seconds": main_pass,
            "checks_seconds": round(wall - main_pass, 1),
            "timings": timings,
            "chosen_roi": choose_method(table, ROI_CRITERIA)[0],
            "chosen_gene": choose_method(table, GENE_CRITERIA)[0],
            "reason": reason,
            "chosen": chosen,
            "validation": json.loads(table.to_json(orient="records")),
        }
        print(f"{configuration}: {wall:.0f} s (main pass {main_pass:.0f} s); chosen {chosen}: {reason}")
        print(table.round(3).to_string())
    out["total_seconds"] = round(sum(c["seconds"] for c in out["configurations"].values()), 1)
    out["main_pass_seconds"] = round(sum(c["main_pass_seconds"] for c in out["configurations"].values()), 1)
    print(f"total {out['total_seconds']:.0f} s, main passes {out['main_pass_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
