"""``python tools/export.py``: write a found network as ONNX, TorchScript or a genas network checkpoint.

Usage::

    python tools/export.py --checkpoint runs/retrain-nb201-digits/model.pt --format onnx     # a retrained network
    python tools/export.py --arch best_arch.json --inherit runs/nb201-digits --format pt      # the supernet's weights
    python tools/export.py --arch "Genotype(...)" --format torchscript --image-size 32        # fresh weights
    python tools/export.py --arch best_arch.json --format onnx --onnx-exporter legacy        # the faster, older exporter

The network comes from ``--checkpoint`` (architecture, arguments and weights), or from ``--arch``
with ``--inherit RUN_DIR`` (a supernet's weights) or fresh seeded weights; ``--model.KEY value``
sets its arguments. ONNX and TorchScript files have a dynamic batch dimension and are checked
against PyTorch on seeded random inputs (batch sizes 1 and 3): the command fails (exit 1) when the
largest difference exceeds ``--atol``. Every input is checked before anything is written, and files
are written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from genas.cli import ArgumentParser, add_check, checked, parse_args, start_runtime
from genas.config import load_config
from genas.export.format_registry import EXPORT_FORMATS, list_formats, write

__all__ = ["main", "check_output_path", "check_source", "build_from_args"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="export.py",
        description="Export a found network (ONNX, TorchScript, or the genas network checkpoint) and check it.",
        epilog="Network arguments: --model.KEY value (channels, layers, auxiliary, ...); --arch is --model.arch, "
        "--inherit is --model.inherit.",
    )
    p.add_argument("--arch", default=None, help="best_arch.json, an NB201 string or a DARTS Genotype")
    p.add_argument("--checkpoint", default=None, metavar="MODEL_PT", help="a network checkpoint (tools/retrain.py's model.pt)")
    p.add_argument("--inherit", default=None, metavar="RUN_DIR", help="copy this supernet run's weights for the architecture")
    p.add_argument("--format", default="onnx", choices=list_formats(), help="output format (default: onnx)")
    p.add_argument("--out", default=None, help="output file (default: next to --checkpoint, else runs/export/<network>.<ext>)")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the network's data)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs of a fresh network (default: the network's)")
    p.add_argument("--in-chans", type=int, default=None, help="image channels of a fresh network (default: the network's)")
    p.add_argument("--onnx-exporter", default="dynamo", choices=("dynamo", "legacy"), help="torch's ONNX exporter")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference to PyTorch (default: 1e-4)")
    return add_check(p)


def check_output_path(out: str | Path) -> None:
    """Raise ConfigError unless ``out`` names a file that can be written (writes nothing)."""
    from genas.errors import ConfigError
    from genas.io import check_writable_dir

    path = Path(out)  # (Path drops a trailing separator: test the text too)
    if path.is_dir() or path.name in ("", ".", "..") or str(out).endswith(("/", os.sep)):
        raise ConfigError(f"--out {out} is a directory; give a file name")
    check_writable_dir(path.parent, "--out")


def _write(out: Path, write: Any) -> None:
    """Run ``write()`` (an atomic writer of ``out``), turning a failed write into a one-line error."""
    from genas.errors import ConfigError

    try:
        write()
    except OSError as exc:  # what the up-front check cannot see (e.g. a read-only mount, a full disk)
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from exc


def _check_against_checkpoint(args: Any, cfg: Any, record: dict[str, Any]) -> None:
    """Refuse options a ``--checkpoint`` would silently override: its own geometry wins, so any other value is a mistake."""
    from genas.errors import ConfigError

    path, hp = args.checkpoint, record["hparams"]
    if cfg.model.network is not None and cfg.model.network != record["network"]:
        raise ConfigError(f"--checkpoint {path} holds a {record['network']!r} network; model.network is "
                          f"{cfg.model.network!r} (leave it unset)")  # fmt: skip
    asked = {f"model.options.{k}": (k, v) for k, v in cfg.model.network_kwargs().items()}
    asked.update({f"--{k.replace('_', '-')}": (k, getattr(args, k)) for k in ("num_classes", "in_chans") if getattr(args, k)})
    for option, (key, value) in asked.items():
        if value != hp.get(key):
            have = f"{key} {hp[key]!r}" if key in hp else f"no {key} option"
            raise ConfigError(f"{option} {value!r} differs from --checkpoint {path}, which has {have}; a checkpoint "
                              f"keeps its own geometry and weights (drop {option})")  # fmt: skip


def check_source(args: Any, cfg: Any, read_checkpoint: bool = True) -> tuple[Any, Any]:
    """What ``build_from_args`` will build, checked without building it (``--check`` stops after this,
    and leaves a ``--checkpoint`` unread: it is data).

    Returns:
        ``(network name, architecture)``; for a ``--checkpoint``, its network (None when left unread) and None.
    """
    from genas.errors import ConfigError
    from genas.export import NETWORKS, network_for_space, read_arch
    from genas.export.checkpoint import read_network_file
    from genas.export.config import check_model_options
    from genas.export.inherit import check_supernet_run

    if args.checkpoint:
        if cfg.model.arch or cfg.model.inherit:
            raise ConfigError("--checkpoint holds its own architecture and weights; drop --arch / --inherit")
        record = read_network_file(args.checkpoint) if read_checkpoint else None
        if record is None:
            return None, None
        _check_against_checkpoint(args, cfg, record)
        return record["network"], None
    if cfg.model.arch is None:
        raise ConfigError("nothing to export: give --arch (a best_arch.json, an NB201 string or a DARTS Genotype) or --checkpoint")
    space = NETWORKS.get(cfg.model.network).space if cfg.model.network else None
    arch = read_arch(cfg.model.arch, space)
    network = cfg.model.network or network_for_space(arch.space)
    check_model_options(cfg.model, network)
    if cfg.model.inherit:
        check_supernet_run(cfg.model.inherit)
    return network, arch


def build_from_args(args: Any, cfg: Any, device: Any) -> tuple[Any, int, dict[str, Any]]:
    """(network, image size, provenance) from ``--checkpoint``, ``--inherit`` or ``--arch``."""
    import torch

    from genas.export import create_network, load_network, network_from_run

    network, arch = check_source(args, cfg)
    if args.checkpoint:
        net = load_network(args.checkpoint, device)
        return net, args.image_size or net.pretrained_cfg["input_size"][-1], {"checkpoint": str(args.checkpoint)}
    kwargs = dict(cfg.model.network_kwargs(), num_classes=args.num_classes, in_chans=args.in_chans)
    if cfg.model.inherit:
        net, info = network_from_run(cfg.model.inherit, arch, network, cfg.model.inherit_checkpoint, device, **kwargs)
        size = args.image_size or (info.get("input_shape") or [None, None, 32])[-1]
        return net.eval(), size, info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        net = create_network(network, arch, device=device, **kwargs)
    return net.eval(), args.image_size or net.pretrained_cfg["input_size"][-1], {"weights": f"fresh (seed {cfg.run.seed})"}


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import genas.export.config  # noqa: F401  (registers the model section)
    from genas.export import model_stats
    from genas.export.base import check_input_size
    from genas.export.formats import check_export, random_inputs
    from genas.export.deps import require
    from genas.errors import ConfigError

    overrides += [(k, v) for k, v in (("model.arch", args.arch), ("model.inherit", args.inherit)) if v is not None]
    cfg = load_config(None, overrides)
    for flag in ("image_size", "num_classes", "in_chans"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be a positive int. Got {value} instead.")
    if not math.isfinite(args.atol) or args.atol < 0:  # before anything is written: a check that can never pass
        raise ConfigError(f"--atol must be a finite float >= 0 (the largest allowed difference to PyTorch). Got {args.atol} instead.")
    fmt = EXPORT_FORMATS.get(args.format)
    for package, what in fmt.requires:  # missing packages are reported before any work
        require(package, what)
    if args.format == "onnx":
        if args.onnx_exporter == "dynamo":
            require("onnxscript", "ONNX export with the dynamo exporter (--onnx-exporter legacy does without)")
    if args.check:
        check_source(args, cfg, read_checkpoint=False)
        checked(args, "export.py command line, config and architecture")
        return 0
    rt = start_runtime(cfg)
    net, size, info = build_from_args(args, cfg, rt.device)
    ext = fmt.extension
    if args.out:
        out = Path(args.out)
    elif args.checkpoint:
        out = Path(args.checkpoint).with_suffix(ext if args.format != "pt" else ".export.pt")
    else:
        out = Path(cfg.run.root) / "export" / f"{net.name}{ext}"
    check_output_path(args.out or out)
    check_input_size(net, size, train=False)
    stats = model_stats(net, size)
    print(f"{net.name} {net.arch}")
    print(f"  {stats['params']:,} parameters ({stats['params_M']:.4g} M), {stats['mflops']:.4g} MFLOPs at "
          f"{net.in_chans}x{size}x{size}, {net.num_classes} classes")  # fmt: skip
    if "subnet_max_abs_diff" in info:
        print(f"  weights of supernet run {info['inherited_from']} ({Path(info['checkpoint']).name}); output equals the "
              f"supernet's subnet on 2 random images: max |diff| = {info['subnet_max_abs_diff']:.3g}")  # fmt: skip
    _write(out, lambda: write(args.format, net, out, size, exporter=args.onnx_exporter,
                              metadata={"source": "export", **info}))  # fmt: skip
    if not fmt.checked:
        print(f"wrote {out} ({EXPORT_FORMATS.entry(args.format).description})")
        return 0
    result = check_export(args.format, out, net.cpu(), random_inputs(net.in_chans, size, seed=cfg.run.seed))
    verdict = "ok" if result["max_abs_diff"] <= args.atol else "FAILED"
    print(f"wrote {out} ({args.format}, dynamic batch); check against PyTorch on batches {result['batch_sizes']}: "
          f"max |diff| = {result['max_abs_diff']:.3g} (atol {args.atol:g}) {verdict}")  # fmt: skip
    return 0 if verdict == "ok" else 1
