"""Lazy imports, so that importing a package for its config section, its registry or a ``--help``
costs no torch import (``--list-scorers`` answers in well under a second; torch takes seconds).

* :func:`lazy_exports` — PEP 562 ``__getattr__`` / ``__dir__`` for a package's ``__init__``.
* :func:`lazy_import` — a stand-in for a module that imports it on first attribute access, for
  modules whose heavy dependency is only used inside functions (``torch = lazy_import("torch")``).

Example:
    >>> __getattr__, __dir__ = lazy_exports("genas", {"Run": "genas.runs"})
    >>> __getattr__("Run").__name__
    'Run'
    >>> json = lazy_import("json")
    >>> json.dumps([1])
    '[1]'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports", "lazy_import", "no_grad"]


class _LazyModule:
    """Resolves to module ``name`` on the first attribute access (and on every later one, cheaply)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module = sys.modules.get(self._name) or importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_import(name: str) -> Any:
    """Module ``name`` if it is already imported, else a stand-in that imports it when first used."""
    return sys.modules[name] if name in sys.modules else _LazyModule(name)


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``names[attr]`` on first access of ``attr``."""

    def __getattr__(attr: str) -> Any:
        if attr in names:
            value = getattr(importlib.import_module(names[attr]), attr)
            setattr(importlib.import_module(package), attr, value)  # later lookups skip this hook
            return value
        raise AttributeError(f"module {package!r} has no attribute {attr!r}")

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__


def no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@torch.no_grad()`` that imports torch when the function is called, not when it is defined."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
