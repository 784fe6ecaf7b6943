"""Turning YAML and command-line text into typed config values.

Three pieces the config machinery (:mod:`genas.config`) is built on: a YAML loader that reads
``1e-3`` as a float, coercion of a YAML or CLI value to a dataclass field's annotated type
(with a one-line :class:`ConfigError` naming the key), and splitting ``--section.key value``
overrides out of a command line.
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any, Sequence, Union

import yaml

from genas.errors import ConfigError

__all__ = ["yaml_load", "coerce", "parse_scalar", "split_overrides"]


class _Loader(yaml.SafeLoader):
    """YAML 1.2-style floats: ``1e-3`` is a float (PyYAML's YAML 1.1 reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-3`` as a float."""
    return yaml.load(text, Loader=_Loader)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Coerce ``value`` (from YAML or a CLI string) to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                f = float(value)
                if math.isfinite(f):
                    return f
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            text = value.strip()
            value = yaml_load(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return [coerce(v, item_tp, key) for v in value]
    elif origin is dict:
        if isinstance(value, str):
            value = yaml_load(value)
        if isinstance(value, dict):
            return dict(value)
    name = getattr(tp, "__name__", str(tp)).replace("NoneType", "null")
    raise ConfigError(f"config key {key!r} must be {name}; got {value!r}")


def parse_scalar(text: str) -> Any:
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separate ``--section.key value`` / ``--section.key=value`` overrides from other arguments."""
    rest: list[str] = []
    overrides: list[tuple[str, str]] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "." in arg.split("=", 1)[0]:
            key, eq, val = arg[2:].partition("=")
            if not eq:
                if i + 1 >= len(args):
                    raise ConfigError(f"config override --{key} needs a value")
                val = args[i + 1]
                i += 1
            overrides.append((key, val))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides
