"""``python tools/train_supernet.py``: SPOS supernet training from a config.

Usage::

    python tools/train_supernet.py                                # quickstart: NB201 on digits, CPU, minutes
    python tools/train_supernet.py --config configs/nb201_cifar10.yaml --data.options.root /data/cifar
    python tools/train_supernet.py --train.epochs 5 --run.name try5
    python tools/train_supernet.py --resume                        # continue the run the config names
    python tools/train_supernet.py --resume auto                   # continue it if it exists, else start it
    torchrun --nproc_per_node=2 tools/train_supernet.py ...        # DDP (gloo on CPU, NCCL on GPU)
    torchrun --nproc_per_node=2 --max_restarts=2 tools/train_supernet.py --run.checkpoint_steps 50   # elastic

Everything is checked before anything is written: a refused start or resume leaves the disk as
it was.  A run killed at any moment (even before its first epoch checkpoint) continues with
``--resume`` to the same weights as an uninterrupted run; ``run.checkpoint_steps`` bounds the steps
a kill loses.  Under ``torchrun --max-restarts`` a start means ``--resume auto``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from genas.cli import ArgumentParser, add_run_arguments, config_or_done, load_plugins, parse_args, start_runtime
from genas.config import Config

__all__ = ["main", "train_from_config"]

HELDOUT_IMAGES = 256  # the fixed held-out subset behind metrics.csv's heldout_acc


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="train_supernet.py",
        description="Train a weight-sharing supernet with uniform single-path sampling (SPOS).",
        epilog="Any config value can be overridden as --section.key value (e.g. --train.epochs 10). "
        "Sections: run, data, supernet, train.",
    )
    return add_run_arguments(p, "quickstart")


def train_from_config(cfg: Config, resume_dir: str | None = None, max_steps: int | None = None) -> Any:
    """Train the supernet described by ``cfg``; resume from ``resume_dir`` (or the named run) if given.

    Returns:
        The :class:`genas.runs.Run` trained.
    """
    import torch

    from genas.data import build_data, build_loader, record_split
    from genas.distributed import broadcast_object
    from genas.errors import ConfigError
    from genas.runs import Run
    from supernet.factory import build_supernet, default_run_name
    from supernet.sampler import UniformPathSampler
    from genas.training import usable_channels_last
    from supernet.train import SupernetTrainer

    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"--max-steps must be a positive number of steps. Got {max_steps} instead.")
    if cfg.data.options.get("root"):  # recorded absolute, so the run's tools (evolve, rank) find its data from anywhere
        cfg.data.options["root"] = str(Path(cfg.data.options["root"]).expanduser().absolute())
    rt = start_runtime(cfg)
    resume = resume_dir is not None
    root, name = (Path(resume_dir).parent, Path(resume_dir).name) if resume_dir else (cfg.run.root, default_run_name(cfg))
    run = Run.create(root, name, resume=resume, overwrite=cfg.run.overwrite)  # checks only; writes nothing
    bundle = build_data(cfg.data, cfg.run.seed, run_dir=run.path if resume else None)  # a bad dataset is refused before the disk is touched
    torch.manual_seed(cfg.run.seed)  # weight init: the same on every rank
    model = build_supernet(cfg.supernet, bundle, rt.device)
    cfg.train.channels_last = usable_channels_last(model, rt.device, cfg.train.channels_last)
    loader = build_loader(
        bundle.train, bundle, cfg.data.batch_size, train=True, seed=cfg.run.seed, augment=cfg.data.augment,
        device=rt.device, channels_last=cfg.train.channels_last, rank=rt.dist.rank, world_size=rt.dist.world_size,
    )  # fmt: skip
    heldout = build_loader(bundle.valid, bundle, min(HELDOUT_IMAGES, max(len(bundle.valid), 1)), train=False,
                           device=rt.device, channels_last=cfg.train.channels_last) if len(bundle.valid) else None  # fmt: skip
    sampler = UniformPathSampler(model.space, model.num_search_cells, seed=cfg.run.seed)
    # the held-out column's BN recalibration batches: a fixed seeded draw of training batches (no global RNG)
    heldout_batch = [next(iter(heldout))] if heldout is not None else None
    del heldout  # (a streaming loader's workers end here: the one batch is all the column needs)
    n_bn = cfg.train.heldout_bn_batches if heldout_batch is not None else 0
    heldout_bn = loader.batches(n_bn, cfg.run.seed) if n_bn else None
    trainer = SupernetTrainer(
        model, sampler, loader, cfg.train, rt.device, run=run, dist=rt.dist, checkpoint_every=cfg.run.checkpoint_every,
        progress=cfg.run.progress, tensorboard=cfg.run.tensorboard,
        extra_state={"config": cfg.to_dict(), "input_shape": [bundle.channels, bundle.image_size, bundle.image_size]},
        heldout=heldout_batch, checkpoint_steps=cfg.run.checkpoint_steps,
        heldout_bn=heldout_bn,
    )  # fmt: skip
    which = run.latest() if resume else None
    if which is not None:
        _resume(trainer, run, which, model.hparams, len(loader))  # every check before the first write
    finished = trainer.epoch >= cfg.train.epochs
    if finished and run.done:
        if rt.is_main:
            print(f"{run.path} is finished ({trainer.epoch}/{cfg.train.epochs} epochs); nothing to resume "
                  "(raise --train.epochs to train on)")  # fmt: skip
        return run
    if resume and which is None and rt.is_main:  # killed before its first checkpoint: said, not silent
        print(f"{run.path} holds no checkpoint yet (stopped before its first); it starts again from step 0")
    if rt.is_main:
        run.prepare(fresh=cfg.run.overwrite and not resume)
        record_split(bundle, run.path)  # a streaming dataset's split, so scorers, resumes and nodes use these files
        run.write_config(cfg)  # on --resume: the run's config plus any overrides (e.g. more epochs)
        run.write_env(cfg.run.seed, {"device": str(rt.device), "resumed_from": which})
        if which is not None:
            run.sync_metrics(trainer.history)  # killed between last.pt and metrics.csv: they agree again
    broadcast_object(None)  # the other ranks wait for the directory
    if not finished:  # (finished but not marked done: killed after its last checkpoint; only the records remain)
        trainer.fit(max_steps=max_steps)
    if rt.is_main and trainer.epoch >= cfg.train.epochs:
        last = trainer.history[-1] if trainer.history else {}
        run.mark_done({"epochs": trainer.epoch, "global_step": trainer.global_step, **last})
        print(f"supernet trained: {run.path} (final train loss {last.get('train_loss')}, acc {last.get('train_acc')})")
    return run


def _resume(trainer: Any, run: Any, which: str, hparams: dict[str, Any], steps_per_epoch: int) -> None:
    from genas.errors import CheckpointError, GenasError
    from genas.runs import check_position, resume_error

    path = run.checkpoint_path(which)
    state = run.load(which, map_location=trainer.device)
    if state.get("hparams") != hparams:
        raise CheckpointError(f"{path} was trained with {state.get('hparams')}, "
                              f"incompatible with this config's supernet {hparams}")  # fmt: skip
    check_position(state, path, steps_per_epoch)
    try:
        trainer.load_state_dict(state)
    except GenasError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise resume_error(path, exc) from exc


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import supernet  # noqa: F401  (registers the supernet and train sections)
    from supernet.factory import default_run_name

    load_plugins(args.plugin)
    cfg = config_or_done(args, overrides, default_run_name, "train_supernet.py")
    if cfg is not None:
        train_from_config(cfg, args.resume, args.max_steps)
    return 0
