"""The scorer registry, plugin loading and the front door :func:`create_scorer`.

Names resolve in this order: the built-ins, modules loaded with ``--plugin`` (a file or
an importable module), and packages advertising an entry point in the ``genas.scorers``
group.  ``create_scorer`` also reads expressions: ``angle+flatness`` (GeNAS eq. 5),
``angle+0.5*flatness`` (any weighted sum) and ``na:accuracy`` (neighbourhood-aware).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genas.errors import ConfigError, PluginError
from genas.registry import Registry
from scorers.base import Needs, Scorer

__all__ = ["SCORERS", "register_scorer", "list_scorers", "scorer_table", "load_plugin", "build_scorer", "origin_of"]

SCORERS: Registry[type[Scorer]] = Registry("scorer", entry_point_group="genas.scorers")
_ORIGINS: dict[str, str] = {}


def register_scorer(
    name: str,
    *,
    description: str | None = None,
    higher_is_better: bool = True,
    needs: Needs | None = None,
    overwrite: bool = False,
) -> Callable[[Any], Any]:
    """Register a :class:`Scorer` subclass, or a plain function ``fn(arch, ctx) -> float``.

    Example:
        >>> from scorers import register_scorer
        >>> @register_scorer("num_convs", needs=Needs(supernet=False), overwrite=True)
        ... def num_convs(arch, ctx):
        ...     "Number of conv edges in the cell."
        ...     return sum("conv" in op for op in arch.ops)
    """

    def deco(obj: Any) -> Any:
        cls = obj
        if not (inspect.isclass(obj) and issubclass(obj, Scorer)):
            if not callable(obj):
                raise PluginError(f"register_scorer({name!r}) needs a Scorer subclass or a function, got {obj!r}")
            cls = _function_scorer(name, obj, higher_is_better, needs or Needs(supernet=False))
        if cls.score is Scorer.score and not callable(getattr(cls, "score_one", None)):
            raise PluginError(f"scorer {name!r} ({obj.__module__}.{obj.__qualname__}) must define score() or score_one()")
        cls.name = name
        if needs is not None and cls is obj:
            cls.needs = needs
        SCORERS.register(name, description=description, overwrite=overwrite)(cls)
        _ORIGINS[name] = getattr(obj, "__module__", "") or ""
        return obj

    return deco


def _function_scorer(name: str, fn: Callable[[Any, Any], float], higher: bool, needs: Needs) -> type[Scorer]:
    class FunctionScorer(Scorer):
        __doc__ = fn.__doc__
        higher_is_better = higher

        def score_one(self, arch: Any, ctx: Any) -> float:
            return float(fn(arch, ctx))

    FunctionScorer.needs = needs
    FunctionScorer.__name__ = FunctionScorer.__qualname__ = f"FunctionScorer[{name}]"
    return FunctionScorer


def origin_of(name: str) -> str:
    """The module (or plugin file) a scorer was registered from."""
    return _ORIGINS.get(name, "")


def list_scorers(pattern: str = "*") -> list[str]:
    """Registered scorer names matching ``pattern`` (built-ins are imported first)."""
    import scorers.builtins  # noqa: F401

    return SCORERS.list(pattern)


def scorer_table() -> list[tuple[str, str, str, str]]:
    """(name, direction, needs, description) of every registered scorer, plus the expression forms."""
    rows = []
    for name in list_scorers():
        entry = SCORERS.entry(name)
        cls = entry.obj
        rows.append((name, "higher" if cls.higher_is_better else "lower", cls.needs.describe(), entry.description))
    rows.append(("A+B, A+0.5*B", "higher", "union", "weighted sum of normalised scores; flatness weight defaults to gamma*beta (GeNAS eq. 5)"))  # fmt: skip
    rows.append(("na:A", "as A", "as A", "neighbourhood-aware: mean of A over the arch and k radius-1 neighbours"))
    return rows


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a ``.py`` file or a dotted module) and return the scorer names it registered."""
    before = set(SCORERS.list())
    path = Path(spec)
    if spec.endswith(".py") or path.suffix == ".py" or "/" in spec or "\\" in spec:
        if not path.is_file():
            raise PluginError(f"plugin {spec!r} does not exist (give a .py file or an importable module name)")
        mod_name = "genas_plugin_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        if mod_name in sys.modules:  # the same file given twice (--plugin and score.plugins)
            return []
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
        origin = str(path)
    else:
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            if exc.name and spec.startswith(exc.name):
                raise PluginError(f"plugin {spec!r} does not exist (no module {exc.name!r}; give a .py file or an installed module)") from exc
            raise PluginError(f"plugin {spec!r} raised on import: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise PluginError(f"plugin {spec!r} raised on import: {type(exc).__name__}: {exc}") from exc
        origin = spec
    added = sorted(set(SCORERS.list()) - before)
    for name in added:
        _ORIGINS[name] = f"plugin {origin}"
    return added


def build_scorer(name: str, options: dict[str, Any]) -> tuple[Scorer, set[str]]:
    """Instantiate scorer ``name`` with the options its ``__init__`` accepts; return it and the keys used."""
    import scorers.builtins  # noqa: F401

    cls = SCORERS.get(name)
    params = inspect.signature(cls.__init__).parameters
    accepted = {k for k, p in params.items() if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    prefix = name + "."
    kwargs = {k: v for k, v in options.items() if k in accepted}
    kwargs.update({k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix) and k[len(prefix):] in accepted})
    used = {k for k in options if k in accepted} | {k for k in options if k.startswith(prefix) and k[len(prefix):] in accepted}
    bad = [k for k in options if k.startswith(prefix) and k[len(prefix):] not in accepted]
    if bad:
        raise ConfigError(f"scorer {name!r} has no option {bad[0][len(prefix):]!r}; its options: {', '.join(sorted(accepted)) or 'none'}")
    try:
        scorer = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"scorer {name!r}: {exc}") from exc
    return scorer, used


def as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
