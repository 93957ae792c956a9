"""The package's shape: no import cycle, no oversized module, test tools kept out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rgenima

PACKAGE = Path(rgenima.__file__).parent
#: A module longer than this holds more than one job (the structure issue's "about 600").
MAX_MODULE_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """rgenima modules imported anywhere in ``path`` (function-level imports included)."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                prefix = base
                for _ in range(node.level - 1):
                    prefix = prefix.rpartition(".")[0]
                module = f"{prefix}.{module}" if module else prefix
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = resolve(target) if target.startswith("rgenima") else None
            # A package re-exporting its own submodules is not a dependency between jobs.
            if resolved and resolved != name and not (is_package and resolved.startswith(name + ".")):
                found.add(resolved)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 100  # the scan sees the package's imports
    assert _cycles(graph) == []


def test_no_oversized_module():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert len(sizes) > 50
    oversized = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert oversized == {}


def test_the_library_never_imports_test_tools():
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        assert "selenium" not in text and "import pytest" not in text, name
        assert name.rpartition(".")[2] not in ("sitecheck", "_run_python"), name


_FILE_NAME = re.compile(r"^[\w.-]+\.(json|jsonl|csv|tsv|npz|npy|safetensors)$")


def _string_constants(path: Path) -> list[ast.Constant]:
    """String literals of a module, docstrings left out (prose may name files)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_only_run_names_the_run_directory_files():
    run_names = {node.value for node in _string_constants(PACKAGE / "run.py") if _FILE_NAME.match(node.value)}
    assert {"prepare.json", "training.json", "predictions.csv", "attributions.npz", "rois.tsv"} <= run_names
    spelled = [
        f"{name}:{node.lineno} {node.value}"
        for name, path in _modules().items()
        if name != "rgenima.run"
        for node in _string_constants(path)
        if node.value in run_names
    ]
    assert spelled == []


def test_make_finds_every_prerequisite():
    """`make -n` (prints, runs nothing) fails on a prerequisite that a move left behind."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = PACKAGE.parent
    result = subprocess.run(
        ["make", "-n", "book", "test", "lint"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "rgenima synth" in result.stdout or (root / "data" / "synthetic" / "truth.json").is_file()
