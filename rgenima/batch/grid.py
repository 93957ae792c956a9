"""The batch grid: ``NAME=V1,V2`` specifications, their checks against the notebooks'
declared parameters, the combinations and their folder names."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rgenima._utils.params import Scalar, coerce_value

#: Notebooks executed for every combination, in order (file stems in notebooks/).
BATCH_NOTEBOOKS: tuple[str, ...] = ("03_training", "04_evaluation")
#: Parameters the batch sets itself; they cannot be grid or base parameters.
RESERVED_PARAMETERS: tuple[str, ...] = ("manifest", "run_dir")
#: The grid parameter that the summary averages over.
SEED_PARAMETER = "seed"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_VALUE_CHARS = 40


def parse_grid(specs: Iterable[str], allowed: Iterable[str] | None = None) -> dict[str, list[Scalar]]:
    """Parse ``NAME=V1,V2,...`` specifications into a grid.

    Parameters
    ----------
    specs : iterable of str
        One specification per parameter, e.g. ``["seed=0,1,2", "modalities=mri,snp"]``.
        Values are coerced by :func:`coerce_value`; commas cannot occur inside a value.
    allowed : iterable of str, optional
        Parameter names the batch notebooks declare (:func:`declared_parameters`); when
        given, any other name is an error.

    Returns
    -------
    grid : dict of str to list
        Parameter name -> its values, in the order given.

    Raises
    ------
    ValueError
        On a specification without ``=``, an empty or invalid name, a name given twice,
        an empty value, a value given twice, a reserved or an undeclared name.
    """
    grid: dict[str, list[Scalar]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"grid {spec!r}: expected NAME=V1,V2,... (e.g. seed=0,1,2)")
        if not _NAME_RE.match(name):
            raise ValueError(f"grid {spec!r}: {name!r} is not a parameter name (a Python identifier)")
        if name in grid:
            raise ValueError(f"grid {spec!r}: parameter {name!r} is given twice; list all its values once")
        items = [v.strip() for v in values.split(",")]
        if not values.strip():
            raise ValueError(f"grid {spec!r}: no values for {name!r}")
        empty = [i + 1 for i, v in enumerate(items) if not v]
        if empty:
            raise ValueError(f"grid {spec!r}: value {empty[0]} of {name!r} is empty")
        grid[name] = [coerce_value(v) for v in items]
    check_grid(grid, allowed)
    return grid


def check_grid(grid: Mapping[str, Sequence[Scalar]], allowed: Iterable[str] | None = None) -> None:
    """Check a grid built in Python or by :func:`parse_grid`; raise ValueError if invalid."""
    if not grid:
        raise ValueError("the grid is empty: give at least one NAME=V1,V2 (e.g. seed=0,1,2)")
    allowed_set = set(allowed) if allowed is not None else None
    for name, values in grid.items():
        check_parameter_name(name, allowed_set, what="grid parameter")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid parameter {name!r} must be a list of values; got {values!r}")
        if not values:
            raise ValueError(f"grid parameter {name!r} has no values")
        seen: list[str] = []
        for value in values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ValueError(
                    f"grid parameter {name!r}: values must be str, int, float, bool or None; "
                    f"got {value!r} ({type(value).__name__})"
                )
            key = json.dumps(value)
            if key in seen:
                raise ValueError(f"grid parameter {name!r}: value {value!r} is given twice")
            seen.append(key)


def check_parameter_name(name: str, allowed: set[str] | None, what: str = "parameter") -> None:
    """Raise ValueError if ``name`` is reserved or (when ``allowed`` is given) undeclared."""
    if name in RESERVED_PARAMETERS:
        raise ValueError(
            f"{what} {name!r} is set by the batch itself (--manifest and the combination's "
            f"run directory); it cannot be varied or overridden"
        )
    if allowed is not None and name not in allowed:
        choices = ", ".join(sorted(set(allowed) - set(RESERVED_PARAMETERS)))
        raise ValueError(f"{what} {name!r} is not declared by the batch notebooks; allowed: {choices}")


def declared_parameters(root: Path, notebooks: Sequence[str] = BATCH_NOTEBOOKS) -> dict[str, list[str]]:
    """Parameters declared by the batch notebooks: name -> the notebooks declaring it.

    Raises
    ------
    FileNotFoundError
        When a notebook is missing from ``root/notebooks``.
    ValueError
        When a notebook does not declare ``run_dir``: its outputs could not be kept
        apart per combination.
    """
    import papermill as pm

    declared: dict[str, list[str]] = {}
    for name in notebooks:
        path = Path(root) / "notebooks" / f"{name}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"batch notebook {path}: not found")
        try:
            params = pm.inspect_notebook(str(path))
        except ValueError as exc:  # e.g. no kernelspec in the notebook's metadata
            raise ValueError(f"batch notebook {path}: cannot read its parameters: {exc}") from exc
        if "run_dir" not in params:
            raise ValueError(
                f"batch notebook {path} does not declare a 'run_dir' parameter in its "
                f"parameters cell; batch runs need it to keep combinations apart"
            )
        for p in params:
            declared.setdefault(p, []).append(name)
    return declared


def combinations(grid: Mapping[str, Sequence[Scalar]]) -> list[dict[str, Scalar]]:
    """Every combination of the grid's values (cartesian product).

    The order is deterministic: parameters in the grid's order, the first one varying
    slowest, values in the order given.
    """
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def _format_value(value: Scalar) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, float) else str(value)
    safe = _UNSAFE_RE.sub("_", text)
    if len(safe) > _MAX_VALUE_CHARS or (isinstance(value, str) and not value):
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[: _MAX_VALUE_CHARS - 9]}-{digest}" if safe else f"empty-{digest}"
    return safe


def combination_name(params: dict[str, Scalar]) -> str:
    """Folder name of a combination, e.g. ``modalities-mri+snp__seed-0``.

    Keys sorted; ``NAME-VALUE`` pairs joined by ``__``; characters outside
    ``[A-Za-z0-9._+-]`` become ``_``; a value longer than 40 characters is cut and
    suffixed with a hash of the full value, so that the name stays readable and stable.
    """
    if not params:
        raise ValueError("a combination needs at least one parameter")
    return "__".join(f"{_UNSAFE_RE.sub('_', k)}-{_format_value(params[k])}" for k in sorted(params))
