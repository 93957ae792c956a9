"""The synthetic cohort's references (oracle, truth-feature LDA) on the run's folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rgenima import STAGES
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.train import run_references


@pytest.fixture(scope="module")
def prepared_run(small_manifest: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("references") / "run"
    prepare_cohort(load_manifest(small_manifest), run, PrepareConfig(cube_size=8))
    return run


def test_references_accept_truth_json_or_its_folder(prepared_run, small_cohort):
    from_folder = run_references(prepared_run, small_cohort, n_folds=2, seed=0)
    from_file = run_references(prepared_run, small_cohort / "truth.json", n_folds=2, seed=0)
    for name in ("oracle", "truth_feature_lda"):
        pd.testing.assert_frame_equal(from_folder[name], from_file[name])
        assert (prepared_run / "models" / f"reference_{name}" / "predictions.csv").is_file()
    # The oracle's probabilities are the generator's posteriors, row by row.
    truth = json.loads((small_cohort / "truth.json").read_text())
    posterior = {s["PTID"]: [s["posterior"][c] for c in STAGES] for s in truth["subjects"]}
    oracle = from_file["oracle"]
    expected = np.array([posterior[p] for p in oracle["PTID"]])
    np.testing.assert_allclose(oracle[[f"p_{s}" for s in STAGES]].to_numpy(), expected, atol=1e-6)


def test_references_name_a_missing_truth_file(prepared_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="truth.json"):
        run_references(prepared_run, tmp_path, n_folds=2, seed=0)
