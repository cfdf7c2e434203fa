#!/usr/bin/env python3
"""rliable 1.2.0 (Agarwal et al., NeurIPS 2021) on the scores `rl-aggregate` reads: the point
metrics, their stratified bootstrap intervals and the probability of improvement of each pair, for
the tests that compare against it and for `cargo xtask bench`. Runs in its own environment
(`target/pyenv-rliable`: rliable with pandas < 3, which its pinned `arch` needs).

The spec (JSON, argv[1]): `scores` (a CSV path: algorithm, task, run, score — the same runs per
task), `reps`, `seed`, `method` (percentile or bca), `repeats` (timed runs of the intervals),
`improvement` (bool). Prints one JSON line."""
import csv
import json
import sys
import warnings

import numpy as np
from rliable import library as rly
from rliable import metrics
from timing import time_runs

METRICS = ["iqm", "median", "mean", "optimality_gap"]


def read(path):
    """The scores as rliable takes them: algorithm -> array (runs, tasks), tasks and runs in the
    order they first appear."""
    cells, tasks, algos = {}, [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            a, t = row["algorithm"], row["task"]
            if a not in algos:
                algos.append(a)
            if t not in tasks:
                tasks.append(t)
            cells.setdefault((a, t), []).append(float(row["score"]))
    out = {}
    for a in algos:
        runs = [cells[(a, t)] for t in tasks]
        out[a] = np.array(runs, dtype=np.float64).T
    return out


def main():
    spec = json.loads(sys.argv[1])
    scores = read(spec["scores"])
    gamma = spec.get("gamma", 1.0)

    def aggregate(x):
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_median(x),
                metrics.aggregate_mean(x),
                metrics.aggregate_optimality_gap(x, gamma),
            ]
        )

    def intervals():
        # rliable's own call; its RandomState keyword is deprecated in arch but still taken
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rly.get_interval_estimates(
                scores,
                aggregate,
                method=spec.get("method", "percentile"),
                reps=spec["reps"],
                random_state=np.random.RandomState(spec.get("seed", 0)),
            )

    times, (points, cis) = time_runs(intervals, spec.get("repeats", 1))
    result = {
        a: {m: {"estimate": float(points[a][k]), "lower": float(cis[a][0][k]), "upper": float(cis[a][1][k])}
            for k, m in enumerate(METRICS)}
        for a in scores
    }
    improvement = []
    if spec.get("improvement", True):
        names = list(scores)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                p = metrics.probability_of_improvement(scores[names[i]], scores[names[j]])
                improvement.append({"x": names[i], "y": names[j], "estimate": float(p)})
    # the point metrics as the bench compares them: "algorithm/metric" -> estimate
    estimates = {f"{a}/{m}": {"estimate": result[a][m]["estimate"]} for a in result for m in METRICS}
    out = {"metrics": result, "improvement": improvement, "estimates": estimates}
    print(json.dumps({"times": times, "result": out, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
