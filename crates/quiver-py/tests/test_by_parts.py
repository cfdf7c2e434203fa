"""Methods computed by parts from Python (docs/scale.md): ``Estimator.partial/merge/finish`` in
process, and ``quiver.dask.run`` on a ``distributed.LocalCluster`` of two worker processes started
here — both give :func:`quiver.run`'s result on the data as one table, to 1e-12."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import quiver


def bandit(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    u = rng.random(n)
    a = (u >= 0.4).astype(np.int64) + (u >= 0.75).astype(np.int64)
    mu = np.array([0.4, 0.35, 0.25])[a]
    sharp = x < 0.5
    pi = np.where(sharp[:, None], [0.7, 0.2, 0.1], [0.1, 0.2, 0.7])
    mean = np.stack([x, np.full(n, 0.5), 1 - x], axis=1)
    r = mean[np.arange(n), a] + rng.random(n) - 0.5
    df = pd.DataFrame({"a": a, "r": r, "mu_prob": mu})
    for k in range(3):
        df[f"pi_{k}"] = pi[:, k]
        df[f"qhat_{k}"] = mean[:, k] * 0.9
    return df


def forecasts(n: int, seed: int) -> pd.DataFrame:
    """Outcomes and three models' quantile forecasts at 0.1, 0.5 and 0.9 (biased, over- and
    under-dispersed)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    df = pd.DataFrame({"y": y})
    for name, bias, spread in [("a", 0.3, 1.0), ("b", -0.2, 0.5), ("c", 0.0, 2.0)]:
        centre = y + bias + rng.normal(scale=0.5, size=n)
        for level, z in [(0.1, -1.28), (0.5, 0.0), (0.9, 1.28)]:
            df[f"q_{name}_{level}"] = centre + spread * z
    return df


def close(a, b, where="result", rel=1e-12):
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys"
        for k in a:
            close(a[k], b[k], f"{where}.{k}", rel)
    elif isinstance(a, (list, tuple, np.ndarray)):
        assert len(a) == len(b), f"{where}: lengths"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{where}[{i}]", rel)
    elif isinstance(a, float) and not isinstance(a, bool):
        same = a == b or (math.isnan(a) and math.isnan(b))
        assert same or abs(a - b) <= rel * max(abs(a), abs(b), 1e-300), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def test_partial_merge_finish_in_process_equal_run():
    df = bandit(1500)
    one = quiver.run("ope", bandit=df, ci="t", device="cpu")
    est = quiver.Estimator("ope", ci="t", device="cpu")
    assert est.mergeable
    cuts = [0, 10, 600, 601, 1500]
    states = [est.partial(bandit=df.iloc[a:b]) for a, b in zip(cuts, cuts[1:])]
    state = states[0]
    for s in states[1:]:
        state = est.merge(state, s)
    r = est.finish(state)
    close(one.to_dict(), r.to_dict())
    # a state of other parameters is refused, naming why
    other = quiver.Estimator("ope", ci="t", alpha=0.2, device="cpu")
    with pytest.raises(quiver.InvalidInputError, match="other parameters"):
        est.merge(state, other.partial(bandit=df.iloc[:10]))
    with pytest.raises(quiver.InvalidInputError, match="corrupted or truncated"):
        est.finish(state[:-1])
    assert not quiver.Estimator("batch-pi").mergeable


def normal_means(p: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = 0.1 + 3.9 * rng.random(p)
    return pd.DataFrame({"x": 1.0 + 2.0 * (rng.random(p) - 0.5) + np.sqrt(a) * rng.standard_normal(p), "a": a})


def close_shrinkage(one, r, where):
    """Two SURE results equal to 1e-12, the certified gap (a difference of two risks) to 1e-15."""
    a, b = one.to_dict(), r.to_dict()
    gap_a, gap_b = a.pop("certified_gap", 0.0), b.pop("certified_gap", 0.0)
    assert abs(gap_a - gap_b) <= 1e-15, f"{where}: certified_gap {gap_a} vs {gap_b}"
    close(a, b, where)


def test_a_method_in_rounds_by_hand():
    df = normal_means(400, seed=2)
    one = quiver.run("sure-normal", data=df, method="xkb-grand-mean", curve=10, device="cpu")
    est = quiver.Estimator("sure-normal", method="xkb-grand-mean", curve=10, device="cpu")
    assert est.mergeable and est.rounds and not quiver.Estimator("ope").rounds
    cuts = [0, 150, 151, 400]
    broadcast, passes = None, 0
    while True:
        passes += 1
        states = [est.partial(data=df.iloc[a:b], broadcast=broadcast) for a, b in zip(cuts, cuts[1:])]
        state = states[0]
        for s in states[1:]:
            state = est.merge(state, s)
        result, broadcast = est.finish_round(state, broadcast)
        if result is not None:
            break
        assert passes < 100
    assert passes >= 3  # the moments, at least one sweep, the estimates
    close_shrinkage(one, result, "by hand")
    with pytest.raises(quiver.InvalidParameterError, match="needs another pass"):
        est.finish(est.partial(data=df))


def selection_tables(n: int, m: int, seed: int = 0):
    """Calibration and test units whose scores tie often (rounded to a tenth)."""
    rng = np.random.default_rng(seed)
    mu = np.round(rng.random(n) * 20) / 10 - 1
    cal = pd.DataFrame({"y": mu + rng.random(n) - 0.7, "mu": mu})
    test = pd.DataFrame({"mu": np.round(rng.random(m) * 20) / 10 - 1})
    return cal, test


def test_a_selector_by_parts_reads_its_calibration_whole():
    cal, test = selection_tables(300, 1000)
    one = quiver.run("conformal-selection", calibration=cal, test=test, q=0.3, device="cpu")
    est = quiver.Estimator("conformal-selection", q=0.3, device="cpu")
    assert est.whole_roles == ["calibration"]
    cuts = [0, 1, 400, 400, 1000]
    states = [
        est.partial(calibration=cal, test=test.iloc[a:b], offsets={"test": a}) for a, b in zip(cuts, cuts[1:]) if b > a
    ]
    state = states[0]
    for s in states[1:]:
        state = est.merge(state, s)
    r = est.finish(state)
    close(one.to_dict(), r.to_dict(), rel=0.0)
    assert len(r.selected) > 0
    for bad in (-1, 2**70):
        with pytest.raises(quiver.InvalidParameterError, match="counts of rows"):
            est.partial(calibration=cal, test=test, offsets={"test": bad})


def test_dask_local_cluster_equals_run():
    dd = pytest.importorskip("dask.dataframe", reason="pip install 'quiver[dask]'")
    distributed = pytest.importorskip("distributed", reason="pip install 'quiver[dask]'")
    import quiver.dask

    df = bandit(3000, seed=4)
    one = quiver.run("ope", bandit=df, ci="t", device="cpu")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        for parts, split in [(1, 8), (7, 2), (64, 8)]:
            ddf = dd.from_pandas(df, npartitions=parts, sort=False)
            r = quiver.dask.run("ope", ddf, role="bandit", split_every=split, ci="t")
            close(one.to_dict(), r.to_dict(), f"{parts} partitions")
        # a selector: the calibration set goes whole to every partition, the test units by parts
        cal, test = selection_tables(300, 2000, seed=5)
        sel = quiver.run("conformal-selection", calibration=cal, test=test, q=0.3, device="cpu")
        for parts in [1, 7]:
            ddf = dd.from_pandas(test, npartitions=parts, sort=False)
            r = quiver.dask.run("conformal-selection", ddf, role="test", whole={"calibration": cal}, q=0.3)
            close(sel.to_dict(), r.to_dict(), f"selection, {parts} partitions", rel=0.0)
        # a method computed in rounds: one map over the partitions per pass
        means = normal_means(2000, seed=6)
        sn = quiver.run("sure-normal", data=means, method="xkb-location", location=0.5, device="cpu")
        for parts in [1, 7]:
            ddf = dd.from_pandas(means, npartitions=parts, sort=False)
            r = quiver.dask.run("sure-normal", ddf, role="data", method="xkb-location", location=0.5)
            close_shrinkage(sn, r, f"sure-normal, {parts} partitions")
        # full-batch Adam: one map over the fit rows' partitions per epoch, calibration and test whole
        fit, cal, test = (forecasts(n, seed) for n, seed in [(1500, 7), (200, 8), (100, 9)])
        settings = dict(solver="gradient", batch_rows=10**6, max_epochs=15, conformal="cqr")
        qa = quiver.run("quantile-aggregation", fit=fit, calibration=cal, test=test, device="cpu", **settings)
        for parts in [1, 7]:
            ddf = dd.from_pandas(fit, npartitions=parts, sort=False)
            whole = {"calibration": cal, "test": test}
            r = quiver.dask.run("quantile-aggregation", ddf, role="fit", whole=whole, **settings)
            close(qa.to_dict(), r.to_dict(), f"quantile-aggregation, {parts} partitions", rel=1e-10)
        with pytest.raises(quiver.InvalidParameterError, match="cannot be given whole"):
            quiver.dask.run("ope", dd.from_pandas(df, npartitions=2), role="bandit", whole={"test": test}, ci="t")
        with pytest.raises(quiver.InvalidParameterError, match="cannot be computed by parts"):
            quiver.dask.run("batch-pi", dd.from_pandas(df, npartitions=2), role="test")


def test_dask_run_survives_a_worker_killed_mid_run():
    """A worker process killed while the partials run: ``distributed`` restarts it and recomputes
    the lost partitions, and the answer is the same (states are pure functions of a partition)."""
    dd = pytest.importorskip("dask.dataframe", reason="pip install 'quiver[dask]'")
    distributed = pytest.importorskip("distributed", reason="pip install 'quiver[dask]'")
    import threading
    import time

    import quiver.dask

    df = bandit(4000, seed=6)
    one = quiver.run("ope", bandit=df, ci="t", device="cpu")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:

        def slow(frame):
            import time as t

            t.sleep(0.15)  # 48 partitions on two workers: about 3.6 s of partials
            return frame

        ddf = dd.from_pandas(df, npartitions=48, sort=False).map_partitions(slow)
        victim = sorted(client.scheduler_info()["workers"])[0]
        killed = {}

        def kill():
            killed["at"] = time.monotonic()
            try:
                client.run(lambda: __import__("os")._exit(1), workers=[victim])
            except Exception:  # the worker may die before it answers
                pass

        started = time.monotonic()
        timer = threading.Timer(1.0, kill)
        timer.start()
        r = quiver.dask.run("ope", ddf, role="bandit", ci="t")
        finished = time.monotonic()
        timer.join()
        assert "at" in killed and killed["at"] < finished, "the worker was killed after the run ended"
        assert finished - started > 1.0
        # the nanny started a new worker process in its place, at another address
        assert victim not in client.scheduler_info()["workers"], "the worker was not killed"
        close(one.to_dict(), r.to_dict(), "after a worker was killed")
