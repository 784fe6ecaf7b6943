"""``python tools/retrain.py``: train the found architecture as a standalone network.

Usage::

    python tools/retrain.py --arch runs/nb201-digits/search-angle+flatness-evolution/best_arch.json   # quickstart, minutes
    python tools/retrain.py --config configs/retrain_darts_cifar10.yaml --arch best_arch.json --data.options.root /data/cifar10
    python tools/retrain.py --config configs/retrain_nb201_cifar10.yaml --arch "|nor_conv_3x3~0|+|...|"
    python tools/retrain.py --arch best_arch.json --inherit runs/nb201-digits   # start from the supernet's weights
    python tools/retrain.py --resume runs/retrain-nb201-digits                     # continue an interrupted run

A run directory holds ``config.yaml`` (the resolved network included, so a resume needs nothing
else), ``env.json``, ``metrics.csv`` (one row per epoch), ``learning_curve.png``, ``checkpoints/``
and, when finished, ``model.pt``: the network checkpoint that ``genas.export.load``, ``tools/export.py``
and ``timm.create_model(..., pretrained=True)`` read. Everything is checked before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from genas.cli import ArgumentParser, add_run_arguments, checked, load_plugins, parse_args, run_config, start_runtime
from genas.config import Config, dump_config

__all__ = ["main", "retrain_from_config", "check_retrain", "check_resume_dir", "default_run_name", "resolve_network"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="retrain.py",
        description="Train a found architecture from scratch (or from a supernet's weights) as a standalone network.",
        epilog="Any config value can be overridden as --section.key value (sections: run, data, model, retrain); "
        "--arch is --model.arch, --inherit is --model.inherit.",
    )
    p.add_argument("--arch", default=None, help="best_arch.json, an NB201 string or a DARTS Genotype")
    p.add_argument("--inherit", default=None, metavar="RUN_DIR", help="start from this supernet run's weights for the architecture")
    return add_run_arguments(p, "retrain_quickstart")


def resolve_network(cfg: Config) -> tuple[str, Any]:
    """(network name, architecture) of the ``model`` section; the network defaults to the architecture's space's."""
    from genas.export import NETWORKS, network_for_space, read_arch
    from genas.errors import ConfigError

    if cfg.model.arch is None:
        raise ConfigError("no architecture: give --arch (a best_arch.json, an NB201 string or a DARTS Genotype)")
    space = NETWORKS.get(cfg.model.network).space if cfg.model.network else None
    arch = read_arch(cfg.model.arch, space)
    return cfg.model.network or network_for_space(arch.space), arch


def default_run_name(cfg: Config, network: str) -> str:
    """``run.name`` or ``retrain-<network>-<dataset>``."""
    return cfg.run.name or f"retrain-{network}-{cfg.data.dataset}"


def _check_recipe(cfg: Config, network: str) -> None:
    from genas.errors import ConfigError
    from genas.export.config import check_model_options

    if network == "nb201" and cfg.retrain.drop_path > 0:
        raise ConfigError(f"retrain.drop_path {cfg.retrain.drop_path} applies to DARTS networks; the nb201 network has "
                          "no drop-path (set --retrain.drop_path 0)")  # fmt: skip
    check_model_options(cfg.model, network)


def _build(cfg: Config, network: str, arch: Any, bundle: Any, device: Any, inherit: bool) -> tuple[Any, dict[str, Any]]:
    import torch

    from genas.export import create_network, network_from_run

    kwargs = dict(cfg.model.network_kwargs(), num_classes=bundle.num_classes, in_chans=bundle.channels)
    if inherit:
        return network_from_run(cfg.model.inherit, arch, network, cfg.model.inherit_checkpoint, device, **kwargs)
    with torch.random.fork_rng(devices=[]):  # seeded weight init that leaves the global generator alone
        torch.manual_seed(cfg.run.seed)
        return create_network(network, arch, device=device, **kwargs), {}


def _splits(cfg: Config, bundle: Any) -> tuple[Any, dict[str, Any]]:
    from genas.data import concat

    train, evals = bundle.train, {"test": bundle.test}
    if cfg.retrain.train_on == "train+valid" and len(bundle.valid):
        train = concat(train, bundle.valid)
    elif len(bundle.valid):
        evals = {"valid": bundle.valid, "test": bundle.test}
    return train, {k: v for k, v in evals.items() if len(v)}


def check_resume_dir(path: str) -> None:
    """Refuse ``--resume`` of a directory another command made (a search, a supernet run), naming what it is."""
    from genas.errors import ConfigError
    from supernet.factory import RUN_KINDS, run_kind

    kind = run_kind(path)
    if kind in (None, "retrain"):  # None: Run's own message (no such run) says it
        return
    result = (f"retrain its result with --arch {Path(path) / 'best_arch.json'}" if kind in ("differentiable", "search")
              else "retrain an architecture found on it with --arch BEST_ARCH_JSON (--inherit it for its weights)")  # fmt: skip
    raise ConfigError(f"{path} is {RUN_KINDS[kind]}, not a retrain run: --resume continues an interrupted "
                      f"tools/retrain.py run; {result}")  # fmt: skip


def check_retrain(cfg: Config, max_steps: int | None = None, load_inherit: bool = True) -> tuple[str, Any]:
    """The checks of a retrain that need no data and write nothing (``--check`` runs all of them).

    The architecture is read and checked against the network, the recipe against the network,
    and (``load_inherit``; a resume keeps its own weights) an ``--inherit`` run is loaded, its
    geometry compared and the copy checked. Returns (network name, architecture).
    """
    from genas.export import network_from_run
    from genas.errors import ConfigError

    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"--max-steps must be a positive number of steps. Got {max_steps} instead.")
    network, arch = resolve_network(cfg)
    _check_recipe(cfg, network)
    if cfg.model.inherit and load_inherit:
        network_from_run(cfg.model.inherit, arch, network, cfg.model.inherit_checkpoint, "cpu", **cfg.model.network_kwargs())
    return network, arch


def retrain_from_config(cfg: Config, resume_dir: str | None = None, max_steps: int | None = None) -> Any:
    """Train the network of ``cfg.model`` with ``cfg.retrain``; resume ``resume_dir`` if given. Returns the Run."""
    from genas.export import model_stats, save_network
    from genas.export.base import check_input_size
    from genas.export.retrain import Retrainer, plot_learning_curve
    from genas.data import build_data, build_loader, record_split
    from genas.distributed import broadcast_object
    from genas.errors import CheckpointError
    from genas.training import usable_channels_last
    from genas.runs import Run, check_position, resume_error

    resume = resume_dir is not None
    network, arch = check_retrain(cfg, max_steps, load_inherit=False)  # an inherit run is loaded once, in _build
    rt = start_runtime(cfg)
    root, name = (Path(resume_dir).parent, Path(resume_dir).name) if resume_dir else (cfg.run.root, default_run_name(cfg, network))
    run = Run.create(root, name, resume=resume, overwrite=cfg.run.overwrite,
                     outputs=("model.pt", "learning_curve.png"))  # checks only; writes nothing
    which = run.latest() if resume else None
    bundle = build_data(cfg.data, cfg.run.seed, run_dir=run.path if resume else None)
    # a resume keeps its checkpoint's weights; one killed before its first checkpoint starts as the run did
    net, provenance = _build(cfg, network, arch, bundle, rt.device, inherit=bool(cfg.model.inherit) and which is None)
    check_input_size(net, bundle.image_size)
    if "subnet_max_abs_diff" in provenance:
        print(f"inherited the weights of supernet run {provenance['inherited_from']} ({Path(provenance['checkpoint']).name}): "
              f"output equals its subnet on 2 random images, max |diff| = {provenance['subnet_max_abs_diff']:.3g}")  # fmt: skip
    train, evals = _splits(cfg, bundle)
    cfg.retrain.channels_last = usable_channels_last(net, rt.device, cfg.retrain.channels_last)
    shard = dict(rank=rt.dist.rank, world_size=rt.dist.world_size)
    loader = build_loader(train, bundle, cfg.data.batch_size, train=True, seed=cfg.run.seed, augment=cfg.data.augment,
                          device=rt.device, channels_last=cfg.retrain.channels_last, cutout=cfg.retrain.cutout, **shard)  # fmt: skip
    eval_loaders = {k: build_loader(ds, bundle, cfg.data.eval_batch_size, train=False, device=rt.device,
                                    channels_last=cfg.retrain.channels_last, **shard) for k, ds in evals.items()}  # fmt: skip
    cfg.model.arch, cfg.model.network = str(arch), network  # the resolved network: a resume rebuilds it alone
    for key in ("channels", "layers", "auxiliary", "affine", "stem_multiplier", "pool_bn"):
        if key in net.hparams:
            cfg.model.options[key] = net.hparams[key]
    trainer = Retrainer(net, loader, eval_loaders, cfg.retrain, rt.device, run=run, seed=cfg.run.seed,
                        checkpoint_every=cfg.run.checkpoint_every, progress=cfg.run.progress,
                        extra_state={"config": cfg.to_dict()}, checkpoint_steps=cfg.run.checkpoint_steps, dist=rt.dist)  # fmt: skip
    if which is not None:
        path = run.checkpoint_path(which)
        state = run.load(which, map_location=rt.device)
        if (state.get("network"), state.get("hparams")) != (network, net.hparams) or state.get("arch") != arch.to_json():
            raise CheckpointError(f"{path} holds network {state.get('network')!r} {state.get('hparams')}, "
                                  f"not this config's {network!r} {net.hparams}")  # fmt: skip
        check_position(state, path, len(loader))
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise resume_error(path, exc) from exc
    finished = trainer.epoch >= cfg.retrain.epochs
    if finished and run.done:
        if rt.is_main:
            print(f"{run.path} is finished ({trainer.epoch}/{cfg.retrain.epochs} epochs); raise --retrain.epochs to train on")
        return run
    if resume and which is None and rt.is_main:  # killed before its first checkpoint: said, not silent
        print(f"{run.path} holds no checkpoint yet (stopped before its first); it starts again from step 0")
    if rt.is_main:
        run.prepare(fresh=cfg.run.overwrite and not resume)
        record_split(bundle, run.path)
        run.write_config(cfg)
        run.write_env(cfg.run.seed, {"device": str(rt.device), "resumed_from": which, "world_size": rt.dist.world_size,
                                     **provenance})  # fmt: skip
        if which is not None:
            run.sync_metrics(trainer.history)  # killed between last.pt and metrics.csv: they agree again
    broadcast_object(None)  # the other ranks wait for the directory
    if not finished:  # (finished but not marked done: killed after its last checkpoint; model.pt and DONE remain)
        trainer.fit(max_steps=max_steps)
    if not rt.is_main:
        return run
    title = f"{network} {arch} on {bundle.name}"
    if trainer.history:
        plot_learning_curve(trainer.history, run.path / "learning_curve.png", title if len(title) < 100 else f"{network} on {bundle.name}")
    if trainer.epoch >= cfg.retrain.epochs:
        last = trainer.history[-1]
        stats = model_stats(net, bundle.image_size)
        net.pretrained_cfg.update(num_classes=bundle.num_classes, mean=bundle.mean, std=bundle.std,
                                  input_size=(bundle.channels, bundle.image_size, bundle.image_size))  # fmt: skip
        meta = {"source": "retrain", "run": str(run.path), "dataset": bundle.name, "epochs": trainer.epoch,
                "metrics": last, "params": stats["params"], "flops": stats["flops"], **provenance}  # fmt: skip
        save_network(net.eval(), run.path / "model.pt", meta)
        run.mark_done({"epochs": trainer.epoch, "global_step": trainer.global_step, **last})
        print(f"retrained {network} ({stats['params_M']:.4g} M params, {stats['mflops']:.4g} MFLOPs at {bundle.image_size} px): "
              f"test acc {last.get('test_acc')}; network checkpoint {run.path / 'model.pt'}")  # fmt: skip
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(_parser(), argv)
    import genas.export.config  # noqa: F401  (registers the model and retrain sections)

    load_plugins(args.plugin)
    overrides += [(k, v) for k, v in (("model.arch", args.arch), ("model.inherit", args.inherit)) if v is not None]
    if args.resume:
        check_resume_dir(args.resume)
    cfg = run_config(args, overrides, lambda probe: default_run_name(probe, resolve_network(probe)[0]))
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if args.check:
        network, arch = check_retrain(cfg, args.max_steps, load_inherit=args.resume is None)
        inherit = f", supernet run {cfg.model.inherit}" if cfg.model.inherit else ""
        checked(args, f"retrain.py command line, config and the {network} network of {arch}{inherit}")
        return 0
    retrain_from_config(cfg, args.resume, args.max_steps)
    return 0
