"""Hardy-Weinberg exact test (Wigginton, Cutler & Abecasis 2005), vectorised, equal to PLINK 1.9's ``--hardy``."""

from __future__ import annotations

import numpy as np

# The test (Wigginton, Cutler & Abecasis 2005, AJHG 76:887) conditions on the number
# of samples n and of rare alleles r. With j rare homozygotes there are h = r - 2j
# heterozygotes and n - r + j common homozygotes, and
#     P(j + 1) / P(j) = h (h - 1) / (4 (j + 1) (n - r + j + 1)),
# a ratio that falls as j grows: the distribution is log-concave with its mode at
# ceil(j0), j0 = (r^2 - r - 4 (n - r + 1)) / (4 n + 6). The p-value sums P(j) over
# every j at most as probable as the observed one (ties included), as PLINK 1.9's
# SNPHWE2 does. Instead of walking the whole support, probabilities are accumulated
# (products of those ratios) only over a window around the mode and the observed
# count, widened until both of its edges are at least _HWE_EDGE_NATS below the
# observed and the modal probability: by log-concavity the terms outside then add
# less than ~1e-12 (relative) to either sum. Rows whose window spans a modest range
# of probabilities use plain products; the others (far out in a tail: tiny p-values)
# use sums of logarithms, so that nothing overflows or underflows.
_HWE_EDGE_NATS = 30.0
_HWE_TIE = 1e-9  # probabilities equal within 1e-9 (relative) are ties, as in PLINK
_HWE_LINEAR_NATS = 250.0  # windows with a smaller estimated range use products
_HWE_BLOCK_CELLS = 1 << 17  # cells per vectorised block (about 1 MB: fits in cache)


def hwe_exact_p(n_het, n_hom1, n_hom2, *, midp: bool = False) -> np.ndarray:
    """Hardy-Weinberg equilibrium exact test p-values, as PLINK 1.9 ``--hardy``.

    Parameters
    ----------
    n_het, n_hom1, n_hom2 : int or array_like of int
        Heterozygote and the two homozygote counts (broadcast together); which
        homozygote is which does not matter.
    midp : bool, default=False
        Mid-p variant (Graffelman & Moreno 2013), as ``plink --hardy midp``; the
        default is PLINK 1.9's default two-sided exact p-value.

    Returns
    -------
    ndarray of float64, shape of the broadcast inputs
        p-values in [0, 1]. A SNP with no called genotype or no copy of one allele
        (monomorphic) gets 1 (0.5 with ``midp``), as in PLINK. Agrees with PLINK's
        algorithm to about 1e-10 relative; p-values below ~1e-308 lose precision and
        underflow to 0 below ~5e-324, as PLINK's do.

    Raises
    ------
    ValueError
        If a count is negative or not an integer.
    """
    arrays = np.broadcast_arrays(*(np.asarray(x) for x in (n_het, n_hom1, n_hom2)))
    shape = arrays[0].shape
    counts = []
    for name, arr in zip(("n_het", "n_hom1", "n_hom2"), arrays):
        arr = arr.ravel()
        if arr.size and (
            not np.issubdtype(arr.dtype, np.number)
            or not np.all(np.isfinite(arr))
            or np.any(arr != np.round(arr))
            or np.any(arr < 0)
        ):
            raise ValueError(f"'{name}' must hold non-negative integer counts.")
        counts.append(arr.astype(np.int64))
    het, hom1, hom2 = counts
    homr = np.minimum(hom1, hom2)
    n = het + hom1 + hom2
    rare = 2 * homr + het
    out = np.full(n.shape, 0.5 if midp else 1.0)
    todo = np.flatnonzero(rare >= 2)  # otherwise only one table is possible: p = 1
    if todo.size:
        # Distinct (n, rare, homr) rows, coded as one integer when it fits.
        n_t, r_t, j_t = n[todo], rare[todo], homr[todo]
        base = int(n_t.max()) + 1
        if base < 2**20:
            keys, inverse = np.unique((n_t * (2 * base) + r_t) * base + j_t, return_inverse=True)
            n_t, r_t, j_t = keys // (2 * base * base), keys // base % (2 * base), keys % base
        else:
            keys, inverse = np.unique(np.stack([n_t, r_t, j_t], axis=1), axis=0, return_inverse=True)
            n_t, r_t, j_t = keys[:, 0], keys[:, 1], keys[:, 2]
        out[todo] = _hwe_p_unique(n_t, r_t, j_t, midp)[inverse.ravel()]
    return out.reshape(shape)


def _hwe_p_unique(n: np.ndarray, rare: np.ndarray, j_obs: np.ndarray, midp: bool) -> np.ndarray:
    """p-values for (n, rare alleles, rare homozygotes) rows with rare >= 2."""
    n_f = n.astype(np.float64)
    r_f = rare.astype(np.float64)
    last = rare // 2  # largest possible number of rare homozygotes
    j0 = (r_f * r_f - r_f - 4.0 * (n_f - r_f + 1.0)) / (4.0 * n_f + 6.0)
    mode = np.clip(np.ceil(j0), 0, last).astype(np.int64)
    # Normal approximation at the mode: sd of j from the curvature of log P.
    h = np.maximum(r_f - 2.0 * mode, 1.0)
    sd = 1.0 / np.sqrt(4.0 / h + 1.0 / (mode + 1.0) + 1.0 / (n_f - r_f + mode + 1.0))
    reach = np.abs(j_obs - mode) + np.ceil(8.0 * sd).astype(np.int64) + 2
    p = np.empty(n.shape)
    pending = np.arange(n.size)
    use_log = np.zeros(n.shape, dtype=bool)
    while pending.size:
        lo = np.maximum(mode[pending] - reach[pending], 0)
        hi = np.minimum(mode[pending] + reach[pending], last[pending])
        est_range = 0.5 * (reach[pending] / sd[pending]) ** 2
        use_log[pending] |= est_range > _HWE_LINEAR_NATS
        p_part, ok, finite = _hwe_window(n[pending], rare[pending], j_obs[pending], lo, hi, use_log[pending], midp)
        use_log[pending[~finite]] = True  # products overflowed: redo with logarithms
        done = ok & finite
        p[pending[done]] = p_part[done]
        narrow = pending[~ok & finite]  # edges not negligible: widen the window
        reach[narrow] *= 2
        pending = pending[~done]
    return p


def _hwe_window(n, rare, j_obs, lo, hi, use_log, midp):
    """p-values from the windows [lo, hi] of rare-homozygote counts; whether each
    window was wide enough (edges negligible); whether its products stayed finite.
    Rows go through in blocks of similar width, about _HWE_BLOCK_CELLS cells each."""
    width = hi - lo + 1
    order = np.lexsort((width, use_log))
    p = np.empty(n.shape)
    ok = np.ones(n.shape, dtype=bool)
    finite = np.ones(n.shape, dtype=bool)
    start = 0
    while start < order.size:
        stop = min(order.size, start + max(1, _HWE_BLOCK_CELLS // int(width[order[start]])))
        while stop - start > 1 and (
            (stop - start) * int(width[order[stop - 1]]) > _HWE_BLOCK_CELLS
            or use_log[order[stop - 1]] != use_log[order[start]]
        ):
            stop = start + (stop - start + 1) // 2
        rows = order[start:stop]
        block = _hwe_block_log if use_log[rows[0]] else _hwe_block_linear
        p[rows], ok[rows], finite[rows] = block(n[rows], rare[rows], j_obs[rows], lo[rows], hi[rows], midp)
        start = stop
    return p, ok, finite


def _hwe_grid(n, rare, lo, hi):
    """Window cells, one column per row (shape (span, rows)): validity, and the
    ratio P(j + 1) / P(j) at rare-homozygote count j = lo + k (1 beyond the window)."""
    k = np.arange(int((hi - lo).max()) + 1, dtype=np.float64)[:, None]
    valid = k <= (hi - lo)[None, :]
    j = k + lo[None, :]
    h = np.multiply(j, -2.0)
    h += rare[None, :]
    numerator = h - 1.0
    numerator *= h
    denominator = j + ((n - rare) + 1.0)[None, :]
    j += 1.0
    denominator *= j
    denominator *= 4.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(numerator, denominator, out=numerator)
    np.copyto(ratio, 1.0, where=k >= (hi - lo)[None, :])  # no step beyond the window
    return valid, ratio


def _hwe_block_linear(n, rare, j_obs, lo, hi, midp):
    valid, ratio = _hwe_grid(n, rare, lo, hi)
    prob = np.empty(ratio.shape)  # P(j) / P(lo)
    prob[0] = 1.0
    np.cumprod(ratio[:-1], axis=0, out=prob[1:])
    np.copyto(prob, 0.0, where=~valid)
    cols = np.arange(len(n))
    obs = prob[j_obs - lo, cols]
    top = prob.max(axis=0)
    floor = np.minimum(obs, top) * np.exp(-_HWE_EDGE_NATS)
    ok = ((lo == 0) | (prob[0] <= floor)) & ((hi == rare // 2) | (prob[hi - lo, cols] <= floor))
    # Products must stay well inside the normal range of doubles (else: logarithms).
    finite = (top < 1e250) & (obs > 1e-250) & (prob[hi - lo, cols] > 1e-300)
    total = prob.sum(axis=0)
    if midp:
        ties = (np.abs(prob - obs) <= _HWE_TIE * obs).sum(axis=0)
    np.copyto(prob, 0.0, where=prob > obs * (1.0 + _HWE_TIE))
    tail = prob.sum(axis=0)
    if midp:
        tail -= 0.5 * obs * ties
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(tail / total, 1.0), ok, finite


def _hwe_block_log(n, rare, j_obs, lo, hi, midp):
    valid, ratio = _hwe_grid(n, rare, lo, hi)
    with np.errstate(divide="ignore"):
        step = np.log(ratio)
    logp = np.zeros(ratio.shape)  # log P(j) - log P(lo)
    np.cumsum(step[:-1], axis=0, out=logp[1:])
    np.copyto(logp, -np.inf, where=~valid)
    cols = np.arange(len(n))
    obs = logp[j_obs - lo, cols]
    top = logp.max(axis=0)
    floor = np.minimum(obs, top) - _HWE_EDGE_NATS
    ok = ((lo == 0) | (logp[0] <= floor)) & ((hi == rare // 2) | (logp[hi - lo, cols] <= floor))
    rel = logp - obs
    tail = np.exp(np.where(rel <= _HWE_TIE, rel, -np.inf)).sum(axis=0)  # units of P(obs)
    if midp:
        tail -= 0.5 * (np.abs(rel) <= _HWE_TIE).sum(axis=0)
    total = np.exp(logp - top).sum(axis=0)  # units of P(mode)
    with np.errstate(divide="ignore"):
        log_p = np.log(tail) + obs - np.log(total) - top
    return np.minimum(np.exp(log_p), 1.0), ok, np.ones(len(n), dtype=bool)
