"""Atomic file writes: a file is either absent, the old version, or complete.

Every writer goes through a temporary file in the same directory followed by
:func:`os.replace`, so an interrupted run never leaves a half-written checkpoint,
config or result behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, IO

__all__ = ["atomic_writer", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "to_jsonable", "check_writable_dir",
           "removed_on_error", "read_torch_file"]


def check_writable_dir(path: str | os.PathLike, option: str) -> Path:
    """Raise :class:`~genas.errors.ConfigError` unless ``path`` is, or can be made as, a writable directory.

    Writes nothing: the check walks up to the nearest existing ancestor, so a command can refuse a bad
    output location before any work, and leave the disk as it was.

    Args:
        path: The directory a command will write into.
        option: How the user names it, for the message (``"--out"``, ``"--run.root"``).
    """
    from genas.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a directory; choose another {option}")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        what = "is not a directory" if not probe.is_dir() else "is not writable"
        raise ConfigError(f"{path} cannot be written: {probe} {what}; choose another {option}")
    return path


@contextlib.contextmanager
def removed_on_error(path: str | os.PathLike, keep: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """Undo, when the body raises, what it created at ``path``: the folder with any parents it made,
    or the new entries of a folder that was already there. Nothing that existed before is touched.

    ``keep()`` is asked first: True when the body left a result worth keeping (a search to resume),
    which then stays. An interrupt (Ctrl-C) keeps everything: it is a pause, not a mistake.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "search" / "a"
        >>> try:
        ...     with removed_on_error(out):
        ...         out.mkdir(parents=True)
        ...         raise ValueError("the scorer returned strings")
        ... except ValueError:
        ...     pass
        >>> out.parent.exists()
        False
    """
    import shutil

    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    top = missing[-1] if missing else None  # the outermost folder this call may create
    before = set(os.listdir(path)) if top is None and path.is_dir() else set()
    try:
        yield path
    except Exception:
        if not keep():
            if top is not None:
                made = [top]
            else:
                made = [path / name for name in set(os.listdir(path)) - before] if path.is_dir() else []
            for p in made:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_writer(path, "w") as fh:
        fh.write(text)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars, paths, tuples and dataclass-like objects into JSON types.

    NaN and infinities become ``null``: JSON has no spelling for them (Python's bare ``NaN`` is
    not valid JSON), and a missing value is what they mean in a record.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return to_jsonable(obj.item())
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return obj.to_json()
    return str(obj)


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=indent, sort_keys=False, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike, save: Callable[[Any, IO[bytes]], None] | None = None) -> None:
    """``torch.save`` to ``path`` atomically."""
    if save is None:
        import torch

        save = torch.save
    with atomic_writer(path, "wb") as fh:
        save(obj, fh)


def read_torch_file(path: str | os.PathLike, what: str, formats: tuple[str, ...], map_location: Any = "cpu",
                    weights_only: bool = False, corrupt: str = "is corrupt or unreadable") -> dict[str, Any]:  # fmt: skip
    """The dict a genas ``atomic_torch_save`` wrote at ``path``, stamped ``format`` in ``formats``.

    The one reader behind every checkpoint kind (supernet runs, differentiable searches, network
    files).  A file that ``torch.load`` cannot read raises :class:`~genas.errors.CheckpointError`
    ``"<what> <path> <corrupt> (<exception>)"``; a dict of another format returns as it is with
    ``None`` under ``"format"`` checked by the caller (who knows what to suggest), so this only
    raises for unreadable files and non-dicts.
    """
    import torch

    from genas.errors import CheckpointError

    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # truncated, or not a torch file
        raise CheckpointError(f"{what} {path} {corrupt} ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a {what} (expected a dict with format {' or '.join(map(repr, formats))})")
    return state
