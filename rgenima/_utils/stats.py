"""Bootstrap resampling of subjects and percentile intervals."""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["bootstrap_indices", "percentile_interval"]


def bootstrap_indices(n_subjects: int, n_boot: int = 2000, seed=0) -> np.ndarray:
    """Subject indices of ``n_boot`` bootstrap resamples (with replacement).

    Parameters
    ----------
    n_subjects : int
    n_boot : int, default 2000
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    indices : ndarray of shape (n_boot, n_subjects), dtype int
        Row ``b`` lists the subjects of resample ``b``. Reuse the same matrix for
        every metric and configuration to keep comparisons paired.
    """
    if n_subjects < 1:
        raise ValueError(f"'n_subjects' must be at least 1; got {n_subjects}")
    if n_boot < 1:
        raise ValueError(f"'n_boot' must be at least 1; got {n_boot}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_subjects, size=(n_boot, n_subjects))


def percentile_interval(values, confidence: float = 0.95):
    """Percentile interval of bootstrap values, ignoring NaN.

    Parameters
    ----------
    values : array-like of shape (n_boot,) or (n_boot, n_features)
        One value per resample (per feature: one column each).
    confidence : float, default 0.95
        Level of the interval, in (0, 1).

    Returns
    -------
    low, high : float, or ndarray of shape (n_features,)
        Floats for 1-D ``values``, one per column otherwise; NaN where no resample
        gave a value (or there is no resample).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"'confidence' must lie in (0, 1); got {confidence}")
    values = np.asarray(values, dtype=float)
    if values.ndim not in (1, 2):
        raise ValueError(f"'values' must be 1-D or 2-D; got shape {values.shape}")
    alpha = (1 - confidence) / 2
    if values.shape[0] == 0:
        low = np.full(values.shape[1:], np.nan)
        high = low.copy()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
            low, high = np.nanquantile(values, [alpha, 1 - alpha], axis=0)
    if values.ndim == 1:
        return (math.nan, math.nan) if np.isnan(low) or np.isnan(high) else (float(low), float(high))
    return low, high
