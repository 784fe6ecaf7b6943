"""A small, typed registry used for every kind of pluggable thing in genas.

One registry per kind (search spaces, datasets, scorers, search algorithms),
each a module-level object, filled by a decorator::

    SCORERS = Registry("scorer", entry_point_group="genas.scorers", builtins=("scorers.flatness", ...))

A registry knows the modules that hold its built-ins and imports them on its first lookup (``get``,
``list``, ``in``), so no module imports another only for its registration side effect.

    @SCORERS.register("flatness", description="GeNAS flatness (eq. 4)")
    class Flatness: ...

Lookup of an unknown name raises :class:`~genas.errors.UnknownNameError` with close
matches and a reminder of how third-party code registers names.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from genas.errors import ConfigError, PluginError, UnknownNameError

__all__ = ["Registry", "Entry", "natural_key", "suggest", "register_subclass", "init_options"]

T = TypeVar("T")


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``cifar10`` before ``cifar100`` and ``x2`` before ``x10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", text)]


def suggest(name: str, options: list[str] | tuple[str, ...] | set[str], n: int = 3) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest options, or an empty string."""
    close = difflib.get_close_matches(name, sorted(options), n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its metadata."""

    name: str
    obj: T
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name -> object mapping with decorator registration and helpful lookups.

    Args:
        kind: What the registry holds, used in messages ("scorer", "dataset").
        entry_point_group: Optional ``importlib.metadata`` entry-point group whose
            entries are imported (once) before a lookup misses.
        builtins: Modules that register the built-in entries, imported (once) on the first lookup.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtins = tuple(builtins)
        self._entries: dict[str, Entry[T]] = {}
        self._entry_points_loaded = False
        self._builtins_loaded = not self.builtins

    def load_builtins(self) -> None:
        """Import the modules that register the built-ins (once; a no-op afterwards)."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # first: a built-in module may look names up while it registers
        import importlib

        for module in self.builtins:
            importlib.import_module(module)

    def register(
        self, name: str | None = None, *, description: str | None = None, overwrite: bool = False, **meta: Any
    ) -> Callable[[T], T]:
        """Decorator that registers an object under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._entries and not overwrite and self._entries[key].obj is not obj:
                old = self._entries[key].obj
                raise ConfigError(f"{self.kind} {key!r} is already registered (by {getattr(old, '__module__', '?')}); "
                                  "choose another name or pass overwrite=True to replace it")  # fmt: skip
            doc = description
            if doc is None:
                doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[key] = Entry(key, obj, doc, dict(meta))
            return obj

        return deco

    def add(self, name: str, obj: T, *, description: str = "", overwrite: bool = False, **meta: Any) -> T:
        """Register ``obj`` under ``name`` without a decorator."""
        return self.register(name, description=description, overwrite=overwrite, **meta)(obj)

    def load_entry_points(self) -> list[str]:
        """Import every module advertised under ``entry_point_group`` (once); return their names."""
        if self.entry_point_group is None or self._entry_points_loaded:
            return []
        self._entry_points_loaded = True
        loaded = []
        for ep in metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must name itself
                raise PluginError(
                    f"{self.kind} plugin {ep.name!r} ({ep.value}) from entry point group "
                    f"{self.entry_point_group!r} failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            if ep.name not in self._entries and not isinstance(obj, type(metadata)):
                # entry point pointing at an object rather than a module: register it by the ep name
                if callable(obj):
                    self.add(ep.name, obj)
            loaded.append(ep.name)
        return loaded

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise :class:`UnknownNameError`."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        """Return the :class:`Entry` registered as ``name`` (with its metadata)."""
        self.load_builtins()
        if name not in self._entries:
            self.load_entry_points()
        if name not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[name]

    def _unknown_message(self, name: str) -> str:
        names = list(self._entries)
        listing = ", ".join(sorted(names, key=natural_key))
        how = "import the module that registers it"
        if self.entry_point_group:
            how += f" (--plugin) or install a package with a {self.entry_point_group!r} entry point"
        return f"unknown {self.kind} {name!r}.{suggest(name, names)} Available: {listing}. To add one, {how}."

    def list(self, pattern: str = "*") -> list[str]:
        """Names matching the shell-style ``pattern``, naturally sorted."""
        self.load_builtins()
        self.load_entry_points()
        return sorted((n for n in self._entries if fnmatch.fnmatch(n, pattern)), key=natural_key)

    def entries(self) -> list[Entry[T]]:
        """Every entry, naturally sorted by name."""
        return [self._entries[n] for n in self.list()]

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self.load_builtins()
        return len(self._entries)


def register_subclass(registry: Registry[Any], base: type, who: str, name: str, *, description: str | None = None,
                      overwrite: bool = False) -> Callable[[type], type]:  # fmt: skip
    """A class decorator registering a ``base`` subclass under ``name`` and setting its ``name`` attribute.

    The body of ``register_architect`` / ``register_variant``: anything but a ``base`` subclass is
    refused with ``who`` named in the message.
    """

    def deco(cls: type) -> type:
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise ConfigError(f"{who}({name!r}) needs a {base.__name__} subclass, got {cls!r}")
        cls.name = name  # type: ignore[attr-defined]
        return registry.register(name, description=description, overwrite=overwrite)(cls)

    return deco


def init_options(cls: type) -> list[str]:
    """The keyword options ``cls(...)`` accepts, in signature order (what ``--list-*`` tables show)."""
    params = inspect.signature(cls.__init__).parameters
    return [k for k, p in params.items() if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
