"""Write a notebook from a list of (kind, source) cells; used to author notebooks/."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def write_notebook(path: str | Path, cells: list[tuple[str, str]]) -> None:
    """``cells``: ("md" | "code" | "code_scroll" | "parameters", source). Outputs are left empty.

    Code cells are tagged ``hide-input`` (collapsed in the book), the parameters cell
    also ``parameters`` (papermill injects values after it), and ``code_scroll`` cells
    also ``output_scroll`` (a long table scrolls in a box of fixed height in the book).
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "rgenima", "display_name": "rgenima (Python 3.11)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        source = source.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            # The book shows results; the code stays one click away ("hide-input").
            extra = {"parameters": ["parameters"], "code_scroll": ["output_scroll"]}.get(kind, [])
            cell.metadata["tags"] = ["parameters", "hide-input"] if kind == "parameters" else ["hide-input", *extra]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    nbformat.validate(nb)
    nbformat.write(nb, str(path))


if __name__ == "__main__":
    sys.exit("import write_notebook from this module")
