"""Finding and loading plugins: ``methods()``, ``info()``, ``doctor()``.

Plugins are looked for, in order of precedence, in the folders given as ``plugins=`` (a path or a
list of paths), else in ``$QUIVER_PLUGIN_PATH`` (folders separated like ``PATH``), else in the
``plugins`` folder inside this package, where the wheel carries the plugins built with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _quiver
from ._errors import UnknownMethodError

PluginDirs = Union[None, str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]

#: The environment variable with plugin folders, as for the ``quiver`` CLI.
PLUGIN_PATH_ENV = "QUIVER_PLUGIN_PATH"

#: The folder of plugins shipped inside the wheel.
BUNDLED_PLUGINS = Path(__file__).resolve().parent / "plugins"

_HOSTS: Dict[Tuple[str, ...], "Registry"] = {}


def plugin_dirs(plugins: PluginDirs = None) -> List[str]:
    """The folders searched for ``plugins`` (see the module documentation)."""
    if plugins is not None:
        if isinstance(plugins, (str, os.PathLike)):
            return [os.fspath(plugins)]
        if isinstance(plugins, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in plugins):
            return [os.fspath(p) for p in plugins]
        raise TypeError(
            f"plugins must be a folder (a str or os.PathLike) or a list of folders, got {plugins!r} "
            f"({type(plugins).__name__})"
        )
    env = os.environ.get(PLUGIN_PATH_ENV, "")
    dirs = [d for d in env.split(os.pathsep) if d]
    if dirs:
        return dirs
    return [str(BUNDLED_PLUGINS)]


class Registry:
    """The plugins of one list of folders, loaded once per process."""

    def __init__(self, dirs: List[str]) -> None:
        self.dirs = dirs
        self.native = _quiver.Host(dirs)
        self.manifests: Dict[str, Dict[str, Any]] = {
            m["name"]: m for m in json.loads(self.native.manifests_json())
        }

    def manifest(self, method: str) -> Dict[str, Any]:
        """The manifest of ``method`` as a dict, or :class:`UnknownMethodError`."""
        try:
            return self.manifests[method]
        except KeyError:
            known = ", ".join(self.manifests) or (
                "none: build them with `cargo xtask build`, install the wheel, or point "
                f"plugins= / ${PLUGIN_PATH_ENV} at them"
            )
            raise UnknownMethodError(f"unknown method '{method}' (loaded: {known})") from None


def registry(plugins: PluginDirs = None) -> Registry:
    """The registry for ``plugins`` (cached: plugin libraries stay loaded for the process)."""
    dirs = plugin_dirs(plugins)
    key = tuple(dirs)
    if key not in _HOSTS:
        _HOSTS[key] = Registry(dirs)
    return _HOSTS[key]


def methods(plugins: PluginDirs = None) -> List[str]:
    """The names of the methods the plugins provide, in load order.

    >>> "conformal-selection" in quiver.methods()
    True
    """
    return list(registry(plugins).manifests)


def info(method: str, plugins: PluginDirs = None) -> Dict[str, Any]:
    """Everything a method's manifest says, as a dict: ``name``, ``family``, ``version``,
    ``summary``, ``guarantee``, ``reference``, ``devices``, ``parameters`` (name, type, default,
    choices, range, doc), ``tables`` (role, required, columns), ``file`` and ``sdk_version``."""
    return json.loads(json.dumps(registry(plugins).manifest(method)))


def describe(method: str, plugins: PluginDirs = None) -> str:
    """The manifest of ``method`` as text (what ``quiver info METHOD`` prints)."""
    m = registry(plugins).manifest(method)
    lines = [
        f"{m['name']} {m['version']} ({m['family']})",
        f"  {m['summary']}",
        f"guarantee: {m['guarantee']}",
        f"reference: {m['reference']}",
        f"devices:   {', '.join(m['devices'])}",
        "parameters:",
    ]
    width = max((len(p["name"]) for p in m["parameters"]), default=0)
    for p in m["parameters"]:
        default = "unset" if p["default"] is None else json.dumps(p["default"])
        lines.append(f"  {p['name']:{width}}  {p['doc']} (default {default})")
        lines.append(f"  {'':{width}}    {p['allowed']}")
    lines.append("tables:")
    for t in m["tables"]:
        optional = "" if t["required"] else " (optional)"
        lines.append(f"  {t['role']}{optional}: {t['doc']}")
        for c in t["columns"]:
            need = "required" if c["required"] else "optional"
            lines.append(f"    {c['name']:10} {c['type']:4} {need:9} {c['doc']}")
    return "\n".join(lines)


def doctor(plugins: PluginDirs = None) -> Dict[str, Any]:
    """The installation's health: the folders searched, each plugin loaded (file, SDK), each
    file that failed and why, the ABI version, and whether CUDA can be used."""
    reg = registry(plugins)
    driver, nvrtc = _quiver.cuda_libraries()
    missing = [d for d in reg.native.searched() if not os.path.isdir(d)]
    return {
        "abi_version": _quiver.abi_version(),
        "plugin_dirs": reg.native.searched(),
        "plugins": {
            name: {"file": m["file"], "sdk_version": m["sdk_version"], "family": m["family"]}
            for name, m in reg.manifests.items()
        },
        "failures": reg.native.failures() + [f"{d}: no such folder" for d in missing],
        "cuda_driver": driver,
        "nvrtc": nvrtc,
        "ok": bool(reg.manifests) and not reg.native.failures() and not missing,
    }
