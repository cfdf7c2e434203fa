#!/usr/bin/env python3
"""Quiver called from Python (the `quiver` wheel installed in this interpreter) on the data of a
Rust-host case, for `cargo xtask bench`: what calling through the Python package costs over the
Rust host itself. Reads the raw little-endian f64 files the harness wrote, times `repeats`
calibrate + select calls, prints one JSON line: times and the results to compare.

The calls are timed twice: as the process starts, and after `mallopt(M_TOP_PAD, 64 MiB)` (glibc),
which keeps freed heap memory for the next call instead of returning it to the OS. The plugin's
buffers of 10^6 values are allocated afresh on every call; how much of that memory glibc trims
and faults back in depends on the process's allocation history, which differs between the
harness and a Python process (see docs/benchmarks.md)."""
import ctypes
import json
import sys

import numpy as np
import quiver
from timing import load, time_runs



def conformal_selection(d, q, c):
    cal = {"y": load(d, "y"), "mu": load(d, "mu")}
    test = {"mu": load(d, "mu_test"), "u": load(d, "u")}
    sel = quiver.ConformalSelector("conformal-selection", q=q, c=c, device="cpu")

    def run():
        r = sel.calibrate(cal).select(test)
        k = len(r.selected)
        return {"k_star": k, "n_selected": k, "selected_sum": int(r.selected.sum())}

    return run


def main():
    spec = json.loads(sys.argv[1])
    if spec["case"] != "conformal-selection":
        raise SystemExit(f"unknown case {spec['case']}")
    run = conformal_selection(spec["data"], spec["q"], spec["c"])
    times, result = time_runs(run, spec["repeats"])
    out = {"times": times, "result": result, "numpy": np.__version__}
    try:
        m_top_pad = -2
        if ctypes.CDLL("libc.so.6").mallopt(m_top_pad, 64 << 20) == 1:
            out["times_top_pad"], _ = time_runs(run, spec["repeats"])
    except OSError:
        pass  # not glibc
    print(json.dumps(out))


if __name__ == "__main__":
    main()
