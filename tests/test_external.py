"""External validation: a trained run's fold models applied to a second cohort."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from rgenima import STAGES
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.genetics import Genotypes, align_to_reference
from rgenima.data.manifest import load_manifest
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort
from rgenima.errors import DataContractError
from rgenima.external import ALL_FOLDS, external_dir, validate_external
from rgenima.train import PROFILES, run_baselines, train_configuration

QUICK = replace(PROFILES["quick"], max_epochs=2, patience=2, batch_size=8)


def _cohort(root: Path, name: str, seed: int, first_subject: int) -> Path:
    write_synthetic_cohort(
        root / name,
        SynthConfig(
            n_subjects=32,
            seed=seed,
            voxel_mm=4.0,
            n_defective=0,
            effect_scale=3.0,
            max_snps_per_gene=1,
            first_subject=first_subject,
        ),
    )
    manifest = root / name / "manifest.yaml"
    manifest.write_text(
        f"cohort:\n  name: {name}\n  clinical: ADNIMERGE.csv\n  mri: {{bids_root: bids}}\n"
        "  genotypes: genotypes/cohort\n"
    )
    return manifest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An MRI-only model and two baselines trained on one cohort; an external cohort of another seed."""
    root = tmp_path_factory.mktemp("external")
    train_manifest = _cohort(root, "training", seed=5, first_subject=0)
    external_manifest = _cohort(root, "later-phase", seed=6, first_subject=500)
    run = root / "run"
    prepare_cohort(load_manifest(train_manifest), run, PrepareConfig(cube_size=8))
    train_configuration(run, ("mri",), n_folds=2, seed=0, profile=QUICK)
    run_baselines(run, n_folds=2, seed=0, names=["logistic_roi", "logistic_apoe"])
    return run, train_manifest, external_manifest


def test_external_cohort_sharing_subjects_is_refused(trained):
    run, train_manifest, _ = trained
    with pytest.raises(DataContractError, match=r"32 of its 32 subjects are also in the training cohort \(990_S_9000"):
        validate_external(run, load_manifest(train_manifest))
    assert not (run / "external").exists()  # refused before anything is prepared


def test_external_predictions_average_fold_models_and_metrics_equal_scikit_learn(trained):
    from rgenima.explain import load_fold_model
    from rgenima.model.inputs import PreparedData, build_sequences
    from rgenima.train import predict_proba

    run, _, external_manifest = trained
    metrics = validate_external(run, load_manifest(external_manifest), n_boot=200)
    ext = external_dir(run, "later-phase")
    assert (ext / "metrics.json").is_file() and json.loads((ext / "metrics.json").read_text())["external"]
    names = {
        "rgenima_mri__quick",
        "baseline_logistic_roi",
        "baseline_logistic_apoe",
        "reference_oracle",
        "reference_truth_feature_lda",
    }
    assert set(metrics["configurations"]) == names
    data = PreparedData.load(ext / "prepared")
    assert data.subjects["PTID"].str.endswith(tuple(str(n) for n in range(9500, 9532))).all()
    for name in names:
        table = pd.read_csv(ext / "models" / name / "predictions.csv", dtype={"PTID": str})
        assert list(table["PTID"]) == list(data.subjects["PTID"])
        assert (table["fold"] == ALL_FOLDS).all()
        assert list(table["y_true"]) == [STAGES[i] for i in data.labels]
        expected = balanced_accuracy_score(table["y_true"], table["y_pred"])
        assert metrics["configurations"][name]["metrics"]["balanced_accuracy"] == pytest.approx(expected)
    # The model's probabilities are the mean of its two fold models'.
    by_fold = []
    for fold in range(2):
        model, tokenizer = load_fold_model(run, "rgenima_mri__quick", fold, attn_implementation="sdpa")
        seq = build_sequences(tokenizer, data.prompts, data.cubes.shape[1], ("mri",), n_covariates=3)
        by_fold.append(predict_proba(model, np.arange(len(data.labels)), seq, data, torch.device("cpu"), ("mri",)))
    table = pd.read_csv(ext / "models" / "rgenima_mri__quick" / "predictions.csv")
    np.testing.assert_allclose(table[[f"p_{s}" for s in STAGES]].to_numpy(), np.mean(by_fold, axis=0), atol=2e-6)
    # A rerun reuses the predictions.
    before = (ext / "models" / "rgenima_mri__quick" / "predictions.csv").stat().st_mtime_ns
    validate_external(run, load_manifest(external_manifest), n_boot=200)
    assert (ext / "models" / "rgenima_mri__quick" / "predictions.csv").stat().st_mtime_ns == before


def test_external_cohort_must_use_the_training_cube_size(trained, tmp_path):
    run, _, external_manifest = trained
    with pytest.raises(DataContractError, match="cube size differs from the training cohort's"):
        prepare_cohort(
            load_manifest(external_manifest), tmp_path / "other", PrepareConfig(cube_size=4), reference=run / "prepared"
        )


def _genotypes(variants: list[tuple[str, str, str]], dosage) -> Genotypes:
    return Genotypes(
        dosage=np.asarray(dosage, dtype=np.float32),
        samples=pd.DataFrame({"fid": ["a", "b"], "iid": ["a", "b"], "sex": [1, 2]}),
        variants=pd.DataFrame(
            {
                "snp": [v[0] for v in variants],
                "chrom": "19",
                "pos": 1,
                "a1": [v[1] for v in variants],
                "a2": [v[2] for v in variants],
            }
        ),
    )


def test_align_to_reference_recodes_swapped_and_flipped_alleles():
    reference = pd.DataFrame(
        {"snp": ["rs1", "rs2", "rs3", "rs4"], "a1": ["A", "C", "A", "G"], "a2": ["G", "T", "C", "T"]}
    )
    # rs2 swapped (T/C), rs3 on the other strand (T/G = A/C), rs4 absent, rsX extra.
    geno = _genotypes(
        [("rsX", "A", "G"), ("rs3", "T", "G"), ("rs2", "T", "C"), ("rs1", "A", "G")], [[2, 0, 0, 1], [1, 2, 2, np.nan]]
    )
    dosage, report = align_to_reference(geno, reference, source="ext.bim")
    np.testing.assert_array_equal(dosage[:, :3], [[1, 2, 0], [np.nan, 0, 2]])
    assert np.isnan(dosage[:, 3]).all()
    assert report["missing_snps"] == ["rs4"] and report["swapped_snps"] == ["rs2"]
    assert report["strand_flipped_snps"] == ["rs3"]


def test_align_to_reference_refuses_other_alleles_and_repeated_ids():
    reference = pd.DataFrame({"snp": ["rs1"], "a1": ["A"], "a2": ["G"]})
    with pytest.raises(DataContractError, match="ext.bim: SNP rs1 has alleles A/C, but A/G in the training cohort"):
        align_to_reference(_genotypes([("rs1", "A", "C")], [[0], [1]]), reference, source="ext.bim")
    with pytest.raises(DataContractError, match=r"ext.bim: SNP id\(s\) 'rs1' appear more than once"):
        align_to_reference(
            _genotypes([("rs1", "A", "G"), ("rs1", "A", "G")], [[0, 0], [1, 1]]), reference, source="ext.bim"
        )
    with pytest.raises(DataContractError, match="none of the training cohort's 1 SNPs"):
        align_to_reference(_genotypes([("rs9", "A", "G")], [[0], [1]]), reference, source="ext.bim")
