"""Optional dependencies of the integrations: one clear error, with the install line, when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from genas.errors import GenasError

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(GenasError, ImportError):
    """An optional package an integration needs is not installed."""


def require(module: str, purpose: str, install: str = "pip install 'genas[export]'") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying what needs it and how to install it.

    Example:
        >>> require("no_such_package_xyz", "the demo")
        Traceback (most recent call last):
        ...
        genas.export.deps.MissingDependencyError: the demo needs the 'no_such_package_xyz' package, which is not installed: pip install 'genas[export]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependencyError(f"{purpose} needs the {top!r} package, which is not installed: {install}") from exc
