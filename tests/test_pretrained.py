"""A model that saves and loads itself: RGenIMAForStaging.save_pretrained / from_pretrained."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima import STAGES
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort
from rgenima.model.backbone import create_default_backbone, load_backbone, lora_settings
from rgenima.model.rgenima import RGenIMAConfig, RGenIMAForStaging, load_tokenizer
from rgenima.train import PROFILES, train_configuration

ROOT = Path(__file__).resolve().parents[1]
QUICK = replace(PROFILES["quick"], max_epochs=2, patience=2, batch_size=8, warm_start=False)
CONFIG = "rgenima_mri+snp__quick"
PROBA = [f"p_{s}" for s in STAGES]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """32 subjects, both modalities, 2 folds, 2 epochs."""
    root = tmp_path_factory.mktemp("pretrained")
    write_synthetic_cohort(
        root / "cohort",
        SynthConfig(n_subjects=32, seed=5, voxel_mm=4.0, n_defective=0, effect_scale=3.0, max_snps_per_gene=1),
    )
    (root / "cohort" / "manifest.yaml").write_text(
        "cohort:\n  name: pretrained\n  clinical: ADNIMERGE.csv\n  mri: {bids_root: bids}\n"
        "  genotypes: genotypes/cohort\n"
    )
    run = root / "run"
    prepare_cohort(load_manifest(root / "cohort" / "manifest.yaml"), run, PrepareConfig(cube_size=8))
    train_configuration(run, ("mri", "snp"), n_folds=2, seed=0, profile=QUICK)
    return run


# Run in a fresh interpreter where importing rgenima.train fails.
_WITHOUT_TRAINING_CODE = r"""
import json, sys
sys.modules["rgenima.train"] = None
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima.explain import load_fold_model
from rgenima.external import rgenima_external_proba
from rgenima.model.inputs import PreparedData, model_sequences, predict_proba
from rgenima.model.rgenima import RGenIMAForStaging, load_tokenizer

run, configuration = Path(sys.argv[1]), sys.argv[2]
try:
    import rgenima.train
    raise SystemExit("rgenima.train was importable")
except ImportError:
    pass
data = PreparedData.load(run / "prepared")
order = {p: i for i, p in enumerate(data.subjects["PTID"])}
out = {"folds": {}}
for fold in (0, 1):
    folder = run / "models" / configuration / f"fold_{fold}"
    model = RGenIMAForStaging.from_pretrained(folder / "pretrained")
    tokenizer = load_tokenizer(folder / "pretrained")
    table = pd.read_csv(folder / "predictions.csv", dtype={"PTID": str})
    idx = np.array([order[p] for p in table["PTID"]])
    seq = model_sequences(model, tokenizer, data)
    proba = predict_proba(model, idx, seq, data, torch.device("cpu"), tuple(model.config.modalities))
    via_explain, tok = load_fold_model(run, configuration, fold, attn_implementation="sdpa")
    again = predict_proba(via_explain, idx, model_sequences(via_explain, tok, data), data, torch.device("cpu"),
                          tuple(model.config.modalities))
    out["folds"][fold] = {"ptid": list(table["PTID"]), "proba": proba.tolist(), "via_explain": again.tolist(),
                          "training": model.training}
out["external"] = rgenima_external_proba(run, configuration, data).tolist()
out["modules"] = sorted(m for m, module in sys.modules.items() if m.startswith("rgenima.train") and module is not None)
print(json.dumps(out))
"""


def test_training_writes_a_pretrained_folder_per_fold(trained_run):
    for fold in (0, 1):
        folder = trained_run / "models" / CONFIG / f"fold_{fold}" / "pretrained"
        assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "rgenima" and config["architectures"] == ["RGenIMAForStaging"]
        assert config["text_config"]["model_type"] == "llama" and config["lora"] is None
        assert config["freeze_input_embeddings"] is True
        assert (folder.parent / "best.safetensors").is_file()  # still read by warm starts and validation


def test_fold_model_reloads_without_the_training_code(trained_run):
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TRAINING_CODE, str(trained_run), CONFIG],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    by_fold = []
    for fold in (0, 1):
        table = pd.read_csv(trained_run / "models" / CONFIG / f"fold_{fold}" / "predictions.csv", dtype={"PTID": str})
        got = out["folds"][str(fold)]
        assert got["ptid"] == list(table["PTID"]) and got["training"] is False
        # predictions.csv holds 6 decimals.
        np.testing.assert_allclose(got["proba"], table[PROBA].to_numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(got["via_explain"], got["proba"], atol=1e-6, rtol=0)
        by_fold.append(np.asarray(got["proba"]))
    # Every subject, averaged over the two fold models, as the external evaluation does.
    external = np.asarray(out["external"])
    assert external.shape == (32, 4)
    np.testing.assert_allclose(external.sum(1), 1.0, atol=1e-5)


def test_old_run_without_pretrained_folders_still_loads(trained_run, tmp_path):
    from rgenima.explain import load_fold_model

    run = tmp_path / "old"
    run.mkdir()
    (run / "prepared").symlink_to(trained_run / "prepared")
    shutil.copytree(trained_run / "models", run / "models")
    shutil.copy(trained_run / "folds.csv", run / "folds.csv")
    shutil.rmtree(run / "models" / CONFIG / "fold_0" / "pretrained")
    old, _ = load_fold_model(run, CONFIG, 0)
    new, _ = load_fold_model(trained_run, CONFIG, 0)
    assert set(old.state_dict()) == set(new.state_dict())
    for name, value in new.state_dict().items():
        assert torch.equal(old.state_dict()[name], value), name


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory) -> Path:
    from tests.test_model import GENES, SNPS, TINY_LM

    return create_default_backbone(tmp_path_factory.mktemp("backbone") / "bb", SNPS, GENES, TINY_LM)


def _untrained(backbone_dir, **config):
    from tests.test_model import TINY_RIT

    lm, tok = load_backbone(backbone_dir)
    torch.manual_seed(0)
    config = RGenIMAConfig(
        rit=TINY_RIT,
        roi_token_id=tok.convert_tokens_to_ids("[ROI]"),
        covariate_token_id=tok.convert_tokens_to_ids("[COV]"),
        covariates=("age", "sex_female", "education"),
        prompt_length=5,
        prompt_gate=True,
        **config,
    )
    model = RGenIMAForStaging(config, lm).eval()
    with torch.no_grad():  # statistics and gates away from their initial values, so that they must be saved
        model.cube_mean.add_(0.3)
        model.covariate_std.mul_(2.0)
        model.prompt_gate.fill_(0.5)
    return model, tok


def _logits(model, tok) -> torch.Tensor:
    from tests.test_model import _full_batch

    _, batch = _full_batch(tok, ("mri", "snp"))
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("lora", [None, lora_settings(r=2)], ids=["full", "lora"])
def test_save_and_load_round_trip(backbone_dir, tmp_path, lora):
    model, tok = _untrained(backbone_dir, lora=lora, freeze_input_embeddings=lora is None)
    if lora is not None:
        with torch.no_grad():  # LoRA's B starts at 0: make the adapters matter
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_()
    model.save_pretrained(tmp_path / "m", tokenizer=tok)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    loaded = RGenIMAForStaging.from_pretrained(tmp_path / "m")
    assert torch.equal(torch.random.get_rng_state(), state)  # loading draws nothing from the caller's RNG
    assert not loaded.training
    assert loaded.config.to_dict() == model.config.to_dict() | {"text_config": loaded.config.text_config}
    assert {k: v.requires_grad for k, v in loaded.named_parameters()} == {
        k: v.requires_grad for k, v in model.named_parameters()
    }
    torch.testing.assert_close(_logits(loaded, load_tokenizer(tmp_path / "m")), _logits(model, tok), atol=0, rtol=0)
    assert load_tokenizer(tmp_path / "m").get_vocab() == tok.get_vocab()


def test_unknown_config_key_is_refused(backbone_dir, tmp_path):
    model, tok = _untrained(backbone_dir)
    folder = model.save_pretrained(tmp_path / "m", tokenizer=tok)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vision_feature_layer": -2}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['vision_feature_layer'\]"):
        RGenIMAForStaging.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "rit": {**config["rit"], "stride": 2}}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stride'\] for RiTConfig"):
        RGenIMAForStaging.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "lora": {"r": 2, "rank_pattern": {}}}))
    with pytest.raises(ValueError, match=r"unknown LoRA setting\(s\) \['rank_pattern'\]"):
        RGenIMAForStaging.from_pretrained(folder)


def test_missing_files_and_mismatched_weights(backbone_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        RGenIMAForStaging.from_pretrained(tmp_path / "nowhere")
    model, tok = _untrained(backbone_dir)
    folder = model.save_pretrained(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_tokenizer(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "covariates": []}))
    with pytest.raises(ValueError, match="does not fit .*unexpected .*covariate_direction"):
        RGenIMAForStaging.from_pretrained(folder)
