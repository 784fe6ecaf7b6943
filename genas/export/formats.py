"""Deployment formats: ONNX (checked in onnxruntime) and TorchScript, with a dynamic batch dimension.

Both exports run the network in eval mode (the auxiliary tower and drop-path are training-only),
write the file atomically (:mod:`genas.io`) and are then checked against PyTorch on seeded random
inputs at batch sizes other than the traced one.

ONNX uses torch's default exporter (``dynamo``, which needs onnxscript); ``exporter="legacy"`` picks
the older TorchScript-based exporter, which PyTorch deprecates but which is many times faster.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genas.export.deps import require
from genas.errors import ConfigError
from genas.io import atomic_writer
from genas.validation import check_choice

__all__ = ["FORMATS", "EXTENSIONS", "export_onnx", "export_torchscript", "check_export", "random_inputs"]

FORMATS = ("onnx", "torchscript")
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".ts", "pt": ".pt"}
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def random_inputs(in_chans: int, image_size: int, batch_sizes: Sequence[int] = (1, 3), seed: int = 0) -> list[torch.Tensor]:
    """Seeded standard-normal image batches, one per batch size (drawn on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, in_chans, image_size, image_size, generator=g) for b in batch_sizes]


def _example(net: nn.Module, image_size: int) -> torch.Tensor:
    device = next(net.parameters()).device
    return torch.zeros(2, net.in_chans, image_size, image_size, device=device)


def export_onnx(net: nn.Module, path: str | Path, image_size: int, exporter: str = "dynamo", opset: int | None = None) -> Path:
    """Write ``net`` (eval mode) as ONNX with a dynamic batch dimension; input ``images``, output ``logits``."""
    check_choice(exporter, "exporter", "export_onnx", ("dynamo", "legacy"))
    require("onnx", "ONNX export")
    if exporter == "dynamo":
        require("onnxscript", "ONNX export with the dynamo exporter (exporter='legacy' does without)")
    was_training = net.training
    net.eval()
    x = _example(net, image_size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            if exporter == "dynamo":
                program = torch.onnx.export(
                    net, (x,), dynamo=True, verbose=False, opset_version=opset, input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
                )  # fmt: skip
                data = program.model_proto.SerializeToString()
            else:
                buf = io.BytesIO()
                torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=opset or 17, input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})  # fmt: skip
                data = buf.getvalue()
    finally:
        net.train(was_training)
    with atomic_writer(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def export_torchscript(net: nn.Module, path: str | Path, image_size: int) -> Path:
    """Write ``net`` (eval mode) as a traced TorchScript module; the batch dimension stays free."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            traced = torch.jit.trace(net, _example(net, image_size))
    finally:
        net.train(was_training)
    with atomic_writer(path, "wb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(traced, fh)
    return Path(path)


def _runner(fmt: str, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running the exported model at ``path`` on a CPU batch."""
    if fmt == "onnx":
        ort = require("onnxruntime", "checking an ONNX export")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def check_export(fmt: str, path: str | Path, net: nn.Module, inputs: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Largest absolute difference between the exported model and ``net`` (eval, on the CPU) over ``inputs``.

    Returns:
        ``max_abs_diff`` and the ``batch_sizes`` checked.
    """
    check_choice(fmt, "format", "check_export", FORMATS)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no exported model at {path}")
    device = next(net.parameters()).device
    run = _runner(fmt, path)
    was_training = net.training
    net.eval()
    worst = 0.0
    try:
        with torch.no_grad():
            for x in inputs:
                ref = net(x.to(device)).float().cpu()
                got = run(x.cpu()).float()
                if got.shape != ref.shape:
                    raise ConfigError(f"the exported model returns shape {tuple(got.shape)} for batch {len(x)}, expected {tuple(ref.shape)}")
                worst = max(worst, float((got - ref).abs().max()))
    finally:
        net.train(was_training)
    return {"max_abs_diff": worst, "batch_sizes": [len(x) for x in inputs]}
