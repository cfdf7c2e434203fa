"""What every baseline shares: reading the harness's data files, and the timing loop (run
`repeats` times, wall-clock each run)."""
import time

import numpy as np


def load(d, name):
    """The raw little-endian f64 file `d/name.f64` the harness wrote, as an array."""
    return np.fromfile(f"{d}/{name}.f64", dtype="<f8")


def time_runs(run, repeats):
    """Call `run()` `repeats` times; return (the seconds of each call, the last call's value)."""
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - t0)
    return times, value
