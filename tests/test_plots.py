"""Tests of rgenima.plots: every figure on small generated inputs (Agg backend).

Each figure function must return a Figure with the expected panels and save to PNG;
the data-bearing parts are checked where a wrong mapping would go unnoticed: ROI
scores land on their own voxels, AD loci are coloured apart, planted ROI x gene cells
are outlined at the right place.
"""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from rgenima import STAGES, plots  # noqa: E402
from rgenima.errors import DataContractError  # noqa: E402
from rgenima.evaluate import evaluate_predictions  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save(fig, tmp_path, name="fig.png"):
    path = tmp_path / name
    fig.savefig(path, dpi=40)
    assert path.stat().st_size > 0
    return path


def _panels(fig):
    """Axes that are panels (not colour bars)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


# ---------------------------------------------------------------------------------
# Generated inputs
# ---------------------------------------------------------------------------------
def _predictions(
    n=64,
    seed=0,
    configurations=(
        "rgenima_mri+snp",
        "rgenima_mri",
        "baseline_logistic",
        "reference_oracle",
        "reference_truth_feature_lda",
    ),
):
    rng = np.random.default_rng(seed)
    y_true = np.array(STAGES)[np.arange(n) % 4]
    out = {}
    for i, name in enumerate(configurations):
        logits = rng.normal(size=(n, 4))
        logits[np.arange(n), np.arange(n) % 4] += 0.5 + i * 0.4  # increasingly accurate
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        table = pd.DataFrame(
            {
                "PTID": [f"S{k:03d}" for k in range(n)],
                "fold": np.arange(n) % 3,
                "y_true": y_true,
                "y_pred": np.array(STAGES)[proba.argmax(axis=1)],
            }
        )
        for k, stage in enumerate(STAGES):
            table[f"p_{stage}"] = proba[:, k]
        out[name] = table
    return out


@pytest.fixture(scope="module")
def predictions():
    return _predictions()


@pytest.fixture(scope="module")
def metrics(predictions):
    return evaluate_predictions(predictions, n_boot=50, seed=0)


def _attribution_table(names, stages, methods, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for method in methods:
        for stage in stages:
            score = rng.normal(size=len(names))
            order = np.argsort(-score, kind="stable")
            rank = np.empty(len(names), int)
            rank[order] = np.arange(1, len(names) + 1)
            for name, s, r in zip(names, score, rank):
                rows.append(
                    {
                        "name": name,
                        "stage": stage,
                        "method": method,
                        "score": s,
                        "ci_low": s - 0.2,
                        "ci_high": s + 0.2,
                        "rank": r,
                    }
                )
    return pd.DataFrame(rows)


def _tiny_atlas():
    """(7, 8, 9) label image, 10 mm voxels centred on MNI origin, three ROIs."""
    data = np.zeros((7, 8, 9), dtype=np.int16)
    data[1:3, 2:5, 2:6] = 11
    data[4:6, 2:5, 2:6] = 12
    data[2:5, 5:7, 5:8] = 30
    affine = np.diag([10.0, 10.0, 10.0, 1.0])
    affine[:3, 3] = [-30, -40, -40]
    labels = pd.DataFrame({"index": [11, 12, 30], "name": ["Hippo_L", "Hippo_R", "Precuneus"]})
    return nib.Nifti1Image(data, affine), labels


# ---------------------------------------------------------------------------------
# Cohort figures (existing)
# ---------------------------------------------------------------------------------
def test_plot_class_counts_and_genotype_summary(tmp_path):
    fig = plots.plot_class_counts({"NC": 10, "SMC": 3, "MCI": 12, "AD": 7})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 4
    _save(fig, tmp_path)
    rng = np.random.default_rng(0)
    snp_stats = pd.DataFrame({"maf": rng.uniform(0, 0.5, 30), "call_rate": rng.uniform(0.9, 1, 30)})
    apoe = pd.DataFrame({"stage": np.array(STAGES)[np.arange(40) % 4], "APOE4": np.arange(40) % 3})
    fig = plots.plot_genotype_summary(snp_stats, apoe)
    assert len(fig.axes) == 3
    _save(fig, tmp_path, "geno.png")


def test_stage_colors_cover_every_stage():
    assert set(STAGES) <= set(plots.STAGE_COLORS)
    assert len({plots.STAGE_COLORS[s] for s in STAGES}) == len(STAGES)


# ---------------------------------------------------------------------------------
# 1. Framework
# ---------------------------------------------------------------------------------
def test_plot_framework_shows_the_numbers_passed(tmp_path):
    fig = plots.plot_framework(
        n_rois=83,
        n_snps=641,
        n_genes=160,
        rit_hidden_size=48,
        hidden_size=96,
        num_layers=3,
        atlas_name="Desikan-Killiany",
        pretrained=True,
    )
    assert len(fig.axes) == 1
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for expected in (
        "83 ROIs",
        "641 SNPs",
        "160 genes",
        "48 → 96",
        "3 layers",
        "LoRA",
        "Desikan-Killiany",
        "rs429358",
        "integrated gradients",
    ):
        assert expected in texts
    assert all(s in texts for s in STAGES)
    assert tuple(fig.get_size_inches()) == (12.0, 5.0)
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 2-4. Performance
# ---------------------------------------------------------------------------------
def test_plot_performance_rows_and_reference_lines(metrics, tmp_path):
    fig = plots.plot_performance(metrics)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # Human names; references are lines, not rows.
    assert labels == ["R-GenIMA (MRI + SNP)", "R-GenIMA (MRI only)", "Logistic regression"]
    assert ax.get_yticklabels()[0].get_fontweight() == "bold"
    vertical = [
        line.get_xdata()[0]
        for line in ax.get_lines()
        if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2 and tuple(line.get_ydata()) == (0, 1)
    ]
    oracle = metrics["configurations"]["reference_oracle"]["metrics"]["balanced_accuracy"]
    lda = metrics["configurations"]["reference_truth_feature_lda"]["metrics"]["balanced_accuracy"]
    assert any(math.isclose(x, oracle) for x in vertical)
    assert any(math.isclose(x, lda) for x in vertical)
    assert any(math.isclose(x, 0.25) for x in vertical)
    assert ax.get_xlabel() == "balanced accuracy"
    _save(fig, tmp_path)


def test_plot_learning_curve_draws_each_model_per_size(tmp_path):
    sizes = {}
    for n, value in (("400", 0.60), ("1000", 0.63), ("2000", 0.66)):
        bacc = {
            "rgenima_mri+snp": value,
            "rgenima_mri": value - 0.01,
            "baseline_logistic_roi": value - 0.02,
            "baseline_logistic_roi_apoe": value - 0.015,
            "reference_truth_feature_lda": value + 0.05,
            "reference_oracle": 0.76,
        }
        sizes[n] = {"balanced_accuracy": bacc, "ci": {k: [v - 0.02, v + 0.02] for k, v in bacc.items()}}
    fig = plots.plot_learning_curve({"sizes": sizes})
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(labels) == {v[0] for v in plots.LEARNING_CURVE_MODELS.values()} | {
        "oracle (true posterior): 0.760",
        "chance (0.25)",
    }
    curves = {c.get_label(): c for c in ax.containers}
    np.testing.assert_allclose(curves["R-GenIMA MRI + SNP"].lines[0].get_ydata(), [0.60, 0.63, 0.66])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["400", "1,000", "2,000"]
    _save(fig, tmp_path)


def test_plot_performance_without_references(predictions, tmp_path):
    subset = {k: v for k, v in predictions.items() if not k.startswith("reference_")}
    fig = plots.plot_performance(evaluate_predictions(subset, n_boot=20))
    assert len(fig.axes[0].get_yticklabels()) == 3
    _save(fig, tmp_path)


def test_plot_confusion_matrices_panels_and_annotations(metrics, tmp_path):
    fig = plots.plot_confusion_matrices(metrics, ["rgenima_mri+snp", "baseline_logistic"])
    panels = _panels(fig)
    assert len(panels) == 2
    assert len(fig.axes) == 3  # one shared colour bar
    counts = np.asarray(metrics["configurations"]["rgenima_mri+snp"]["metrics"]["confusion_matrix"])
    texts = [t.get_text() for t in panels[0].texts]
    assert len(texts) == 16
    expected = f"{counts[0, 0]}\n({100 * counts[0, 0] / counts[0].sum():.0f}%)"
    assert texts[0] == expected
    assert [t.get_text() for t in panels[0].get_xticklabels()] == list(STAGES)
    with pytest.raises(ValueError, match="'configurations' must be one of"):
        plots.plot_confusion_matrices(metrics, ["nope"])
    _save(fig, tmp_path)


def test_plot_roc_curves_one_panel_per_stage(predictions, tmp_path):
    names = ["rgenima_mri+snp", "baseline_logistic"]
    fig = plots.plot_roc_curves(predictions, names)
    assert len(fig.axes) == len(STAGES)
    for ax in fig.axes:
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(legend) == 2 and legend[0].startswith("R-GenIMA (MRI + SNP) (")
    main_line = fig.axes[0].get_lines()[1]
    assert main_line.get_linewidth() > fig.axes[0].get_lines()[2].get_linewidth()
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 5. Training curves
# ---------------------------------------------------------------------------------
def _history(n_epochs, best, seed):
    rng = np.random.default_rng(seed)
    return [
        {
            "epoch": e,
            "train_loss": 1.4 - 0.05 * e,
            "val_loss": 1.4 - 0.04 * e + (0.1 if e != best else -0.2),
            "val_balanced_accuracy": float(rng.uniform(0.25, 0.6)),
        }
        for e in range(n_epochs)
    ]


def test_plot_training_curves_marks_best_epoch(tmp_path):
    histories = {0: _history(8, 5, 0), 1: _history(10, 3, 1), 2: _history(6, 2, 2)}
    fig = plots.plot_training_curves(histories, {0: 5, 1: 3, 2: 2})
    assert len(fig.axes) == 2
    stars = [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    assert sorted(int(s.get_xdata()[0]) for s in stars) == [2, 3, 5]
    # default best epoch = minimum validation loss
    fig2 = plots.plot_training_curves({0: _history(8, 6, 0)}, show_accuracy=False)
    assert len(fig2.axes) == 1
    (star,) = [line for line in fig2.axes[0].get_lines() if line.get_marker() == "*"]
    assert star.get_xdata()[0] == 6
    _save(fig, tmp_path)


def test_load_training_histories(tmp_path):
    for k, best in ((0, 4), (1, 2)):
        d = tmp_path / "models" / "cfg" / f"fold_{k}"
        d.mkdir(parents=True)
        (d / "state.json").write_text(json.dumps({"epoch": 7, "best_epoch": best, "history": _history(8, best, k)}))
    histories, best = plots.load_training_histories(tmp_path, "cfg")
    assert list(histories) == [0, 1] and best == {0: 4, 1: 2}
    assert len(histories[1]) == 8 and histories[1][0]["epoch"] == 0
    with pytest.raises(DataContractError, match="no fold_<k>/state.json found"):
        plots.load_training_histories(tmp_path, "missing")


# ---------------------------------------------------------------------------------
# 6. Brain maps
# ---------------------------------------------------------------------------------
def test_roi_score_image_puts_scores_on_their_voxels():
    image, labels = _tiny_atlas()
    scores = pd.Series({"Hippo_L": 1.5, "Hippo_R": -2.0, "Precuneus": np.nan})
    out = plots.roi_score_image((image, labels), scores)
    data = out.get_fdata()
    atlas = np.asarray(image.dataobj)
    assert out.shape == image.shape and np.allclose(out.affine, image.affine)
    assert np.all(data[atlas == 11] == 1.5)
    assert np.all(data[atlas == 12] == -2.0)
    assert np.all(data[atlas == 30] == 0)  # NaN score -> background
    assert np.all(data[atlas == 0] == 0)
    assert np.isfinite(data).all()


def test_roi_score_image_unknown_names():
    image, labels = _tiny_atlas()
    with pytest.warns(UserWarning, match="not atlas ROIs"):
        out = plots.roi_score_image((image, labels), {"Hippo_L": 1.0, "Amygdala_L": 3.0})
    assert out.get_fdata().max() == 1.0
    with pytest.raises(ValueError, match="names no ROI of the atlas"):
        plots.roi_score_image((image, labels), {"Amygdala_L": 3.0})


def test_roi_score_image_on_aal2():
    from rgenima.data.atlas import load_atlas

    atlas = load_atlas("aal2")
    a, b = atlas.labels["name"].iloc[0], atlas.labels["name"].iloc[57]
    ia, ib = atlas.labels["index"].iloc[0], atlas.labels["index"].iloc[57]
    out = plots.roi_score_image(atlas, {a: 0.7, b: -0.3})
    data, labels = out.get_fdata(), np.asarray(atlas.image.dataobj)
    assert np.allclose(data[labels == ia], 0.7) and np.allclose(data[labels == ib], -0.3)
    assert np.all(data[(labels != ia) & (labels != ib)] == 0)


def test_plot_brain_signature_one_map_per_stage(tmp_path):
    image, labels = _tiny_atlas()
    table = _attribution_table(labels["name"].tolist(), ["SMC", "MCI", "AD"], ["integrated_gradients"])
    fig = plots.plot_brain_signature(
        table, (image, labels), ("SMC", "AD"), "integrated_gradients", display_mode="ortho", top=2
    )
    titles = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("SMC: integrated_gradients") for t in titles)
    assert any(t.startswith("AD: integrated_gradients") for t in titles)
    assert not any(t.startswith("MCI") for t in titles)
    _save(fig, tmp_path)
    with pytest.raises(ValueError, match="no rows for stage 'NC'"):
        plots.plot_brain_signature(table, (image, labels), ("NC",))


def test_plot_top_rois_marks_planted(tmp_path):
    names = [f"ROI_{i}" for i in range(30)]
    table = _attribution_table(names, ["AD"], ["attention"])
    top3 = table.sort_values("rank")["name"].tolist()[:3]
    fig = plots.plot_top_rois(table, "AD", "attention", top=10, planted=[top3[1], "ROI_not_there"])
    (ax,) = fig.axes
    assert len(ax.patches) == 10
    labels = ax.get_yticklabels()
    top_down = sorted(zip(ax.get_yticks(), (t.get_text() for t in labels)), reverse=True)
    assert [name for _, name in top_down[:3]] == top3  # rank 1 on top
    bold = [t.get_text() for t in labels if t.get_fontweight() == "bold"]
    assert bold == [top3[1]]
    assert ax.get_title() == "AD: top 10 ROIs (Attention)"  # the method's human name
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 7. Gene signatures
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gene_inputs():
    genes = ["APOE", "BIN1", "CLU", "RBFOX1", "CR1"] + [f"G{i}" for i in range(25)]
    panel = pd.DataFrame({"symbol": genes, "ad_locus": [g in {"APOE", "BIN1", "CLU", "RBFOX1", "CR1"} for g in genes]})
    table = _attribution_table(genes, ["SMC", "MCI", "AD"], ["integrated_gradients"], seed=4)
    return table, panel


def test_plot_gene_signature_colours_ad_loci(gene_inputs, tmp_path):
    table, panel = gene_inputs
    fig = plots.plot_gene_signature(table, panel, "AD", "integrated_gradients", top=30, planted=["APOE"])
    (ax,) = fig.axes
    bars = ax.patches
    assert len(bars) == 30
    names = [t.get_text() for t in ax.get_yticklabels()]
    loci = set(panel.loc[panel["ad_locus"], "symbol"])
    for bar, name in zip(bars, names):
        expected = plots.LOCUS_COLORS[name in loci]
        assert bar.get_facecolor() == pytest.approx(to_rgba(expected))
    assert plots.LOCUS_COLORS[True] != plots.LOCUS_COLORS[False]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["GWAS AD locus", "other panel gene", "planted causal gene"]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    at = dict(zip(ax.get_yticks(), names))
    assert len(stars) == 1 and at[round(stars[0].get_ydata()[0])] == "APOE"
    _save(fig, tmp_path)


def test_plot_gene_signatures_grid(gene_inputs, tmp_path):
    table, panel = gene_inputs
    fig = plots.plot_gene_signatures(table, {"APOE", "CLU"}, ("SMC", "MCI", "AD"), "integrated_gradients", top=8)
    assert len(fig.axes) == 3
    assert all(len(ax.patches) == 8 for ax in fig.axes)
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 8. ROI x gene heatmaps
# ---------------------------------------------------------------------------------
def _roi_gene_matrix(seed=0):
    rng = np.random.default_rng(seed)
    rois = [f"R{i}" for i in range(12)]
    genes = [f"G{j}" for j in range(9)]
    values = rng.uniform(0, 0.1, size=(12, 9))
    values[3, 5] = 1.0  # strongest cell
    values[7, 2] = 0.8
    values[10, :] = 0.01
    values[:, 8] = 0.01
    values[10, 8] = 0.02  # weak but planted
    return pd.DataFrame(values, index=pd.Index(rois, name="roi"), columns=pd.Index(genes, name="gene"))


def _highlight_cells(ax):
    """(row label, column label) of each highlight rectangle."""
    xt = [t.get_text() for t in ax.get_xticklabels()]
    yt = [t.get_text() for t in ax.get_yticklabels()]
    out = set()
    for p in ax.patches:
        if isinstance(p, Rectangle) and p.get_gid() == "highlight":
            x, y = p.get_xy()
            assert float(x).is_integer() and float(y).is_integer()
            out.add((yt[int(y)], xt[int(x)]))
    return out


def test_plot_roi_gene_heatmap_outlines_the_right_cells(tmp_path):
    matrix = _roi_gene_matrix()
    pairs = [("R3", "G5"), ("R10", "G8"), ("unknown", "G1")]
    fig = plots.plot_roi_gene_heatmap(matrix, top_rois=4, top_genes=3, highlight_pairs=pairs, title="AD")
    ax = _panels(fig)[0]
    yt = [t.get_text() for t in ax.get_yticklabels()]
    xt = [t.get_text() for t in ax.get_xticklabels()]
    assert yt[:2] == ["R3", "R7"] and xt[:2] == ["G5", "G2"]  # strongest first
    assert "R10" in yt and "G8" in xt  # planted pair kept although weak
    assert _highlight_cells(ax) == {("R3", "G5"), ("R10", "G8")}
    # without forcing, the weak pair drops out and only the strong one is outlined
    fig2 = plots.plot_roi_gene_heatmap(
        matrix, top_rois=4, top_genes=3, highlight_pairs=pairs, include_highlighted=False
    )
    ax2 = _panels(fig2)[0]
    assert len(ax2.get_yticklabels()) == 4 and len(ax2.get_xticklabels()) == 3
    assert _highlight_cells(ax2) == {("R3", "G5")}
    _save(fig, tmp_path)


def test_plot_roi_gene_heatmaps_grid(tmp_path):
    rows = []
    for i, stage in enumerate(("SMC", "MCI", "AD")):
        m = _roi_gene_matrix(seed=i)
        for roi in m.index:
            for gene in m.columns:
                rows.append(
                    {
                        "stage": stage,
                        "direction": "gene_to_roi",
                        "roi": roi,
                        "gene": gene,
                        "score": m.loc[roi, gene],
                        "rank": 0,
                    }
                )
    long = pd.DataFrame(rows)
    fig = plots.plot_roi_gene_heatmaps(
        long, ("SMC", "MCI", "AD"), top_rois=5, top_genes=4, highlight_pairs={"AD": [("R3", "G5")]}
    )
    panels = _panels(fig)
    assert len(panels) == 3 and len(fig.axes) == 4  # one colour bar
    assert _highlight_cells(panels[2]) == {("R3", "G5")} and _highlight_cells(panels[0]) == set()
    with pytest.raises(ValueError, match="'direction' must be one of"):
        plots.plot_roi_gene_heatmaps(long, direction="roi_to_gene")
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 9. Enrichment
# ---------------------------------------------------------------------------------
def test_plot_enrichment_bars_line_and_overlaps(tmp_path):
    rows = []
    for stage in ("SMC", "MCI", "AD"):
        for k in (5, 10, 20):
            rows.append(
                {
                    "stage": stage,
                    "method": "attention",
                    "k": k,
                    "overlap": k // 5,
                    "q_hypergeom": 0.5 / k,
                    "q_permutation": 0.4,
                }
            )
    rows.append({"stage": "AD", "method": "rollout", "k": 5, "overlap": 1, "q_hypergeom": 1.0, "q_permutation": 1})
    table = pd.DataFrame(rows)
    fig = plots.plot_enrichment(table, "attention")
    (ax,) = fig.axes
    assert len(ax.patches) == 9
    assert np.allclose(
        sorted({round(p.get_height(), 6) for p in ax.patches}),
        sorted({round(-math.log10(0.5 / k), 6) for k in (5, 10, 20)}),
    )
    hlines = [line.get_ydata()[0] for line in ax.get_lines()]
    assert any(math.isclose(y, -math.log10(0.05)) for y in hlines)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("4") == 3 and texts.count("1") == 3
    assert not any(t.startswith("no stage reaches") for t in texts)  # q = 0.025 at k = 20
    null = plots.plot_enrichment(table, "rollout")  # q = 1: a null result says so
    assert "no stage reaches q < 0.05 at any k" in [t.get_text() for t in null.axes[0].texts]
    assert "Attention rollout" in null.axes[0].get_title()
    with pytest.raises(ValueError, match="'method' must be one of"):
        plots.plot_enrichment(table, "nope")
    _save(fig, tmp_path)


# ---------------------------------------------------------------------------------
# 10. Batch summary
# ---------------------------------------------------------------------------------
def test_plot_batch_summary_default_and_custom_columns(tmp_path):
    summary = pd.DataFrame(
        {
            "configuration": ["rgenima_mri+snp", "rgenima_mri+snp", "baseline_logistic"],
            "modalities": ["mri+snp", "mri", "mri+snp"],
            "balanced_accuracy_mean": [0.55, 0.5, 0.45],
            "balanced_accuracy_sd": [0.02, 0.03, 0.01],
            "accuracy_mean": [0.6, 0.55, 0.5],
            "n_seeds": [3, 3, 3],
        }
    )
    fig = plots.plot_batch_summary(summary)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [
        "R-GenIMA (MRI + SNP), modalities=mri+snp",
        "R-GenIMA (MRI + SNP), modalities=mri",
        "Logistic regression, modalities=mri+snp",
    ]
    assert any("(n=3)" in t.get_text() for t in ax.texts)
    _save(fig, tmp_path)
    custom = summary.rename(
        columns={"balanced_accuracy_mean": "ba", "balanced_accuracy_sd": "ba_sd", "configuration": "model"}
    ).drop(columns="modalities")
    fig = plots.plot_batch_summary(
        custom.set_index("model"), mean_column="ba", sd_column="ba_sd", configuration_column="model"
    )
    assert len(fig.axes[0].get_yticklabels()) == 3
    with pytest.raises(ValueError, match="lacks column"):
        plots.plot_batch_summary(custom)


# ---------------------------------------------------------------------------------
# 11. Sanity check
# ---------------------------------------------------------------------------------
def test_plot_sanity_check_from_dict_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "attributions.npz",
        sanity__roi__attention=rng.uniform(-0.2, 0.9, 20),
        sanity__gene__integrated_gradients=np.r_[rng.uniform(-0.5, 0.3, 19), np.nan],
        roi__attention=np.zeros((20, 3)),
    )
    correlations = plots.load_sanity_correlations(tmp_path / "attributions.npz")
    assert sorted(correlations) == ["gene · integrated_gradients", "roi · attention"]
    fig = plots.plot_sanity_check(correlations)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(correlations)
    assert any(np.allclose(line.get_xdata(), 0.5) for line in ax.get_lines())
    assert any("(n=19)" in t.get_text() for t in ax.texts)  # NaN dropped
    _save(fig, tmp_path)
    with pytest.raises(DataContractError, match="no 'sanity__"):
        np.savez(tmp_path / "empty.npz", x=np.zeros(2))
        plots.load_sanity_correlations(tmp_path / "empty.npz")


def test_plot_example_slices_one_row_per_stage(tmp_path):
    image, _ = _tiny_atlas()
    t1 = nib.Nifti1Image(np.asarray(image.dataobj).astype(np.float32) * 10 + 1, image.affine)
    fig = plots.plot_example_slices({"NC": t1, "AD": t1}, image, cut_coords=(0, 0, 0))
    titles = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "NC" in titles and "AD" in titles
    _save(fig, tmp_path)


def test_cohens_d_and_plot_roi_features_by_stage(tmp_path):
    assert plots.cohens_d([1, 2, 3], [1, 2, 3]) == 0
    assert math.isclose(plots.cohens_d([2, 3, 4], [1, 2, 3]), 1.0)
    assert math.isnan(plots.cohens_d([1], [1, 2]))
    rng = np.random.default_rng(0)
    stage = np.array(STAGES)[np.arange(80) % 4]
    features = pd.DataFrame(rng.normal(size=(80, 12)), columns=[f"R{i}" for i in range(12)])
    features.loc[stage == "AD", "R7"] -= 3.0  # the most AD-vs-NC-discriminative ROI
    features["stage"] = pd.Categorical(stage, categories=list(STAGES), ordered=True)
    fig = plots.plot_roi_features_by_stage(features, top=4)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == 4 and labels[0].startswith("R7\nd = -")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(STAGES)
    _save(fig, tmp_path)
    with pytest.raises(ValueError, match="no subject of stage 'AD'"):
        plots.plot_roi_features_by_stage(features[features["stage"] != "AD"])
