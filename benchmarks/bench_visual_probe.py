"""Do the ROI tokens carry each region's intensity? A linear probe per ROI.

Usage: python benchmarks/bench_visual_probe.py --run runs/bench_model/seed_0
       [--configuration rgenima_mri] [--fold 0] [--subjects 600] [--json out.json]

For one trained fold model, every ROI's token is computed for held-out subjects, and a
ridge regression (alpha by internal CV) predicts that ROI's normalised mean intensity
(the feature of the ROI baselines) from the token; the R^2 is cross-validated (3 folds).
Reported for the RiT's own visual token (before the projector), for the gated RiT part
of the ROI token, and for the whole ROI token the language model reads (regional-
intensity token plus the gated RiT). Median, 10th and 90th percentile over the ROIs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_score

from rgenima.explain import load_fold_model
from rgenima.model.inputs import PreparedData


@torch.no_grad()
def tokens(model, cubes: np.ndarray, batch_size: int = 50) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {"rit": [], "gated_rit": [], "roi_token": []}
    for start in range(0, len(cubes), batch_size):
        x = torch.from_numpy(np.asarray(cubes[start : start + batch_size], dtype=np.float32))
        pooled = model.pool(x)
        inside = pooled != 0
        z = torch.where(inside, (pooled - model.cube_mean) / model.cube_std, torch.zeros_like(pooled))
        z = torch.where(inside & (z == 0), torch.full_like(z, 1e-6), z)
        rit = model.vision_tower(z)
        gated = model.multi_modal_projector(rit)
        if model.config.rit_gate:
            gated = torch.tanh(model.rit_gate) * gated
        parts["rit"].append(rit.numpy())
        parts["gated_rit"].append(gated.numpy())
        parts["roi_token"].append(model.get_image_features(x).numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def probe_r2(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cross-validated R^2 of a ridge probe per ROI: features (n, R, h), target (n, R) -> (R,)."""
    out = []
    for r in range(target.shape[1]):
        if np.std(target[:, r]) == 0:
            out.append(np.nan)
            continue
        model = RidgeCV(alphas=np.logspace(-3, 3, 7))
        out.append(cross_val_score(model, features[:, r], target[:, r], cv=3, scoring="r2").mean())
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--configuration", default="rgenima_mri")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument(
        "--subjects", type=int, default=600, help="held-out subjects probed (external cohort if present)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model, _ = load_fold_model(args.run, args.configuration, args.fold, attn_implementation="sdpa")
    external = sorted((args.run / "external").glob("*/prepared"))
    if external:
        data, source = PreparedData.load(external[0]), f"external cohort {external[0].parent.name}"
        rows = np.arange(min(args.subjects, len(data.subjects)))
    else:
        data, source = PreparedData.load(args.run / "prepared"), f"held-out fold {args.fold}"
        folds = pd.read_csv(args.run / "folds.csv")
        rows = np.flatnonzero(folds["fold"].to_numpy() == args.fold)[: args.subjects]
    target = data.roi_features[rows]
    figures = {
        "run": str(args.run),
        "configuration": args.configuration,
        "fold": args.fold,
        "subjects": source,
        "n_subjects": int(len(rows)),
        "rit_gate_mean_abs_tanh": None,
        "r2": {},
    }
    if model.config.rit_gate:
        figures["rit_gate_mean_abs_tanh"] = round(float(torch.tanh(model.rit_gate).abs().mean()), 4)
    for name, feats in tokens(model, data.cubes[rows]).items():
        r2 = probe_r2(feats, target)
        figures["r2"][name] = {
            "median": round(float(np.nanmedian(r2)), 3),
            "p10": round(float(np.nanpercentile(r2, 10)), 3),
            "p90": round(float(np.nanpercentile(r2, 90)), 3),
        }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
