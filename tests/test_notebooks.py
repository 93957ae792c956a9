"""Study notebooks: their own source, paired with MyST twins, run under papermill with
injected parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from rgenima.book import STUDY_NOTEBOOKS, execute_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Settings of the book that a run may change (`rgenima run -p NAME VALUE`): declared in the
# parameters cell of the notebook that uses them.
BOOK_SETTINGS = {
    "05_brain_signatures": {"ig_steps", "sanity_subjects", "link_subjects"},
    "06_gene_signatures": {"ig_steps", "sanity_subjects"},
    "08_enrichment": {"n_permutations"},
}


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
        ROOT,
        tmp_path,
        notebooks=("01_cohort",),
        timeout_s=600,
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


# ---------------------------------------------------------------------------------
# Pairing with the MyST twins (jupytext.toml) and the cells' tags
# ---------------------------------------------------------------------------------
def _twin(path: Path) -> Path:
    """The MyST twin that `jupytext --sync` pairs with a notebook, from jupytext.toml."""
    from jupytext.config import load_jupytext_config
    from jupytext.paired_paths import paired_paths

    config = load_jupytext_config(str(path.parent))
    assert config is not None, "no jupytext.toml above notebooks/"
    paths = [
        Path(p)
        for p, fmt in paired_paths(str(path), "ipynb", config.default_formats(str(path)))
        if fmt.get("format_name") == "myst"
    ]
    assert len(paths) == 1, (path.name, paths)
    return paths[0]


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_the_study_notebooks_are_in_notebooks():
    assert [p.stem for p in NOTEBOOKS] == sorted(STUDY_NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_myst_twin_are_in_sync(path):
    import jupytext

    twin = _twin(path)
    assert twin.is_file(), f"{twin.relative_to(ROOT)} is missing: run `jupytext --sync notebooks/*.ipynb`"
    nb, md = jupytext.read(path), jupytext.read(twin)
    assert _cells(md) == _cells(nb), (
        f"{path.name} and {twin.relative_to(ROOT)} differ: run `jupytext --sync notebooks/*.ipynb`"
    )
    assert md.metadata["kernelspec"] == nb.metadata["kernelspec"]


def test_every_myst_twin_has_its_notebook():
    twins = {_twin(path) for path in NOTEBOOKS}
    orphans = sorted(p.name for p in (ROOT / "notebooks").rglob("*.md") if p not in twins)
    assert orphans == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_the_kernel_and_tags_the_book_relies_on(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "rgenima"  # the kernel `make venv` installs
    code = [c for c in nb.cells if c.cell_type == "code"]
    # papermill injects the run's values after the one cell tagged "parameters".
    assert ["parameters" in c.metadata.get("tags", []) for c in code].count(True) == 1
    # The book shows results; each cell's code stays one click away.
    assert all("hide-input" in c.metadata.get("tags", []) for c in code), path.name
    # Outputs belong to the executed copies in book/generated/ (a restricted cohort's would
    # otherwise land in git).
    assert all(not c.get("outputs") for c in code), (
        f"{path.name} has outputs: jupyter nbconvert --clear-output --inplace notebooks/{path.name}"
    )


# ---------------------------------------------------------------------------------
# Settings are parameters, used through their names
# ---------------------------------------------------------------------------------
def _python(source: str) -> ast.Module:
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def _parameters_and_code(path: Path) -> tuple[set[str], dict[int, ast.Module]]:
    """The names the parameters cell declares, and the other code cells by cell index."""
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    names = {node.target.id for node in _python(cell.source).body if isinstance(node, ast.AnnAssign)}
    return names, {i: _python(c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c is not cell}


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_settings_are_parameters_used_through_their_names(path):
    parameters, cells = _parameters_and_code(path)
    assert BOOK_SETTINGS.get(path.stem, set()) <= parameters, path.name
    every_parameter = set().union(*(_parameters_and_code(p)[0] for p in NOTEBOOKS))
    read, problems = set(), []
    for i, tree in cells.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                read.add(node.id)
            elif isinstance(node, ast.Name) and node.id in parameters:
                problems.append(f"cell {i} line {node.lineno}: {node.id} is rebound after the parameters cell")
            elif isinstance(node, ast.keyword) and node.arg in every_parameter and _is_literal(node.value):
                problems.append(
                    f"cell {i} line {node.lineno}: {node.arg}={ast.unparse(node.value)} (a literal, not the parameter)"
                )
    # A parameter no cell reads would make `-p NAME VALUE` change nothing.
    problems += [f"parameter {name} is never read" for name in sorted(parameters - read)]
    assert problems == [], (path.name, problems)
