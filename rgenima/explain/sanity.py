"""The randomisation checks (Adebayo et al. 2018): checked subjects and correlations.

:func:`_sanity_subset` draws the subjects of a check in equal numbers from every fold;
:func:`rowwise_spearman` correlates each subject's trained and randomised scores and
:func:`_summary` gives their median and IQR for ``sanity.json``.
"""

from __future__ import annotations

import numpy as np


def rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (n, k) -> (n,),
    over the columns finite in both; NaN when fewer than 3 remain or a row is constant."""
    from scipy.stats import spearmanr

    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        ok = np.isfinite(a[i]) & np.isfinite(b[i])
        if ok.sum() < 3 or np.ptp(a[i][ok]) == 0 or np.ptp(b[i][ok]) == 0:
            continue
        out[i] = spearmanr(a[i][ok], b[i][ok]).statistic
    return out


def _summary(r: np.ndarray) -> dict:
    """Median and IQR of per-subject correlations (NaN: undefined, e.g. a constant row)."""
    ok = r[np.isfinite(r)]
    if not ok.size:
        return {"median": None, "q25": None, "q75": None, "n_subjects": 0, "n_undefined": int(r.size)}
    q25, med, q75 = np.percentile(ok, [25, 50, 75])
    return {
        "median": float(med),
        "q25": float(q25),
        "q75": float(q75),
        "n_subjects": int(ok.size),
        "n_undefined": int(r.size - ok.size),
    }


def _sanity_subset(by_fold: dict[int, np.ndarray], n: int, size: int | None, seed: int) -> np.ndarray:
    """Bool (n,): subjects of the randomisation check, drawn (seeded) in equal numbers
    from every fold; all subjects when ``size`` is None or >= n."""
    chosen = np.zeros(n, dtype=bool)
    if size is None or size >= n:
        chosen[:] = True
        return chosen
    rng = np.random.default_rng(seed)
    folds = sorted(by_fold)
    for j, k in enumerate(folds):
        m = size // len(folds) + (j < size % len(folds))
        idx = by_fold[k]
        chosen[rng.choice(idx, size=min(m, len(idx)), replace=False)] = True
    return chosen
