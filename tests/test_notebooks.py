"""Study notebooks run under papermill with injected parameters."""

from __future__ import annotations

from pathlib import Path

import nbformat

from rgenima.book import execute_notebooks

ROOT = Path(__file__).resolve().parents[1]


def _outputs(nb) -> tuple[int, str]:
    n_png, text = 0, []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            n_png += "image/png" in data
            text.append(out.get("text", "") + data.get("text/plain", "") + data.get("text/html", ""))
    return n_png, "\n".join(text)


def test_cohort_notebook_runs_with_injected_manifest(small_manifest, tmp_path):
    (written,) = execute_notebooks(
        {"manifest": str(small_manifest), "n_example_stages": 2, "unused": 1},
        ROOT, tmp_path, notebooks=("01_cohort",), timeout_s=600,
    )
    nb = nbformat.read(written, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "synthetic-small" not in injected[0].source
    assert str(small_manifest) in injected[0].source
    n_png, text = _outputs(nb)
    assert n_png == 3  # class counts, example slices, genotype summary
    assert "cohort 'synthetic-small'" in text  # the injected manifest was used
    assert "oracle" in text
    # The synthetic identifiers of the small cohort never appear in the chapter text
    # except in the data report's own header; subject IDs are not published.
    assert "_S_9" not in text


def test_notebooks_have_typed_parameters_cell():
    import papermill as pm

    common = {"manifest", "run_dir", "seed", "profile", "modalities", "backbone", "folds"}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        params = pm.inspect_notebook(str(path))
        # papermill only injects what it can parse (one "=" per line, simple annotations).
        assert common <= set(params), (path.name, sorted(common - set(params)))
        assert all(p["inferred_type_name"] != "None" for p in params.values()), path.name
