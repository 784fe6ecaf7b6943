"""The small exception family of genas.

Every class subclasses a built-in that users already catch, so ``except ValueError``
keeps working, and the command-line tools turn any :class:`GenasError` into a
one-line message with a non-zero exit instead of a traceback: status 2 for a user
mistake, the class's ``exit_code`` otherwise (3 for a diverged training run).
"""

__all__ = [
    "GenasError",
    "ConfigError",
    "UnknownNameError",
    "InvalidArchitectureError",
    "DataNotFoundError",
    "CheckpointError",
    "NotTrainedError",
    "PluginError",
    "TrainingDivergedError",
    "GenasWarning",
    "GenasDeprecationWarning",
    "deprecated",
    "quiet_deprecations",
]

import contextlib
from collections.abc import Iterator


class GenasError(Exception):
    """Base class of every error genas raises on purpose for a user mistake."""

    exit_code: int = 2


class ConfigError(GenasError, ValueError):
    """A configuration value or option is invalid."""


class UnknownNameError(GenasError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class InvalidArchitectureError(GenasError, ValueError):
    """An architecture string, tuple or object is malformed or from another space."""


class DataNotFoundError(GenasError, FileNotFoundError):
    """A dataset or table file is not where it was expected."""


class CheckpointError(GenasError, RuntimeError):
    """A checkpoint is missing, corrupt or incompatible with the current config."""


class NotTrainedError(GenasError, RuntimeError):
    """Something needs a trained supernet (or checkpoint) that does not exist yet."""


class PluginError(GenasError, ImportError):
    """A plugin could not be loaded or does not follow the protocol."""


class TrainingDivergedError(GenasError, FloatingPointError):
    """A training loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class GenasWarning(UserWarning):
    """Something the user should know that does not stop the run (shown as one ``warning:`` line by the tools)."""


class GenasDeprecationWarning(FutureWarning):
    """An old spelling that still works for one release (shown to users: a ``FutureWarning``)."""


def deprecated(old: str, new: str) -> None:
    """Warn, once per process and spelling, that ``old`` is deprecated in favour of ``new``."""
    import warnings

    if old not in _WARNED and not _QUIET:
        _WARNED.add(old)
        warnings.warn(f"{old} is deprecated and will be removed in the next release; write {new}",
                      GenasDeprecationWarning, stacklevel=3)  # fmt: skip


_WARNED: set[str] = set()
_QUIET: list[bool] = []


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    """No deprecation lines inside (a finished run's recorded config is read as it was written)."""
    _QUIET.append(True)
    try:
        yield
    finally:
        _QUIET.pop()
