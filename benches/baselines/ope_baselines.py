#!/usr/bin/env python3
"""NumPy baselines for `ope` in `cargo xtask bench`, and the reference formulas its tests check
Quiver against.

* bandit: Open Bandit Pipeline's estimators as OBP writes them (obp.ope.estimators, v0.5): per-round
  rewards, then their mean --
    IPW        r * w
    SNIPW      r * w / mean(w)
    DM         np.average(qhat, weights=pi, axis=1)
    DR         DM_i + w * (r - qhat[a])
    Switch-DR  DM_i + w * 1{w <= lambda} * (r - qhat[a])
    DRos       DM_i + lambda w / (w^2 + lambda) * (r - qhat[a])      (w itself when lambda = inf)
  with w = pi[a] / mu; and SCOPE-RL's t interval, mean +- t_{1-alpha/2, n-1} s / sqrt(n), for each
  (SNIPW: the delta method, u = w (r - R) over mean w). (`obp` itself needs Python < 3.11 and does
  not install here.)
* many: K target policies from one bandit log (`ope-many`), IPW and DR, each plain (mean and t
  interval) and with the K importance weights minus 1 as control variates: the intercept of the
  least-squares fit of each policy's per-round values on them, its standard error and a t interval
  with n - 1 - rank degrees of freedom (the regression estimator; `np.linalg.pinv` of the centred
  cross-product matrix, as a NumPy user would write it).
* trajectory: TIS, PDIS, SN-PDIS, DM and per-decision DR on episodes of equal length H (arrays
  n x H), and their percentile bootstrap as SCOPE-RL computes it: a loop over resamples, each
  drawing n episodes with replacement and recomputing every estimator on them.

Reads raw little-endian f64 files written by the harness (or a test); prints one JSON line."""
import json
import sys

import numpy as np
from scipy import stats
from timing import load, time_runs



def t_interval(x, alpha):
    n = len(x)
    m = x.mean()
    half = stats.t.ppf(1 - alpha / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return {"estimate": m, "lower": m - half, "upper": m + half}


def bandit(spec):
    d, k = spec["data"], spec["actions"]
    lam_s, lam_o, alpha = float(spec["switch_lambda"]), float(spec["dros_lambda"]), spec["alpha"]
    a = load(d, "a").astype(np.int64)
    r, mu = load(d, "r"), load(d, "mu_prob")
    pi = np.stack([load(d, f"pi_{j}") for j in range(k)], axis=1)
    qhat = np.stack([load(d, f"qhat_{j}") for j in range(k)], axis=1)

    def run():
        rows = np.arange(len(r))
        w = pi[rows, a] / mu
        q_fact = qhat[rows, a]
        dm = np.average(qhat, weights=pi, axis=1)
        resid = r - q_fact
        iw_hat = lam_o * w / (w**2 + lam_o) if np.isfinite(lam_o) else w
        per = {
            "ipw": r * w,
            "dm": dm,
            "dr": dm + w * resid,
            "switch_dr": dm + w * (w <= lam_s) * resid,
            "dros": dm + iw_hat * resid,
        }
        out = {key: t_interval(x, alpha) for key, x in per.items()}
        snipw_rounds = r * w / w.mean()
        ratio = snipw_rounds.mean()
        u = w * (r - ratio)
        n = len(r)
        half = stats.t.ppf(1 - alpha / 2, n - 1) * u.std(ddof=1) / np.sqrt(n) / w.mean()
        out["snipw"] = {"estimate": ratio, "lower": ratio - half, "upper": ratio + half}
        out["ess"] = {"estimate": w.sum() ** 2 / (w**2).sum()}
        return out

    return run


def trajectory(spec):
    d, n, h = spec["data"], spec["episodes"], spec["horizon"]
    gamma, alpha, resamples, seed = spec["gamma"], spec["alpha"], spec["resamples"], spec["seed"]
    s = load(d, "s").astype(np.int64).reshape(n, h)
    a = load(d, "a").astype(np.int64).reshape(n, h)
    r = load(d, "r").reshape(n, h)
    mu = load(d, "mu_prob").reshape(n, h)
    n_s, n_a = spec["states"], spec["actions"]
    pi = load(d, "policy").reshape(n_s, n_a)
    q = load(d, "q").reshape(n_s, n_a)

    def run():
        w = np.cumprod(pi[s, a] / mu, axis=1)
        w_prev = np.concatenate([np.ones((n, 1)), w[:, :-1]], axis=1)
        disc = gamma ** np.arange(h)
        v = (pi * q).sum(axis=1)
        per = {
            "tis": w[:, -1] * (r * disc).sum(axis=1),
            "pdis": (w * r * disc).sum(axis=1),
            "dm": v[s[:, 0]],
            "dr": ((w * (r - q[s, a]) + w_prev * v[s]) * disc).sum(axis=1),
        }

        def sn_pdis(ww, rr):
            return ((ww * rr).sum(axis=0) / ww.sum(axis=0) * disc).sum()

        rng = np.random.default_rng(seed)
        boot = {key: np.empty(resamples) for key in list(per) + ["sn_pdis"]}
        for b in range(resamples):
            idx = rng.integers(0, n, n)
            for key, x in per.items():
                boot[key][b] = x[idx].mean()
            boot["sn_pdis"][b] = sn_pdis(w[idx], r[idx])
        out = {}
        for key in boot:
            est = sn_pdis(w, r) if key == "sn_pdis" else per[key].mean()
            lo, hi = np.quantile(boot[key], [alpha / 2, 1 - alpha / 2])
            out[key] = {"estimate": est, "lower": lo, "upper": hi}
        return out

    return run


def many(spec):
    d, k, alpha = spec["data"], spec["policies"], spec["alpha"]
    r, mu, q = load(d, "r"), load(d, "mu_prob"), load(d, "qhat")
    target = np.stack([load(d, f"target_{j}") for j in range(k)], axis=1)
    vhat = np.stack([load(d, f"vhat_{j}") for j in range(k)], axis=1)

    def run():
        n = len(r)
        w = target / mu[:, None]
        c = w - 1.0
        c_mean = c.mean(axis=0)
        cc = c - c_mean
        s_cc = cc.T @ cc
        pinv = np.linalg.pinv(s_cc, rcond=1e-10, hermitian=True)
        rank = np.linalg.matrix_rank(s_cc, hermitian=True)
        dof = n - 1 - rank
        leverage = 1.0 / n + c_mean @ pinv @ c_mean
        t_plain = stats.t.ppf(1 - alpha / 2, n - 1)
        t_cv = stats.t.ppf(1 - alpha / 2, dof)
        out = {}
        for name, y in (("ipw", w * r[:, None]), ("dr", vhat + w * (r - q)[:, None])):
            y_mean = y.mean(axis=0)
            yc = y - y_mean
            s_cy = cc.T @ yc
            s_yy = (yc * yc).sum(axis=0)
            beta = pinv @ s_cy
            cv = y_mean - c_mean @ beta
            se_cv = np.sqrt(np.maximum(s_yy - (beta * s_cy).sum(axis=0), 0) / dof * leverage)
            se = np.sqrt(s_yy / (n - 1) / n)
            for j in range(k):
                out[f"{name}_{j}"] = {"estimate": y_mean[j], "lower": y_mean[j] - t_plain * se[j],
                                      "upper": y_mean[j] + t_plain * se[j]}
                out[f"{name}_cv_{j}"] = {"estimate": cv[j], "lower": cv[j] - t_cv * se_cv[j],
                                         "upper": cv[j] + t_cv * se_cv[j]}
        return out

    return run


def main():
    spec = json.loads(sys.argv[1])
    run = {"bandit": bandit, "trajectory": trajectory, "many": many}[spec["mode"]](spec)
    times, result = time_runs(run, spec.get("repeats", 1))
    result = {k: ({kk: float(vv) for kk, vv in v.items()} if isinstance(v, dict) else float(v)) for k, v in result.items()}
    print(json.dumps({"numpy": np.__version__, "times": times, "result": {"estimates": result}}))


if __name__ == "__main__":
    main()
