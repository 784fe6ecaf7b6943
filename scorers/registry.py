"""The scorer registry, plugin loading and the front door :func:`create_scorer`.

Names resolve in this order: the built-ins, modules loaded with ``--plugin`` (a file or
an importable module), and packages advertising an entry point in the ``genas.scorers``
group.  ``create_scorer`` also reads expressions: ``angle+flatness`` (GeNAS eq. 5),
``angle+0.5*flatness`` (any weighted sum) and ``na:accuracy`` (neighbourhood-aware).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genas.errors import ConfigError, PluginError
from genas.plugins import import_plugin, is_file_spec
from genas.registry import Registry
from scorers.base import Needs, Scorer

__all__ = ["SCORERS", "register_scorer", "load_plugin", "build_scorer", "scorer_options", "origin_of"]

SCORERS: Registry[type[Scorer]] = Registry("scorer", entry_point_group="genas.scorers", builtins=tuple(
    f"scorers.{m}" for m in ("accuracy", "activation", "angle", "flatness", "oracle", "saliency", "zero_cost")))
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


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a ``.py`` file or a dotted module) and return the scorer names it registered."""
    before = set(SCORERS.list())
    import_plugin(spec)
    added = sorted(set(SCORERS.list()) - before)
    origin = str(Path(spec)) if is_file_spec(spec) else spec
    for name in added:
        _ORIGINS[name] = f"plugin {origin}"
    return added


def build_scorer(name: str, options: dict[str, Any]) -> tuple[Scorer, set[str]]:
    """Instantiate scorer ``name`` with the options its ``__init__`` accepts; return it and the keys used."""
    cls = SCORERS.get(name)
    accepted = scorer_options(name)
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


def scorer_options(name: str) -> set[str]:
    """The keyword options scorer ``name``'s constructor takes."""
    params = inspect.signature(SCORERS.get(name).__init__).parameters
    return {k for k, p in params.items() if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
