"""The config section of a pluggable kind: a name, the plugin's own options, and the section's other keys.

Every kind chosen by name in a config (search algorithm, supernet, ...) is written the same way:
``<choice>: NAME`` plus ``options: {...}``, the options named as the plugin's ``__init__`` names them
and limited by its ``constraints`` table (:class:`genas.validation.Configurable`), so a plugin's
options are set from YAML and the command line exactly like a built-in's
(``--search.options.cycles 500``, ``--supernet.options.channels 8``).  The spelling without
``options.`` (``--supernet.channels 8``) still works for one release, with a one-line deprecation
warning.  Reading ``cfg.supernet.channels`` stays the way to get an option's value.

Changing the name in a later layer (``--search.algorithm rea`` over a YAML file written for
``evolution``) drops the earlier layer's options that the new plugin does not take; an option the
chosen plugin does not take is an error naming the options it does take.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

from genas.errors import ConfigError
from genas.parsing import coerce, parse_scalar
from genas.registry import Registry, suggest
from genas.validation import check_params

__all__ = ["Section", "PluginSection", "SECTIONS", "config_section", "set_options"]

SECTIONS: Registry[type["Section"]] = Registry("config section")

_ORDER: list[str] = []  # registration order: the core's sections, then each stage's as it is imported


def config_section(name: str) -> Callable[[type[Section]], type[Section]]:
    """Register a :class:`Section` dataclass as config section ``name`` (decorator)."""

    def deco(cls: type[Section]) -> type[Section]:
        cls.name = name
        SECTIONS.register(name, overwrite=True)(cls)
        if name not in _ORDER:
            _ORDER.append(name)
        return cls

    return deco


class Section:
    """Base of every config section: a dataclass whose ``constraints`` table is checked by :meth:`validate`.

    Subclasses are ``@dataclass``es decorated with :func:`config_section`; they may override
    :meth:`check` for what a table cannot say (names looked up in a registry, cross-section rules).
    """

    name: ClassVar[str] = ""
    constraints: ClassVar[dict[str, Any]] = {}

    def keys(self) -> list[str]:
        """The keys this section takes."""
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def set(self, key: str, value: Any, from_cli: bool) -> None:
        """Set ``key`` (``"lr"`` or, for a mapping field, ``"options.gamma"``) from YAML or CLI text."""
        hints = typing.get_type_hints(type(self))
        field_name, _, sub = key.partition(".")
        if field_name not in self.keys():
            full = [f"{self.name}.{k}" for k in self.keys()]
            raise ConfigError(f"unknown config key {self.name + '.' + key!r}.{suggest(f'{self.name}.{key}', full)} "
                              f"Keys of {self.name!r}: {', '.join(sorted(self.keys()))}")  # fmt: skip
        tp = hints[field_name]
        if sub:  # --score.options.gamma 16 -> a key inside a dict field
            if typing.get_origin(tp) is not dict:
                raise ConfigError(f"config key {self.name}.{field_name!r} is not a mapping; cannot set {self.name}.{key!r}")
            getattr(self, field_name)[sub] = parse_scalar(value) if from_cli and isinstance(value, str) else value
            return
        if from_cli and isinstance(value, str) and typing.get_origin(tp) not in (list, dict) and tp is not str:
            value = parse_scalar(value)
        setattr(self, field_name, coerce(value, tp, f"{self.name}.{key}"))

    def validate(self) -> Section:
        """Check the constraints table, then :meth:`check`; return ``self``."""
        checked = check_params(self.name, self.constraints, {k: getattr(self, k) for k in self.constraints})
        for k, v in checked.items():
            setattr(self, k, v)
        self.check()
        return self

    def check(self) -> None:
        """Checks beyond the table (default: none)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def set_options(owner: str, field: str, key: str, value: Any, from_cli: bool,
                set_one: Callable[[str, Any, bool], None], example: str) -> bool:  # fmt: skip
    """Set ``<owner>.<field>`` (a plugin's options mapping) or ``<owner>.<field>.<name>``; False for another key.

    The one way every "name plus options" config key is read (``search.options``,
    ``differentiable.architect_options``, ``variants.options``): a mapping is set item by item
    through ``set_one(name, value, from_cli)``, which checks the name against the plugin's own options.
    """
    if key == field:
        if not isinstance(value, dict):
            raise ConfigError(f"{owner}.{field} must be a mapping, e.g. {example}. Got {value!r} instead.")
        for name, item in value.items():
            set_one(str(name), item, from_cli)
        return True
    if key.startswith(field + "."):
        set_one(key[len(field) + 1:], value, from_cli)
        return True
    return False




class PluginSection(Section, ABC):
    """A section choosing one :class:`~genas.validation.Configurable` plugin by name, with its options.

    Subclasses set ``choice`` (the key holding the name: ``algorithm``, ``space``), ``default``
    (the default name), ``common`` (their other keys: key -> (default, type, constraint)),
    ``kind`` (for messages) and :meth:`plugin` (name -> the plugin class; an unknown name raises).
    With ``record_defaults`` the options a config did not set read (and are recorded) as the
    plugin's defaults; without it they read as None ("the builder's default": a supernet's
    one-shot and mixed-op builders differ) and ``None`` unsets an option.

    Args:
        options: The plugin's own options.
        **keys: The name (``choice``), the section's other keys, and options by their old spelling
            (deprecated: one warning line each).
    """

    choice: ClassVar[str] = "name"
    default: ClassVar[str] = ""
    kind: ClassVar[str] = "plugin"
    common: ClassVar[dict[str, tuple[Any, Any, Any]]] = {}
    record_defaults: ClassVar[bool] = True
    example: ClassVar[str] = "{name: value}"
    #: the flat keys of the section's shape before ``options``, with the defaults older records hold;
    #: such a key at that value is dropped when the chosen plugin does not take it (``split: default``
    #: in an old ``digits`` run)
    legacy_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.set_first = (cls.choice,)

    def __init__(self, options: dict[str, Any] | None = None, **keys: Any) -> None:
        name = keys.pop(self.choice, self.default)
        self.__dict__.update({self.choice: name, "options": {}, **{k: d for k, (d, _, _) in self.common.items()}})
        self.plugin(name)
        self.set("options", dict(options or {}), from_cli=False)
        for key, value in keys.items():
            self.set(key, value, from_cli=False)

    @classmethod
    @abstractmethod
    def plugin(cls, name: str) -> Any:
        """The plugin class named ``name`` (an unknown name: one line with a suggestion)."""

    # ---- keys ------------------------------------------------------------------------------
    @property
    def chosen(self) -> Any:
        """The chosen plugin's class."""
        return self.plugin(self.__dict__[self.choice])

    def plugin_options(self) -> dict[str, Any]:
        """The chosen plugin's options: what was set, over its defaults when ``record_defaults``."""
        return {**self.chosen.option_defaults(), **self.options} if self.record_defaults else dict(self.options)

    def keys(self) -> list[str]:
        return [self.choice, "options", *self.common]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in (self.choice, "options"):
            raise AttributeError(name)
        taken = self.chosen.option_defaults()
        if name in taken:
            return self.plugin_options().get(name)
        raise AttributeError(f"{self.kind} {self.__dict__[self.choice]!r} has no option {name!r}")

    def set(self, key: str, value: Any, from_cli: bool) -> None:
        if from_cli and isinstance(value, str) and key != self.choice:
            value = parse_scalar(value)
        if key == self.choice:
            value = coerce(value, str if self.default is not None else str | None, f"{self.name}.{self.choice}")
            taken = self.plugin(value).option_defaults()  # unknown name: one line with a suggestion, at load
            self.__dict__["options"] = {k: v for k, v in self.options.items() if k in taken}
            self.__dict__[self.choice] = value
            return
        if key in self.common:
            self.__dict__[key] = coerce(value, self.common[key][1], f"{self.name}.{key}")
            return
        if set_options(self.name, "options", key, value, from_cli, self._set_option, self.example):
            return
        if value is None and not self.record_defaults:  # an unset key of an older record (nb201's stem: null)
            self.options.pop(key, None)
            return
        if key in self.legacy_defaults and value == self.legacy_defaults[key] and key not in self.chosen.option_defaults():
            return  # an older record's default for an option this plugin does not take
        if key in self.chosen.option_defaults():  # the spelling before options.
            from genas.errors import deprecated

            deprecated(f"{self.name}.{key} (--{self.name}.{key})", f"{self.name}.options.{key} (--{self.name}.options.{key})")
        self._set_option(key, value, from_cli)

    def _set_option(self, key: str, value: Any, from_cli: bool) -> None:
        cls = self.chosen
        taken = cls.option_defaults()
        if key not in taken:
            name = self.__dict__[self.choice]
            who = f"{self.kind} {name!r}" if name is not None else f"a {self.kind} ({self.name}.{self.choice} unset)"
            near = suggest(f"{self.name}.options.{key}", [f"{self.name}.options.{k}" for k in taken])
            others = ", ".join([self.choice, *self.common])
            raise ConfigError(f"{who} takes no option {key!r}; its options: {', '.join(sorted(taken)) or 'none'} "
                              f"({self.name}.options.NAME; the section's other keys: {others}).{near}")  # fmt: skip
        if from_cli and isinstance(value, str):
            value = parse_scalar(value)
        if value is None and not self.record_defaults:
            self.options.pop(key, None)  # None: the builder's default
            return
        hint = cls.option_types().get(key, Any)
        self.options[key] = coerce(value, hint, f"{self.name}.options.{key}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value, from_cli=False)

    # ---- checks and records -----------------------------------------------------------------
    def validate(self) -> PluginSection:
        table = {k: c for k, (_, _, c) in self.common.items() if c is not None}
        self.__dict__.update(check_params(self.name, table, {k: self.__dict__[k] for k in table}))
        self.chosen.check_options(self.plugin_options(), owner=self.name)
        self.check()
        return self

    def to_dict(self) -> dict[str, Any]:
        return {self.choice: self.__dict__[self.choice], "options": self.plugin_options(),
                **{k: self.__dict__[k] for k in self.common}}  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"
