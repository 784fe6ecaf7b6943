"""Reading the architecture to export: an object, a typed string, or a search result file.

Accepted, in the order tried:

* an architecture object (``NB201Arch``, ``DartsArch``) or a DARTS ``Genotype``;
* a path to a ``best_arch.json`` (written by ``tools/evolve.py`` and the differentiable search:
  ``{"arch": ..., "genotype": ..., "space": ...}``) or to a genas network checkpoint;
* a string: the NB201 benchmark string, ``Genotype(...)``, the DARTS JSON or its 28 genes.

Example:
    >>> read_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|").space
    'nb201'
    >>> read_arch("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", space="darts")
    Traceback (most recent call last):
    ...
    genas.errors.InvalidArchitectureError: '|nor_conv_3x3~0|+|none~0|none~1|+|none~0'... looks like an NB201 string, not a DARTS architecture
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from genas.errors import DataNotFoundError, InvalidArchitectureError
from genas.spaces import create_space
from genas.spaces.base import Architecture

__all__ = ["read_arch", "guess_space"]


def guess_space(text: str) -> str:
    """``nb201`` for a benchmark string (``|op~0|+...``, or one that lost a '|': no DARTS form has '~'), else ``darts``."""
    s = text.strip()
    return "nb201" if s.startswith("|") or "~" in s else "darts"


def _check_space(arch: Architecture, space: str | None, where: str) -> Architecture:
    if space is not None and arch.space != space:
        raise InvalidArchitectureError(f"{where} holds a {arch.space!r} architecture; a {space!r} architecture is needed here")
    return arch


def _from_file(path: Path, space: str | None) -> Architecture:
    if path.suffix in (".pt", ".pth"):
        from genas.export.record import read_record  # the file format only: no network registry needed

        record = read_record(path)
        return _check_space(create_space(record["space"]).parse(record["arch"]), space, str(path))
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArchitectureError(f"cannot read an architecture from {path}: {exc}") from exc
    if not isinstance(data, dict) or "arch" not in data:
        raise InvalidArchitectureError(f"{path} is not a search result: expected a JSON object with an 'arch' key (best_arch.json)")
    value = data.get("genotype") or data["arch"]
    if value is None:
        raise InvalidArchitectureError(f"{path} holds no architecture (the search finished without a best candidate)")
    file_space = data.get("space") or (guess_space(value) if isinstance(value, str) else "darts")
    if space is not None and file_space != space:
        raise InvalidArchitectureError(f"{path} holds a {file_space!r} architecture; a {space!r} architecture is needed here")
    return create_space(file_space).parse(value)


def read_arch(source: Any, space: str | None = None) -> Architecture:
    """The architecture ``source`` names, checked to belong to ``space`` when given.

    Raises:
        InvalidArchitectureError: Malformed, or of another space (the message names both).
        DataNotFoundError: ``source`` names a ``.json`` / ``.pt`` file that does not exist.
    """
    if isinstance(source, Architecture):
        return _check_space(source, space, f"architecture {source}")
    if isinstance(source, os.PathLike) or (isinstance(source, str) and source.strip().endswith((".json", ".pt", ".pth"))):
        path = Path(source)
        if not path.is_file():
            raise DataNotFoundError(f"no architecture file at {path} (a best_arch.json from tools/evolve.py or a network checkpoint)")
        return _from_file(path, space)
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        raise InvalidArchitectureError(f"{source} is a directory; give a best_arch.json file or an architecture string")
    if isinstance(source, str) and os.path.isfile(source.strip()):
        return _from_file(Path(source.strip()), space)
    if isinstance(source, str):
        return create_space(space or guess_space(source)).parse(source)
    if isinstance(source, tuple) and hasattr(source, "_fields"):  # a DARTS Genotype
        return _check_space(create_space("darts").parse(source), space, "the Genotype")
    if space is None and isinstance(source, (list, tuple)) and len(source) in (6, 28):
        space = "nb201" if len(source) == 6 else "darts"  # 6 NB201 edges, 14 + 14 DARTS genes
    if space is None:
        raise InvalidArchitectureError(f"cannot tell the search space of {source!r}; pass space='nb201' or 'darts'")
    return create_space(space).parse(source)
