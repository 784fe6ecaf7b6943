"""The export formats as a registry, like every other pluggable kind (no torch import here).

Each format names its file extension, the packages it needs, its writer (a ``"module:function"``
imported only when used, so ``tools/export.py --help`` stays light) and whether the written file is
checked against PyTorch.  A writer is called ``writer(net, path, image_size, **options)``, with the
options :func:`write` forwards when the writer takes them.

Example:
    >>> list_formats()
    ['onnx', 'pt', 'torchscript']
    >>> EXPORT_FORMATS.get("torchscript").extension
    '.ts'
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genas.registry import Registry

__all__ = ["ExportFormat", "EXPORT_FORMATS", "register_format", "list_formats", "write"]


@dataclass(frozen=True)
class ExportFormat:
    """One way of writing a network to disk."""

    name: str
    extension: str
    writer: str  # "module:function"
    requires: tuple[tuple[str, str], ...] = ()  # (package, what needs it), checked before any work
    checked: bool = True  # compared against PyTorch on random batches after writing

    def load_writer(self) -> Any:
        module, _, function = self.writer.partition(":")
        return getattr(importlib.import_module(module), function)


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def register_format(fmt: ExportFormat, *, description: str = "", overwrite: bool = False) -> ExportFormat:
    """Register ``fmt`` under ``fmt.name``."""
    return EXPORT_FORMATS.add(fmt.name, fmt, description=description, overwrite=overwrite)


def list_formats(pattern: str = "*") -> list[str]:
    """Registered export format names."""
    return EXPORT_FORMATS.list(pattern)


def write(name: str, net: Any, path: str | Path, image_size: int, **options: Any) -> Path:
    """Write ``net`` as format ``name``; ``options`` go to the writer when it takes them (``exporter``, ``metadata``)."""
    fn = EXPORT_FORMATS.get(name).load_writer()
    taken = inspect.signature(fn).parameters
    return fn(net, path, image_size, **{k: v for k, v in options.items() if k in taken and v is not None})


register_format(ExportFormat("onnx", ".onnx", "genas.export.formats:export_onnx",
                             requires=(("onnx", "ONNX export"), ("onnxruntime", "checking an ONNX export"))),
                description="ONNX with a dynamic batch dimension, checked in onnxruntime")  # fmt: skip
register_format(ExportFormat("torchscript", ".ts", "genas.export.formats:export_torchscript"),
                description="a traced TorchScript module, checked against PyTorch")
register_format(ExportFormat("pt", ".pt", "genas.export.checkpoint:write_network_file", checked=False),
                description="genas network checkpoint")
