"""Attributions (rgenima.explain) on a quick run trained once for the module."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima.attribution import answer_attention, reference_embeddings
from rgenima.data.cohort import PrepareConfig, prepare_cohort
from rgenima.data.manifest import load_manifest
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort
from rgenima.explain import (
    METHODS,
    ROI_ONLY_METHODS,
    explain_run,
    find_configuration,
    held_out_indices,
    load_fold_model,
    modal_dosage,
    modal_genotype_ids,
    prompt_closed,
    randomized_model,
)
from rgenima.model.inputs import PreparedData, model_sequences
from rgenima.model.inputs import batch_tensors as _tensors
from rgenima.train import PROFILES, train_configuration

QUICK = replace(PROFILES["quick"], max_epochs=2, patience=2, batch_size=8)
CONFIG = "rgenima_mri+snp__quick"
IG_STEPS = 16
SANITY = 8
LINKS = 6


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """40 subjects, two SNPs per gene (so genes have multi-token spans), 2 folds, 2 epochs."""
    root = tmp_path_factory.mktemp("explain")
    write_synthetic_cohort(
        root / "cohort",
        SynthConfig(n_subjects=40, seed=5, voxel_mm=4.0, n_defective=0, effect_scale=3.0, max_snps_per_gene=2),
    )
    (root / "cohort" / "manifest.yaml").write_text(
        "cohort:\n  name: explain\n  clinical: ADNIMERGE.csv\n  mri: {bids_root: bids}\n  genotypes: genotypes/cohort\n"
    )
    run = root / "run"
    prepare_cohort(load_manifest(root / "cohort" / "manifest.yaml"), run, PrepareConfig(cube_size=8))
    # Trained from scratch: a warm-started model may keep its MRI-only start, whose closed
    # fusion gates give the genes no attribution at all.
    train_configuration(run, ("mri", "snp"), n_folds=2, seed=0, profile=replace(QUICK, warm_start=False))
    return run


@pytest.fixture(scope="module")
def explained(trained_run) -> tuple[Path, dict[str, np.ndarray]]:
    out = explain_run(trained_run, ig_steps=IG_STEPS, sanity_subjects=SANITY, link_subjects=LINKS)
    with np.load(out / "attributions.npz", allow_pickle=False) as z:
        return out, {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def data(trained_run) -> PreparedData:
    return PreparedData.load(trained_run / "prepared")


def test_explain_outputs_have_documented_shapes(trained_run, explained, data):
    out, z = explained
    assert out == trained_run / "explain" / CONFIG
    n, R = len(data.subjects), len(data.rois)
    S, G = len(data.snps), data.snps["gene"].nunique()
    assert z["ptid"].shape == z["label"].shape == z["pred"].shape == z["fold"].shape == (n,)
    assert z["ptid"].dtype.kind == "U" and list(z["ptid"]) == list(data.subjects["PTID"])
    np.testing.assert_array_equal(z["label"], data.labels)
    assert z["roi_names"].shape == (R,) and z["gene_names"].shape == (G,)
    assert z["snp_names"].shape == z["snp_gene"].shape == (S,)
    assert set(z["snp_gene"]) == set(z["gene_names"])
    for score in (*METHODS, "integrated_gradients_l2", "attention_L0"):
        assert z[f"roi__{score}"].shape == (n, R)
        if score in ROI_ONLY_METHODS:
            assert f"gene__{score}" not in z
            continue
        assert z[f"gene__{score}"].shape == (n, G)
        if not score.startswith("occlusion"):  # occlusion is per ROI and gene only
            assert z[f"snp__{score}"].shape == (n, S)
    assert "snp__occlusion" not in z
    assert "attention_L1" not in {k.split("__")[-1] for k in z}  # the quick backbone has one layer
    for m in METHODS:
        assert z[f"random__roi__{m}"].shape == (n, R)
        assert m in ROI_ONLY_METHODS or z[f"random__gene__{m}"].shape == (n, G)
    for d in ("gene_to_roi", "roi_to_gene", "occlusion"):
        assert z[f"roi_gene__{d}"].shape == (n, R, G)
    info = json.loads((out / "explain.json").read_text())
    assert info["configuration"] == CONFIG and info["methods"] == list(METHODS)
    assert info["ig_steps"] == IG_STEPS and info["seed"] == 0 and info["n_subjects"] == n
    assert info["timings"]["integrated_gradients_seconds_per_subject"] > 0
    # Every subject has every gene and SNP in its prompt (missing calls are spelled out).
    assert np.isfinite(z["gene__attention"]).all() and np.isfinite(z["snp__integrated_gradients"]).all()


def test_attention_rows_are_bounded_and_rollout_rows_are_probabilities(trained_run, explained, data):
    _, z = explained
    for score in ("attention", "attention_L0", "rollout"):
        total = z[f"roi__{score}"].sum(1) + z[f"snp__{score}"].sum(1)  # SNP spans tile the prompt
        assert (z[f"roi__{score}"] >= 0).all() and (z[f"snp__{score}"] >= 0).all()
        assert (total <= 1 + 1e-5).all() and (total > 0.1).all()
    # Full rows, from the model itself: per layer and rolled out, over every position.
    model, tokenizer = load_fold_model(trained_run, CONFIG, 0)
    seq = model_sequences(model, tokenizer, data)
    batch = _tensors(np.arange(3), seq, data, torch.device("cpu"), ("mri", "snp"))
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    per_layer, rollout, mean = answer_attention(out.attentions, batch["answer_positions"])
    assert (rollout >= 0).all() and (per_layer >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(3))
    torch.testing.assert_close(per_layer.sum(-1), torch.ones(3, per_layer.shape[1]))
    assert mean.shape == (3, seq.input_ids.shape[1], seq.input_ids.shape[1])


def test_rollout_equals_the_explicit_matrix_product():
    g = torch.Generator().manual_seed(0)
    layers = [torch.softmax(torch.randn(2, 3, 7, 7, generator=g), -1) for _ in range(3)]  # (B, heads, L, L)
    answer = torch.tensor([6, 4])
    _, rollout, _ = answer_attention(layers, answer)
    expected = torch.eye(7).expand(2, 7, 7)
    for a in layers:
        a = 0.5 * a.mean(1) + 0.5 * torch.eye(7)
        expected = (a / a.sum(-1, keepdim=True)) @ expected
    torch.testing.assert_close(rollout, expected[torch.arange(2), answer])


def test_token_spans_map_back_to_the_right_genes(trained_run, explained, data):
    _, z = explained
    model, tokenizer = load_fold_model(trained_run, CONFIG, 0)
    seq = model_sequences(model, tokenizer, data)
    snps_of = data.snps.groupby("gene")["snp"].apply(set).to_dict()
    i = 3
    gene_spans = [s for s in seq.spans[i] if s.kind == "gene"]
    assert {s.name for s in gene_spans} == set(snps_of)
    for span in gene_spans:
        units = tokenizer.convert_ids_to_tokens(seq.input_ids[i, span.start : span.end].tolist())
        assert units[0].startswith(f"{span.name}: ")
        found = {u.split(": ", 1)[-1].split(" ")[0] for u in units}
        assert found == snps_of[span.name], span.name
    for span in (s for s in seq.spans[i] if s.kind == "snp"):
        (unit,) = tokenizer.convert_ids_to_tokens(seq.input_ids[i, span.start : span.end].tolist())
        assert span.name in unit and span.name in snps_of[span.gene]
    # Gene scores are the sums of their SNPs' scores (the gene span is the union of its SNP spans).
    gene_index = {g: j for j, g in enumerate(z["gene_names"])}
    for score in ("attention", "integrated_gradients"):
        summed = np.zeros_like(z[f"gene__{score}"])
        for j, gene in enumerate(z["snp_gene"]):
            summed[:, gene_index[gene]] += z[f"snp__{score}"][:, j]
        np.testing.assert_allclose(summed, z[f"gene__{score}"], rtol=1e-4, atol=1e-6)


def test_attributions_come_only_from_held_out_folds(trained_run, explained, tmp_path, data):
    _, z = explained
    folds = pd.read_csv(trained_run / "folds.csv", dtype={"PTID": str}).set_index("PTID")
    np.testing.assert_array_equal(z["fold"], folds.loc[z["ptid"], "fold"].to_numpy())
    for k in (0, 1):
        held_out = set(
            pd.read_csv(trained_run / "models" / CONFIG / f"fold_{k}" / "predictions.csv", dtype={"PTID": str})["PTID"]
        )
        trained_on = set(folds.index[folds["fold"] != k])
        explained_by_k = set(z["ptid"][z["fold"] == k])
        assert explained_by_k == held_out and not (explained_by_k & trained_on)
    # A folds.csv that disagrees with what the fold models held out is refused.
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("explain"))
    tampered = pd.read_csv(copy / "folds.csv", dtype={"PTID": str})
    tampered.loc[0, "fold"] = 1 - tampered.loc[0, "fold"]
    tampered.to_csv(copy / "folds.csv", index=False)
    with pytest.raises(ValueError, match="held-out check failed"):
        held_out_indices(copy, CONFIG, data.subjects)
    with pytest.raises(ValueError, match="held-out check failed"):
        explain_run(copy, CONFIG, ig_steps=2)
    assert not (copy / "explain").exists()


def test_eager_probabilities_match_the_training_predictions(explained, trained_run):
    _, z = explained
    preds = pd.read_csv(trained_run / "models" / CONFIG / "predictions.csv", dtype={"PTID": str}).set_index("PTID")
    proba = preds.loc[z["ptid"], ["p_NC", "p_SMC", "p_MCI", "p_AD"]].to_numpy()
    np.testing.assert_allclose(z["proba"], proba, atol=1e-4)  # eager here, sdpa during training
    np.testing.assert_array_equal(z["pred"], z["proba"].argmax(1))
    np.testing.assert_array_equal(z["target"], z["label"])  # the true class is explained by default


def test_integrated_gradients_completeness(trained_run, explained, data):
    _, z = explained
    total = z["roi__integrated_gradients"].sum(1) + z["snp__integrated_gradients"].sum(1)
    np.testing.assert_allclose(total, z["ig_total"], rtol=1e-4, atol=1e-5)
    for i in np.flatnonzero(z["fold"] == 1)[:2]:
        # Logits at the input and at the baseline, recomputed independently of explain_run.
        model, tokenizer = load_fold_model(trained_run, CONFIG, 1)
        seq = model_sequences(model, tokenizer, data)
        batch = _tensors(np.array([i]), seq, data, torch.device("cpu"), ("mri", "snp"))
        layout = {"position_ids": batch["position_ids"], "prompt_mask": batch["prompt_mask"]}
        with torch.no_grad():
            embeds = model.embed(batch["input_ids"], batch["cubes"], batch["covariates"])
            genotype_tokens = torch.zeros_like(batch["prompt_mask"])
            for span in seq.spans[i]:
                genotype_tokens[0, span.start : span.end] = True
            train_idx = np.flatnonzero(z["fold"] != 1)
            reference_ids = torch.from_numpy(modal_genotype_ids(tokenizer, seq, data, train_idx)[[i]])
            base = reference_embeddings(model, batch, reference_ids)
            f_in = model(
                None, batch["attention_mask"], batch["answer_positions"], inputs_embeds=embeds, **layout
            ).logits
            f_base = model(
                None, batch["attention_mask"], batch["answer_positions"], inputs_embeds=base, **layout
            ).logits
        t = z["target"][i]
        difference = float(f_in[0, t] - f_base[0, t])
        assert abs(total[i] - difference) <= abs(z["ig_delta"][i]) + 1e-4
        assert abs(z["ig_delta"][i]) <= 0.05 * abs(difference) + 1e-3
        np.testing.assert_allclose(z["ig_logit_input"][i], f_in[0, t].item(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(z["ig_logit_baseline"][i], f_base[0, t].item(), rtol=1e-4, atol=1e-5)
        # The reference is the average anatomy on ROI tokens and the training fold's most common
        # genotype on every genotype token, the input elsewhere (covariates, separators, question).
        roi = batch["input_ids"][0] == model.config.roi_token_id
        prompt = genotype_tokens[0]
        torch.testing.assert_close(base[0, ~roi & ~prompt], embeds[0, ~roi & ~prompt])
        table = model.language_model.get_input_embeddings().weight
        torch.testing.assert_close(base[0, prompt], table[reference_ids[0, prompt]])
        modal = modal_dosage(data.dosage[train_idx])
        for span in (s for s in seq.spans[i] if s.kind == "snp"):
            j = int(np.flatnonzero(data.snps["snp"] == span.name)[0])
            (unit,) = tokenizer.convert_ids_to_tokens(reference_ids[0, span.start : span.end].tolist())
            a1, a2 = data.snps.loc[j, ["a1", "a2"]]
            expected = {2: f"{a1}/{a1}", 1: f"{a1}/{a2}", 0: f"{a2}/{a2}"}[int(modal[j])]
            assert unit.endswith(f"{span.name} {expected}"), (unit, expected)


def test_causal_backbone_gives_zero_roi_to_gene_attention(explained):
    _, z = explained
    assert np.all(z["roi_gene__roi_to_gene"] == 0)
    g2r = z["roi_gene__gene_to_roi"]
    assert (g2r >= 0).all() and (g2r > 0).mean() > 0.99
    assert (g2r.sum(1) <= 1 + 1e-5).all()  # a gene's tokens give at most all their attention to ROIs


def test_randomisation_sanity_check(explained, trained_run):
    out, z = explained
    sanity = json.loads((out / "sanity.json").read_text())
    assert sanity["n_checked"] == SANITY
    # The randomised models explained SANITY subjects, spread over both folds.
    checked = np.isfinite(z["random__roi__attention"]).all(1)
    assert checked.sum() == SANITY and set(z["fold"][checked]) == {0, 1}
    nc = z["label"] == 0
    for level in ("roi", "gene"):
        for m in METHODS if level == "roi" else [m for m in METHODS if m not in ROI_ONLY_METHODS]:
            assert np.isfinite(z[f"random__{level}__{m}"][checked]).all()
            assert np.isnan(z[f"random__{level}__{m}"][~checked]).all()
            r = z[f"sanity__{level}__{m}"]
            # Undefined for a constant row (e.g. the stage-vs-NC contrast of an NC subject is 0 everywhere).
            varies = (np.ptp(z[f"{level}__{m}"], 1) > 0) & (np.ptp(z[f"random__{level}__{m}"], 1) > 0)
            defined = checked & varies
            assert defined.sum() >= SANITY - 3
            if m in ("occlusion_contrast", "atrophy_sensitivity"):
                assert not defined[nc].any()
            assert np.isfinite(r[defined]).all() and np.isnan(r[~checked]).all()
            assert (np.abs(r[defined]) <= 1).all()
            summary = sanity["levels"][level][m]
            assert summary["n_subjects"] == defined.sum()
            assert -1 <= summary["q25"] <= summary["median"] <= summary["q75"] <= 1
            assert not np.allclose(z[f"{level}__{m}"][checked], z[f"random__{level}__{m}"][checked])


def test_label_randomisation_check(explained, trained_run):
    out, z = explained
    sanity = json.loads((out / "sanity.json").read_text())
    info = sanity["label_randomisation_model"]
    assert info["fold"] == 0 and info["n_checked"] == min(SANITY, int((z["fold"] == 0).sum()))
    done = out / "label_randomised" / "fold_0" / "done.json"
    assert json.loads(done.read_text())["seed"] == 0
    checked = np.isfinite(z["label_random__roi__attention"]).all(1)
    assert checked.sum() == info["n_checked"] and set(z["fold"][checked]) == {0}  # its held-out subjects only
    for level in ("roi", "gene"):
        for m in METHODS if level == "roi" else [m for m in METHODS if m not in ROI_ONLY_METHODS]:
            summary = sanity["label_randomisation"][level][m]
            assert summary["n_subjects"] + summary["n_undefined"] == info["n_checked"]
            assert not np.allclose(z[f"{level}__{m}"][checked], z[f"label_random__{level}__{m}"][checked])
    # The permuted-label model is not the trained one.
    from safetensors.torch import load_file

    trained = load_file(str(trained_run / "models" / CONFIG / "fold_0" / "best.safetensors"))
    permuted = load_file(str(done.parent / "best.safetensors"))
    assert not torch.equal(trained["score.weight"], permuted["score.weight"])


def test_occlusion_and_relevance_scores(explained):
    _, z = explained
    for level in ("roi", "gene"):
        for m in ("relevance", "occlusion", "occlusion_contrast"):
            assert np.isfinite(z[f"{level}__{m}"]).all(), (level, m)
            assert np.abs(z[f"{level}__{m}"]).max() > 0, (level, m)
    assert (z["roi__relevance"] >= 0).all()  # a sum of clipped products
    for m in ("occlusion_contrast", "atrophy_sensitivity"):  # contrasts with NC: 0 for NC subjects
        np.testing.assert_array_equal(z[f"roi__{m}"][z["label"] == 0], 0)
    assert np.abs(z["roi__atrophy_sensitivity"]).max() > 0
    links = z["roi_gene__occlusion"]
    linked = np.isfinite(links).all((1, 2))
    assert linked.sum() == LINKS and np.abs(links[linked]).max() > 0


def test_a_closed_prompt_reads_like_the_mri_only_sequence(trained_run, data):
    from rgenima.model.inputs import build_sequences

    model, tokenizer = load_fold_model(trained_run, CONFIG, 0)
    assert not prompt_closed(model)
    with torch.no_grad():
        model.prompt_gate.zero_()
    assert prompt_closed(model)
    full = model_sequences(model, tokenizer, data)
    pruned = build_sequences(
        tokenizer, data.prompts, data.cubes.shape[1], ("mri",), n_covariates=len(model.config.covariates)
    )
    idx = np.arange(6)
    with torch.no_grad():
        a = model(**_tensors(idx, full, data, torch.device("cpu"), ("mri", "snp"))).logits
        b = model(**_tensors(idx, pruned, data, torch.device("cpu"), ("mri", "snp"))).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_randomized_model_redraws_trainable_weights_only(trained_run):
    model, _ = load_fold_model(trained_run, CONFIG, 0)
    rnd = randomized_model(trained_run, CONFIG, model, seed=3)
    trained, fresh = model.state_dict(), rnd.state_dict()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "language_model.embed_tokens.weight" not in trainable
    for name, value in trained.items():
        if name in trainable:
            if value.numel() > 1 and value.std() > 0:
                assert not torch.equal(value, fresh[name]), name
        else:  # frozen genotype embeddings and cube statistics
            assert torch.equal(value, fresh[name]), name
    assert {"cube_mean", "cube_std"} <= set(trained)


def test_explain_cli_reuses_up_to_date_results(explained, trained_run, capsys):
    from rgenima.cli import main

    out, _ = explained
    mtime = (out / "attributions.npz").stat().st_mtime_ns
    assert (
        main(
            [
                "explain",
                "--run",
                str(trained_run),
                "--ig-steps",
                str(IG_STEPS),
                "--sanity-subjects",
                str(SANITY),
                "--link-subjects",
                str(LINKS),
            ]
        )
        == 0
    )
    assert "attributions.npz" in capsys.readouterr().out
    assert (out / "attributions.npz").stat().st_mtime_ns == mtime
    assert main(["explain", "--run", str(trained_run), "--configuration", "rgenima_mri"]) == 1
    assert "'configuration' must be one of" in capsys.readouterr().err


def test_find_configuration(trained_run, tmp_path):
    assert find_configuration(trained_run) == CONFIG
    with pytest.raises(FileNotFoundError, match="no trained rgenima_mri\\+snp configuration"):
        find_configuration(tmp_path)
    with pytest.raises(ValueError, match="'ig_target' must be one of"):
        explain_run(trained_run, ig_target="best")


def test_label_randomised_model_retrains_for_another_seed(explained, trained_run):
    from safetensors.torch import load_file

    from rgenima.explain import label_randomised_model

    out, _ = explained
    folder = out / "label_randomised" / "fold_0"
    first = load_file(str(folder / "best.safetensors"))["score.weight"]
    _, info = label_randomised_model(trained_run, CONFIG, 0, seed=7)
    assert info["seed"] == 7 and info["permuted"] == "training subjects"
    # A fresh training for the new permutation, not a resume of the old one's state.
    assert not torch.equal(first, load_file(str(folder / "best.safetensors"))["score.weight"])
    assert json.loads((folder / "done.json").read_text())["seed"] == 7
