"""What scorers evaluate in: the trained supernet, fixed data batches, caches.

A :class:`ScoringContext` is built once per search (``ScoringContext.from_run``) and
holds everything that must be identical for every candidate: the supernet weights, the
BN-recalibration batches (training split), the held-out validation batches and the seed.
BN recalibration of a subnet is done once per architecture and cached, so combined
scorers (``accuracy+flatness``) do not recalibrate twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


from genas.errors import ConfigError, NotTrainedError
from scorers.base import Needs
from genas.spaces import SearchSpace, create_space
from genas.training import evaluate
from supernet.base import Subnet, Supernet
from supernet.bn import bn_modules, recalibrate_bn

__all__ = ["ScoringContext"]

Batch = tuple[torch.Tensor, torch.Tensor]


class ScoringContext:
    """The shared state of one scoring session.

    Args:
        supernet: Trained supernet (None for scorers that need none, e.g. the ``nb201`` table oracle).
        space: The search space (default: the supernet's).
        device: Where evaluation runs.
        train_batches: Batches used to recalibrate BN statistics (SPOS/GeNAS: training split).
        valid_batches: Held-out labelled batches every data scorer evaluates on.
        init_state: The supernet's step-0 state dict (for the angle scorer).
        bn_momentum: None for cumulative BN averaging (default), or a momentum (GeNAS: 0.1).
        seed: Seed for scorers' own randomness (noise, neighbour samples).
        metadata: Free-form facts recorded with results (run path, checkpoint).
        cache_size: Architectures whose recalibrated BN statistics / evaluations are kept.
    """

    def __init__(
        self,
        supernet: Supernet | None = None,
        *,
        space: SearchSpace | None = None,
        device: torch.device | str = "cpu",
        train_batches: Sequence[Batch] | None = None,
        valid_batches: Sequence[Batch] | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
        bn_momentum: float | None = None,
        seed: int = 0,
        metadata: dict[str, Any] | None = None,
        cache_size: int = 256,
    ) -> None:
        if supernet is None and space is None:
            raise ConfigError("a ScoringContext needs a supernet or a search space")
        self.supernet = supernet
        self.space = space if space is not None else supernet.space
        self.device = torch.device(device)
        self.train_batches = list(train_batches or [])
        self._valid = list(valid_batches or [])
        self.init_state = init_state
        self.bn_momentum = bn_momentum
        self.seed = seed
        self.metadata = dict(metadata or {})
        self.cache_size = cache_size
        self._bn_cache: OrderedDict[Any, list[tuple[torch.Tensor, ...]]] = OrderedDict()
        self._eval_cache: OrderedDict[Any, tuple[float, float]] = OrderedDict()
        self.score_cache: dict[tuple[str, Any], float] = {}  # (repr(scorer), arch) -> finalised score
        self.replaced: dict[str, int] = {}  # scorer name -> non-finite scores replaced by the worst value
        self.noise_cache: dict[Any, list[torch.Tensor]] = {}  # (noise plan, parameter) -> common random noise
        self.fresh: Any = None  # scorers.fresh.FreshNetworks for the zero-cost proxies (see for_data)

    # ---- construction from a training run ----------------------------------------------
    @classmethod
    def from_run(
        cls,
        run_path: str,
        *,
        checkpoint: str = "last",
        device: torch.device | str = "cpu",
        bn_batches: int = 14,
        bn_batch_size: int = 64,
        bn_momentum: float | None = None,
        eval_batches: int | None = None,
        eval_batch_size: int = 256,
        seed: int = 0,
        data: bool = True,
        channels_last: bool | None = None,
    ) -> ScoringContext:
        """Load run ``run_path``'s supernet and build the batches its scorers use.

        The held-out split is rebuilt from the run's own config and seed, so it is exactly the
        split the supernet never trained on.
        """
        from genas.data import build_loader
        from genas.data import build_data
        from supernet.factory import load_trained

        trained = load_trained(run_path, checkpoint, device=device)
        cfg = trained.config
        cl = cfg.train.channels_last if channels_last is None else channels_last
        net = trained.model
        if cl:
            net.to(memory_format=torch.channels_last)
        train_b, valid_b = [], []
        if data:
            bundle = build_data(cfg.data, cfg.run.seed, run_dir=trained.run.path)  # the files the run recorded
            if bn_batches:
                loader = build_loader(bundle.train, bundle, bn_batch_size, train=True, seed=seed, device=device, channels_last=cl)
                train_b = loader.batches(bn_batches, seed)
            valid = build_loader(bundle.valid, bundle, eval_batch_size, train=False, device=device, channels_last=cl)
            for i, batch in enumerate(valid):
                if eval_batches is not None and i >= eval_batches:
                    break
                valid_b.append(batch)
        meta = {"run": str(trained.run.path), "checkpoint": str(trained.checkpoint), "dataset": cfg.data.dataset,
                "input_shape": trained.input_shape or (tuple(valid_b[0][0].shape[1:]) if valid_b else None)}
        return cls(net, device=device, train_batches=train_b, valid_batches=valid_b, init_state=trained.init_state,
                   bn_momentum=bn_momentum, seed=seed, metadata=meta)  # fmt: skip

    @classmethod
    def from_config(
        cls,
        score: Any,
        run_dir: str | Path | None = None,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        scorers: Sequence[Any] = (),
        space: str | SearchSpace | None = None,
        data: Any = None,
        network: Any = None,
    ) -> ScoringContext:
        """The front door: the context that ``scorers`` need, from a ``score`` config section.

        A scorer that needs a trained supernet gets run ``run_dir``'s (checkpoint ``score.checkpoint``,
        the BN-recalibration and held-out batches of the ``score`` budget); zero-cost proxies get
        fresh networks and labelled images (the run's data, or ``data``); anything else, the space.

        Args:
            score: A :class:`scorers.config.ScoreConfig`.
            run_dir: The training run (needed when a scorer needs the supernet).
            device: Where scoring runs.
            seed: Seed of the scorers' randomness (noise, neighbour samples, fresh inits).
            scorers: The scorers this context serves (their ``needs`` decide what is loaded).
            space: The search space when there is no run.
            data: A ``data`` config section for zero-cost proxies without a run.
            network: A ``supernet`` config section (or dict) for the shape of fresh networks.
        """
        from genas.config import load_config
        from genas.runs import Run

        needs = Needs(supernet=False)
        for s in scorers:
            needs = needs | s.needs
        if needs.supernet or needs.init_weights:
            if run_dir is None:
                raise NotTrainedError(f"scorer(s) {', '.join(s.name for s in scorers)} need a trained supernet: "
                                      "pass --supernet RUN_DIR (train one with `python tools/train_supernet.py`)")  # fmt: skip
            ctx = cls.from_run(str(run_dir), checkpoint=score.checkpoint, device=device, bn_batches=score.bn_batches,
                               bn_batch_size=score.bn_batch_size, bn_momentum=score.bn_momentum,
                               eval_batches=score.eval_batches, eval_batch_size=score.eval_batch_size, seed=seed,
                               data=needs.data)  # fmt: skip
        else:
            ctx = cls.for_space(space or "nb201", seed=seed)
            ctx.device = torch.device(device)
        if needs.fresh_network:
            trained = (load_config(None, base=Run(run_dir).read_config(), only=("run", "data", "supernet"))
                       if run_dir and Path(run_dir, "config.yaml").is_file() else None)  # fmt: skip
            from scorers.fresh import FreshNetworks

            shape = network if network is not None else (trained.supernet if trained is not None else None)
            ctx.fresh = FreshNetworks.from_data(trained.data if trained is not None else data, ctx.space, seed=seed,
                                                device=device, supernet=shape)  # fmt: skip
        return ctx

    @classmethod
    def for_space(cls, space: str | SearchSpace, seed: int = 0) -> ScoringContext:
        """A context without a supernet (for table oracles and other data-free scorers)."""
        return cls(space=create_space(space) if isinstance(space, str) else space, seed=seed)

    @classmethod
    def for_data(cls, data: Any, space: str | SearchSpace = "nb201", *, seed: int = 0, device: torch.device | str = "cpu",
                 supernet: Any = None) -> ScoringContext:  # fmt: skip
        """A context without a trained supernet for the zero-cost proxies (``synflow``, ``jacov``, ...).

        Args:
            data: A ``data`` config section or a :class:`~genas.data.DataBundle`; its training split
                gives the labelled images.
            space: The search space.
            seed: Seeds each architecture's fresh init and the image draw.
            device: Where the networks run.
            supernet: A ``supernet`` config section (or dict) for the network shape; None: the
                space's defaults (NB201: C=16, N=5, the benchmark network).

        Example:
            >>> from genas.config import DataConfig
            >>> from scorers import ScoringContext, create_scorer
            >>> ctx = ScoringContext.for_data(DataConfig(dataset="digits"), "nb201", supernet={"channels": 4, "layers": 1})
            >>> create_scorer("synflow").score(["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"], ctx).shape
            (1,)
        """
        from scorers.fresh import FreshNetworks

        ctx = cls.for_space(space, seed=seed)
        ctx.device = torch.device(device)
        ctx.fresh = FreshNetworks.from_data(data, ctx.space, seed=seed, device=device, supernet=supernet)
        return ctx

    # ---- scoring -----------------------------------------------------------------------
    def score(self, scorer: Any, archs: Sequence[Any]) -> np.ndarray:
        """``scorer``'s finalised scores of ``archs`` (NaN rule applied), each computed once per session."""
        from scorers.base import cached_scores
        from scorers.registry import origin_of

        return cached_scores(scorer, archs, self, origin_of(scorer.name))

    # ---- access ------------------------------------------------------------------------
    def require_fresh(self, who: str) -> Any:
        """The fresh networks and images of a zero-cost context (``for_data``), or a one-line error."""
        if self.fresh is None:
            raise ConfigError(f"scorer {who!r} scores freshly initialised networks; build the context with "
                              "ScoringContext.for_data(data_config, space) (the CLIs do when the scorer needs it)")  # fmt: skip
        return self.fresh

    def require_supernet(self, who: str) -> Supernet:
        if self.supernet is None:
            raise NotTrainedError(f"scorer {who!r} needs a trained supernet; train one with `python tools/train_supernet.py`")
        return self.supernet

    @property
    def valid_batches(self) -> list[Batch]:
        if not self._valid:
            raise ConfigError("this scoring context holds no validation batches (built with data=False?)")
        return self._valid

    def subnet(self, arch: Any) -> Subnet:
        """The subnet of ``arch`` in eval mode, its BN statistics recalibrated (cached per architecture)."""
        net = self.require_supernet("subnet")
        arch = self.space.parse(arch)
        sub = net.subnet(arch)
        layers = bn_modules(sub)
        if arch in self._bn_cache:
            self._bn_cache.move_to_end(arch)
            with torch.no_grad():
                for m, (mean, var, n) in zip(layers, self._bn_cache[arch]):
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
                    m.num_batches_tracked.copy_(n)
        elif self.train_batches:
            recalibrate_bn(sub, self.train_batches, momentum=self.bn_momentum)
            self._bn_cache[arch] = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
            if len(self._bn_cache) > self.cache_size:
                self._bn_cache.popitem(last=False)
        return sub.eval()

    @torch.inference_mode()
    def evaluate(self, arch: Any) -> tuple[float, float]:
        """(mean cross-entropy, top-1 accuracy as a fraction) of ``arch`` on the validation batches."""
        arch = self.space.parse(arch)
        if arch in self._eval_cache:
            return self._eval_cache[arch]
        result = evaluate(self.subnet(arch), self.valid_batches)
        self._eval_cache[arch] = result
        if len(self._eval_cache) > self.cache_size:
            self._eval_cache.popitem(last=False)
        return result
