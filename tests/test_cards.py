"""Model cards of run directories, the synthetic data card and CITATION.cff."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from rgenima.cards import model_card_markdown, synthetic_data_card, write_model_card
from rgenima.display import display_name

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "## Model details",
    "## Intended use",
    "### Out-of-scope use",
    "## Training data",
    "## Evaluation results",
    "## Limitations",
    "## Ethical considerations",
)


def _fake_run(run: Path, restricted: bool) -> Path:
    (run / "prepared").mkdir(parents=True)
    (run / "prepared" / "prepare.json").write_text(
        json.dumps(
            {
                "manifest": {
                    "manifest": "/somewhere/manifests/adni.yaml",
                    "cohort": {"name": "adni-test", "restricted": restricted},
                    "atlas": {"name": "aal2"},
                },
                "inputs": {"hash": "ab" * 32, "files": {"clinical": "cd" * 32, "genotypes.bed": "ef" * 32}},
                "n_subjects": 40,
                "class_counts": {"NC": 10, "SMC": 10, "MCI": 10, "AD": 10},
                "n_rois": 120,
            }
        )
    )
    model = run / "models" / "rgenima_mri+snp__quick"
    model.mkdir(parents=True)
    (model / "training.json").write_text(
        json.dumps(
            {
                "configuration": "rgenima_mri+snp__quick",
                "modalities": ["mri", "snp"],
                "profile": {"name": "quick"},
                "seed": 1,
                "n_folds": 2,
                "backbone": "/abs/runs/x/backbone/quick",
                "sequence_length": 300,
                "warm_start_from": "/abs/runs/x/models/rgenima_mri__quick",
                "device": "cpu",
                "world_size": 1,
            }
        )
    )
    return run


def test_model_card_has_the_hugging_face_sections_and_the_data_hashes(tmp_path):
    run = _fake_run(tmp_path / "run", restricted=True)
    text = (write_model_card(run)).read_text()
    for section in SECTIONS:
        assert section in text, section
    assert "`adni.yaml`" in text and "ab" * 32 in text and "| clinical | `" + "cd" * 32 + "` |" in text
    assert "Not evaluated yet (`rgenima evaluate`)" in text
    assert "restricted clinical data" in text and "data use agreement" in text
    assert "/somewhere" not in text and "/abs/" not in text  # no path of the machine
    # Once evaluated, the card shows each model's results with the bootstrap CI, by its human name.
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "main": "rgenima_mri+snp__quick",
                "n_boot": 200,
                "configurations": {
                    "rgenima_mri+snp__quick": {
                        "metrics": {"balanced_accuracy": 0.61, "accuracy": 0.6, "macro_f1": 0.58, "macro_auroc": 0.8},
                        "ci": {"balanced_accuracy": [0.5, 0.72]},
                    },
                    "baseline_gradient_boosting": {
                        "metrics": {"balanced_accuracy": 0.4, "accuracy": 0.45, "macro_f1": 0.3, "macro_auroc": None},
                        "ci": {"balanced_accuracy": [0.3, 0.5]},
                    },
                },
            }
        )
    )
    text = model_card_markdown(run)
    assert "| R-GenIMA (MRI + SNP), quick profile | 0.610 [0.500, 0.720] |" in text
    assert "| Gradient boosting | 0.400 [0.300, 0.500] | 0.450 | 0.300 | n/a |" in text


def test_synthetic_data_card(small_cohort):
    truth = json.loads((small_cohort / "truth.json").read_text())
    text = (small_cohort / "DATA_CARD.md").read_text()
    assert text == synthetic_data_card(truth)
    for section in ("## What is planted", "## The oracle", "## What it cannot represent"):
        assert section in text
    assert f"{truth['oracle']['balanced_accuracy']:.3f}" in text
    assert all(c["rsid"] in text for c in truth["causal_snps"])
    assert truth["subjects"][0]["PTID"] not in text


def test_display_names():
    assert display_name("rgenima_mri+snp") == "R-GenIMA (MRI + SNP)"
    assert display_name("baseline_gradient_boosting") == "Gradient boosting"
    assert display_name("integrated_gradients") == "Integrated Gradients"
    assert display_name("rgenima_snp__quick") == "R-GenIMA (SNP only), quick profile"
    assert display_name("something_else") == "something_else"


def test_citation_cff_validates_against_the_cff_1_2_schema():
    import jsonschema

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    schema = json.loads((ROOT / "tests" / "resources" / "cff-schema-1.2.0.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(citation), key=str)
    assert not errors, [e.message for e in errors]
    paper = citation["preferred-citation"]
    assert paper["title"].startswith("R-GenIMA") and "2512.18986" in paper["url"]
    # The schema is enforced: a file without its authors does not validate.
    broken = {k: v for k, v in citation.items() if k != "authors"}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_readable_table_names_models_methods_and_columns_keeping_values():
    import pandas as pd

    from rgenima.display import readable_table

    table = pd.DataFrame(
        {"role": ["main", "baseline"], "balanced_accuracy": [0.61, 0.55], "p_mcnemar_holm": [1.0, 0.02], "n10": [3, 4]},
        index=pd.Index(["rgenima_mri+snp", "baseline_svm_roi"], name="configuration"),
    )
    shown = readable_table(table)
    assert list(shown.index) == ["R-GenIMA (MRI + SNP)", "SVM (ROI means, Clinica)"]
    assert shown.index.name == "model"
    assert list(shown.columns) == ["role", "balanced accuracy", "p (McNemar, Holm)", "only R-GenIMA right"]
    assert shown.to_numpy().tolist() == table.to_numpy().tolist()
    assert list(table.index) == ["rgenima_mri+snp", "baseline_svm_roi"]  # the input is not changed
    keyed = pd.DataFrame(
        {"q": [0.5, 0.01]},
        index=pd.MultiIndex.from_tuples(
            [("integrated_gradients", "AD", 5), ("rollout", "MCI", 10)], names=["method", "stage", "k"]
        ),
    )
    assert readable_table(keyed).index.tolist() == [("Integrated Gradients", "AD", 5), ("Attention rollout", "MCI", 10)]
