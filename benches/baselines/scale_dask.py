#!/usr/bin/env python3
"""A run by parts on Dask against one Python process, for `cargo xtask bench` (docs/scale.md):
the same Parquet file evaluated by `quiver.dask.run` on a `distributed.LocalCluster` of two
worker processes (one thread each; the file's row groups as partitions, read where they are
computed) and by `quiver.run` on the file read whole with pandas in this process. Both timings
include reading the file; the cluster's start is not timed. Prints one JSON line."""
import json
import sys
import time


def main(spec):
    import dask.dataframe as dd
    import distributed
    import pandas as pd
    import quiver
    import quiver.dask

    path, role, method, params = spec["data"], spec["role"], spec["method"], spec["params"]
    t0 = time.perf_counter()
    one = quiver.run(method, device="cpu", **{role: pd.read_parquet(path)}, **params)
    single = time.perf_counter() - t0
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        ddf = dd.read_parquet(path, split_row_groups=True)
        quiver.dask.run(method, dd.read_parquet(path, split_row_groups=True).partitions[:1], role=role, **params)
        t0 = time.perf_counter()
        r = quiver.dask.run(method, ddf, role=role, **params)
        dask_s = time.perf_counter() - t0
        partitions = ddf.npartitions
    a, b = one.to_dict(), r.to_dict()
    key = "dr" if method == "ope" else "j"
    print(json.dumps({
        "single_s": single,
        "dask_s": dask_s,
        "dask_over_single": dask_s / single,
        "partitions": partitions,
        "workers": 2,
        "single_estimate": a[key]["estimate"] if isinstance(a[key], dict) else a[key],
        "dask_estimate": b[key]["estimate"] if isinstance(b[key], dict) else b[key],
    }))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
