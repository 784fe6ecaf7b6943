"""``python tools/train_supernet.py``: SPOS supernet training from a config.

Usage::

    python tools/train_supernet.py                                # quickstart: NB201 on digits, CPU, minutes
    python tools/train_supernet.py --config configs/nb201_cifar10.yaml --data.root /data/cifar
    python tools/train_supernet.py --train.epochs 5 --run.name try5
    python tools/train_supernet.py --resume                        # continue the run the config names
    torchrun --nproc_per_node=2 tools/train_supernet.py ...        # DDP (gloo on CPU, NCCL on GPU)
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch

from genas.cli import ArgumentParser
from genas.config import dump_config, load_config, split_overrides
from genas.data import build_loader
from genas.distributed import broadcast_object, init_distributed, resolve_device
from genas.errors import CheckpointError
from genas.runs import Run
from supernet.factory import build_data, build_supernet, default_run_name
from supernet.sampler import UniformPathSampler
from supernet.train import SupernetTrainer

__all__ = ["main", "train_from_config"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="train_supernet.py",
        description="Train a weight-sharing supernet with uniform single-path sampling (SPOS).",
        epilog="Any config value can be overridden as --section.key value (e.g. --train.epochs 10). "
        "Sections: run, data, supernet, train.",
    )
    p.add_argument("--config", default="quickstart", help="YAML file or a name in configs/ (default: quickstart)")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run (the config's run, or RUN_DIR)")  # fmt: skip
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (resume later)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def train_from_config(cfg, resume_dir: str | None = None, max_steps: int | None = None) -> Run:
    """Train the supernet described by ``cfg``; resume from ``resume_dir`` (or the named run) if given."""
    device = resolve_device(cfg.run.device, int(__import__("os").environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device)
    resume = resume_dir is not None
    bundle = build_data(cfg.data, cfg.run.seed)  # before touching the disk: a bad dataset writes nothing
    run = None
    if info.is_main:
        if resume and resume_dir:
            run = Run(resume_dir)
            if not (run.path / "config.yaml").exists():
                Run.create(run.path.parent, run.path.name, cfg, resume=True)  # raises: nothing to resume
        else:
            run = Run.create(cfg.run.root, default_run_name(cfg), cfg, resume=resume, overwrite=cfg.run.overwrite)
        run.write_config(cfg)  # on --resume: the run's config plus any overrides (e.g. more epochs)
        run.write_env(cfg.run.seed, {"device": str(device)})
    run_path = broadcast_object(str(run.path) if run else None)
    run = Run(run_path)

    loader = build_loader(
        bundle.train, bundle, cfg.data.batch_size, train=True, seed=cfg.run.seed, augment=cfg.data.augment,
        device=device, channels_last=cfg.train.channels_last, rank=info.rank, world_size=info.world_size,
    )  # fmt: skip
    torch.manual_seed(cfg.run.seed)  # weight init: the same on every rank
    model = build_supernet(cfg.supernet, bundle, device)
    sampler = UniformPathSampler(model.space, model.num_search_cells, seed=cfg.run.seed)
    trainer = SupernetTrainer(
        model, sampler, loader, cfg.train, device, run=run, dist=info, checkpoint_every=cfg.run.checkpoint_every,
        progress=cfg.run.progress, extra_state={"config": cfg.to_dict()}, tensorboard=cfg.run.tensorboard,
    )  # fmt: skip
    if resume:
        state = run.load("last", map_location=device)
        if state.get("hparams") != model.hparams:
            raise CheckpointError(f"{run.checkpoint_path('last')} was trained with {state.get('hparams')}, "
                                  f"incompatible with this config's supernet {model.hparams}")  # fmt: skip
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {run.checkpoint_path('last')}: {str(exc).splitlines()[0]}") from exc
    trainer.fit(max_steps=max_steps)
    if info.is_main and trainer.epoch >= cfg.train.epochs:
        last = trainer.history[-1] if trainer.history else {}
        run.mark_done({"epochs": trainer.epoch, "global_step": trainer.global_step, **last})
        print(f"supernet trained: {run.path} (final train loss {last.get('train_loss')}, acc {last.get('train_acc')})")
    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, overrides = split_overrides(argv)
    args = _parser().parse_args(rest)
    base = None
    if args.resume is not None:
        run_dir = args.resume or None
        if run_dir is None:
            probe = load_config(args.config, overrides)
            run_dir = str(Run(probe.run.root).path / default_run_name(probe))
        args.resume = run_dir
        base = Run(run_dir).read_config()  # the run's own config; overrides may still change e.g. device
        cfg = load_config(None, overrides, base=base)
    else:
        cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    train_from_config(cfg, args.resume, args.max_steps)
    return 0
