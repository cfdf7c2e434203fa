"""Arrow tables from Python (a ``pyarrow.Table`` or ``RecordBatch``) read through the Arrow C
stream interface: the same results as the same data in pandas, chunked columns and other types
converted, nulls and text refused naming the column and row, and runs by parts on Arrow batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import quiver

pa = pytest.importorskip("pyarrow")


def selection_frames(n: int = 400, m: int = 300, seed: int = 0):
    g = np.random.default_rng(seed)
    mu = g.normal(size=n)
    cal = pd.DataFrame({"y": mu + g.normal(size=n), "mu": mu})
    test = pd.DataFrame({"mu": g.normal(size=m) + 1.0})
    return cal, test


def test_arrow_tables_give_the_results_of_the_same_data_in_pandas():
    cal, test = selection_frames()
    want = quiver.run("conformal-selection", calibration=cal, test=test, q=0.2, device="cpu")
    for make in [pa.table, pa.RecordBatch.from_pandas, lambda df: pa.Table.from_pandas(df).to_batches()[0]]:
        got = quiver.run("conformal-selection", calibration=make(cal), test=make(test), q=0.2, device="cpu")
        np.testing.assert_array_equal(got.p_values, want.p_values)
        np.testing.assert_array_equal(got.selected, want.selected)
    # chunks, float32 and integer columns where floats are read: converted, same answer
    chunked = pa.table({"mu": pa.chunked_array([test["mu"].to_numpy()[:100], test["mu"].to_numpy()[100:]])})
    got = quiver.run("conformal-selection", calibration=pa.table(cal), test=chunked, q=0.2, device="cpu")
    np.testing.assert_array_equal(got.p_values, want.p_values)
    ints = pd.DataFrame({"y": np.arange(50) % 7, "mu": np.arange(50) % 5})
    a = quiver.run("conformal-selection", calibration=ints, test=ints[["mu"]], q=0.2, device="cpu")
    b = quiver.run(
        "conformal-selection", calibration=pa.table(ints), test=pa.table(ints[["mu"]]), q=0.2, device="cpu"
    )
    np.testing.assert_array_equal(a.p_values, b.p_values)


def test_an_arrow_bandit_log_with_integer_actions():
    g = np.random.default_rng(3)
    n = 500
    a = g.integers(0, 2, size=n)
    df = pd.DataFrame({"a": a, "r": g.random(n), "mu_prob": 0.5, "pi_0": 0.3, "pi_1": 0.7, "qhat_0": 0.4, "qhat_1": 0.6})
    want = quiver.run("ope", bandit=df, ci="t", device="cpu").to_dict()
    got = quiver.run("ope", bandit=pa.table(df), ci="t", device="cpu").to_dict()
    assert got["dr"] == want["dr"] and got["ipw"] == want["ipw"]
    # by parts over Arrow batches
    est = quiver.Estimator("ope", ci="t", device="cpu")
    batches = pa.table(df).to_batches(max_chunksize=128)
    state = est.partial(bandit=batches[0])
    for b in batches[1:]:
        state = est.merge(state, est.partial(bandit=b))
    assert abs(est.finish(state).to_dict()["dr"]["estimate"] - want["dr"]["estimate"]) <= 1e-12


def test_nulls_and_text_in_arrow_columns_are_named():
    cal, test = selection_frames(50, 20)
    with_null = pa.table({"mu": pa.array([0.1, None, 0.3] + [0.0] * 17, type=pa.float64())})
    with pytest.raises(quiver.InvalidInputError, match=r"table 'test', column 'mu', row 2: a null") as e:
        quiver.run("conformal-selection", calibration=pa.table(cal), test=with_null)
    assert e.value.row == 1 and e.value.column == "mu"
    # a null in a later chunk: its row counts from the table's first
    late = pa.table({"mu": pa.chunked_array([[0.0] * 10, [1.0, None]], type=pa.float64())})
    with pytest.raises(quiver.InvalidInputError, match="row 12: a null"):
        quiver.run("conformal-selection", calibration=pa.table(cal), test=late)
    text = pa.table({"mu": ["a", "b"]})
    with pytest.raises(quiver.InvalidInputError, match=r"(?i)column 'mu': expected numbers, got (large_)?(string|utf8)"):
        quiver.run("conformal-selection", calibration=pa.table(cal), test=text)
    # a text column the method does not read is left out, as in a CSV file
    named = pa.table({"mu": test["mu"].to_numpy(), "name": ["x"] * 20})
    assert len(quiver.run("conformal-selection", calibration=pa.table(cal), test=named, device="cpu").p_values) == 20
