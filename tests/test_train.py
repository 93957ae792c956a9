"""Training: folds, learning on an easy cohort, determinism, resume, DDP on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort
from rgenima.train import PROFILES, class_weights, make_folds, train_configuration

ROOT = Path(__file__).resolve().parents[1]
QUICK = replace(PROFILES["quick"], max_epochs=3, patience=3, batch_size=8)


@pytest.fixture(scope="module")
def easy_run(tmp_path_factory) -> Path:
    """48 subjects with strong planted atrophy, prepared with small cubes."""
    root = tmp_path_factory.mktemp("easy")
    write_synthetic_cohort(
        root / "cohort",
        SynthConfig(n_subjects=48, seed=5, voxel_mm=4.0, n_defective=0, effect_scale=3.0, max_snps_per_gene=1),
    )
    (root / "cohort" / "manifest.yaml").write_text(
        "cohort:\n  name: easy\n  clinical: ADNIMERGE.csv\n  mri: {bids_root: bids}\n  genotypes: genotypes/cohort\n"
    )
    run = root / "run"
    prepare_cohort(load_manifest(root / "cohort" / "manifest.yaml"), run, PrepareConfig(cube_size=8))
    return run


def _copy_run(run: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    (dst / "prepared").symlink_to(run / "prepared")
    return dst


def test_folds_are_subject_level_and_stratified():
    subjects = pd.DataFrame({"PTID": [f"990_S_{9000 + i}" for i in range(40)], "label": np.repeat([0, 1, 2, 3], 10)})
    folds = make_folds(subjects, n_folds=5, seed=0)
    assert folds["PTID"].is_unique and set(folds["fold"]) == set(range(5))
    per_fold = folds.groupby("fold")["label"].value_counts().unstack()
    assert (per_fold == 2).all().all()  # 10 per class -> 2 per class per fold
    with pytest.raises(ValueError, match="unique PTIDs"):
        make_folds(pd.concat([subjects, subjects.head(1)]), 5, 0)


def test_class_weights_balance_the_classes():
    w = class_weights(np.array([0, 0, 0, 1, 2, 2, 3, 3]))
    counts = np.array([3, 1, 2, 2])
    np.testing.assert_allclose(w * counts, np.full(4, 2.0))


def test_quick_training_learns_and_is_deterministic(easy_run, tmp_path):
    a = train_configuration(
        _copy_run(easy_run, tmp_path / "a"),
        ("mri",),
        n_folds=2,
        seed=0,
        profile=replace(QUICK, max_epochs=12, patience=12, learning_rate=3e-3),
    )
    state = json.loads((tmp_path / "a" / "models" / "rgenima_mri__quick" / "fold_0" / "state.json").read_text())
    losses = [h["train_loss"] for h in state["history"]]
    assert losses[-1] < losses[0]  # the loss falls
    accuracy = (a["y_true"] == a["y_pred"]).mean()
    assert accuracy > 0.4  # chance is about 0.25-0.35 with these class proportions
    folds = pd.read_csv(tmp_path / "a" / "folds.csv")
    assert len(folds) == 48 and folds["PTID"].is_unique
    b = train_configuration(
        _copy_run(easy_run, tmp_path / "b"),
        ("mri",),
        n_folds=2,
        seed=0,
        profile=replace(QUICK, max_epochs=12, patience=12, learning_rate=3e-3),
    )
    pd.testing.assert_frame_equal(a, b)  # same seed, same predictions


def test_predictions_format(easy_run, tmp_path):
    preds = train_configuration(_copy_run(easy_run, tmp_path / "r"), ("mri", "snp"), n_folds=2, seed=1, profile=QUICK)
    assert list(preds.columns) == ["PTID", "fold", "y_true", "y_pred", "p_NC", "p_SMC", "p_MCI", "p_AD"]
    np.testing.assert_allclose(preds[["p_NC", "p_SMC", "p_MCI", "p_AD"]].sum(axis=1), 1.0, atol=1e-4)
    on_disk = pd.read_csv(tmp_path / "r" / "models" / "rgenima_mri+snp__quick" / "predictions.csv")
    assert len(on_disk) == 48


def test_resume_after_interruption_gives_the_same_predictions(easy_run, tmp_path):
    full = train_configuration(_copy_run(easy_run, tmp_path / "full"), ("snp",), n_folds=2, seed=2, profile=QUICK)
    run = _copy_run(easy_run, tmp_path / "cut")
    assert train_configuration(run, ("snp",), n_folds=2, seed=2, profile=QUICK, max_epochs_this_run=1) is None
    fold0 = run / "models" / "rgenima_snp__quick" / "fold_0"
    assert json.loads((fold0 / "state.json").read_text())["epoch"] == 0 and not (fold0 / "done.json").exists()
    resumed = train_configuration(run, ("snp",), n_folds=2, seed=2, profile=QUICK)
    pd.testing.assert_frame_equal(full, resumed)
    # Finished folds are not retrained: a third call changes no file.
    mtime = (fold0 / "best.safetensors").stat().st_mtime_ns
    train_configuration(run, ("snp",), n_folds=2, seed=2, profile=QUICK)
    assert (fold0 / "best.safetensors").stat().st_mtime_ns == mtime


def test_training_progress_bar_and_one_line_per_epoch(easy_run, tmp_path, capsys, caplog, monkeypatch):
    import logging

    import rgenima.progress

    # On a terminal: a bar per fold named configuration -> fold, with the validation figures.
    monkeypatch.setattr(rgenima.progress, "bars_enabled", lambda stream=None: True)
    with caplog.at_level(logging.INFO, logger="rgenima"):
        train_configuration(_copy_run(easy_run, tmp_path / "tty"), ("snp",), n_folds=2, seed=2, profile=QUICK)
    err = capsys.readouterr().err
    for fold in (1, 2):
        assert f"rgenima_snp__quick fold {fold}/2" in err, err[-2000:]
    assert "epoch" in err and "val loss" in err and "bacc" in err
    import re

    epoch_line = re.compile(r" epoch \d+/\d+: ")
    lines = [r.getMessage() for r in caplog.records if epoch_line.search(r.getMessage())]
    # One line per epoch and fold (QUICK: 3 epochs, patience 3), naming its validation figures.
    assert len(lines) == 2 * QUICK.max_epochs, lines
    assert lines[0].startswith("rgenima_snp__quick fold 1/2 epoch 1/3: ") and "val bacc" in lines[0]
    assert any("fold 2/2 done" in r.getMessage() for r in caplog.records)
    # Not a terminal (pytest captures stderr), or --quiet: no bar, the lines stay.
    monkeypatch.undo()
    monkeypatch.setenv("RGENIMA_PROGRESS", "0")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rgenima"):
        train_configuration(_copy_run(easy_run, tmp_path / "quiet"), ("snp",), n_folds=2, seed=2, profile=QUICK)
    quiet_err = capsys.readouterr().err
    assert "fold 1/2:" not in quiet_err and "epoch/s" not in quiet_err and "%|" not in quiet_err
    assert len([r for r in caplog.records if epoch_line.search(r.getMessage())]) == 2 * QUICK.max_epochs


def test_torchrun_two_processes_end_with_identical_weights(easy_run, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    run = _copy_run(easy_run, tmp_path / "ddp")
    script = (
        "import sys; from dataclasses import replace; from rgenima.train import PROFILES, train_configuration; "
        "p = replace(PROFILES['quick'], max_epochs=2, patience=2, batch_size=8); "
        f"train_configuration({str(run)!r}, ('mri', 'snp'), n_folds=2, seed=0, profile=p)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --no-python: torchrun starts this interpreter with -c, so the package is imported from the
    # current folder as the test's is.
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "--no-python", sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for fold in (0, 1):
        done = json.loads((run / "models" / "rgenima_mri+snp__quick" / f"fold_{fold}" / "done.json").read_text())
        assert done["world_size"] == 2
        digests = done["rank_weight_digests"]
        assert len(digests) == 2 and digests[0] == digests[1]
    assert len(pd.read_csv(run / "models" / "rgenima_mri+snp__quick" / "predictions.csv")) == 48


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_smoke(easy_run, tmp_path):
    preds = train_configuration(_copy_run(easy_run, tmp_path / "gpu"), ("mri", "snp"), n_folds=2, seed=0, profile=QUICK)
    assert len(preds) == 48
    done = json.loads((tmp_path / "gpu" / "models" / "rgenima_mri+snp__quick" / "fold_0" / "done.json").read_text())
    assert done["world_size"] == 1


def test_train_cli_quick_profile(tmp_path, capsys):
    from rgenima.cli import main

    cohort = tmp_path / "cohort"
    write_synthetic_cohort(cohort, SynthConfig(n_subjects=40, seed=8, voxel_mm=4.0, n_defective=0, max_snps_per_gene=1))
    manifest = cohort / "manifest.yaml"
    manifest.write_text(
        "cohort:\n  name: cli\n  clinical: ADNIMERGE.csv\n  mri: {bids_root: bids}\n  genotypes: genotypes/cohort\n"
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--manifest",
                str(manifest),
                "--out",
                str(run),
                "--modalities",
                "snp",
                "--folds",
                "2",
                "--profile",
                "quick",
            ]
        )
        == 0
    )
    assert "trained" in capsys.readouterr().out
    preds = pd.read_csv(run / "models" / "rgenima_snp__quick" / "predictions.csv")
    assert len(preds) == 40 and set(preds["fold"]) == {0, 1}
    training = json.loads((run / "models" / "rgenima_snp__quick" / "training.json").read_text())
    assert training["modalities"] == ["snp"] and training["n_folds"] == 2
    # A missing backbone directory is a clear error.
    assert (
        main(
            [
                "train",
                "--manifest",
                str(manifest),
                "--out",
                str(run),
                "--backbone",
                str(tmp_path / "none"),
                "--folds",
                "2",
                "--profile",
                "quick",
            ]
        )
        == 1
    )
    assert "backbone directory not found" in capsys.readouterr().err


def test_two_modality_model_starts_from_the_mri_model_of_each_fold(easy_run, tmp_path):
    run = _copy_run(easy_run, tmp_path / "warm")
    # The prompt's gates start closed, so whatever the scan bias, the starting model is the
    # MRI-only model.
    profile = replace(QUICK, warm_start=True, warm_start_epochs=2, prompt_bias="scan", prompt_gate=True)
    preds = train_configuration(run, ("mri", "snp"), n_folds=2, seed=0, profile=profile)
    assert len(preds) == 48
    mri = run / "models" / "rgenima_mri__quick"
    assert all((mri / f"fold_{k}" / "done.json").is_file() for k in range(2))  # trained first
    training = json.loads((run / "models" / "rgenima_mri+snp__quick" / "training.json").read_text())
    assert training["warm_start_from"].endswith("rgenima_mri__quick")
    assert all(f["epochs"] <= 3 for f in training["folds"])  # the start (epoch -1) and 2 epochs
    for k in range(2):
        fused = json.loads((run / "models" / "rgenima_mri+snp__quick" / f"fold_{k}" / "state.json").read_text())
        start = fused["history"][0]
        assert start["epoch"] == -1 and start["train_loss"] is None
        mri_state = json.loads((mri / f"fold_{k}" / "state.json").read_text())
        assert start["val_loss"] == pytest.approx(mri_state["best_val_loss"], rel=1e-4)


def test_fine_tuning_that_does_not_help_keeps_the_mri_model(easy_run, tmp_path):
    run = _copy_run(easy_run, tmp_path / "keep")
    profile = replace(
        QUICK,
        warm_start=True,
        warm_start_epochs=2,
        warm_start_learning_rate=0.0,
        prompt_bias="scan",
        prompt_bias_learning_rate=0.0,
        prompt_gate_learning_rate=0.0,
    )
    fused = train_configuration(run, ("mri", "snp"), n_folds=2, seed=0, profile=profile)
    for k in range(2):
        assert (
            json.loads((run / "models" / "rgenima_mri+snp__quick" / f"fold_{k}" / "done.json").read_text())[
                "best_epoch"
            ]
            == -1
        )
    mri = pd.read_csv(run / "models" / "rgenima_mri__quick" / "predictions.csv", dtype={"PTID": str})
    pd.testing.assert_frame_equal(fused[["PTID", "y_pred"]], mri[["PTID", "y_pred"]])
    np.testing.assert_allclose(
        fused[["p_NC", "p_SMC", "p_MCI", "p_AD"]], mri[["p_NC", "p_SMC", "p_MCI", "p_AD"]], atol=1e-4
    )


def test_snp_scan_bias_ranks_an_associated_snp_first():
    from rgenima.data.prompt import Span
    from rgenima.model.inputs import Sequences
    from rgenima.train import snp_scan_bias

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2, 3], 50)
    dosage = rng.integers(0, 3, size=(200, 3)).astype(float)
    dosage[:, 1] = np.clip(np.round(labels / 1.5 + rng.normal(0, 0.5, 200)), 0, 2)  # dose rises with stage
    dosage[5, 0] = np.nan
    # Prompt order differs from the dosage columns: rs_c, rs_a, rs_b, then [SEP].
    prompt = np.zeros((1, 6), dtype=bool)
    prompt[0, 1:5] = True
    spans = [[Span("snp", "rs_c", "G", 1, 2), Span("snp", "rs_a", "G", 2, 3), Span("snp", "rs_b", "G", 3, 4)]]
    seq = Sequences(
        np.zeros((1, 6)), np.ones((1, 6)), np.arange(6)[None], np.array([5]), None, np.arange(0), spans, prompt
    )
    bias = snp_scan_bias(dosage, labels, ["rs_a", "rs_b", "rs_c"], seq, scale=0.5)
    assert bias.shape == (4,) and bias[3] == 0.0  # the closing [SEP] is no SNP
    assert bias[2] > 5 + bias[0] and bias[2] > 5 + bias[1]  # rs_b stands out
    r = np.corrcoef(dosage[:, 1], labels)[0, 1]
    assert bias[2] == pytest.approx(0.5 * 200 * r**2 - np.log(4))
    # "total": the SNP tokens together weigh one ordinary token, shared by their evidence.
    total = snp_scan_bias(dosage, labels, ["rs_a", "rs_b", "rs_c"], seq, scale=0.5, normalise="total")
    assert np.exp(total[:3]).sum() == pytest.approx(1.0) and total[3] == 0.0
    np.testing.assert_allclose(total[:3] - total[2], bias[:3] - bias[2])  # same ranking and gaps
    assert -0.01 < total[2] <= 0.0


def test_one_standard_error_rule():
    from rgenima.train import beats_by_one_standard_error

    start = np.array([1.0, 0.8, 1.2, 0.9, 1.1, 1.0])
    assert not beats_by_one_standard_error(start, start)
    assert beats_by_one_standard_error(start, start - 0.1)  # better on every subject
    noisy = start + np.array([-2.0, 0.3, 0.3, 0.3, 0.3, 0.3])  # lower mean loss, driven by one subject
    assert noisy.mean() < start.mean()
    assert not beats_by_one_standard_error(start, noisy)


def test_default_backbone_names_a_preparation_without_its_gene_panel(tmp_path):
    from types import SimpleNamespace

    from rgenima.train import ensure_default_backbone

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "prepare.json").write_text('{"manifest": {"cohort": {}}}')
    data = SimpleNamespace(path=prepared, snps=None)
    with pytest.raises(FileNotFoundError, match=r"prepared: prepare\.json records no gene panel; rerun"):
        ensure_default_backbone(tmp_path, data, PROFILES["quick"], seed=0)
    assert not (tmp_path / "backbone").exists()
