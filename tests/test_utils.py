"""Tests of the shared helpers in rgenima._utils (one implementation per job)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rgenima._utils.hashing import sha256_file
from rgenima._utils.jsonsafe import json_safe
from rgenima._utils.params import coerce_value, parse_parameter
from rgenima._utils.stats import bootstrap_indices, percentile_interval


def test_json_safe_gives_strict_json_types():
    value = {
        1: (np.int64(3), np.float32(0.5)),
        "a": np.array([[1, 2]]),
        "b": np.bool_(True),
        "nan": math.nan,
        "inf": np.float64(np.inf),
        "path": Path("x/y"),
        "none": None,
        "flag": False,
    }
    out = json_safe(value)
    assert out == {
        "1": [3, 0.5],
        "a": [[1, 2]],
        "b": True,
        "nan": None,
        "inf": None,
        "path": "x/y",
        "none": None,
        "flag": False,
    }
    assert type(out["1"][0]) is int and type(out["b"]) is bool and type(out["flag"]) is bool
    json.dumps(out, allow_nan=False)  # raises if anything non-JSON is left


def test_sha256_file_reads_in_chunks(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"rgenima" * 1000)
    assert sha256_file(path, chunk_size=7) == hashlib.sha256(b"rgenima" * 1000).hexdigest()


def test_percentile_interval_one_and_two_dimensional():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 3))
    values[:10, 0] = np.nan
    values[:, 2] = np.nan
    low, high = percentile_interval(values, 0.9)
    assert low.shape == high.shape == (3,)
    # Each column equals the 1-D interval of that column (NaN ignored), and an all-NaN
    # column gives NaN.
    for j in (0, 1):
        expected = np.quantile(values[~np.isnan(values[:, j]), j], [0.05, 0.95])
        assert percentile_interval(values[:, j], 0.9) == pytest.approx(tuple(expected))
        assert (low[j], high[j]) == pytest.approx(tuple(expected))
    assert np.isnan(low[2]) and np.isnan(high[2])
    assert all(math.isnan(v) for v in percentile_interval(np.full(4, np.nan)))
    assert np.isnan(percentile_interval(np.empty((0, 2)))[0]).all()
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(values[:, 0], 1.0)


def test_bootstrap_indices_shape_and_seed():
    a = bootstrap_indices(7, n_boot=5, seed=3)
    assert a.shape == (5, 7) and a.min() >= 0 and a.max() < 7
    assert np.array_equal(a, bootstrap_indices(7, n_boot=5, seed=3))


def test_command_line_values():
    assert parse_parameter("3") == 3 and parse_parameter("true") is True and parse_parameter("a: [") == "a: ["
    assert coerce_value("1e-3") == 0.001 and coerce_value("None") is None and coerce_value("[1, 2]") == "[1, 2]"
    assert coerce_value('"0"') == "0"
