"""``python tools/evolve.py``: search a trained supernet for the best subnet under any scorer.

Usage::

    python tools/evolve.py --scorer angle+flatness             # the default run's supernet (quickstart)
    python tools/evolve.py --scorer accuracy --supernet runs/nb201-cifar10 --search.iterations 20
    python tools/evolve.py --scorer flatness --score.options.sigmas "[1e-3,3e-3,6e-3]"
    python tools/evolve.py --scorer my_score --plugin my_scorers.py
    python tools/evolve.py --list-scorers
    python tools/evolve.py --resume                             # continue an interrupted search
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genas.cli import ArgumentParser
from genas.config import Config, load_config, split_overrides
from genas.distributed import init_distributed, is_main, resolve_device
from genas.errors import ConfigError, NotTrainedError
from genas.runs import Run, environment_record

__all__ = ["main", "search_from_config"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="evolve.py",
        description="Evolutionary search over subnets of a trained supernet, ranked by a registered scorer.",
        epilog="Config values can be overridden as --section.key value (sections: run, score, search). "
        "Scorer options: --score.options.NAME value (e.g. --score.options.gamma 8).",
    )
    p.add_argument("--scorer", default=None, help="scorer expression, e.g. accuracy, angle+flatness, na:accuracy")
    p.add_argument("--supernet", default=None, metavar="RUN_DIR", help="training run to search (default: the config's run)")
    p.add_argument("--config", default="quickstart", help="YAML file or a name in configs/ (default: quickstart)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/search-<scorer>-<algorithm>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE", help="load scorer plugins")
    p.add_argument("--list-scorers", action="store_true", help="list registered scorers and exit")
    return p


def slug(text: str) -> str:
    """A file-name-safe version of a scorer expression."""
    return re.sub(r"[^A-Za-z0-9.+=_-]+", "_", text.replace("*", "x").replace(":", "-")).strip("_") or "scorer"


def print_scorers() -> None:
    from rich.console import Console
    from rich.table import Table

    from scorers import scorer_table

    table = Table(title="genas scorers (larger score = better unless noted)")
    for col in ("name", "better", "needs", "description"):
        table.add_column(col)
    for row in scorer_table():
        table.add_row(*row)
    Console().print(table)


def _cost_fn(ctx: Any, input_shape: tuple[int, ...]):
    """arch -> (params in millions, MFLOPs) of its subnet, cached."""
    from evolution import count_flops, count_params

    cache: dict[Any, tuple[float, float]] = {}

    def cost(arch: Any) -> tuple[float, float]:
        if arch not in cache:
            sub = ctx.supernet.subnet(arch)
            cache[arch] = (count_params(sub) / 1e6, count_flops(sub, input_shape) / 1e6)
        return cache[arch]

    return cost


def search_from_config(cfg: Config, run_dir: Path, out: Path, plugins: Sequence[str] = (), resume: bool = False) -> Any:
    """Run the search of ``cfg.search`` with scorer ``cfg.score`` over the supernet trained in ``run_dir``."""
    from evolution import Constraint, algorithm_from_config, run_search
    from genas.spaces import create_space
    from scorers import ScoringContext, cached_scores, create_scorer, load_plugin, origin_of

    for plugin in [*cfg.score.plugins, *plugins]:
        load_plugin(plugin)
    scorer = create_scorer(cfg.score.scorer, **cfg.score.options)
    device = resolve_device(cfg.run.device, int(os.environ.get("LOCAL_RANK", "0")))
    init_distributed(device)
    needs = scorer.needs
    if needs.supernet or cfg.search.max_params or cfg.search.max_flops:
        if not (run_dir / "config.yaml").is_file():
            raise NotTrainedError(f"no trained supernet at {run_dir}; train one with `python tools/train_supernet.py` "
                                  "or point --supernet at a training run directory")  # fmt: skip
        sc = cfg.score
        ctx = ScoringContext.from_run(
            str(run_dir), checkpoint=sc.checkpoint, device=device, bn_batches=sc.bn_batches, bn_batch_size=sc.bn_batch_size,
            bn_momentum=sc.bn_momentum, eval_batches=sc.eval_batches, eval_batch_size=sc.eval_batch_size,
            seed=cfg.run.seed, data=needs.data,
        )  # fmt: skip
        train_cfg = load_config(None, base=Run(run_dir).read_config())
        from supernet.factory import build_data

        bundle = build_data(train_cfg.data, train_cfg.run.seed) if (cfg.search.max_params or cfg.search.max_flops) else None
    else:
        ctx, bundle = ScoringContext.for_space(create_space(cfg.supernet.space), seed=cfg.run.seed), None
    constraint = None
    if bundle is not None:
        shape = (1, bundle.channels, bundle.image_size, bundle.image_size)
        constraint = Constraint.from_config(cfg.search, _cost_fn(ctx, shape))
    algo = algorithm_from_config(cfg.search, ctx.space, seed=cfg.run.seed, constraint=constraint)
    sign = 1.0 if scorer.higher_is_better else -1.0

    def fitness(archs: list[Any]) -> np.ndarray:
        return sign * cached_scores(scorer, archs, ctx, origin_of(scorer.name))

    meta = {
        "scorer": cfg.score.scorer,
        "scorer_options": scorer.options(),
        "higher_is_better": scorer.higher_is_better,
        "seed": cfg.run.seed,
        "supernet_run": str(run_dir),
        "supernet_checkpoint": ctx.metadata.get("checkpoint"),
        "search": cfg.to_dict()["search"],
        "versions": environment_record(cfg.run.seed)["versions"],
    }
    result = run_search(algo, fitness, out, resume=resume, progress=cfg.run.progress, metadata=meta)
    if result.best is not None and is_main():
        print(f"best architecture ({cfg.score.scorer} = {sign * result.best.score:.6g}, {result.num_scored} scored): {result.best.arch}")
        print(f"results in {out}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from scorers import load_plugin

    argv = list(sys.argv[1:] if argv is None else argv)
    rest, overrides = split_overrides(argv)
    args = _parser().parse_args(rest)
    if args.list_scorers:
        for plugin in args.plugin:
            load_plugin(plugin)
        print_scorers()
        return 0
    cfg = load_config(args.config, overrides)
    if args.scorer:
        cfg.score.scorer = args.scorer
        cfg.score.validate()
    if args.supernet:
        run_dir = Path(args.supernet)
    else:
        from supernet.factory import default_run_name

        run_dir = Path(cfg.run.root) / default_run_name(cfg)
    if not args.supernet and not run_dir.exists():
        raise NotTrainedError(f"no trained supernet at {run_dir} (the default run of config {args.config!r}); "
                              "train it with `python tools/train_supernet.py` or pass --supernet RUN_DIR")  # fmt: skip
    if args.supernet and (run_dir / "config.yaml").is_file():
        trained = load_config(None, base=Run(run_dir).read_config())
        cfg.supernet = trained.supernet  # the space is the run's, whatever --config says
    out = Path(args.out) if args.out else run_dir / f"search-{slug(cfg.score.scorer)}-{cfg.search.algorithm}"
    if args.resume and not (out / "search_state.json").exists():
        raise ConfigError(f"nothing to resume in {out}: no search_state.json (start the search without --resume)")
    search_from_config(cfg, run_dir, out, args.plugin, resume=args.resume)
    return 0
