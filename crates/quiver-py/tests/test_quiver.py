"""The Python package, tested on the installed wheel (`cargo xtask test` installs it into
target/pyenv and runs this file with QUIVER_CLI, QUIVER_EXAMPLES and QUIVER_FAULTY_PLUGIN set)."""

from __future__ import annotations

import faulthandler
import json
import math
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import quiver

CLI = os.environ.get("QUIVER_CLI")
EXAMPLES = Path(os.environ.get("QUIVER_EXAMPLES", Path(__file__).resolve().parents[3] / "examples"))
FAULTY = os.environ.get("QUIVER_FAULTY_PLUGIN")
BUNDLED = str(quiver._host.BUNDLED_PLUGINS)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def selection_tables(n: int = 400, m: int = 200, seed: int = 0):
    g = rng(seed)
    mu_cal = g.normal(size=n)
    cal = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "mu": mu_cal, "y": mu_cal + g.normal(size=n)})
    test = pd.DataFrame({"mu": g.normal(size=m) + 1.0})
    return cal, test


# ------------------------------------------------------------------------------------------------
# discovery


def test_the_wheel_carries_every_plugin_and_finds_them_without_configuration():
    assert "QUIVER_PLUGIN_PATH" not in os.environ
    names = quiver.methods()
    assert {"conformal-selection", "batch-pi", "sure-normal", "sure-binomial", "quantile-aggregation"} <= set(names)
    assert all(Path(quiver.info(n)["file"]).parent == Path(BUNDLED) for n in names)
    d = quiver.doctor()
    assert d["ok"], d
    assert d["failures"] == []
    assert d["abi_version"] == quiver.abi_version()
    assert isinstance(d["cuda_driver"], bool)


def test_info_is_the_manifest():
    i = quiver.info("conformal-selection")
    assert i["family"] == "conformal-selector"
    assert "FDR" in i["guarantee"]
    q = next(p for p in i["parameters"] if p["name"] == "q")
    assert q["type"] == "float" and q["default"] == 0.1
    roles = [t["role"] for t in i["tables"]]
    assert roles == ["calibration", "test"]
    assert "guarantee:" in quiver.describe("conformal-selection")
    est = quiver.ConformalSelector("conformal-selection")
    assert "FDR" in est.__doc__


def test_plugins_argument_and_environment_choose_the_folders(tmp_path, monkeypatch):
    assert quiver.methods(plugins=tmp_path) == []
    with pytest.raises(quiver.UnknownMethodError, match="none: build them"):
        quiver.info("conformal-selection", plugins=tmp_path)
    monkeypatch.setenv("QUIVER_PLUGIN_PATH", str(tmp_path))
    assert quiver.plugin_dirs() == [str(tmp_path)]
    assert quiver.methods() == []
    monkeypatch.delenv("QUIVER_PLUGIN_PATH")
    assert quiver.plugin_dirs() == [BUNDLED]
    d = quiver.doctor(plugins=tmp_path / "missing")
    assert not d["ok"] and "no such folder" in d["failures"][0]


# ------------------------------------------------------------------------------------------------
# the examples: Python and the CLI give the same numbers


def example_blocks():
    out = []
    for script in sorted(EXAMPLES.glob("*/demo.txt")):
        method = script.parent.name
        inputs: dict = {}
        for k, block in enumerate(script.read_text().split("\n---\n")):
            sets = []
            for line in block.splitlines():
                if line.startswith("input:"):
                    role, file = line[len("input:") :].strip().split("=", 1)
                    inputs[role] = script.parent / file
                elif line.startswith("set:"):
                    sets.append(line[len("set:") :].strip())
            out.append(pytest.param(method, dict(inputs), sets, id=f"{method}-{k + 1}"))
    return out


def typed(method: str, sets: list) -> dict:
    kinds = {p["name"]: p["type"] for p in quiver.info(method)["parameters"]}
    params = {}
    for s in sets:
        key, raw = s.split("=", 1)
        kind = kinds[key]
        if kind == "float":
            params[key] = float(raw)
        elif kind == "int":
            params[key] = int(raw)
        elif kind == "bool":
            params[key] = raw == "true"
        else:
            params[key] = raw
    return params


def plain(v):
    """CLI JSON and Python results in one form: non-finite numbers as floats, arrays as lists."""
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v, v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    return v


def assert_same(a, b, where="result"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b, f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.skipif(CLI is None, reason="QUIVER_CLI (the quiver binary) is not set")
@pytest.mark.parametrize("method,inputs,sets", example_blocks())
def test_every_example_gives_the_cli_numbers(method, inputs, sets):
    cmd = [CLI, "run", method, "--plugins", BUNDLED, "--device", "cpu", "--json"]
    for role, path in inputs.items():
        cmd += ["--input", f"{role}={path}"]
    for s in sets:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    cli = plain(json.loads(done.stdout))
    tables = {role: pd.read_csv(path) for role, path in inputs.items()}
    r = quiver.run(method, device="cpu", **tables, **typed(method, sets))
    assert r.method == method and r.device == "cpu"
    assert_same(cli, plain(r.to_dict()))


@pytest.mark.skipif(CLI is None, reason="QUIVER_CLI (the quiver binary) is not set")
@pytest.mark.parametrize("method,inputs,sets", example_blocks())
def test_every_example_draws_the_same_picture_from_python_and_the_cli(method, inputs, sets, tmp_path):
    """The CLI's SVG (a well-formed XML document) has the panels whose titles the Python figure
    names, and every panel draws on a matplotlib Axes (Agg)."""
    import xml.etree.ElementTree as ET

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    svg = tmp_path / "picture.svg"
    cmd = [CLI, "run", method, "--plugins", BUNDLED, "--device", "cpu", "--plot", str(svg)]
    for role, path in inputs.items():
        cmd += ["--input", f"{role}={path}"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    texts = {(e.text or "").strip() for e in ET.parse(svg).getroot().iter() if e.tag.endswith("text")}
    tables = {role: pd.read_csv(path) for role, path in inputs.items()}
    r = quiver.run(method, device="cpu", **tables, **typed(method, sets))
    panels = r.figure()["panels"]
    assert panels, method
    for p in panels:
        assert p["title"] in texts, (p["title"], sorted(texts)[:20])
        ax = r.plot(panel=p["key"])
        assert ax.get_title() == p["title"]
        assert ax.lines or ax.collections, f"{method}: panel {p['key']} drew nothing"
        matplotlib.pyplot.close(ax.figure)


# ------------------------------------------------------------------------------------------------
# families


def test_conformal_selector_lifecycle_equals_run_and_selects_many_times():
    cal, test = selection_tables()
    sel = quiver.ConformalSelector("conformal-selection", q=0.2, c=0.5, device="cpu").calibrate(cal)
    a = sel.select(test)
    b = sel.select(test)
    r = quiver.run("conformal-selection", calibration=cal, test=test, q=0.2, c=0.5, device="cpu")
    assert isinstance(a, quiver.SelectionResult)
    assert a.selected.dtype == np.int64 and a.p_values.dtype == np.float64
    assert len(a.p_values) == len(test)
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.selected, r.selected)
    np.testing.assert_array_equal(a.p_values, r.p_values)
    assert a.threshold == r.threshold
    assert a["n_selected"] == len(a.selected) == a.to_dict()["n_selected"]
    assert "selected" in dir(a) and "<table>" in a._repr_html_() and "p_values" in repr(a)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        a.nope


def test_the_generic_estimator_runs_any_family_by_step_name():
    cal, test = selection_tables()
    est = quiver.Estimator("conformal-selection", q=0.2, c=0.5, device="cpu")
    assert est.steps == ["calibrate", "select", "partial", "merge", "finish"]
    assert est.step("calibrate", calibration=cal) is None
    a = est.step("select", test=test)
    r = quiver.run("conformal-selection", calibration=cal, test=test, q=0.2, c=0.5, device="cpu")
    assert isinstance(a, quiver.SelectionResult)
    np.testing.assert_array_equal(a.selected, r.selected)
    np.testing.assert_array_equal(a.p_values, r.p_values)
    with pytest.raises(quiver.InvalidParameterError, match="has no step 'bound'.*calibrate, select"):
        est.step("bound", test=test)
    assert [s["name"] for s in quiver.info("sure-normal")["steps"]] == ["estimate", "partial", "merge", "finish"]
    assert [s["name"] for s in quiver.info("batch-pi")["steps"]] == ["calibrate", "bound"]


def test_tables_as_dicts_structured_arrays_and_lists_give_the_same_selection():
    cal, test = selection_tables()
    sel = quiver.ConformalSelector("conformal-selection", q=0.2, c=0.5).calibrate(cal)
    ref = sel.select(test).p_values
    as_dict = sel.select({"mu": test["mu"].to_numpy()}).p_values
    as_list = sel.select({"mu": test["mu"].tolist()}).p_values
    rec = np.zeros(len(test), dtype=[("mu", "f8"), ("other", "f8")])
    rec["mu"] = test["mu"]
    as_struct = sel.select(rec).p_values
    as_f32 = sel.select({"mu": test["mu"].to_numpy(np.float32).astype(np.float64)}).p_values
    for other in (as_dict, as_list, as_struct, as_f32):
        np.testing.assert_array_equal(ref, other)
    # integers where floats are wanted, and a strided (non-contiguous) column, are converted
    ints = sel.select({"mu": np.arange(5)}).p_values
    floats = sel.select({"mu": np.arange(5.0)}).p_values
    np.testing.assert_array_equal(ints, floats)
    strided = np.repeat(test["mu"].to_numpy(), 2)[::2]
    np.testing.assert_array_equal(sel.select({"mu": strided}).p_values, ref)


def baseball() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "sure-binomial" / "baseball.csv")


def test_shrinkage_of_the_baseball_data():
    data = baseball()
    r = quiver.Shrinkage("sure-binomial", ci="robust-ebci", alpha=0.1).estimate(data)
    assert isinstance(r, quiver.ShrinkageResult)
    raw = data["y"] / data["n"]
    assert r.estimates.shape == (len(data),)
    # shrinkage pulls every batting average towards the pool
    assert np.ptp(r.estimates) < np.ptp(raw)
    assert np.all(r.lower <= r.estimates) and np.all(r.estimates <= r.upper)
    normal = quiver.Shrinkage("sure-normal", method="james-stein").estimate({"x": raw.to_numpy(), "a": np.full(len(raw), 0.07**2)})
    assert normal.estimates.shape == (len(data),)


def test_batch_predictor_and_quantile_aggregator_lifecycles():
    scores = np.abs(rng(3).normal(size=500))
    bp = quiver.BatchPredictor("batch-pi", mode="order-stat", alpha=0.1, m=1).calibrate({"score": scores})
    b = bp.bound()
    assert isinstance(b, quiver.BatchResult) and b.upper == np.sort(scores)[math.ceil(0.9 * 501) - 1]
    assert b.lower == -math.inf
    d = EXAMPLES / "quantile-aggregation"
    fit, cal, test = (pd.read_csv(d / f) for f in ("fit.csv", "calibration.csv", "test.csv"))
    agg = quiver.QuantileAggregator("quantile-aggregation", granularity="coarse", conformal="cqr", device="cpu")
    r = agg.fit(fit).calibrate(cal).predict(test)
    q = r.test_quantiles
    assert q.shape[0] == len(test) and q.shape[1] == 7
    assert np.all(np.diff(q, axis=1) >= 0)


def test_a_run_missing_a_table_its_steps_require_is_refused_before_it_starts():
    fit = pd.read_csv(EXAMPLES / "quantile-aggregation" / "fit.csv")
    with pytest.raises(quiver.InvalidInputError, match="for its step 'predict'") as e:
        quiver.run("quantile-aggregation", fit=fit, device="cpu")
    assert e.value.table == "test"


def test_critic_lifecycle():
    d = EXAMPLES / "critic-lstd"
    t, pi = pd.read_csv(d / "transitions.csv"), pd.read_csv(d / "policy.csv")
    critic = quiver.Critic("critic-lstd", gamma=0.9, target="lstdq").fit(t, policy=pi)
    v = critic.values(policy=pi)
    r = quiver.run("critic-lstd", transitions=t, policy=pi, gamma=0.9, target="lstdq")
    assert_same(plain(v.to_dict()), plain(r.to_dict()))


@pytest.mark.parametrize(
    "method,example,params",
    [
        ("critic-lstd", "critic-lstd", dict(target="lstdq", gamma=0.9)),
        ("critic-lstd", "critic-lstd", dict(target="fqe", gamma=0.9)),
        ("critic-expectile", "critic-expectile", dict(tau=0.99, gamma=0.9)),
        ("critic-quantile", "critic-quantile", dict(n_quantiles=16, gamma=0.9)),
        ("critic-chunked", "critic-chunked", dict(h=4, h_a=1, gamma=0.9)),
    ],
)
def test_critic_values_scale_with_the_rewards(method, example, params):
    """Value estimates are linear in the rewards' units: J(c r) = c J(r) from c = 1e-200 to 1e200.
    (The iterative critics' convergence tests were absolute below values of 1, so at 1e-200 they
    stopped after an iteration; FQE called 1e200 rewards divergent.) CQL is left out: its penalty
    weight alpha is in reward units, so its values are not linear in them by design."""
    d = EXAMPLES / example
    tables = {"transitions": pd.read_csv(d / "transitions.csv")}
    if (d / "policy.csv").exists():
        tables["policy"] = pd.read_csv(d / "policy.csv")
    j = quiver.run(method, **tables, **params).to_dict()["j"]
    for c in (1e-200, 1e200):
        scaled = dict(tables)
        scaled["transitions"] = tables["transitions"].assign(r=tables["transitions"]["r"] * c)
        jc = quiver.run(method, **scaled, **params).to_dict()["j"] / c
        assert math.isclose(jc, j, rel_tol=1e-9), (c, jc, j)


# ------------------------------------------------------------------------------------------------
# bad input and errors


def test_bad_input_names_table_column_and_row():
    cal, test = selection_tables()
    cal.loc[7, "y"] = np.nan
    sel = quiver.ConformalSelector("conformal-selection")
    with pytest.raises(quiver.InvalidInputError) as e:
        sel.calibrate(cal)
    assert isinstance(e.value, ValueError)
    assert (e.value.table, e.value.column, e.value.row) == ("calibration", "y", 7)
    assert "table 'calibration', column 'y', row 8" in str(e.value)
    with pytest.raises(quiver.InvalidInputError, match="has no column 'y'") as e:
        sel.calibrate({"mu": [1.0, 2.0]})
    assert e.value.column == "y"
    with pytest.raises(quiver.InvalidInputError, match="expected numbers") as e:
        sel.calibrate({"mu": ["a", "b"], "y": [1.0, 2.0]})
    assert e.value.column == "mu"
    with pytest.raises(quiver.InvalidInputError, match="1-D"):
        sel.calibrate({"mu": np.zeros((2, 2)), "y": np.zeros(2)})
    with pytest.raises(quiver.InvalidInputError, match="has 3 values, expected 2|3 values"):
        sel.calibrate({"mu": np.zeros(2), "y": np.zeros(3)})
    with pytest.raises(quiver.InvalidInputError, match="is empty"):
        sel.calibrate({"mu": np.zeros(0), "y": np.zeros(0)})
    with pytest.raises(quiver.InvalidInputError, match="none of the columns the method reads"):
        sel.calibrate(pd.DataFrame({"name": ["a", "b"]}))
    with pytest.raises(quiver.InvalidInputError, match="reads no 'calibrate' table"):
        sel.calibrate(calibrate=cal)
    with pytest.raises(quiver.InvalidInputError, match="DataFrame"):
        sel.calibrate(42)
    with pytest.raises(quiver.InvalidInputError, match="column 'y' is given twice"):
        sel.calibrate(pd.DataFrame([[1.0, 2.0, 3.0]], columns=["mu", "y", "y"]))
    with pytest.raises(quiver.InvalidInputError, match="real numbers"):
        sel.calibrate({"mu": np.ones(2, dtype=complex), "y": np.ones(2)})
    with pytest.raises(quiver.InvalidInputError, match="real numbers"):
        sel.calibrate({"mu": np.array(["2020-01-01"] * 2, dtype="datetime64[D]"), "y": np.ones(2)})
    with pytest.raises(quiver.InvalidInputError, match="reads no 'calibraton' table") as e:
        quiver.run("conformal-selection", calibraton=cal, test=test)
    assert e.value.table == "calibraton"
    with pytest.raises(quiver.InvalidInputError, match="1-D"):
        sel.calibrate({"mu": 1.0, "y": np.ones(2)})
    # pandas' missing values are NaN, refused with their row
    nullable = pd.DataFrame({"mu": pd.array([1.0, None, 3.0], dtype="Float64"), "y": [1.0, 2.0, 3.0]})
    with pytest.raises(quiver.InvalidInputError) as e:
        sel.calibrate(nullable)
    assert (e.value.column, e.value.row) == ("mu", 1)
    # the plugin's own checks keep their table, column and row too
    data = pd.DataFrame({"y": [3, 5], "n": [10, 0]})
    with pytest.raises(quiver.InvalidInputError) as e:
        quiver.Shrinkage("sure-binomial").estimate(data)
    assert e.value.table == "data" and e.value.column == "n" and e.value.row == 1, str(e.value)


def test_integer_columns_take_exact_integers_of_any_dtype_and_name_a_missing_row():
    t = pd.read_csv(EXAMPLES / "critic-lstd" / "transitions.csv")
    policy = pd.read_csv(EXAMPLES / "critic-lstd" / "policy.csv")
    want = quiver.run("critic-lstd", transitions=t, policy=policy, device="cpu")["j"]
    odd = t.copy()
    odd["s"] = odd["s"].astype("Int64")  # pandas' nullable integers, none missing
    odd["a"] = odd["a"].astype(np.float64)  # integral floats, as a CSV with 1.0 would give
    odd["episode"] = odd["episode"].astype("category")  # a category of ints
    assert quiver.run("critic-lstd", transitions=odd, policy=policy, device="cpu")["j"] == want
    missing = odd.copy()
    missing["s"] = missing["s"].astype("Int64")
    missing.loc[4, "s"] = pd.NA
    with pytest.raises(quiver.InvalidInputError, match="column 's', row 5: value missing") as e:
        quiver.run("critic-lstd", transitions=missing, policy=policy)
    assert (e.value.table, e.value.column, e.value.row) == ("transitions", "s", 4)
    frac = odd.copy()
    frac.loc[2, "a"] = 0.5
    with pytest.raises(quiver.InvalidInputError, match="row 3: value 0.5 is not an integer") as e:
        quiver.run("critic-lstd", transitions=frac, policy=policy)
    assert e.value.row == 2
    with pytest.raises(TypeError, match="plugins must be a folder"):
        quiver.methods(plugins=5)


def test_bad_parameters_methods_and_devices():
    with pytest.raises(quiver.InvalidParameterError, match="'q'") as e:
        quiver.ConformalSelector("conformal-selection", q=2)
    assert isinstance(e.value, ValueError)
    with pytest.raises(quiver.InvalidParameterError, match="nope"):
        quiver.ConformalSelector("conformal-selection", nope=1)
    with pytest.raises(quiver.InvalidParameterError, match="'q'"):
        quiver.ConformalSelector("conformal-selection", q="lots")
    with pytest.raises(quiver.InvalidParameterError, match="'q'"):
        quiver.ConformalSelector("conformal-selection", q=float("nan"))
    with pytest.raises(quiver.InvalidParameterError, match="a dict is not"):
        quiver.ConformalSelector("conformal-selection", q={"a": 1})
    with pytest.raises(quiver.InvalidParameterError, match="too large"):
        quiver.ConformalSelector("conformal-selection", q=10**400)
    with pytest.raises(quiver.InvalidParameterError, match="'seed'"):
        quiver.ConformalSelector("conformal-selection", seed=float("nan"))
    with pytest.raises(quiver.UnknownMethodError, match="unknown method 'nope'"):
        quiver.ConformalSelector("nope")
    with pytest.raises(quiver.InvalidParameterError, match="is a shrinkage, not a conformal-selector"):
        quiver.ConformalSelector("sure-normal")
    # the sixth family's class checks its family as the others do
    with pytest.raises(quiver.InvalidParameterError, match="is a critic, not an evaluator: use quiver.Critic"):
        quiver.Evaluator("ope")
    with pytest.raises(quiver.InvalidParameterError, match="device 'gpu'"):
        quiver.ConformalSelector("conformal-selection", device="gpu")
    with pytest.raises(quiver.InvalidParameterError, match="threads"):
        quiver.ConformalSelector("conformal-selection", threads=-1)
    with pytest.raises(quiver.UnsupportedError, match="no CUDA path"):
        quiver.Critic("critic-cql", device="cuda")
    with pytest.raises(quiver.StateError):
        quiver.ConformalSelector("conformal-selection").select({"mu": [1.0]})
    # a numpy scalar parameter is its value
    cal, test = selection_tables()
    a = quiver.run("conformal-selection", calibration=cal, test=test, q=np.float64(0.2), c=np.int64(0))
    b = quiver.run("conformal-selection", calibration=cal, test=test, q=0.2, c=0)
    np.testing.assert_array_equal(a.p_values, b.p_values)


def test_device_choice_is_reported():
    cal, test = selection_tables()
    r = quiver.ConformalSelector("conformal-selection", device="cpu").calibrate(cal).select(test)
    assert r.device == "cpu"
    driver, _ = quiver._quiver.cuda_libraries()
    if driver:
        auto = quiver.ConformalSelector("conformal-selection", device="auto").calibrate(cal).select(test)
        assert auto.device in ("cpu", "cuda")
    else:
        with pytest.warns(quiver.QuiverWarning, match="CUDA not usable"):
            auto = quiver.ConformalSelector("conformal-selection", device="auto").calibrate(cal).select(test)
        assert auto.device == "cpu" and "CUDA not usable" in auto.notice


# ------------------------------------------------------------------------------------------------
# the boundary: zero copy, GIL, panics, Ctrl-C

needs_fixture = pytest.mark.skipif(FAULTY is None, reason="QUIVER_FAULTY_PLUGIN (the fixture plugin) is not set")


@needs_fixture
def test_float64_columns_cross_without_a_copy():
    mu = rng(1).normal(size=1000)
    probe = quiver.ConformalSelector("faulty", plugins=FAULTY, probe="address").calibrate({"y": [0.0]})
    seen = probe.select({"mu": mu})
    assert seen["address"] == mu.ctypes.data and seen["len"] == 1000
    df = pd.DataFrame({"mu": mu, "name": ["x"] * 1000})
    col = df["mu"].to_numpy()
    assert probe.select(df)["address"] == col.ctypes.data
    # a strided view cannot be lent: it is copied, and still read correctly
    strided = np.repeat(mu, 2)[::2]
    assert probe.select({"mu": strided})["address"] != strided.ctypes.data


@needs_fixture
def test_arrow_columns_cross_without_a_copy():
    pa = pytest.importorskip("pyarrow")
    mu = rng(1).normal(size=1000)
    probe = quiver.ConformalSelector("faulty", plugins=FAULTY, probe="address").calibrate({"y": [0.0]})
    for table in [pa.record_batch({"mu": mu, "name": ["x"] * 1000}), pa.table({"mu": mu})]:
        col = table.column(0)
        chunk = col.chunk(0) if isinstance(col, pa.ChunkedArray) else col
        seen = probe.select(table)
        assert seen["address"] == chunk.buffers()[1].address and seen["len"] == 1000
    # two chunks are copied into one column, once
    two = pa.table({"mu": pa.chunked_array([mu[:400], mu[400:]])})
    seen = probe.select(two)
    assert seen["len"] == 1000 and seen["address"] not in {c.buffers()[1].address for c in two.column(0).chunks}


@needs_fixture
def test_a_plugin_panic_is_an_exception_and_the_interpreter_goes_on():
    faulty = quiver.ConformalSelector("faulty", plugins=FAULTY).calibrate({"y": [0.0]})
    with pytest.raises(quiver.PluginPanicError, match="panicked in select"):
        faulty.select({"mu": [1.0, 2.0]})
    with pytest.raises(quiver.PluginPanicError):
        quiver.run("faulty", plugins=FAULTY, calibration={"y": [0.0]}, test={"mu": [1.0]})
    cal, test = selection_tables()
    assert len(quiver.run("conformal-selection", calibration=cal, test=test).p_values) == len(test)


def test_the_gil_is_released_while_a_plugin_computes():
    g = rng(2)
    n = 2_000_000
    cal = {"mu": g.normal(size=n), "y": g.normal(size=n)}
    test = {"mu": g.normal(size=n)}
    sel = quiver.ConformalSelector("conformal-selection", device="cpu", threads=1)
    started = threading.Event()

    def work():
        started.set()
        sel.calibrate(cal).select(test)

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    ticks = 0
    while t.is_alive():
        ticks += 1
    t.join()
    # with the GIL held for the whole call this thread could not run until it ended
    assert ticks > 1000, ticks


def test_one_estimator_called_from_two_threads_at_once():
    cal, test = selection_tables(n=200_000, m=200_000)
    sel = quiver.ConformalSelector("conformal-selection", q=0.2, c=0.5).calibrate(cal)
    ref = sel.select(test).p_values
    out = [None, None]

    def work(k):
        out[k] = sel.select(test).p_values

    faulthandler.dump_traceback_later(120, exit=True)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        faulthandler.cancel_dump_traceback_later()
    for p in out:
        np.testing.assert_array_equal(p, ref)


def test_ctrl_c_stops_a_long_fit():
    d = EXAMPLES / "quantile-aggregation"
    fit = pd.read_csv(d / "fit.csv")
    agg = quiver.QuantileAggregator(
        "quantile-aggregation", granularity="medium", solver="gradient", max_epochs=10**6, patience=10**6, device="cpu"
    )
    faulthandler.dump_traceback_later(120, exit=True)
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            agg.fit(fit)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()
    # the interpreter and the package go on
    assert "quantile-aggregation" in quiver.methods()


# ------------------------------------------------------------------------------------------------
# a peer: MAPIE's split conformal intervals


def test_batch_pi_with_one_unit_equals_mapie_split_conformal():
    regression = pytest.importorskip("mapie.regression")
    from sklearn.linear_model import LinearRegression

    g = rng(5)
    x = g.uniform(-2, 2, size=(3000, 1))
    y = 2 * x[:, 0] + g.standard_t(4, size=3000)
    train, cal, test = slice(0, 1000), slice(1000, 2001), slice(2001, 3000)
    model = LinearRegression().fit(x[train], y[train])
    alpha = 0.1
    scr = regression.SplitConformalRegressor(model, confidence_level=1 - alpha, prefit=True)
    scr.conformalize(x[cal], y[cal])
    _, intervals = scr.predict_interval(x[test])
    scores = np.abs(y[cal] - model.predict(x[cal]))
    b = quiver.BatchPredictor("batch-pi", mode="order-stat", alpha=alpha, m=1).calibrate({"score": scores}).bound()
    pred = model.predict(x[test])
    np.testing.assert_allclose(intervals[:, 0, 0], pred - b.upper, rtol=0, atol=1e-12)
    np.testing.assert_allclose(intervals[:, 1, 0], pred + b.upper, rtol=0, atol=1e-12)


def test_ope_finite_sample_intervals_from_python():
    """reward_range as a tuple reaches the plugin as "lo,hi"; every interval says what its
    coverage rests on; a finite-sample kind without declared bounds is refused with why."""
    rng = np.random.default_rng(3)
    n = 400
    mu = np.array([0.5, 0.3, 0.2])
    a = rng.choice(3, size=n, p=mu)
    pi = np.tile([0.2, 0.3, 0.5], (n, 1))
    r = (rng.random(n) < np.array([0.2, 0.5, 0.8])[a]).astype(float)
    bandit = pd.DataFrame({"a": a, "r": r, "mu_prob": mu[a]})
    for k in range(3):
        bandit[f"pi_{k}"] = pi[:, k]
        bandit[f"qhat_{k}"] = 0.5
    out = quiver.run("ope", bandit=bandit, ci="betting", reward_range=(0, 1), weight_max=2.5, resamples=20).to_dict()
    assert out["ipw"]["valid"] == "finite-sample" and out["dr"]["valid"] == "finite-sample"
    # with the weight bound, betting also bounds SNIPW's target; DM's interval stays the bootstrap
    assert out["snipw"]["valid"] == "finite-sample" and out["dm"]["valid"] == "asymptotic"
    assert out["ipw"]["lower"] <= 0.2 * 0.2 + 0.3 * 0.5 + 0.5 * 0.8 <= out["ipw"]["upper"]
    with pytest.raises(quiver.InvalidParameterError, match="reward_range"):
        quiver.run("ope", bandit=bandit, ci="hoeffding")


def test_numerical_failures_have_their_own_class():
    """A solver's breakdown on valid input is not the data's fault: its own class, not a
    ValueError."""
    assert issubclass(quiver.NumericalError, quiver.QuiverError)
    assert issubclass(quiver.NumericalError, ArithmeticError)
    assert not issubclass(quiver.NumericalError, ValueError)


def test_an_evaluator_reads_text_columns_from_pandas_and_arrow():
    """rl-aggregate's labels are text: str columns of a DataFrame and string columns of a pyarrow
    Table give the same result; a missing label is refused with its row."""
    rng = np.random.default_rng(3)
    rows = [(a, f"task {t}", r, 0.5 + 0.1 * i + rng.random()) for i, a in enumerate(["ppo", "sac"]) for t in range(3) for r in range(4)]
    df = pd.DataFrame(rows, columns=["algorithm", "task", "run", "score"])
    r = quiver.Evaluator("rl-aggregate", resamples=200, seed=1).evaluate(scores=df)
    assert isinstance(r, quiver.EvaluationResult)
    assert r.algorithms == ["ppo", "sac"]
    by_hand = df[df.algorithm == "sac"].score.mean()
    assert abs(r.metrics["mean"]["sac"]["estimate"] - by_hand) < 1e-12
    pa = pytest.importorskip("pyarrow")
    same = quiver.run("rl-aggregate", scores=pa.Table.from_pandas(df), resamples=200, seed=1, device="cpu")
    assert same.metrics == r.metrics
    bad = df.astype({"task": object})
    bad.loc[5, "task"] = None
    with pytest.raises(quiver.InvalidInputError, match=r"table 'scores', column 'task', row 6: expected text"):
        quiver.run("rl-aggregate", scores=bad, resamples=10)


def test_evaluation_results_plot_under_agg():
    """result.plot() draws with matplotlib (Agg here) and returns the Axes: the interval plot of
    rl-aggregate, the SharpeRatio@k curves of ope-assessment."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    rng = np.random.default_rng(5)
    rows = [(a, f"t{t}", rng.random() + i) for i, a in enumerate(["x", "y", "z"]) for t in range(3) for _ in range(3)]
    r = quiver.run("rl-aggregate", scores=pd.DataFrame(rows, columns=["algorithm", "task", "score"]), resamples=50)
    ax = r.plot(metric="mean")
    # an interval line and an estimate marker per algorithm
    assert len(ax.lines) == 6
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]
    with pytest.raises(KeyError, match="metric 'best'"):
        r.plot(metric="best")
    ex = os.environ["QUIVER_EXAMPLES"]
    a = quiver.run(
        "ope-assessment",
        estimates=pd.read_csv(f"{ex}/ope-assessment/estimates.csv"),
        truth=pd.read_csv(f"{ex}/ope-assessment/truth.csv"),
    )
    ax = a.plot()
    assert len(ax.lines) == 3 and ax.get_legend() is not None
