"""The run directory's owner (rgenima.run.Run)."""

from __future__ import annotations

import json

import pytest

from rgenima.run import Run


def _record(run_dir, cohort: dict) -> None:
    (run_dir / "prepared").mkdir(parents=True)
    (run_dir / "prepared" / "prepare.json").write_text(
        json.dumps({"manifest": {"cohort": cohort, "gene_panel": "/p/panel.tsv"}})
    )


def test_truth_from_the_manifest_entry_then_beside_the_clinical_table(tmp_path):
    cohort_dir = tmp_path / "cohort"
    cohort_dir.mkdir()
    (cohort_dir / "truth.json").write_text("{}")
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text("{}")
    run = Run(tmp_path / "a")
    _record(run.path, {"clinical": str(cohort_dir / "ADNIMERGE.csv"), "truth": str(elsewhere)})
    assert run.truth_path() == elsewhere
    run = Run(tmp_path / "b")
    _record(run.path, {"clinical": str(cohort_dir / "ADNIMERGE.csv")})
    assert run.truth_path() == cohort_dir / "truth.json"
    assert run.gene_panel().name == "panel.tsv"
    run = Run(tmp_path / "c")
    _record(run.path, {"clinical": str(tmp_path / "real" / "ADNIMERGE.csv")})
    assert run.truth_path() is None  # real data
    assert Run(tmp_path / "none").truth_path() is None and Run(tmp_path / "none").prepare_record() is None


def test_main_configuration_rule(tmp_path):
    run = Run(tmp_path)
    for name in ("rgenima_mri__quick", "rgenima_mri+snp__quick", "rgenima_snp__quick"):
        run.model_dir(name).mkdir(parents=True)
        run.training_json(name).write_text("{}")
    assert run.trained_configurations() == ["rgenima_mri+snp__quick", "rgenima_mri__quick", "rgenima_snp__quick"]
    assert run.main_configuration() == "rgenima_mri+snp__quick"
    assert run.main_configuration("rgenima_snp__quick") == "rgenima_snp__quick"
    with pytest.raises(FileNotFoundError, match="must be one of the trained"):
        run.main_configuration("rgenima_mri+snp")
    run.model_dir("rgenima_mri+snp__gpu").mkdir()
    run.training_json("rgenima_mri+snp__gpu").write_text("{}")
    with pytest.raises(ValueError, match="several"):
        run.main_configuration()
    run.model_dir("rgenima_mri+snp").mkdir()
    run.training_json("rgenima_mri+snp").write_text("{}")
    assert run.main_configuration() == "rgenima_mri+snp"


def test_find_attributions(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no attributions"):
        run.find_attributions()
    for name in ("rgenima_snp", "rgenima_mri+snp"):
        run.explain_dir(name).mkdir(parents=True)
        run.attributions_npz(name).write_bytes(b"")
    assert run.find_attributions() == run.attributions_npz("rgenima_mri+snp")
    assert run.find_attributions("rgenima_snp") == tmp_path / "explain" / "rgenima_snp" / "attributions.npz"
    with pytest.raises(FileNotFoundError, match="run the explain step"):
        run.find_attributions("rgenima_mri")
