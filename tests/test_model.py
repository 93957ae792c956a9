"""RiT, backbone round trip, and the R-GenIMA forward pass on tiny configs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima.model.backbone import (
    BackboneError,
    DefaultBackboneConfig,
    add_lora,
    create_default_backbone,
    load_backbone,
)
from rgenima.model.rgenima import RGenIMAConfig, RGenIMAForStaging
from rgenima.model.rit import RiT, RiTConfig, patchify

TINY_RIT = RiTConfig(
    n_rois=5, cube_size=8, input_pool=1, patch_size=4, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32
)
TINY_LM = DefaultBackboneConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
SNPS = pd.DataFrame(
    {
        "snp": ["rs429358", "rs7412", "rs6733839", "rs11136000"],
        "gene": ["APOE", "APOE", "BIN1", "CLU"],
        "chrom": ["19", "19", "2", "8"],
        "pos": [45411941, 45412079, 127892810, 27464519],
        "a1": ["C", "T", "T", "T"],
        "a2": ["T", "C", "C", "C"],
    }
)
GENES = ["APOE", "BIN1", "CLU"]


def test_patchify_layout():
    cubes = torch.arange(2 * 3 * 4**3, dtype=torch.float32).reshape(2, 3, 4, 4, 4)
    patches = patchify(cubes, 2)
    assert patches.shape == (2, 3, 8, 8)
    # The first patch of ROI 1 of subject 0 is the corner 2x2x2 block of its cube.
    np.testing.assert_array_equal(patches[0, 1, 0].numpy(), cubes[0, 1, :2, :2, :2].reshape(-1).numpy())


def test_rit_shapes():
    rit = RiT(TINY_RIT)
    out = rit(torch.randn(3, 5, 8, 8, 8))
    assert out.shape == (3, 5, 16)


def test_rit_rejects_wrong_shape():
    with pytest.raises(
        ValueError, match=r"RiT expects cubes of shape \(batch_size, 5, 8, 8, 8\); got \(3, 4, 8, 8, 8\)"
    ):
        RiT(TINY_RIT)(torch.randn(3, 4, 8, 8, 8))


def test_rit_config_checks():
    with pytest.raises(ValueError, match="'patch_size' must divide 'cube_size // input_pool'"):
        RiTConfig(cube_size=8, input_pool=1, patch_size=3)
    with pytest.raises(ValueError, match="'input_pool' must divide 'cube_size'"):
        RiTConfig(cube_size=8, input_pool=3)


def test_rit_input_pooling():
    config = RiTConfig(n_rois=5, cube_size=8, input_pool=2, patch_size=2, hidden_size=16, num_heads=2)
    assert config.patches_per_roi == 8
    assert RiT(config)(torch.randn(2, 5, 8, 8, 8)).shape == (2, 5, 16)


def test_rit_masks_patches_outside_the_roi():
    """Patches that are all zero (outside the ROI) do not influence the visual token."""
    torch.manual_seed(0)
    rit = RiT(TINY_RIT).eval()
    cubes = torch.randn(1, 5, 8, 8, 8)
    cubes[:, :, 4:, :, :] = 0.0  # the upper half of every cube is outside its ROI
    a = rit(cubes)
    # Changing the value of *inside* voxels changes the token...
    other = cubes.clone()
    other[:, :, :4] += 1.0
    assert not torch.allclose(rit(other), a)
    # ...while the masked patches would change it if they were attended to.
    unmasked = cubes.clone()
    unmasked[:, :, 4:] = 1e-3
    assert not torch.allclose(rit(unmasked), a)
    # Visual tokens of ROI r depend only on ROI r's cube.
    shifted = cubes.clone()
    shifted[:, 2] += 1.0
    changed = (rit(shifted) - a).abs().sum(-1)[0]
    assert changed[2] > 0 and torch.all(changed[[0, 1, 3, 4]] == 0)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return create_default_backbone(tmp_path_factory.mktemp("bb") / "backbone", SNPS, GENES, TINY_LM, seed=0)


def test_default_tokenizer_one_token_per_snp(backbone_dir):
    from rgenima.data.prompt import build_prompt, prompt_layout

    _, tokenizer = load_backbone(backbone_dir)
    prompt = build_prompt(np.array([1, 0, 2, np.nan]), SNPS, prompt_layout(SNPS, GENES))
    ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(SNPS)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "APOE: rs429358 C/T"


def test_backbone_round_trip_lora_inputs_embeds_attentions(backbone_dir):
    model, tokenizer = load_backbone(backbone_dir, attn_implementation="eager")
    model = add_lora(model, r=2, target_modules=("q_proj", "v_proj"))
    ids = torch.tensor([[tokenizer.bos_token_id, 5, 6, 7]])
    embeds = model.get_input_embeddings()(ids)
    out = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), output_attentions=True)
    assert out.last_hidden_state.shape == (1, 4, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 2, 4, 4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_eager_and_sdpa_give_the_same_logits(backbone_dir):
    eager, _ = load_backbone(backbone_dir, attn_implementation="eager")
    sdpa, _ = load_backbone(backbone_dir, attn_implementation="sdpa")
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    a = eager(input_ids=ids).last_hidden_state
    b = sdpa(input_ids=ids).last_hidden_state
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_missing_backbone_directory(tmp_path):
    with pytest.raises(BackboneError, match=r"backbone directory not found: .*nowhere"):
        load_backbone(tmp_path / "nowhere")


def test_directory_that_is_not_a_transformer(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(BackboneError, match=r"is not a Hugging Face transformer directory: no config.json"):
        load_backbone(tmp_path)
    (tmp_path / "config.json").write_text('{"hello": "world"}')
    with pytest.raises(BackboneError, match=r"config.json is not a transformer configuration"):
        load_backbone(tmp_path)


def _model(backbone_dir, modalities=("mri", "snp")):
    lm, tok = load_backbone(backbone_dir, attn_implementation="eager")
    torch.manual_seed(0)
    config = RGenIMAConfig(rit=TINY_RIT, modalities=modalities, roi_token_id=tok.convert_tokens_to_ids("[ROI]"))
    return RGenIMAForStaging(config, lm), tok


def _batch(tok, prompts, modalities=("mri", "snp")):
    from rgenima.model.inputs import build_sequences

    seq = build_sequences(tok, prompts, 5, modalities)
    return seq, {
        "input_ids": torch.from_numpy(seq.input_ids),
        "attention_mask": torch.from_numpy(seq.attention_mask),
        "answer_positions": torch.from_numpy(seq.answer_positions),
    }


def _prompts():
    from dataclasses import asdict

    from rgenima.data.prompt import build_prompt, prompt_layout

    layout = prompt_layout(SNPS, GENES)
    out = []
    for d in ([1, 0, 2, 0], [2, 1, 0, np.nan]):
        p = build_prompt(np.array(d, dtype=float), SNPS, layout)
        out.append({"text": p.text, "spans": [asdict(s) for s in p.spans]})
    return out


def test_rgenima_forward_and_spans(backbone_dir):
    model, tok = _model(backbone_dir)
    seq, batch = _batch(tok, _prompts())
    cubes = torch.randn(2, 5, 8, 8, 8)
    out = model(**batch, cubes=cubes, labels=torch.tensor([0, 3]), output_attentions=True)
    assert out.logits.shape == (2, 4) and out.loss.ndim == 0
    L = seq.input_ids.shape[1]
    assert L == 1 + 5 + 1 + 4 + 1 + 1  # BOS, ROI x5, SEP, 4 SNPs, SEP, question
    assert out.attentions[0].shape == (2, 2, L, L)
    apoe = next(s for s in seq.spans[0] if s.name == "APOE")
    assert (apoe.start, apoe.end) == (7, 9)
    assert seq.roi_positions.tolist() == [1, 2, 3, 4, 5]


def test_roi_token_count_mismatch_is_reported(backbone_dir):
    model, tok = _model(backbone_dir)
    _, batch = _batch(tok, _prompts())
    ids = batch["input_ids"].clone()
    ids[0, 7] = model.config.roi_token_id  # one prompt token turned into a placeholder
    with pytest.raises(ValueError, match=r"Image features and image tokens do not match: tokens: 11, features 10"):
        model.embed(ids, torch.randn(2, 5, 8, 8, 8))


def test_single_modality_configurations(backbone_dir):
    for modalities in (("mri",), ("snp",)):
        model, tok = _model(backbone_dir, modalities)
        seq, batch = _batch(tok, _prompts(), modalities)
        cubes = torch.randn(2, 5, 8, 8, 8) if "mri" in modalities else None
        assert model(**batch, cubes=cubes).logits.shape == (2, 4)
    assert _batch(tok, _prompts(), ("mri",))[0].input_ids.shape[1] == 1 + 5 + 1 + 1
    with pytest.raises(ValueError, match="'modalities' must be a non-empty subset"):
        RGenIMAConfig(modalities=("pet",))


def test_default_genotype_embeddings_encode_allele_dose(backbone_dir):
    """rsID x/y tokens: SNP identity + (a1 dose - 1) along one shared direction."""
    model, tok = load_backbone(backbone_dir)
    table = model.get_input_embeddings().weight.detach()

    def emb(unit):
        return table[tok.convert_tokens_to_ids(unit)]

    # rs7412: a1 = T (second SNP of APOE, so no gene prefix); rs429358: a1 = C, first of APOE.
    hom_a1, het, hom_a2 = emb("rs7412 T/T"), emb("rs7412 T/C"), emb("rs7412 C/C")
    torch.testing.assert_close(het, (hom_a1 + hom_a2) / 2)
    step = hom_a1 - het
    other = emb("APOE: rs429358 C/C") - emb("APOE: rs429358 C/T")
    torch.testing.assert_close(step, other)  # one dose direction shared by all SNPs
    assert not torch.allclose(het, emb("APOE: rs429358 C/T"))  # SNP identities differ
    missing = emb("rs7412 ./.")
    assert not torch.allclose(missing, het)


def test_build_model_freezes_structured_embeddings_only_for_the_default_backbone(backbone_dir):
    from rgenima.train import PROFILES, build_model

    model, _ = build_model(
        backbone_dir, n_rois=5, cube_size=8, modalities=("mri", "snp"), profile=PROFILES["quick"], seed=0
    )
    assert not model.language_model.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("vision_tower", "score")))


def _full_model(backbone_dir, modalities=("mri", "snp"), prompt_length=5, **config):
    lm, tok = load_backbone(backbone_dir, attn_implementation="eager")
    torch.manual_seed(0)
    config = RGenIMAConfig(
        rit=TINY_RIT,
        modalities=modalities,
        roi_token_id=tok.convert_tokens_to_ids("[ROI]"),
        covariate_token_id=tok.convert_tokens_to_ids("[COV]"),
        covariates=("age", "sex_female", "education"),
        prompt_length=prompt_length if "snp" in modalities else 0,
        **config,
    )
    return RGenIMAForStaging(config, lm), tok


def _full_batch(tok, modalities, n_cov=3):
    from rgenima.model.inputs import build_sequences

    seq = build_sequences(tok, _prompts(), 5, modalities, n_covariates=n_cov)
    batch = {
        k: torch.from_numpy(getattr(seq, k))
        for k in ("input_ids", "attention_mask", "position_ids", "answer_positions", "prompt_mask")
    }
    batch["covariates"] = torch.tensor([[70.0, 1.0, 16.0], [80.0, 0.0, float("nan")]])
    if "mri" in modalities:
        torch.manual_seed(1)
        batch["cubes"] = torch.randn(2, 5, 8, 8, 8) + 3.0
    return seq, batch


def test_every_token_keeps_its_position_in_the_full_layout(backbone_dir):
    _, tok = _full_model(backbone_dir)
    full, _ = _full_batch(tok, ("mri", "snp"))
    # BOS, COV x3, ROI x5, SEP, 4 SNPs, SEP, question
    assert full.input_ids.shape[1] == 1 + 3 + 5 + 1 + 4 + 1 + 1
    np.testing.assert_array_equal(full.position_ids[0], np.arange(16))
    assert full.covariate_positions.tolist() == [1, 2, 3] and full.roi_positions.tolist() == [4, 5, 6, 7, 8]
    mri, _ = _full_batch(tok, ("mri",))
    np.testing.assert_array_equal(mri.position_ids[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15])
    snp, _ = _full_batch(tok, ("snp",))
    np.testing.assert_array_equal(snp.position_ids[0], [0, 1, 2, 3, 10, 11, 12, 13, 14, 15])
    np.testing.assert_array_equal(snp.prompt_mask[0], [False] * 4 + [True] * 5 + [False])  # 4 SNPs and [SEP]


def test_closed_rit_gate_gives_regional_intensity_tokens(backbone_dir):
    """At initialisation an ROI token is its regional-intensity token: the RiT only adds
    what its gate lets through, and the token is affine in the ROI's mean intensity."""
    from rgenima.model.rgenima import regional_intensity

    model, tok = _full_model(backbone_dir)
    _, batch = _full_batch(tok, ("mri", "snp"))
    model.fit_input_statistics(batch["cubes"], batch["covariates"])
    a = model.get_image_features(batch["cubes"])
    # Same mean intensity in every ROI, another texture: same tokens while the gate is closed.
    texture = batch["cubes"] + 0.5 * torch.sign(torch.randn_like(batch["cubes"]))
    texture += (
        regional_intensity(batch["cubes"])[..., None, None, None] - regional_intensity(texture)[..., None, None, None]
    )
    torch.testing.assert_close(model.get_image_features(texture), a)
    m = (regional_intensity(batch["cubes"]) - model.intensity_mean) / model.intensity_std
    torch.testing.assert_close(a, model.roi_embedding + m.unsqueeze(-1) * model.intensity_direction)
    with torch.no_grad():
        model.rit_gate.fill_(0.5)
    assert not torch.allclose(model.get_image_features(texture), model.get_image_features(batch["cubes"]))


def test_missing_covariate_is_the_training_mean(backbone_dir):
    model, _ = _full_model(backbone_dir, ("snp",))
    model.fit_input_statistics(
        covariates=torch.tensor([[60.0, 0.0, 12.0], [80.0, 1.0, float("nan")], [70.0, 1.0, 18.0]])
    )
    torch.testing.assert_close(model.covariate_mean, torch.tensor([70.0, 2 / 3, 15.0]))
    tokens = model.get_covariate_features(torch.tensor([[70.0, 1.0, float("nan")]]))
    torch.testing.assert_close(tokens[0, 2], model.covariate_embedding[2])  # z = 0
    torch.testing.assert_close(tokens[0, 0], model.covariate_embedding[0])  # age at the mean


def test_very_negative_prompt_bias_makes_the_fused_model_its_mri_part(backbone_dir):
    """With the prompt's attention bias at -1e4, MRI+SNP gives the logits of the MRI-only
    model with the same weights: the warm start begins exactly at the MRI-only model."""
    mri, tok = _full_model(backbone_dir, ("mri",))
    _, batch = _full_batch(tok, ("mri",))
    mri.fit_input_statistics(batch["cubes"], batch["covariates"])
    mri.eval()
    fused, _ = _full_model(backbone_dir, ("mri", "snp"), prompt_bias_init=-1e4)
    missing, unexpected = fused.load_state_dict(mri.state_dict(), strict=False)
    assert missing == ["prompt_bias"] and unexpected == []
    fused.eval()
    _, fused_batch = _full_batch(tok, ("mri", "snp"))
    torch.testing.assert_close(fused(**fused_batch).logits, mri(**batch).logits, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        fused.prompt_bias.zero_()
    assert not torch.allclose(fused(**fused_batch).logits, mri(**batch).logits, atol=1e-4)


def test_zero_prompt_bias_changes_nothing(backbone_dir):
    model, tok = _full_model(backbone_dir, ("mri", "snp"))
    _, batch = _full_batch(tok, ("mri", "snp"))
    model.fit_input_statistics(batch["cubes"], batch["covariates"])
    model.eval()
    with torch.no_grad():
        model.prompt_bias.zero_()
        with_bias = model(**batch).logits
        plain = model.language_model(
            inputs_embeds=model.embed(batch["input_ids"], batch["cubes"], batch["covariates"]),
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
        )
        rows = torch.arange(2)
        expected = model.score(plain.last_hidden_state[rows, batch["answer_positions"]])
    torch.testing.assert_close(with_bias, expected, rtol=1e-4, atol=1e-5)


def test_mixup_mixes_input_embeddings(backbone_dir):
    model, tok = _full_model(backbone_dir, ("mri", "snp"))
    _, batch = _full_batch(tok, ("mri", "snp"))
    model.fit_input_statistics(batch["cubes"], batch["covariates"])
    model.eval()
    perm = torch.tensor([1, 0])
    out = model(**batch, mixup=(0.25, perm))
    embeds = model.embed(batch["input_ids"], batch["cubes"], batch["covariates"])
    torch.testing.assert_close(out.inputs_embeds, 0.25 * embeds + 0.75 * embeds[perm])
    torch.testing.assert_close(model(**batch, mixup=(1.0, perm)).logits, model(**batch).logits)


def test_key_bias_attention_eager_equals_sdpa_and_hides_the_prompt(backbone_dir):
    model, tok = _full_model(backbone_dir, ("mri", "snp"), prompt_bias_init=-30.0)
    _, batch = _full_batch(tok, ("mri", "snp"))
    model.fit_input_statistics(batch["cubes"], batch["covariates"])
    model.eval()
    with torch.no_grad():
        model.prompt_bias[1] = 2.0  # the second SNP stands out
        model.set_attention_implementation("sdpa")
        fast = model(**batch).logits
        model.set_attention_implementation("eager")
        out = model(**batch, output_attentions=True)
    torch.testing.assert_close(out.logits, fast, rtol=1e-4, atol=1e-5)
    answer = batch["answer_positions"][0]
    weights = out.attentions[0][0, :, answer]  # (heads, L): from the answer position
    segment = batch["prompt_mask"][0]
    hidden = segment.clone()
    hidden[11] = False  # the segment is tokens 10-14 (4 SNPs, [SEP]); 11 is its second SNP
    assert weights[:, hidden].max() < 1e-8 and weights[:, 11].min() > 1e-3


def test_closed_prompt_gate_makes_the_fused_model_its_mri_part_whatever_the_bias(backbone_dir):
    """With the zero-initialised gates, MRI+SNP gives the MRI-only logits even with a
    strong prompt bias (the warm start's scan bias); opened gates let the prompt in, and
    eager (attention weights returned) and sdpa agree."""
    mri, tok = _full_model(backbone_dir, ("mri",))
    _, batch = _full_batch(tok, ("mri",))
    mri.fit_input_statistics(batch["cubes"], batch["covariates"])
    mri.eval()
    fused, _ = _full_model(backbone_dir, ("mri", "snp"), prompt_gate=True)
    missing, unexpected = fused.load_state_dict(mri.state_dict(), strict=False)
    assert sorted(missing) == ["prompt_bias", "prompt_gate"] and unexpected == []
    fused.eval()
    _, fused_batch = _full_batch(tok, ("mri", "snp"))
    with torch.no_grad():
        fused.prompt_bias[:] = torch.tensor([8.0, 0.0, -2.0, 3.0, 0.0])
        for implementation in ("sdpa", "eager"):
            fused.set_attention_implementation(implementation)
            torch.testing.assert_close(fused(**fused_batch).logits, mri(**batch).logits, rtol=1e-4, atol=1e-5)
        fused.prompt_gate.fill_(0.5)
        out = fused(**fused_batch, output_attentions=True)
        fused.set_attention_implementation("sdpa")
        torch.testing.assert_close(fused(**fused_batch).logits, out.logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out.logits, mri(**batch).logits, atol=1e-3)
    # The returned weights are the gated mixture: rows sum to 1 and the prompt gets some.
    weights = out.attentions[0][0]
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    answer = fused_batch["answer_positions"][0]
    assert weights[:, answer, fused_batch["prompt_mask"][0]].sum() > 1e-3
