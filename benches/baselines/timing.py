"""The timing loop every baseline shares: run `repeats` times, wall-clock each run."""
import time


def time_runs(run, repeats):
    """Call `run()` `repeats` times; return (the seconds of each call, the last call's value)."""
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - t0)
    return times, value
