#!/usr/bin/env python3
"""NumPy baselines for critic-lstd in `cargo xtask bench`, on the same data and the same random
Fourier features (the harness writes the frequencies w and phases b it drew):

* lstdq: the same computation, vectorised: rows in chunks, features psi = sqrt(2/D) cos(S W^T + b),
  phi = the row's action block, next = the target's pi-weighted blocks at s'; C += phi^T phi,
  M += phi^T next, b += phi^T r (NumPy's BLAS), then theta = solve(C - gamma M + ridge I, b).
* fqe: fitted Q evaluation as it is usually written with NumPy: the feature matrices held in
  memory, each iteration a ridge regression of the data onto r + gamma next theta_k (Cholesky of
  phi^T phi + ridge I once), to the same tolerance on the relative change of theta.

Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import sys

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from timing import load, time_runs



def main():
    spec = json.loads(sys.argv[1])
    d = spec["data"]
    D, k, A = spec["dim"], spec["state_dim"], spec["actions"]
    gamma, ridge = spec["gamma"], spec["ridge"]
    w = load(d, "w").reshape(D, k)
    b = load(d, "b")
    s = np.stack([load(d, f"s_{c}") for c in range(k)], axis=1)
    s2 = np.stack([load(d, f"s_next_{c}") for c in range(k)], axis=1)
    a = load(d, "a").astype(np.int64)
    r = load(d, "r")
    cont = 1.0 - load(d, "done")
    pi_next = np.stack([load(d, f"pi_next_{q}") for q in range(A)], axis=1) * cont[:, None]
    pi = np.stack([load(d, f"pi_{q}") for q in range(A)], axis=1)
    first = load(d, "first").astype(np.int64)
    n, dd = len(r), D * A
    scale = np.sqrt(2.0 / D)

    def features(lo, hi):
        psi = scale * np.cos(s[lo:hi] @ w.T + b)
        psi2 = scale * np.cos(s2[lo:hi] @ w.T + b)
        phi = np.zeros((hi - lo, dd))
        nxt = np.empty((hi - lo, dd))
        for q in range(A):
            mask = a[lo:hi] == q
            phi[mask, q * D:(q + 1) * D] = psi[mask]
            nxt[:, q * D:(q + 1) * D] = pi_next[lo:hi, q:q + 1] * psi2
        return phi, nxt

    def j_of(theta):
        psi0 = scale * np.cos(s[first] @ w.T + b)
        q0 = np.stack([psi0 @ theta[q * D:(q + 1) * D] for q in range(A)], axis=1)
        return float(np.mean(np.sum(pi[first] * q0, axis=1)))

    chunk = 65536
    if spec["target"] == "lstdq":
        def run():
            C = np.zeros((dd, dd))
            M = np.zeros((dd, dd))
            bb = np.zeros(dd)
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                phi, nxt = features(lo, hi)
                C += phi.T @ phi
                M += phi.T @ nxt
                bb += phi.T @ r[lo:hi]
            theta = np.linalg.solve(C - gamma * M + ridge * np.eye(dd), bb)
            return {"j": j_of(theta)}
    else:
        tol, max_iter = spec["tol"], spec["max_iter"]

        def run():
            parts = [features(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
            phi = np.vstack([p[0] for p in parts])
            nxt = np.vstack([p[1] for p in parts])
            del parts
            g = cho_factor(phi.T @ phi + ridge * np.eye(dd))
            theta = np.zeros(dd)
            for it in range(max_iter):
                y = r + gamma * (nxt @ theta)
                new = cho_solve(g, phi.T @ y)
                change = np.max(np.abs(new - theta)) / max(1.0, np.max(np.abs(new)))
                theta = new
                if change <= tol:
                    break
            return {"j": j_of(theta), "iterations": it + 1}

    times, result = time_runs(run, spec["repeats"])
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
