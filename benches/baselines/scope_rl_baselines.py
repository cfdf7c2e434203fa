#!/usr/bin/env python3
"""SCOPE-RL's trajectory estimators (PyPI `scope-rl`, which brings PyTorch) for
`cargo xtask bench --baselines full`, on the data of the `ope trajectories` case: TIS, PDIS,
SN-PDIS, DM and per-decision DR from `scope_rl.ope.discrete`, each estimate and its bootstrap
interval (`estimate_interval(ci="bootstrap")`, as many resamples as Quiver's).

Inputs as SCOPE-RL takes them: rows of equal-length episodes, the behaviour's probability of each
logged action (`pscore`), the target's action distribution per row and the model's Q-hat per row
and action. Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import sys
import warnings

import numpy as np
from timing import load, time_runs

warnings.filterwarnings("ignore")



def main():
    from scope_rl.ope.discrete import (
        DirectMethod,
        DoublyRobust,
        PerDecisionImportanceSampling,
        SelfNormalizedPDIS,
        TrajectoryWiseImportanceSampling,
    )

    spec = json.loads(sys.argv[1])
    d, h = spec["data"], spec["horizon"]
    n_s, n_a = spec["states"], spec["actions"]
    gamma, alpha, resamples, seed = spec["gamma"], spec["alpha"], spec["resamples"], spec["seed"]
    s = load(d, "s").astype(np.int64)
    inputs = {
        "step_per_trajectory": h,
        "action": load(d, "a").astype(np.int64),
        "reward": load(d, "r"),
        "pscore": load(d, "mu_prob"),
        "evaluation_policy_action_dist": load(d, "policy").reshape(n_s, n_a)[s],
        "state_action_value_prediction": load(d, "q").reshape(n_s, n_a)[s],
        "gamma": gamma,
    }
    estimators = {
        "tis": TrajectoryWiseImportanceSampling(),
        "pdis": PerDecisionImportanceSampling(),
        "sn_pdis": SelfNormalizedPDIS(),
        "dm": DirectMethod(),
        "dr": DoublyRobust(),
    }

    def run():
        out = {}
        for key, est in estimators.items():
            value = est.estimate_policy_value(**inputs)
            iv = est.estimate_interval(
                **inputs, alpha=alpha, ci="bootstrap", n_bootstrap_samples=resamples, random_state=seed
            )
            out[key] = {"estimate": float(value), "interval": [float(iv[f"{100 * (1 - alpha)}% CI (lower)"]),
                                                             float(iv[f"{100 * (1 - alpha)}% CI (upper)"])]}
        return out

    times, result = time_runs(run, spec.get("repeats", 1))
    # SN-PDIS: SCOPE-RL adds 1e-10 to each step's mean weight (a relative change of ~1e-10)
    estimates = {k: {"estimate": v["estimate"]} for k, v in result.items()}
    intervals = {k: v["interval"] for k, v in result.items()}
    print(json.dumps({"numpy": np.__version__, "times": times, "result": {"estimates": estimates, "intervals": intervals}}))


if __name__ == "__main__":
    main()
