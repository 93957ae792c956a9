"""Values made JSON-serialisable, the one cleaner used before ``json.dumps``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """``value`` with JSON types only, recursively.

    Parameters
    ----------
    value : any
        Nested dicts, lists, tuples, numpy arrays and scalars, paths...

    Returns
    -------
    any
        Mappings become dicts with ``str`` keys; lists, tuples and arrays become
        lists; numpy booleans, integers and floats become Python ones; NaN and
        infinite floats become None (strict JSON has no such numbers); any other
        object (``Path``, dates) becomes its ``str``, as ``json.dumps(default=str)``
        writes it.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    # bool before int: bool is a subclass of int.
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return str(value)
