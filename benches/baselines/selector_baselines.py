#!/usr/bin/env python3
"""NumPy/SciPy baselines for `cargo xtask bench`: the same formulas as the Quiver plugins,
written the way a user would vectorise them. Reads raw little-endian f64 files written by the
harness, times `repeats` runs, prints one JSON line: times and the results to compare."""
import json
import sys

import numpy as np
from timing import load, time_runs



def conformal_selection(d, q, c, clip_m, weighted):
    y, mu, mu_t, u = load(d, "y"), load(d, "mu"), load(d, "mu_test"), load(d, "u")
    w = load(d, "w") if weighted else None
    w_t = load(d, "w_test") if weighted else None

    def run():
        v = np.where(y > c, clip_m, c) - mu
        vt = c - mu_t
        n, m = len(v), len(vt)
        if w is None:
            s = np.sort(v)
            lt = np.searchsorted(s, vt, "left")
            le = np.searchsorted(s, vt, "right")
            p = (lt + u * (1.0 + (le - lt))) / (n + 1.0)
        else:
            order = np.argsort(v, kind="stable")
            s = v[order]
            wp = np.concatenate(([0.0], np.cumsum(w[order])))
            lt = np.searchsorted(s, vt, "left")
            le = np.searchsorted(s, vt, "right")
            p = (wp[lt] + (w_t + (wp[le] - wp[lt])) * u) / (w_t + wp[n])
        ps = np.sort(p)
        ok = np.nonzero(ps <= q * np.arange(1, m + 1) / m)[0]
        k = int(ok[-1]) + 1 if len(ok) else 0
        sel = np.nonzero(p <= q * k / m)[0] if k else np.array([], dtype=np.int64)
        return {"k_star": k, "n_selected": int(len(sel)), "selected_sum": int(sel.sum())}

    return run


def selective_risk(d, alpha, rule, delta, grid):
    from scipy.stats import binom

    s, e, s_t = load(d, "score"), load(d, "error"), load(d, "score_test")

    def run():
        order = np.argsort(s, kind="stable")
        ss = s[order]
        ep = np.concatenate(([0], np.cumsum(e[order])))
        n = len(ss)
        if rule == "scope":
            cand = np.unique(ss)
        else:
            g = np.arange(1, grid + 1)
            cand = np.unique(ss[(g * n + grid - 1) // grid - 1])
        acc = np.searchsorted(ss, cand, "right")
        err = ep[acc]
        if rule == "scope":
            ok = err + 1.0 <= alpha * acc
        else:
            p = np.where(acc > 0, binom.cdf(err, acc, alpha), 1.0)
            ok = p <= delta / len(cand)
        idx = np.nonzero(ok)[0]
        lam = float(cand[idx[-1]]) if len(idx) else float("-inf")
        accepted = np.nonzero(s_t <= lam)[0]
        return {"lambda_hat": lam, "n_accepted": int(len(accepted))}

    return run


def main():
    spec = json.loads(sys.argv[1])
    case = spec["case"]
    if case == "conformal-selection":
        run = conformal_selection(spec["data"], spec["q"], spec["c"], spec["clip_m"], spec["weighted"])
    elif case == "selective-risk":
        run = selective_risk(spec["data"], spec["alpha"], spec["rule"], spec["delta"], spec["grid"])
    else:
        raise SystemExit(f"unknown case {case}")
    times, result = time_runs(run, spec["repeats"])
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
