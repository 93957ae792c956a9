"""Values typed on the command line (``rgenima run -p NAME VALUE``, ``rgenima batch --grid``).

Kept out of :mod:`rgenima.cli` and :mod:`rgenima.batch` so that both can use it
without importing each other.
"""

from __future__ import annotations

import re

__all__ = ["Scalar", "coerce_value", "parse_parameter"]

Scalar = str | int | float | bool | None

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_parameter(value: str):
    """A ``-p name value`` value: YAML scalars (numbers, booleans), else a string."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def coerce_value(text: str) -> Scalar:
    """A value typed on the command line: int, float, bool, None or str.

    YAML scalars as for ``rgenima run -p`` (:func:`parse_parameter`), plus Python's
    ``None`` and floats in exponent notation (``1e-3``), which YAML 1.1 reads as
    strings. Quote a value to keep it a string (``'"0"'``). Anything YAML would read
    as a list, mapping or date stays the text it was typed as.
    """
    if text.strip() == "None":
        return None
    value = parse_parameter(text)
    if isinstance(value, str) and _FLOAT_RE.match(text.strip()):
        return float(text)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return text
