"""Methods computed by parts on a Dask cluster (``docs/scale.md``).

>>> import dask.dataframe as dd, quiver.dask
>>> logs = dd.read_parquet("s3://bucket/bandit-logs/")        # or a local path, or any Dask frame
>>> r = quiver.dask.run("ope", logs, role="bandit", ci="t")    # the result quiver.run gives

Each partition's state is computed where the partition lives (``partial``: bytes, pickled as
any result), the states are merged in a tree (``merge``, ``split_every`` at a time) and the result
is finished on the client (``finish``). The states say which method, version and parameters made
them, so a worker with another plugin version fails clearly instead of merging wrong numbers.

The adapter is small on purpose: the engine-specific part is how partitions are mapped and states
reduced. Ray would map ``_partial`` with ``ray.remote`` over the dataset's blocks and reduce the
object references pairwise; Spark would run ``_partial`` in ``mapInArrow`` (one state per Arrow
batch iterator, as a binary column) and ``reduce`` the collected states with ``_merge`` — each a
file beside this one.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from ._errors import InvalidParameterError
from ._estimators import Estimator
from ._host import PluginDirs
from ._results import Result

__all__ = ["run"]

_CACHE: Dict[Any, Estimator] = {}


def _estimator(method: str, plugins: PluginDirs, device: str, params: Dict[str, Any]) -> Estimator:
    """One estimator per worker process and settings (loading plugins once)."""
    key = (method, repr(plugins), device, tuple(sorted((k, repr(v)) for k, v in params.items())))
    est = _CACHE.get(key)
    if est is None:
        est = _CACHE[key] = Estimator(method, plugins=plugins, device=device, **params)
    return est


def _partial(
    method: str,
    plugins: PluginDirs,
    device: str,
    params: Dict[str, Any],
    role: str,
    frame: Any,
    first: int,
    whole: Dict[str, Any],
    broadcast: Optional[bytes] = None,
) -> Optional[bytes]:
    """The state of one partition, whose first row is row ``first`` of the whole table, with the
    tables read whole (and the round's broadcast, for a method computed in rounds); ``None`` for
    an empty one (it contributes nothing)."""
    if len(frame) == 0:
        return None
    est = _estimator(method, plugins, device, params)
    return est.partial(offsets={role: first}, broadcast=broadcast, **whole, **{role: frame})


def _starts(*lengths: int) -> List[int]:
    """Each partition's first row: the rows of the partitions before it."""
    return [sum(lengths[:i]) for i in range(len(lengths))]


def _merge(method: str, plugins: PluginDirs, device: str, params: Dict[str, Any], *states: Optional[bytes]) -> Optional[bytes]:
    """The states of consecutive partitions as one, in order; ``None`` ones skipped."""
    est = _estimator(method, plugins, device, params)
    out: Optional[bytes] = None
    for s in states:
        if s is None:
            continue
        out = s if out is None else est.merge(out, s)
    return out


def run(
    method: str,
    data: Any,
    /,
    *,
    role: str,
    whole: Optional[Dict[str, Any]] = None,
    split_every: int = 8,
    plugins: PluginDirs = None,
    device: str = "cpu",
    **params: Any,
) -> Result:
    """Run ``method`` by parts over ``data`` — a Dask DataFrame, or a path or pattern of Parquet
    files (read with ``dask.dataframe.read_parquet``) — as its table ``role``; the states are
    merged ``split_every`` at a time. Uses the current Dask scheduler (a ``distributed.Client``
    when one is active). ``whole`` holds the tables the method reads whole in every partition
    (``Estimator.whole_roles``: a selector's calibration set, as a pandas DataFrame or a mapping of
    columns), shipped to the workers once. Returns the result :func:`quiver.run` returns on the
    data as one table, to the rounding of sums. A method computed in rounds (``Estimator.rounds``:
    SURE's search for λ̂) maps over the partitions once per pass, each pass with the broadcast
    the previous one finished with; ``data.persist()`` first keeps the partitions in the
    workers' memory between passes instead of reading them again."""
    import dask
    import dask.dataframe as dd

    if isinstance(data, (str, os.PathLike)):
        data = dd.read_parquet(os.fspath(data))
    if split_every < 2:
        raise InvalidParameterError(f"split_every = {split_every} must be at least 2")
    local = Estimator(method, plugins=plugins, device=device, **params)
    if not local.mergeable:
        raise InvalidParameterError(
            f"method '{method}' cannot be computed by parts (its manifest declares no partial/merge/finish "
            "steps): run it with quiver.run on one table"
        )
    whole = dict(whole or {})
    allowed = local.whole_roles
    for name in whole:
        if name not in allowed:
            raise InvalidParameterError(
                f"table '{name}' cannot be given whole to every partition of '{method}' (the tables it takes "
                f"whole: {', '.join(allowed) or 'none'})"
            )
    args = (method, plugins, device, dict(params))
    parts = data.to_delayed()
    # where each partition starts, for methods that draw per row (computed on the workers from
    # the partitions' lengths; each partition is read once for both)
    starts = dask.delayed(_starts, nout=len(parts))(*[dask.delayed(len)(p) for p in parts])
    shared = dask.delayed(whole) if whole else {}
    broadcast: Optional[bytes] = None
    while True:
        level: List[Any] = [
            dask.delayed(_partial)(*args, role, part, starts[i], shared, broadcast) for i, part in enumerate(parts)
        ]
        while len(level) > 1:
            groups: Sequence[List[Any]] = [level[i : i + split_every] for i in range(0, len(level), split_every)]
            level = [dask.delayed(_merge)(*args, *g) for g in groups]
        (state,) = dask.compute(level[0])
        if state is None:
            raise InvalidParameterError(f"a run by parts of '{method}' was given no rows in any partition")
        result, broadcast = local.finish_round(state, broadcast)
        if result is not None:
            return result
