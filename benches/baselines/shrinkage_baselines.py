#!/usr/bin/env python3
"""NumPy/SciPy baselines for sure-normal and sure-binomial in `cargo xtask bench`: the same
estimators, lambda tuned by scipy.optimize.minimize_scalar (bounded Brent) on the same bracket
(t in [0, 1), lambda = s t / (1 - t), s the median of h), estimates computed at the optimum.
sure-normal's xkb-estimated variant minimises Xie, Kou & Brown's profile SURE(lambda, mu(lambda))
the same way, mu(lambda) = sum(w x) / sum(w) with w = b^2 recomputed at every evaluation.
Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import sys

import numpy as np
from scipy.optimize import minimize_scalar
from timing import load, time_runs



def tune(d2, e, h, c, increasing):
    p = len(d2)
    s = np.median(h)

    def f(t):
        lam = s * t / (1.0 - t)
        b = lam / (h + lam) if increasing else h / (h + lam)
        return (np.sum(b * b * d2 - 2.0 * b * e) + c) / p

    res = minimize_scalar(f, bounds=(0.0, 1.0 - 1e-12), method="bounded", options={"xatol": 1e-10})
    lam = s * res.x / (1.0 - res.x)
    return lam, float(res.fun), res.nfev


def main():
    spec = json.loads(sys.argv[1])
    d = spec["data"]
    if spec["case"] == "sure-normal" and spec.get("variant") == "xkb-estimated":
        x, a = load(d, "x"), load(d, "a")

        def run():
            p = len(x)
            s = np.median(a)

            def profile(t):
                lam = s * t / (1.0 - t)
                b = a / (a + lam)
                w = b * b
                mu = np.sum(w * x) / np.sum(w)
                return (np.sum(w * (x - mu) ** 2 - 2.0 * a * b) + a.sum()) / p

            res = minimize_scalar(profile, bounds=(0.0, 1.0 - 1e-12), method="bounded", options={"xatol": 1e-10})
            lam = s * res.x / (1.0 - res.x)
            b = a / (a + lam)
            mu = np.sum(b * b * x) / np.sum(b * b)
            est = x - b * (x - mu)
            return {"risk": float(res.fun)}, res.nfev, est
    elif spec["case"] == "sure-normal":
        x, a = load(d, "x"), load(d, "a")

        def run():
            p = len(x)
            xbar = x.mean()
            d2 = (x - xbar) ** 2
            lam, risk, nfev = tune(d2, (1.0 - 1.0 / p) * a, a, a.sum(), False)
            b = a / (a + lam)
            est = x - b * (x - xbar)
            return {"risk": risk}, nfev, est
    else:
        y, n = load(d, "y"), load(d, "n")

        def run():
            p = y / n
            m = y.sum() / n.sum()
            v = p * (1.0 - p) / (n - 1.0)
            lam, risk, nfev = tune((p - m) ** 2, v, n, v.sum(), True)
            b = lam / (n + lam)
            est = (1.0 - b) * p + b * m
            return {"risk": risk}, nfev, est

    times, (result, nfev, _) = time_runs(run, spec["repeats"])
    result["evaluations"] = nfev
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
