"""Importing plugins: a ``.py`` file or an importable module that registers things when imported.

Any registry (scorers, search algorithms, architects, datasets, config sections) is filled by
the import itself, so one loader serves every kind: ``--plugin my_scorers.py`` on any command.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello_plugin.py"
    >>> _ = path.write_text("GREETING = 'hi'")
    >>> import_plugin(str(path)).GREETING
    'hi'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from genas.errors import PluginError

__all__ = ["import_plugin", "is_file_spec"]


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a file (``x.py``, ``dir/x``) rather than a dotted module."""
    return spec.endswith(".py") or Path(spec).suffix == ".py" or "/" in spec or "\\" in spec


def import_plugin(spec: str) -> ModuleType:
    """Import the plugin ``spec`` once (a second call returns the same module) or raise :class:`PluginError`."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin is a .py file or an importable module name, got {spec!r}")
    if is_file_spec(spec):
        path = Path(spec)
        if not path.is_file():
            raise PluginError(f"plugin {spec!r} does not exist (give a .py file or an importable module name)")
        mod_name = "genas_plugin_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        if mod_name in sys.modules:  # the same file given twice (--plugin and score.plugins)
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise PluginError(f"plugin {spec!r} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise PluginError(f"plugin {spec!r} raised on import: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise PluginError(f"plugin {spec!r} does not exist (no module {exc.name!r}; give a .py file or an installed module)") from exc
        raise PluginError(f"plugin {spec!r} raised on import: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"plugin {spec!r} raised on import: {type(exc).__name__}: {exc}") from exc
