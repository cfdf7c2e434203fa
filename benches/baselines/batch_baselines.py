#!/usr/bin/env python3
"""NumPy/SciPy baselines for batch-pi in `cargo xtask bench`: straightforward ports of the same
exact computations (Python integers and fractions for the rank laws, NumPy for the DP).
Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import math
import sys
from fractions import Fraction

import numpy as np
from scipy.stats import hypergeom
from timing import time_runs


def cdf_exact(n, m, zeta, k):
    """P(R_(zeta) <= k) = P(Hypergeom(n+m, m, L) >= zeta), L = k + zeta - 1, as a Fraction."""
    L = k + zeta - 1
    lo, hi = max(zeta, L - n), min(m, L)
    if lo > hi:
        return Fraction(0)
    term = math.comb(m, lo) * math.comb(n, L - lo)
    total = term
    for i in range(lo, hi):
        term = term * (m - i) * (L - i) // ((i + 1) * (n - L + i + 1))
        total += term
    return Fraction(total, math.comb(n + m, L))


def order_stat_rank(n, m, zeta, level):
    """Smallest k in 1..n+1 with CDF(k) >= level: SciPy locates, exact fractions decide."""
    lo, hi = 1, n + 1
    f = float(level)
    while lo < hi:
        mid = (lo + hi) // 2
        if hypergeom.sf(zeta - 1, n + m, m, mid + zeta - 1) >= f:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    if cdf_exact(n, m, zeta, k) >= level:
        while k > 1 and cdf_exact(n, m, zeta, k - 1) >= level:
            k -= 1
    else:
        while cdf_exact(n, m, zeta, k) < level:
            k += 1
    return k


def rank_sum_quantile(n, m, level):
    """Exact quantile of the rank sum via the Gaussian binomial [n+m choose m]_q (object arrays)."""
    c = np.zeros(n * m + 1, dtype=object)
    c[:] = 0
    c[0] = 1
    for k in range(1, m + 1):
        top = n * k
        for rho in range(k):
            c[rho:top + 1:k] = np.cumsum(c[rho:top + 1:k])
        step = n + k
        if step <= top:
            c[step:top + 1] = c[step:top + 1] - c[0:top + 1 - step]
    total = math.comb(n + m, m)
    target = -((-level.numerator * total) // level.denominator)  # ceil
    cum = np.cumsum(c)
    s = int(np.argmax(cum >= target))
    return m + s


def mean_dp(vals, m, Q):
    """The windowed prefix-max DP of the plugin, vectorised over the window with NumPy."""
    n = len(vals) - 1
    prev = np.zeros(Q + 1)
    v = 0.0
    for i in range(1, m + 1):
        v = v + vals[n]
        lo, hi = max(i, Q - (m - i) * (n + 1)), Q - (m - i)
        cur = np.full(Q + 1, -np.inf)
        sat = i * (n + 1)
        top = min(hi, sat - 1)
        if top >= lo:
            best = np.full(top - lo + 1, -np.inf)
            for r in range(1, n + 2):
                a = max(lo, i - 1 + r)  # t = j - r >= i - 1
                if a > top:
                    continue
                cand = prev[a - r:top - r + 1] + vals[r - 1]
                np.maximum(best[a - lo:], cand, out=best[a - lo:])
            cur[lo:top + 1] = best
        if hi >= sat:
            cur[max(lo, sat):hi + 1] = v
        prev = cur
    return float(prev[Q])


def main():
    spec = json.loads(sys.argv[1])
    n, m = spec["n"], spec["m"]
    alpha = Fraction(str(spec["alpha"]))
    mode = spec["mode"]
    if mode == "mean":
        s = np.fromfile(f"{spec['data']}/score.f64", dtype="<f8")

    def run():
        if mode == "order-stat":
            return {"k": order_stat_rank(n, m, spec["zeta"], 1 - alpha)}
        if mode == "pac":
            zeta = max(1, math.ceil((1 - Fraction(str(spec["delta"]))) * m))
            return {"zeta": zeta, "k": order_stat_rank(n, m, zeta, 1 - alpha)}
        vals = np.append(np.sort(s), spec["upper_bound"])
        Q = rank_sum_quantile(n, m, 1 - alpha)
        return {"Q": Q, "bound": mean_dp(vals, m, Q) / m}

    times, result = time_runs(run, spec["repeats"])
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
