"""The differentiable-search stage: data, mixed-op supernet, architect and variants, each built once.

:func:`run` turns a checked config into a finished (or resumed) :class:`DifferentiableSearch` and
its run directory; ``tools/search_darts.py`` only parses its command line, loads the config and
calls it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genas.cli import start_runtime
from genas.config import Config

__all__ = ["run", "default_run_name"]


def default_run_name(cfg: Config) -> str:
    """``darts-<architect>[-<variants>]-<space>-<dataset>`` unless ``run.name`` is set."""
    d = cfg.differentiable
    variants = "".join(f"-{v}" for v in sorted(cfg.variants.use))
    return cfg.run.name or f"darts-{d.architect}{variants}-{cfg.supernet.space}-{cfg.data.dataset}"


def _table(cfg: Config) -> Any:
    """The NB201 table of ``differentiable.table`` (or ``$GENAS_NB201_TABLE`` on NB201), or None."""
    from genas.errors import ConfigError
    from genas.tables import NB201_TABLE_ENV, load_nb201_table

    path = cfg.differentiable.table
    if path is not None and cfg.supernet.space != "nb201":
        raise ConfigError(f"differentiable.table {path!r} is a NAS-Bench-201 table; it applies only to supernet.space "
                          f"'nb201', not {cfg.supernet.space!r} (drop --table)")  # fmt: skip
    if path is None and (cfg.supernet.space != "nb201" or not os.environ.get(NB201_TABLE_ENV)):
        return None
    return load_nb201_table(path)


def _build_model(cfg: Config, bundle: Any, device: Any) -> Any:
    import torch

    from genas.differentiable.mixed import create_mixed_supernet
    from genas.training import usable_channels_last
    from supernet.factory import supernet_kwargs

    s = cfg.supernet
    with torch.random.fork_rng(devices=[]):  # the weight init, seeded without touching the caller's RNG
        torch.manual_seed(cfg.run.seed)
        model = create_mixed_supernet(s.space, **supernet_kwargs(s, bundle), alpha_init=cfg.differentiable.alpha_init,
                                      seed=cfg.run.seed, device=device)  # fmt: skip
    cfg.differentiable.channels_last = usable_channels_last(model, device, cfg.differentiable.channels_last)
    if cfg.differentiable.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def run(cfg: Config, resume_dir: str | None = None, max_epochs: int | None = None, variants: Any = None) -> Any:
    """Run the search ``cfg`` describes (resume ``resume_dir`` if given); return the :class:`DifferentiableSearch`."""
    import torch

    from genas.data import build_data, build_loader, record_split
    from genas.distributed import broadcast_object
    from genas.errors import ConfigError
    from genas.runs import Run, environment_record
    from genas.differentiable.architects import create_architect
    from genas.differentiable.records import EpochPrinter, write_best
    from genas.differentiable.search import DifferentiableSearch

    d = cfg.differentiable
    if max_epochs is not None and max_epochs < 1:
        raise ConfigError(f"--max-epochs must be a positive number of epochs. Got {max_epochs} instead.")
    architect = create_architect(d.architect, **d.architect_kwargs())
    variants = variants if variants is not None else cfg.variants.build()  # DifferentiableSearch checks the pair
    variants.check_budget(d.epochs)
    table = _table(cfg)
    rt = start_runtime(cfg)
    resume = resume_dir is not None
    root, name = (Path(resume_dir).parent, Path(resume_dir).name) if resume_dir else (cfg.run.root, default_run_name(cfg))
    run = Run.create(root, name, resume=resume, overwrite=cfg.run.overwrite,
                     outputs=("best_arch.json", "alphas.png"))  # checks only; writes nothing
    bundle = build_data(cfg.data, cfg.run.seed, run_dir=run.path if resume else None)  # a bad dataset is refused before the disk is touched
    valid_augment = d.valid_augment_for(cfg.supernet.space, variants.names)  # set, or as the A2M paper per method
    model = _build_model(cfg, bundle, rt.device)  # (before the loaders: it decides whether channels_last is usable)
    common = dict(device=rt.device, channels_last=d.channels_last, rank=rt.dist.rank, world_size=rt.dist.world_size)
    train = build_loader(bundle.train, bundle, cfg.data.batch_size, train=True, seed=cfg.run.seed,
                         augment=cfg.data.augment, **common)  # fmt: skip
    valid = build_loader(bundle.valid, bundle, cfg.data.batch_size, train=True, seed=cfg.run.seed + 1,
                         augment=None if valid_augment else "none", **common)  # fmt: skip
    evaluate = build_loader(bundle.valid, bundle, cfg.data.eval_batch_size, train=False, **common)
    search = DifferentiableSearch(  # the variants change the model here (before anything is written)
        model, architect, train, valid, evaluate, d, variants=variants, table=table, out=run.path, seed=cfg.run.seed,
        printer=EpochPrinter(enabled=cfg.run.progress), extra_state={"config": cfg.to_dict()}, dist=rt.dist,
        checkpoint_steps=cfg.run.checkpoint_steps,
    )  # fmt: skip
    if d.channels_last:
        model.to(memory_format=torch.channels_last)  # modules a variant added or rebuilt too
    which = run.latest() if resume else None
    if which is not None:
        _resume(search, run.checkpoint_path(which), rt.device)  # every check before the first write
    if resume and which is None and rt.is_main:  # killed before its first checkpoint: said, not silent
        print(f"{run.path} holds no checkpoint yet (stopped before its first); it starts again from step 0")
    fresh = cfg.run.overwrite and not resume
    if rt.is_main:
        run.prepare(fresh=fresh)
        record_split(bundle, run.path)
        if fresh:
            for leftover in ("best_arch.json", "alphas.png"):
                (run.path / leftover).unlink(missing_ok=True)
        run.write_config(cfg)
        run.write_env(cfg.run.seed, {"device": str(rt.device), "resumed_from": which, "world_size": rt.dist.world_size,
                                     "valid_augment": valid_augment})  # fmt: skip
        if which is not None:
            run.sync_metrics(search.history)  # killed between last.pt and metrics.csv: they agree again
    broadcast_object(None)  # the other ranks wait for the directory
    search.fit(max_epochs=max_epochs)
    if search.done() and rt.is_main:
        row = search.selected()
        arch = model.space.parse(row["arch"])
        meta = {
            "method": "differentiable", "architect": architect.name, "architect_options": architect.options(),
            "variants": variants.names, "variant_options": variants.options(), "select": d.select,
            "valid_augment": valid_augment,
            "supernet_run": str(run.path),
            "differentiable": cfg.to_dict()["differentiable"], "versions": environment_record(cfg.run.seed)["versions"],
        }  # fmt: skip
        settings = {k: getattr(d, k) for k in ("epochs", "order", "select", "patience")}
        write_best(run.path / "best_arch.json", arch=arch, row=row, space=model.space.name, architect=architect,
                   settings=settings, seed=cfg.run.seed, epochs_run=search.epoch, metadata=meta)  # fmt: skip
        run.mark_done({"epochs": search.epoch, "stopped_early": search.stopped, "arch": str(arch)})
        if cfg.run.progress:
            print(f"derived architecture (epoch {row['epoch']}, valid loss {row['valid_loss']:.4f}): {arch}")
            print(f"results in {run.path}")
    return search


def _resume(search: Any, path: Path, device: Any) -> None:
    """Load ``path`` into ``search``, or raise one :class:`CheckpointError` line (nothing is written either way)."""
    from genas.errors import CheckpointError, GenasError
    from genas.runs import check_position, resume_error

    state = search.read_checkpoint(path, device)
    check_position(state, path, len(search.train_loader))
    try:
        search.load_state_dict(state)
    except GenasError as exc:
        if isinstance(exc, CheckpointError) and str(path) not in str(exc):
            raise CheckpointError(f"cannot resume from {path}: {exc}") from exc
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise resume_error(path, exc) from exc
