"""Typed run configuration: YAML files, ``--section.key value`` overrides, one check.

A config is a :class:`Config` of sections (``run``, ``data``, ``supernet``, ``train``,
``score``, ``search``), each a dataclass whose field names are the YAML keys, the CLI
spellings (``--train.lr 0.05``) and the Python keywords alike.  Unknown keys are
rejected with a suggestion; values are checked once, when the config is built.

Example:
    >>> cfg = load_config(None, ["--train.epochs", "3", "--data.dataset=digits"])
    >>> cfg.train.epochs, cfg.data.dataset
    (3, 'digits')
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from genas.errors import ConfigError
from genas.parsing import coerce, parse_scalar, split_overrides, yaml_load
from genas.registry import suggest
from genas.validation import check_bool, check_choice, check_float, check_int

__all__ = [
    "Config", "RunConfig", "DataConfig", "SupernetConfig", "TrainConfig", "ScoreConfig", "SearchConfig",
    "load_config", "split_overrides", "yaml_load", "config_to_dict", "dump_config",
]  # fmt: skip

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class RunConfig:
    """Where results go and how the run behaves."""

    name: str | None = None  # run directory under root; default "<space>-<dataset>"
    root: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    checkpoint_every: int = 1  # epochs between periodic checkpoints; 0 = only init and last
    progress: bool = True
    overwrite: bool = False
    tensorboard: bool = False  # also log epoch metrics to <run>/tb (needs the `tb` extra)

    def validate(self) -> None:
        check_int(self.seed, "seed", "run", 0)
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("run.tensorboard needs the tensorboard package: pip install -e '.[tb]'")
        check_int(self.checkpoint_every, "checkpoint_every", "run", 0)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"The 'device' parameter of run must be one of {{'auto', 'cpu', 'cuda', 'cuda:N'}}. Got {self.device!r} instead.")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"The 'name' parameter of run must be a plain directory name. Got {self.name!r} instead.")


@dataclass
class DataConfig:
    """Dataset and loader options."""

    dataset: str = "digits"
    root: str | None = None
    split: str = "default"  # default | nb201 (25k/25k halves of the CIFAR training set)
    download: bool = False
    batch_size: int = 64
    eval_batch_size: int = 256
    limit: int | None = None  # cap on training samples, for quick runs
    valid_fraction: float | None = None
    augment: str | None = None  # None: the dataset's default
    random_labels: bool = False  # RLNAS: fixed seeded random labels

    def validate(self) -> None:
        check_choice(self.split, "split", "data", ("default", "nb201"))
        check_int(self.batch_size, "batch_size", "data", 1)
        check_int(self.eval_batch_size, "eval_batch_size", "data", 1)
        if self.limit is not None:
            check_int(self.limit, "limit", "data", 1)
        if self.valid_fraction is not None:
            check_float(self.valid_fraction, "valid_fraction", "data", 0.0, 1.0, closed="neither")
        if self.augment is not None:
            check_choice(self.augment, "augment", "data", ("cifar", "none"))


@dataclass
class SupernetConfig:
    """Search space and supernet shape (``None`` keeps the space's default)."""

    space: str = "nb201"
    channels: int = 16
    layers: int | None = None  # NB201: cells per stage (5); DARTS: total cells (8)
    affine: bool | None = None  # NB201: False (RLNAS); DARTS: True (GeNAS)
    track_running_stats: bool = True
    stem_multiplier: int | None = None  # DARTS only (3)

    def validate(self) -> None:
        check_choice(self.space, "space", "supernet", ("darts", "nb201"))
        check_int(self.channels, "channels", "supernet", 1)
        if self.layers is not None:
            check_int(self.layers, "layers", "supernet", 1)
        if self.stem_multiplier is not None:
            if self.space != "darts":
                raise ConfigError("The 'stem_multiplier' parameter of supernet applies only to space 'darts'.")
            check_int(self.stem_multiplier, "stem_multiplier", "supernet", 1)


@dataclass
class TrainConfig:
    """SPOS supernet training (SGD, cosine schedule from lr to lr_min)."""

    epochs: int = 250
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = None
    amp: str = "none"  # none | bf16 (CUDA)
    channels_last: bool = True

    def validate(self) -> None:
        check_int(self.epochs, "epochs", "train", 1)
        check_float(self.lr, "lr", "train", 0.0, None, closed="neither")
        check_float(self.lr_min, "lr_min", "train", 0.0, self.lr)
        check_float(self.momentum, "momentum", "train", 0.0, 1.0, closed="left")
        check_float(self.weight_decay, "weight_decay", "train", 0.0)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", "train", 0.0, None, closed="neither")
        check_choice(self.amp, "amp", "train", ("bf16", "none"))
        check_bool(self.nesterov, "nesterov", "train")
        check_bool(self.channels_last, "channels_last", "train")


@dataclass
class ScoreConfig:
    """How subnets are scored: the scorer expression, its options and the shared evaluation budget."""

    scorer: str = "accuracy"
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the scorer(s) by keyword
    plugins: list[str] = field(default_factory=list)  # files or modules that register scorers
    checkpoint: str = "last"  # which supernet checkpoint to score with
    bn_batches: int = 14  # BN recalibration batches (GeNAS 14 x 64; SPOS 200 x 128)
    bn_batch_size: int = 64
    bn_momentum: float | None = None  # None = cumulative average; GeNAS code: 0.1
    eval_batches: int | None = None  # validation batches per candidate; None = the whole split
    eval_batch_size: int = 256

    def validate(self) -> None:
        if not isinstance(self.scorer, str) or not self.scorer.strip():
            raise ConfigError(f"The 'scorer' parameter of score must be a non-empty string. Got {self.scorer!r} instead.")
        check_int(self.bn_batches, "bn_batches", "score", 0)
        check_int(self.bn_batch_size, "bn_batch_size", "score", 1)
        if self.bn_momentum is not None:
            check_float(self.bn_momentum, "bn_momentum", "score", 0.0, 1.0, closed="right")
        if self.eval_batches is not None:
            check_int(self.eval_batches, "eval_batches", "score", 1)
        check_int(self.eval_batch_size, "eval_batch_size", "score", 1)


@dataclass
class SearchConfig:
    """Architecture search over the trained supernet (SPEC section 4 defaults)."""

    algorithm: str = "evolution"
    population: int = 50
    topk: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.1
    iterations: int = 20
    max_params: float | None = None  # millions of parameters
    max_flops: float | None = None  # MFLOPs

    def validate(self) -> None:
        check_int(self.population, "population", "search", 2)
        check_int(self.topk, "topk", "search", 1, self.population)
        check_int(self.mutations, "mutations", "search", 0)
        check_int(self.crossovers, "crossovers", "search", 0)
        check_float(self.mutation_prob, "mutation_prob", "search", 0.0, 1.0)
        check_int(self.iterations, "iterations", "search", 1)
        for key in ("max_params", "max_flops"):
            if getattr(self, key) is not None:
                check_float(getattr(self, key), key, "search", 0.0, None, closed="neither")


@dataclass
class Config:
    """The whole configuration; each tool reads the sections it needs."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def validate(self) -> Config:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


# ---------------------------------------------------------------------------------------
# building and overrides (value parsing: genas.parsing)

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(cfg: Config, key: str, value: Any, from_cli: bool) -> None:
    parts = key.split(".")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if parts[0] not in sections:
        raise ConfigError(f"unknown config section {parts[0]!r} in {key!r}.{suggest(parts[0], list(sections))} "
                          f"Sections: {', '.join(sorted(sections))}")  # fmt: skip
    section = getattr(cfg, parts[0])
    if len(parts) == 1:
        if not isinstance(value, dict):
            raise ConfigError(f"config section {key!r} must be a mapping of keys to values; got {value!r}")
        for k, v in value.items():
            _apply(cfg, f"{key}.{k}", v, from_cli)
        return
    hints = _hints(type(section))
    name = parts[1]
    if name not in hints:
        full = [f"{parts[0]}.{k}" for k in hints]
        raise ConfigError(f"unknown config key {key!r}.{suggest(key, full)} Keys of {parts[0]!r}: {', '.join(sorted(hints))}")
    tp = hints[name]
    if len(parts) > 2:  # --score.options.gamma 16 -> a key inside a dict field
        if typing.get_origin(tp) is not dict:
            raise ConfigError(f"config key {'.'.join(parts[:2])!r} is not a mapping; cannot set {key!r}")
        target = getattr(section, name)
        target[".".join(parts[2:])] = parse_scalar(value) if from_cli and isinstance(value, str) else value
        return
    if from_cli and isinstance(value, str) and typing.get_origin(tp) not in (list, dict):
        value = parse_scalar(value) if tp is not str else value
    setattr(section, name, coerce(value, tp, key))


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p}.yaml").exists():
        p = CONFIG_DIR / f"{p}.yaml"  # --config quickstart
    if not p.is_file():
        names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
        raise ConfigError(f"config file {str(path)!r} not found; built-in configs: {', '.join(names) or 'none'}")
    try:
        data = yaml_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] | Sequence[tuple[str, Any]] | dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Build and check a :class:`Config`: defaults <- ``base`` <- YAML file ``path`` <- ``overrides``.

    Args:
        path: A YAML file, or the name of a file in ``configs/`` (``"quickstart"``).
        overrides: ``["--train.lr", "0.1"]``, ``[("train.lr", "0.1")]`` or ``{"train.lr": 0.1}``.
        base: A config dict applied before the file (e.g. a finished run's resolved config).
    """
    cfg = Config()
    if base:
        for key, value in base.items():
            _apply(cfg, key, value, from_cli=False)
    if path is not None:
        for key, value in _read_yaml(path).items():
            _apply(cfg, str(key), value, from_cli=False)
    if overrides:
        if isinstance(overrides, dict):
            for key, value in overrides.items():
                _apply(cfg, key, value, from_cli=False)
        else:
            items = list(overrides)
            if items and isinstance(items[0], str):
                rest, pairs = split_overrides(items)
                if rest:
                    raise ConfigError(f"unexpected argument {rest[0]!r}; overrides are written --section.key value")
            else:
                pairs = items
            for key, value in pairs:
                _apply(cfg, key, value, from_cli=True)
    return cfg.validate()


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """A plain nested dict of ``cfg`` (YAML- and JSON-serialisable)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config) -> str:
    """``cfg`` as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
