"""The evolve stage: a trained supernet (or none, for zero-cost scorers) searched under a scorer.

:func:`run` builds each part once (the scorer, the scoring context, the cost function and constraint,
the algorithm) and hands them to :func:`evolution.runner.run_search`; ``tools/evolve.py`` only parses
its command line, loads the config and calls it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from genas.cli import start_runtime
from genas.config import MAX_NAME, Config, load_config

__all__ = ["run", "default_out_dir", "slug", "TOP_K"]

TOP_K = 10  # architectures listed, with each scorer term, in best_arch.json


def slug(text: str) -> str:
    """A file-name-safe version of a scorer expression."""
    return re.sub(r"[^A-Za-z0-9.+=_-]+", "_", text.replace("*", "x").replace(":", "-")).strip("_") or "scorer"


def default_out_dir(run_dir: Path, cfg: Config) -> Path:
    """``RUN_DIR/search-<scorer>-<algorithm>``, plus a short stable hash of the scorer options when any are set.

    Long expressions are cut and hashed so the name stays within what file systems allow.
    """
    name = f"search-{slug(cfg.score.scorer)}-{cfg.search.algorithm}"
    opts = cfg.score.options
    digest = hashlib.sha1(json.dumps(opts, sort_keys=True, default=str).encode()).hexdigest()[:8] if opts else ""
    if len(name) > MAX_NAME - 10:
        digest = digest or hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[: MAX_NAME - 10]
    return run_dir / (f"{name}-{digest}" if digest else name)


def run(cfg: Config, run_dir: Path | None = None, out: Path | None = None, resume: bool = False,
        where: str = "--supernet") -> Any:
    """Search with scorer ``cfg.score`` and algorithm ``cfg.search`` over the supernet trained in ``run_dir``.

    ``run_dir`` may be None (or hold no run) for scorers that need no trained supernet (zero-cost
    proxies, the ``nb201`` table); the space and the data are then ``cfg``'s.  ``out`` defaults to
    :func:`default_out_dir`.  ``where`` names ``run_dir`` in the one error a missing run gives.
    """
    from evolution import Constraint, algorithm_from_config, run_search
    from evolution.runner import HISTORY_FILE, check_out_dir
    from genas.errors import NotTrainedError
    from genas.io import removed_on_error
    from genas.runs import Run, environment_record
    from scorers import ScoringContext

    scorer = cfg.score.build()[0]  # the one built when the config was checked
    trained = run_dir is not None and (Path(run_dir) / "config.yaml").is_file()
    if (scorer.needs.supernet or scorer.needs.init_weights) and not trained:
        raise NotTrainedError(f"no trained supernet at {run_dir} ({where}); train it with "
                              "`python tools/train_supernet.py` or pass --supernet RUN_DIR")  # fmt: skip
    if out is None:  # RUN_DIR/search-..., where RUN_DIR is the named run even when no supernet was trained there
        out = default_out_dir(Path(run_dir) if run_dir is not None else Path(cfg.run.root), cfg)
    run_dir = Path(run_dir) if trained else None
    if run_dir is not None:
        cfg.supernet = load_config(None, base=Run(run_dir).read_config(), only=("supernet",)).supernet  # the run's space
    out = Path(out)
    check_out_dir(out, resume)  # before any work: a file in the way, a full search, nothing to resume
    rt = start_runtime(cfg)
    ctx = ScoringContext.from_config(cfg.score, run_dir, device=rt.device, seed=cfg.run.seed, scorers=[scorer],
                                     space=cfg.supernet.space, data=cfg.data, network=cfg.supernet)  # fmt: skip
    cost = _cost_function(ctx, cfg, run_dir)
    constraint = Constraint.from_config(cfg.search, cost.of) if cost is not None else None
    if constraint is not None:
        cost.check_budget(cfg.search)  # in seconds, before any scoring
    algo = algorithm_from_config(cfg.search, ctx.space, seed=cfg.run.seed, constraint=constraint)
    sign = 1.0 if scorer.higher_is_better else -1.0
    meta = {
        "scorer": cfg.score.scorer,
        "scorer_options": scorer.options(),
        "higher_is_better": scorer.higher_is_better,
        "seed": cfg.run.seed,
        "supernet_run": str(run_dir) if ctx.supernet is not None else None,
        "supernet_checkpoint": ctx.metadata.get("checkpoint"),
        "search": cfg.to_dict()["search"],
        "versions": environment_record(cfg.run.seed)["versions"],
    }

    def record(history: list[Any]) -> dict[str, Any]:
        return _top_record(history, scorer, ctx, sign, cost)

    def scored() -> bool:  # a score on disk makes the folder a search to resume, not a leftover
        return (out / HISTORY_FILE).is_file() and (out / HISTORY_FILE).stat().st_size > 0

    # a scorer that fails on its first call (a plugin returning strings, shape (n, 2), n-1 scores)
    # leaves nothing behind: the folder and history.jsonl this call made are removed
    with removed_on_error(out, keep=scored):
        result = run_search(algo, lambda archs: sign * ctx.score(scorer, archs), out, resume=resume,
                            progress=cfg.run.progress, metadata=meta, record=record)  # fmt: skip
    if result.best is not None and rt.is_main:
        print(f"best architecture ({cfg.score.scorer} = {sign * result.best.score:.6g}, {result.num_scored} scored): {result.best.arch}")
        print(f"results in {out}")
    return result


class _Cost:
    """Parameters and FLOPs of architectures (cached), and the space's range for the up-front budget check."""

    def __init__(self, net: Any, input_shape: tuple[int, ...]) -> None:
        self.net, self.shape, self.cache = net, input_shape, {}

    def of(self, arch: Any) -> tuple[float, float]:
        from supernet.costs import arch_cost

        if arch not in self.cache:
            self.cache[arch] = arch_cost(self.net, arch, self.shape)
        return self.cache[arch]

    def check_budget(self, search: Any) -> None:
        from genas.errors import ConfigError
        from supernet.costs import cost_range

        r = cost_range(self.net, self.shape)
        if (search.max_params is not None and search.max_params < r.params[0]) or (
            search.max_flops is not None and search.max_flops < r.flops[0]
        ):
            raise ConfigError(f"no {self.net.space.name} architecture meets search.max_params={search.max_params} / "
                              f"search.max_flops={search.max_flops}: the space spans {r.describe()}")  # fmt: skip


def _cost_function(ctx: Any, cfg: Config, run_dir: Path | None) -> _Cost | None:
    """Costs on the trained supernet, or on a fresh one of the config's shape (zero-cost searches)."""
    import torch

    from genas.data import build_data
    from genas.runs import Run
    from supernet.factory import build_supernet

    if ctx.supernet is not None:
        shape = ctx.metadata.get("input_shape")
        if shape is None:  # a checkpoint from before the shape was recorded
            trained = load_config(None, base=Run(run_dir).read_config(), only=("run", "data"))
            bundle = build_data(trained.data, trained.run.seed, run_dir=run_dir)
            shape = (bundle.channels, bundle.image_size, bundle.image_size)
        return _Cost(ctx.supernet, (1, *shape))
    if ctx.fresh is None and cfg.search.max_params is None and cfg.search.max_flops is None:
        return None
    bundle = ctx.fresh.bundle if ctx.fresh is not None else build_data(cfg.data, cfg.run.seed)
    with torch.no_grad():
        net = build_supernet(cfg.supernet, bundle)
    return _Cost(net, (1, bundle.channels, bundle.image_size, bundle.image_size))


def _top_record(history: list[Any], scorer: Any, ctx: Any, sign: float, cost: _Cost | None) -> dict[str, Any]:
    """For best_arch.json: the best architecture's params / FLOPs, and the top-k with each scorer term."""
    finite = [ind for ind in history if ind.score == ind.score]
    top = sorted(finite, key=lambda ind: -ind.score)[:TOP_K]
    parts = getattr(scorer, "parts", None)
    rows = []
    for ind in top:
        row: dict[str, Any] = {"arch": str(ind.arch), "score": sign * ind.score}
        if parts:
            row["terms"] = {p.name: {"weight": w, "value": float(ctx.score(p, [ind.arch])[0])} for w, p in parts}
        if cost is not None:
            row["params_M"], row["mflops"] = (round(v, 6) for v in cost.of(ind.arch))
        rows.append(row)
    out: dict[str, Any] = {"top": rows}
    if rows and cost is not None:
        out["params_M"], out["mflops"] = rows[0]["params_M"], rows[0]["mflops"]
    return out


