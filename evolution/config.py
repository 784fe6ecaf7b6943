"""The ``search`` config section: which search algorithm, its own options, and the resource budget.

The shape every pluggable kind has in the config: a name and an options mapping.  The keys of the
section are ``algorithm``, ``options`` (the algorithm's own options, named as its ``__init__`` names
them and limited by its ``constraints`` table: ``--search.options.cycles 500`` for ``rea``,
``--search.options.topk 10`` for ``evolution``), ``max_params`` and ``max_flops``.  Changing the
algorithm in a later layer (``--search.algorithm rea`` over a YAML file written for ``evolution``)
drops the earlier layer's options that the new algorithm does not take; an option given in the
same layer as the algorithm that it does not take is an error naming the options it does take.
The old spelling without ``options.`` (``--search.cycles 500``) still works for one release, with a
one-line deprecation warning.  Reading ``cfg.search.cycles`` stays the way to get an option's value.

Example:
    >>> from genas.config import load_config
    >>> cfg = load_config("quickstart", ["--search.algorithm", "rea", "--search.options.cycles", "500"])
    >>> cfg.search.algorithm, cfg.search.population, cfg.search.cycles
    ('rea', 30, 500)
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

from genas.config import Section, config_section, set_options
from genas.errors import ConfigError
from genas.parsing import coerce, parse_scalar
from genas.validation import Interval, Nullable, check_params

__all__ = ["SearchConfig"]

_COMMON = {"max_params": Nullable(Interval(float, 0.0, None, "neither")),
           "max_flops": Nullable(Interval(float, 0.0, None, "neither"))}  # fmt: skip


def _algorithm_class(name: str) -> type:
    from evolution.base import ALGORITHMS

    return ALGORITHMS.get(name)


@config_section("search")
class SearchConfig(Section):
    """Architecture search over the trained supernet (SPEC section 4 defaults).

    Args:
        algorithm: A registered search algorithm (``evolution``, ``rea``, ``random``, plugins).
        max_params: Budget in millions of parameters (None: no limit).
        max_flops: Budget in MFLOPs (None: no limit).
        options: The algorithm's own options (checked against its ``constraints``).
        **old: The options by their old spelling, as keywords (deprecated: one warning line each).
    """

    set_first: ClassVar[tuple[str, ...]] = ("algorithm",)

    def __init__(self, algorithm: str = "evolution", max_params: float | None = None, max_flops: float | None = None,
                 options: dict[str, Any] | None = None, **old: Any) -> None:  # fmt: skip
        self.__dict__.update(algorithm=algorithm, max_params=max_params, max_flops=max_flops, options={})
        _algorithm_class(algorithm)
        self.set("options", dict(options or {}), from_cli=False)
        for key, value in old.items():
            self.set(key, value, from_cli=False)

    # ---- keys ------------------------------------------------------------------------------
    def algorithm_options(self) -> dict[str, Any]:
        """The chosen algorithm's options: its defaults, overridden by what was set."""
        return {**_algorithm_class(self.algorithm).option_defaults(), **self.options}

    def keys(self) -> list[str]:
        return ["algorithm", "options", *_COMMON]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("algorithm", "options"):
            raise AttributeError(name)
        opts = self.algorithm_options()
        if name in opts:
            return opts[name]
        raise AttributeError(f"search algorithm {self.algorithm!r} has no option {name!r}")

    def set(self, key: str, value: Any, from_cli: bool) -> None:
        if from_cli and isinstance(value, str) and key != "algorithm":
            value = parse_scalar(value)
        if key == "algorithm":
            value = coerce(value, str, "search.algorithm")
            cls = _algorithm_class(value)  # unknown name: one line with a suggestion, at load
            taken = cls.option_defaults()
            self.__dict__["options"] = {k: v for k, v in self.options.items() if k in taken}
            self.__dict__["algorithm"] = value
            return
        if key in _COMMON:
            self.__dict__[key] = coerce(value, float | None, f"search.{key}")
            return
        if set_options("search", "options", key, value, from_cli, self._set_option, "{population: 50}"):
            return
        if key in _algorithm_class(self.algorithm).option_defaults():  # the spelling before options.
            from genas.errors import deprecated

            deprecated(f"search.{key} (--search.{key})", f"search.options.{key} (--search.options.{key})")
        self._set_option(key, value, from_cli)

    def _set_option(self, key: str, value: Any, from_cli: bool) -> None:
        cls = _algorithm_class(self.algorithm)
        taken = cls.option_defaults()
        if key not in taken:
            raise ConfigError(f"search algorithm {self.algorithm!r} takes no option {key!r}; its options: "
                              f"{', '.join(sorted(taken))} (search.options.NAME; the section's other keys: "
                              "algorithm, max_params, max_flops)")  # fmt: skip
        if from_cli and isinstance(value, str):
            value = parse_scalar(value)
        hint = typing.get_type_hints(cls.__init__).get(key, Any)
        self.options[key] = coerce(value, hint, f"search.options.{key}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value, from_cli=False)

    # ---- checks and records -----------------------------------------------------------------
    def validate(self) -> SearchConfig:
        checked = check_params("search", _COMMON, {k: self.__dict__[k] for k in _COMMON})
        self.__dict__.update(checked)
        cls = _algorithm_class(self.algorithm)
        cls.check_options(self.algorithm_options(), owner="search")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "options": self.algorithm_options(), "max_params": self.max_params,
                "max_flops": self.max_flops}  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "SearchConfig(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"
