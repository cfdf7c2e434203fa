"""`ope-assessment` against SCOPE-RL 0.2.1's own top-k code (``OffPolicySelection.
_obtain_topk_policy_performance`` in ``scope_rl/ope/ops.py``): best@k, std@k and SharpeRatio@k
of the same rankings, to 1e-12.

SCOPE-RL is installed without its dependencies (``cargo xtask test`` does it): the top-k
statistics are NumPy, but importing the package pulls in PyTorch, d3rlpy and gym, which they
never call. The comparison therefore runs in a child interpreter that stands in empty modules for
whichever of those are missing, so that nothing of the stand-ins reaches this test session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import quiver

# Run by the child interpreter: reads {"behavior": J_b, "candidates": [...], "values": [...],
# "rankings": {estimator: [...]}} on stdin, prints SCOPE-RL's best, std and sharpe_ratio per
# estimator (None for NaN).
SCOPE_RL_TOPK = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, importlib.util, json, sys, types
    import numpy as np

    class Empty(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": lambda self, *a, **k: None})

    HEAVY = ("torch", "d3rlpy", "gym", "gymnasium", "seaborn", "pytorch_revgrad", "hydra", "omegaconf", "tqdm")
    MISSING = {m for m in HEAVY if importlib.util.find_spec(m) is None}

    class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in MISSING:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None
        def create_module(self, spec):
            m = Empty(spec.name)
            m.__path__ = []
            return m
        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, StandIns())
    from scope_rl.ope.ops import OffPolicySelection

    spec = json.load(sys.stdin)
    ops = object.__new__(OffPolicySelection)  # the dataclass's checks want a fitted OPE object
    ops.step_per_trajectory = 1
    # SCOPE-RL's baseline is the behaviour policy's mean return plus 1e-10 (against a zero
    # division): one trajectory whose return is J_b - 1e-10 makes it J_b
    ops.behavior_policy_reward = {"behavior": np.array([[spec["behavior"] - 1e-10]])}
    input_dict = {p: {"behavior_policy": "behavior", "gamma": 1.0} for p in spec["candidates"]}
    metrics = ops._obtain_topk_policy_performance(
        true_dict={"ranking": spec["candidates"], "policy_value": spec["values"]},
        estimation_dict={e: {"estimated_ranking": r} for e, r in spec["rankings"].items()},
        input_dict=input_dict,
        true_dict_ranking_arg="ranking",
        true_dict_value_arg="policy_value",
        estimation_dict_ranking_arg="estimated_ranking",
        compared_estimators=list(spec["rankings"]),
        max_topk=len(spec["candidates"]),
    )
    out = {
        e: {m: [None if np.isnan(v) else float(v) for v in metrics[e][m][:, 0]] for m in ("best", "std", "sharpe_ratio")}
        for e in spec["rankings"]
    }
    json.dump(out, sys.stdout)
    """
)


def scope_rl_topk(behavior: float, truth: pd.DataFrame, rankings: dict) -> dict:
    if importlib.util.find_spec("scope_rl") is None:
        if os.environ.get("QUIVER_REQUIRE_SCOPE_RL"):
            pytest.fail("QUIVER_REQUIRE_SCOPE_RL is set but scope_rl is not installed")
        pytest.skip("pip install --no-deps scope-rl==0.2.1")
    spec = {
        "behavior": behavior,
        "candidates": list(truth["policy"]),
        "values": [float(v) for v in truth["value"]],
        "rankings": rankings,
    }
    with np.errstate(all="ignore"):
        done = subprocess.run(
            [sys.executable, "-c", SCOPE_RL_TOPK], input=json.dumps(spec), capture_output=True, text=True, check=False
        )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assessment(seed: int, behavior: float, ties: bool = False):
    """Three estimators' estimates of ten candidates' values (noisier and noisier), their true
    values, and the behaviour policy's."""
    rng = np.random.default_rng(seed)
    names = [f"pi-{i}" for i in range(10)]
    values = rng.uniform(0.2, 1.0, size=10)
    rows = []
    for e, noise in [("dm", 0.05), ("ipw", 0.2), ("dr", 0.1)]:
        est = values + rng.normal(scale=noise, size=10)
        if ties:
            est = np.round(est, 1)
        rows += [(e, p, float(v)) for p, v in zip(names, est)]
    estimates = pd.DataFrame(rows, columns=["estimator", "policy", "estimate"])
    truth = pd.DataFrame({"policy": ["behaviour"] + names, "value": [behavior, *values], "behavior": [1] + [0] * 10})
    return estimates, truth


def close(a, b, rel=1e-12):
    return (a is None and b is None) or abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_topk_and_sharpe_ratio_equal_scope_rls(seed):
    estimates, truth = assessment(seed, behavior=0.45)
    ours = quiver.run("ope-assessment", estimates=estimates, truth=truth).to_dict()["estimators"]
    # SCOPE-RL ranks by np.argsort(estimates)[::-1] (ops.py, select_by_policy_value): no ties here
    rankings = {}
    for e, group in estimates.groupby("estimator", sort=False):
        order = np.argsort(group["estimate"].to_numpy())[::-1]
        rankings[e] = [str(p) for p in group["policy"].to_numpy()[order]]
        assert ours[e]["ranking"] == rankings[e], e
    theirs = scope_rl_topk(0.45, truth[truth["behavior"] == 0], rankings)
    for e in rankings:
        top = ours[e]["top_k"]
        assert top["best"] == theirs[e]["best"], e
        # k = 1: std@1 is undefined — NaN in SCOPE-RL, none here
        assert top["std"][0] is None and theirs[e]["std"][0] is None
        for k in range(1, 10):
            assert close(top["std"][k], theirs[e]["std"][k]), (e, k)
            # SCOPE-RL clips the numerator at 0; with best@k above J(pi_b) the two agree
            assert top["best"][k] > 0.45
            assert close(top["sharpe_ratio"][k], theirs[e]["sharpe_ratio"][k]), (e, k)


def test_the_documented_differences():
    """Where best@k falls below J(pi_b), SCOPE-RL reports 0 (its numerator is clipped) and Quiver
    the negative ratio; among tied estimates SCOPE-RL's argsort puts the later-listed candidate
    first, Quiver keeps the order of `truth` (docs/evaluation.md)."""
    estimates, truth = assessment(4, behavior=2.0)
    ours = quiver.run("ope-assessment", estimates=estimates, truth=truth).to_dict()["estimators"]
    rankings = {e: ours[e]["ranking"] for e in ours}
    theirs = scope_rl_topk(2.0, truth[truth["behavior"] == 0], rankings)
    for e in rankings:
        for k in range(1, 10):
            q, s = ours[e]["top_k"]["sharpe_ratio"][k], theirs[e]["sharpe_ratio"][k]
            assert q < 0 and s == 0.0, (e, k, q, s)
            assert close(q, (ours[e]["top_k"]["best"][k] - 2.0) / theirs[e]["std"][k]), (e, k)
    estimates, truth = assessment(5, behavior=0.45, ties=True)
    ours = quiver.run("ope-assessment", estimates=estimates, truth=truth).to_dict()["estimators"]
    names = list(truth["policy"][1:])
    for e, group in estimates.groupby("estimator", sort=False):
        est = group["estimate"].to_numpy()
        assert len(set(est)) < len(est), "the rounded estimates tie"
        scope = [names[i] for i in np.argsort(est, kind="stable")[::-1]]
        quiver_order = [names[i] for i in sorted(range(10), key=lambda i: (-est[i], i))]
        assert ours[e]["ranking"] == quiver_order != scope, e
