"""Attribution methods (rgenima.attribution) against worked examples and hand-made models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from rgenima.attribution import (
    gradient_weighted_relevance,
    occlusion_logits,
    occlusion_scores,
    roi_relevance_under_gene_occlusion,
)
from rgenima.explain import modal_dosage


def test_relevance_of_a_worked_one_layer_example():
    # One layer, one head, three tokens, answer at token 2. With dy/dA = 1 everywhere,
    # A_bar = A and R = I + A: the answer row is A's last row plus 1 on the answer itself.
    a = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]).view(1, 1, 3, 3)
    r = gradient_weighted_relevance([a], [torch.ones_like(a)], torch.tensor([2]))
    torch.testing.assert_close(r, torch.tensor([[0.2, 0.3, 1.5]]))
    # Negative gradient x attention is clipped: a token whose attention lowers the output gets nothing.
    g = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 1.0]]).view(1, 1, 3, 3)
    r = gradient_weighted_relevance([a], [g], torch.tensor([2]))
    torch.testing.assert_close(r, torch.tensor([[0.2, 0.0, 1.5]]))


def test_relevance_equals_the_explicit_matrix_recursion():
    gen = torch.Generator().manual_seed(0)
    layers = [torch.softmax(torch.randn(2, 3, 6, 6, generator=gen), -1) for _ in range(3)]
    grads = [torch.randn(2, 3, 6, 6, generator=gen) for _ in range(3)]
    answer = torch.tensor([5, 3])
    # Chefer et al.'s rule as written: R = I, then R <- R + mean_h((grad * A)^+) @ R, layer by layer.
    r = torch.eye(6).expand(2, 6, 6)
    for a, g in zip(layers, grads):
        r = r + (g * a).clamp_min(0).mean(1) @ r
    expected = r[torch.arange(2), answer]
    torch.testing.assert_close(gradient_weighted_relevance(layers, grads, answer), expected)


class _ToyModel(nn.Module):
    """What the attribution functions need of a model besides its forward pass."""

    def __init__(self, n_classes: int = 4):
        super().__init__()
        self.config = SimpleNamespace(n_classes=n_classes)

    def set_attention_implementation(self, implementation):
        pass


class _LinearTokens(_ToyModel):
    """logits = W^T sum_t w_t x_t: replacing token t by r_t moves the logits by W^T w_t (r_t - x_t)."""

    def __init__(self, length: int, hidden: int, n_classes: int = 4):
        super().__init__(n_classes)
        gen = torch.Generator().manual_seed(1)
        self.w = torch.randn(length, 1, generator=gen)
        self.proj = torch.randn(hidden, n_classes, generator=gen)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        answer_positions=None,
        position_ids=None,
        prompt_mask=None,
        inputs_embeds=None,
        **_,
    ):
        return SimpleNamespace(logits=(inputs_embeds * self.w).sum(1) @ self.proj)


def _toy_batch(b: int, length: int):
    return {
        "attention_mask": torch.ones(b, length, dtype=torch.long),
        "answer_positions": torch.full((b,), length - 1),
        "position_ids": None,
        "prompt_mask": None,
    }


def test_occlusion_matches_the_closed_form_and_captum():
    b, length, hidden = 3, 7, 5
    model = _LinearTokens(length, hidden)
    gen = torch.Generator().manual_seed(2)
    x, ref = torch.randn(b, length, hidden, generator=gen), torch.randn(b, length, hidden, generator=gen)
    # Feature 0: token 1; feature 1: tokens 2-3 (subject 2 lacks it); feature 2: token 5; others never replaced.
    mask = torch.tensor([[-1, 0, 1, 1, -1, 2, -1]] * b)
    mask[2, 2:4] = -1
    batch = _toy_batch(b, length)
    logits = model(None, inputs_embeds=x).logits
    occluded = occlusion_logits(model, batch, x, ref, mask, 3)
    assert occluded.shape == (b, 3, 4)
    for f in range(3):
        tokens = (mask == f).unsqueeze(-1)
        expected = logits + ((ref - x) * model.w * tokens).sum(1) @ model.proj
        torch.testing.assert_close(occluded[:, f], expected)
    torch.testing.assert_close(occluded[2, 1], logits[2])  # a feature the subject lacks changes nothing
    target = torch.tensor([3, 1, 2])
    log_probability, contrast = occlusion_scores(logits, occluded, target)
    lp = torch.log_softmax(logits, -1)
    lp_occ = torch.log_softmax(occluded, -1)
    for i in range(b):
        for f in range(3):
            assert log_probability[i, f] == pytest.approx(float(lp[i, target[i]] - lp_occ[i, f, target[i]]), abs=1e-5)
            d = (logits[i, target[i]] - logits[i, 0]) - (occluded[i, f, target[i]] - occluded[i, f, 0])
            assert contrast[i, f] == pytest.approx(float(d), abs=1e-5)
    # The same differences from captum's FeatureAblation (one target column per subject).
    from captum.attr import FeatureAblation

    def forward(embeds):
        return torch.log_softmax(model(None, inputs_embeds=embeds).logits, -1)

    captum_mask = torch.where(mask < 0, torch.full_like(mask, 3), mask).unsqueeze(-1).expand(-1, -1, hidden)
    captum_ref = torch.where(mask.unsqueeze(-1) < 0, x, ref)
    attr = FeatureAblation(forward).attribute(x, baselines=captum_ref, target=target, feature_mask=captum_mask)
    for f in range(3):
        for i in range(b):
            tokens = torch.nonzero(mask[i] == f).flatten()
            if tokens.numel():
                assert float(attr[i, tokens[0], 0]) == pytest.approx(float(log_probability[i, f]), abs=1e-5)


class _Interaction(_ToyModel):
    """logit_c = c * (u . x_roi)(v . x_gene): ROI 0 (token 1) interacts with gene 0 (tokens 3-4)."""

    def __init__(self, hidden: int):
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.u, self.v = torch.randn(hidden, generator=gen), torch.randn(hidden, generator=gen)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        answer_positions=None,
        position_ids=None,
        prompt_mask=None,
        inputs_embeds=None,
        **_,
    ):
        x = inputs_embeds
        roi0 = x[:, 1] @ self.u
        gene0 = x[:, 3:5].sum(1) @ self.v
        roi1 = x[:, 2] @ self.u  # ROI 1 (token 2) and gene 1 (token 5) enter additively
        gene1 = x[:, 5] @ self.v
        s = roi0 * gene0 + roi1 + gene1
        return SimpleNamespace(logits=s.unsqueeze(-1) * torch.arange(4.0))


def test_roi_gene_links_find_the_interacting_pair_only():
    b, length, hidden = 2, 7, 4
    model = _Interaction(hidden)
    gen = torch.Generator().manual_seed(4)
    x, ref = torch.randn(b, length, hidden, generator=gen), torch.randn(b, length, hidden, generator=gen)
    member = torch.zeros(b, 2, length)
    member[:, 0, 3:5] = 1
    member[:, 1, 5] = 1
    target = torch.tensor([3, 2])
    links = roi_relevance_under_gene_occlusion(
        model, _toy_batch(b, length), x, ref, torch.tensor([1, 2]), member, target
    )
    assert links.shape == (b, 2, 2)
    # d/dx_roi0 logit_t = t (v . x_gene0) u, so the link is t ((x - r)_gene0 . v)(u . (x - r)_roi0).
    expected = target * ((x - ref)[:, 3:5].sum(1) @ model.v) * ((x - ref)[:, 1] @ model.u)
    torch.testing.assert_close(links[:, 0, 0], expected.float())
    torch.testing.assert_close(links[:, 0, 1], torch.zeros(b))  # additive gene: no link
    torch.testing.assert_close(links[:, 1], torch.zeros(b, 2))  # additive ROI: no link


def test_modal_dosage_ignores_missing_calls_and_breaks_ties_low():
    dosage = np.array([[0, 2, np.nan], [1, 2, 1], [1, np.nan, 2], [0, 0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(modal_dosage(dosage), [0, 2, 1])


class _RegionalIntensity(_ToyModel):
    """logits_c = sum_r w_cr * mean(cube_r): a region-mean model with a known derivative."""

    def __init__(self, n_rois: int):
        super().__init__()
        self.w = torch.randn(4, n_rois, generator=torch.Generator().manual_seed(5))

    def forward(self, input_ids=None, attention_mask=None, answer_positions=None, cubes=None, **_):
        return SimpleNamespace(logits=cubes.mean(dim=(2, 3, 4)) @ self.w.T)


def test_atrophy_sensitivity_of_a_region_mean_model():
    from rgenima.attribution import atrophy_sensitivity

    model = _RegionalIntensity(3)
    cubes = torch.rand(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(6)) + 0.5
    target = torch.tensor([3, 0])
    score = atrophy_sensitivity(model, {"cubes": cubes}, target)
    # f = logit_t - logit_NC is linear in the means: -d f / d eps = -(w_t - w_NC) * mean(cube_r).
    expected = -(model.w[target] - model.w[0]) * cubes.mean(dim=(2, 3, 4))
    torch.testing.assert_close(score, expected)
    torch.testing.assert_close(score[1], torch.zeros(3))  # an NC subject: no contrast
    # A region whose darkening raises the AD logit scores positive.
    model.w[3, 1], model.w[0, 1] = -2.0, 0.0
    assert atrophy_sensitivity(model, {"cubes": cubes}, target)[0, 1] > 0
