"""The attribution-validation table and the rule that picks a method (rgenima.validation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_signatures import GENES, ROIS, TRUTH, make_arrays

from rgenima.signatures import load_attributions
from rgenima.validation import choose_method, validation_table


def _write(tmp_path, arrays):
    path = tmp_path / "attributions.npz"
    np.savez(path, **arrays)
    return load_attributions(path)


def _sanity(medians: dict[str, float]) -> dict:
    entry = {m: {"median": v} for m, v in medians.items()}
    return {"levels": {"roi": entry, "gene": entry}, "label_randomisation": {"roi": entry, "gene": entry}}


def test_validation_table_scores_a_perfect_method_and_the_references(tmp_path):
    arrays = make_arrays()
    order = ["APOE", "CLU", "CR1", "PICALM", "SORL1", "BIN1", "TREM2", "ABCA7"]
    arrays["gene__rollout"] = np.tile([len(order) - order.index(g) for g in GENES], (len(arrays["label"]), 1)) * 1.0
    # Occlusion links: only the planted pairs are non-zero, the APOE-hippocampus pair strongest.
    links = np.zeros((len(arrays["label"]), len(ROIS), len(GENES)))
    links[:, list(ROIS).index("Hippocampus_L"), list(GENES).index("APOE")] = 2.0
    links[:, list(ROIS).index("Precuneus_L"), list(GENES).index("CLU")] = -1.0  # a negative link counts by size
    arrays["roi_gene__occlusion"] = links
    planted_ad = np.isin(ROIS, TRUTH["planted_regions"]["AD"])
    ad = arrays["label"] == 3
    arrays["roi__attention"][np.ix_(ad, planted_ad)] += 1.0
    arrays["roi__occlusion"] = arrays["roi__attention"]
    table = validation_table(
        _write(tmp_path, arrays),
        TRUTH,
        _sanity({"rollout": 0.1, "attention": 0.7}),
        references={
            "gene": pd.DataFrame({"all": -arrays["gene__rollout"][0]}, index=GENES),
            "roi": pd.DataFrame({"AD": -np.arange(len(ROIS), dtype=float)}, index=ROIS),
        },
    )
    row = table.set_index("method")
    assert row.loc["rollout", "gene_auroc"] == 1.0 and row.loc["rollout", "apoe_rank"] == 1.0
    assert row.loc["attention", "roi_auroc_AD"] == 1.0  # the four planted AD regions lead the AD - NC contrast
    # 3 planted pairs, 2 used (non-zero), both in the top 5 % of 56 pairs (ranks 1 and 2 <= 2.8).
    assert row.loc["occlusion", "pairs_planted"] == 3 and row.loc["occlusion", "pairs_used"] == 2
    assert row.loc["occlusion", "pairs_top5_of_used"] == 1.0
    assert bool(row.loc["rollout", "passes_randomisation"]) and not bool(row.loc["attention", "passes_randomisation"])
    assert not bool(row.loc["integrated_gradients", "passes_randomisation"])  # no sanity entry: cannot pass
    assert row.loc["reference: gene scan on dosages", "gene_auroc"] == 0.0  # reversed: causal genes last
    assert row.loc["reference: gene scan on dosages", "apoe_rank"] == len(GENES)
    assert row.loc["reference: t-test on ROI means", "roi_auroc_AD"] == 1.0  # first four ROIs are the planted ones


def test_choose_method_takes_the_best_passing_method():
    table = pd.DataFrame(
        {
            "method": ["attention", "occlusion", "integrated_gradients", "reference: gene scan"],
            "gene_auroc": [0.99, 0.92, 0.95, 1.0],
            "rho_parameters_roi": [0.9, 0.1, 0.2, None],
            "passes_randomisation": [False, True, True, None],
        }
    )
    method, reason = choose_method(table, ("gene_auroc",))
    assert method == "integrated_gradients" and "integrated_gradients" in reason  # attention fails, reference excluded
    table.loc[:, "passes_randomisation"] = [False, False, False, None]
    assert choose_method(table, ("gene_auroc",))[0] is None
    # No truth: the passing method least correlated with the randomised models.
    table = pd.DataFrame(
        {
            "method": ["a", "b"],
            "gene_auroc": [None, None],
            "rho_parameters_roi": [0.3, 0.1],
            "passes_randomisation": [True, True],
        }
    )
    assert choose_method(table, ("gene_auroc",))[0] == "b"
