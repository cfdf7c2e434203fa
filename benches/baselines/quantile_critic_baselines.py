#!/usr/bin/env python3
"""NumPy baseline for critic-quantile (tabular, kappa = 0) in `cargo xtask bench`: the quantile
dynamic-programming operator as it is written with NumPy — for each (s, a) pair, every target atom
r_i + gamma * theta_j'(s'_i, a') of its rows (weight pi(a'|s'_i) / (N n_k)), or r_i where the
episode ends, sorted, accumulated, and read at the levels (2j - 1)/2N — iterated from 0 to the same
relative change. J = the mean over the episodes' first states of sum_a pi(a|s) mean_j theta_j(s, a).

Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import sys

import numpy as np
from timing import load, time_runs



def main():
    spec = json.loads(sys.argv[1])
    d = spec["data"]
    S, A, N = spec["states"], spec["actions"], spec["n_quantiles"]
    gamma, tol, max_iter = spec["gamma"], spec["tol"], spec["max_iter"]
    s = load(d, "s").astype(np.int64)
    a = load(d, "a").astype(np.int64)
    r = load(d, "r")
    s2 = load(d, "s_next").astype(np.int64)
    done = load(d, "done") > 0.5
    first = load(d, "first").astype(np.int64)
    pi = load(d, "pi").reshape(S, A)
    tau = (2.0 * np.arange(1, N + 1) - 1.0) / (2.0 * N)
    pair = s * A + a
    rows = [np.flatnonzero(pair == k) for k in range(S * A)]

    def run():
        theta = np.zeros((S * A, N))
        it = 0
        for it in range(1, max_iter + 1):
            new = theta.copy()
            for k, idx in enumerate(rows):
                if len(idx) == 0:
                    continue
                w_row = 1.0 / len(idx)
                vals, wts = [r[idx][done[idx]]], [np.full(int(done[idx].sum()), w_row)]
                go = idx[~done[idx]]
                for a2 in range(A):
                    p = pi[s2[go], a2]
                    keep = p > 0
                    if not keep.any():
                        continue
                    src = s2[go][keep] * A + a2
                    vals.append((r[go][keep][:, None] + gamma * theta[src]).ravel())
                    wts.append(np.repeat(w_row * p[keep] / N, N))
                v, w = np.concatenate(vals), np.concatenate(wts)
                order = np.argsort(v, kind="stable")
                cum = np.cumsum(w[order])
                at = np.searchsorted(cum, tau * cum[-1] * (1.0 - 1e-12), side="left")
                new[k] = v[order][np.minimum(at, len(v) - 1)]
            size = np.max(np.abs(new))
            change = np.max(np.abs(new - theta)) / size if size > 0 else 0.0
            theta = new
            if change <= tol:
                break
        v_state = np.sum(pi * theta.mean(axis=1).reshape(S, A), axis=1)
        return {"j": float(np.mean(v_state[s[first]])), "iterations": it}

    times, result = time_runs(run, spec["repeats"])
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
