"""Typed run configuration assembled from stage-owned sections: YAML files, ``--section.key value``, one check.

A config is a :class:`Config` of *sections*.  Each stage declares its own section where the stage
is defined, as a dataclass subclass of :class:`Section` registered with :func:`config_section`
(the core holds ``run`` and ``data``; ``supernet`` / ``train`` live in ``supernet/config.py``,
``score`` in ``scorers/config.py``, ``search`` in ``evolution/config.py``, ...).  A section's field
names are the YAML keys, the CLI spellings (``--train.lr 0.05``) and the Python keywords alike, and
its ``constraints`` table is the one source of truth for its limits, checked when the config is
built, before any data or checkpoint is read.

Importing a stage registers its sections.  A YAML file may also hold sections of stages this
process has not imported (one config file serves training and search, see :data:`STAGE_SECTIONS`);
they are kept as they are and written back unchanged.  Any other name is an error with a
suggestion (``trian``); a command-line override must name a section of the running command.

Example:
    >>> cfg = load_config(None, ["--run.seed", "3", "--data.dataset=digits"])
    >>> cfg.run.seed, cfg.data.dataset
    (3, 'digits')
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import yaml

from genas.errors import ConfigError
from genas.parsing import split_overrides, yaml_load
from genas.registry import suggest
from genas.sections import _ORDER, SECTIONS, PluginSection, Section, config_section, set_options
from genas.validation import Boolean, Interval, Nullable, OneOf, Text

__all__ = [
    "Config", "Section", "SECTIONS", "config_section", "set_options", "RunConfig", "DataConfig",
    "load_config", "split_overrides", "yaml_load", "config_to_dict", "dump_config", "CONFIG_DIR", "MAX_NAME",
]  # fmt: skip

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_NAME = 200  # characters of a run / output directory name (file systems allow 255 bytes)


#: The sections of genas's own stages, by name -> the package that declares it.  Names only: the
#: classes live with their stages.  A config file may hold any of them whichever command reads it
#: (one file serves training and search); a section name outside this table and outside what this
#: process registered (a plugin's) is a typo.  ``tests/test_config.py`` keeps the table true.
STAGE_SECTIONS = {
    "run": "genas", "data": "genas", "supernet": "supernet", "train": "supernet", "score": "scorers",
    "search": "evolution", "differentiable": "genas.differentiable", "variants": "genas.differentiable",
    "model": "genas.export",
    "retrain": "genas.export",
}  # fmt: skip


# ---- the core's sections ------------------------------------------------------------------------
@config_section("run")
@dataclass
class RunConfig(Section):
    """Where results go and how the run behaves."""

    name: str | None = None  # run directory under root; default "<space>-<dataset>"
    root: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads; None: $OMP_NUM_THREADS, else the cores not busy at start (docs/training.md)
    checkpoint_every: int = 1  # epochs between periodic checkpoints; 0 = only init and last
    checkpoint_steps: int = 0  # also write last.pt every N optimisation steps inside an epoch; 0 = at epoch ends only
    progress: bool = True
    overwrite: bool = False
    tensorboard: bool = False  # also log epoch metrics to <run>/tb (needs the `tb` extra)

    constraints: ClassVar[dict[str, Any]] = {
        "name": Nullable(Text(MAX_NAME)), "root": Text(), "seed": Interval(int, 0, 2**32 - 1),
        "threads": Nullable(Interval(int, 1, 1024)), "checkpoint_every": Interval(int, 0),
        "checkpoint_steps": Interval(int, 0),
        "progress": Boolean(), "overwrite": Boolean(), "tensorboard": Boolean(),
    }  # fmt: skip

    def check(self) -> None:
        dev = self.device
        kind, _, index = dev.partition(":") if isinstance(dev, str) else ("", "", "")
        if not (dev in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit())):
            raise ConfigError(f"The 'device' parameter of run must be one of {{'auto', 'cpu', 'cuda', 'cuda:N'}} "
                              f"(N a device number). Got {dev!r} instead.")  # fmt: skip
        if self.name is not None and ("/" in self.name or "\\" in self.name or self.name.startswith(".")):
            raise ConfigError(f"The 'name' parameter of run must be a plain directory name. Got {self.name!r} instead.")
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("run.tensorboard needs the tensorboard package: pip install -e '.[tb]'")


@config_section("data")
class DataConfig(PluginSection):
    """The dataset and its options (``dataset`` plus ``options``), and how its splits are cut and batched.

    The options are the dataset's own (:func:`genas.data.base.dataset_options`): ``root`` (datasets
    with files), ``split`` (``nb201``: the 25k / 25k halves of the CIFAR training set), ``download``
    (CIFAR), and ``image_size``, ``workers``, ``on_error`` (the streaming ``imagefolder`` / ``wds``).
    The other keys apply to every dataset.  ``--data.root DIR`` (the spelling before ``options.``)
    still works for one release, with a one-line deprecation warning.

    Args:
        dataset: A registered dataset (``digits``, the default, needs no files).
        options: The dataset's own options.
        batch_size: Training batch per process.
        eval_batch_size: Evaluation batch.
        limit: Cap on the samples of every split, for quick runs.
        valid_fraction: Share of the training set held out as ``valid`` (None: the dataset's default).
        augment: Training augmentation (None: the dataset's default).
        random_labels: RLNAS: fixed seeded random labels.
    """

    choice: ClassVar[str] = "dataset"
    default: ClassVar[str] = "digits"
    kind: ClassVar[str] = "dataset"
    record_defaults: ClassVar[bool] = False
    example: ClassVar[str] = "{root: /data/cifar10, split: nb201}"
    legacy_defaults: ClassVar[dict[str, Any]] = {"split": "default", "download": False, "workers": 4, "on_error": "skip"}
    common: ClassVar[dict[str, tuple[Any, Any, Any]]] = {
        "batch_size": (64, int, Interval(int, 1, 1_000_000)), "eval_batch_size": (256, int, Interval(int, 1, 1_000_000)),
        "limit": (None, int | None, Nullable(Interval(int, 1))),
        "valid_fraction": (None, float | None, Nullable(Interval(float, 0.0, 1.0, "neither"))),
        "augment": (None, str | None, None), "random_labels": (False, bool, Boolean()),
    }  # fmt: skip

    @classmethod
    def plugin(cls, name: str) -> Any:
        from genas.data.base import dataset_options

        return dataset_options(name)

    def dataset_kwargs(self) -> dict[str, Any]:
        """Every option of the dataset: what was set, over its defaults."""
        return {**self.chosen.option_defaults(), **self.options}

    def check(self) -> None:
        from genas.data.base import AUGMENTATIONS, DATASETS
        from genas.data.stream import STREAM_AUGMENTATIONS

        stream = DATASETS.entry(self.dataset).meta.get("stream", False)
        if self.augment is not None:
            OneOf(tuple(STREAM_AUGMENTATIONS if stream else AUGMENTATIONS)).check(self.augment, "augment", "data", {})


# ---- the whole config ---------------------------------------------------------------------------
class Config:
    """The sections of one run: every registered section, plus foreign ones kept as read.

    ``cfg.train`` is the ``train`` section (if its stage is imported); ``Config(train=TrainConfig(...))``
    builds one from section objects.
    """

    def __init__(self, **sections: Section) -> None:
        self._sections: dict[str, Section] = {name: SECTIONS.get(name)() for name in _ORDER}
        self._foreign: dict[str, dict[str, Any]] = {}
        for name, section in sections.items():
            if not isinstance(section, Section):
                raise ConfigError(f"Config({name}=...) needs a config section object, got {type(section).__name__}")
            self._sections[name] = section

    def __getattr__(self, name: str) -> Section:
        sections = self.__dict__.get("_sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"config section {name!r} is not loaded (import the stage that declares it); "
                             f"sections: {', '.join(sections)}")  # fmt: skip

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Section):
            self._sections[name] = value
        else:
            super().__setattr__(name, value)

    @property
    def sections(self) -> dict[str, Section]:
        return dict(self._sections)

    def validate(self) -> Config:
        for section in self._sections.values():
            section.validate()
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        out = {name: section.to_dict() for name, section in self._sections.items()}
        out.update({k: copy.deepcopy(v) for k, v in self._foreign.items() if k not in out})
        return out


def _apply(cfg: Config, key: str, value: Any, from_cli: bool) -> None:
    name, _, rest = key.partition(".")
    sections = cfg._sections
    if name not in sections:
        if from_cli or name not in STAGE_SECTIONS or not isinstance(value, dict) and not rest:
            known = sorted(set(sections) | set(STAGE_SECTIONS)) if not from_cli else sorted(sections)
            raise ConfigError(f"unknown config section {name!r} in {key!r}.{suggest(name, known)} "
                              f"Sections{' of this command' if from_cli else ''}: {', '.join(known)}")  # fmt: skip
        target = cfg._foreign.setdefault(name, {})  # a section of a stage this command does not use
        if rest:
            target[rest] = value
        else:
            target.update(value)
        return
    if not rest:
        if not isinstance(value, dict):
            raise ConfigError(f"config section {key!r} must be a mapping of keys to values; got {value!r}")
        for k, v in _ordered(sections[name], value):
            sections[name].set(str(k), v, from_cli)
        return
    sections[name].set(rest, value, from_cli)


def _ordered(section: Section, items: dict[str, Any]) -> list[tuple[str, Any]]:
    """The keys a section wants first (e.g. ``search.algorithm``, which decides the other keys) go first."""
    first = getattr(section, "set_first", ())
    return sorted(items.items(), key=lambda kv: kv[0] not in first)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p}.yaml").exists():
        p = CONFIG_DIR / f"{p}.yaml"  # --config quickstart
    if p.is_dir():
        raise ConfigError(f"config {str(path)!r} is a directory; give a YAML file or a name in configs/")
    if not p.is_file():
        names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
        raise ConfigError(f"config file {str(path)!r} not found; built-in configs: {', '.join(names) or 'none'}")
    try:
        data = yaml_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not a text (UTF-8) YAML file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections, got {type(data).__name__}")
    return data


def _layer(cfg: Config, items: list[tuple[str, Any]], from_cli: bool) -> None:
    firsts = {f"{n}.{k}" for n, s in cfg._sections.items() for k in getattr(s, "set_first", ())}
    for key, value in sorted(items, key=lambda kv: kv[0] not in firsts):
        _apply(cfg, str(key), value, from_cli)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] | Sequence[tuple[str, Any]] | dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
) -> Config:
    """Build and check a :class:`Config`: defaults <- ``base`` <- YAML file ``path`` <- ``overrides``.

    Args:
        path: A YAML file, or the name of a file in ``configs/`` (``"quickstart"``).
        overrides: ``["--train.lr", "0.1"]``, ``[("train.lr", "0.1")]`` or ``{"train.lr": 0.1}``.
        base: A config dict applied before the file (e.g. a finished run's resolved config).
        only: Build and check only these sections; the others are kept as read (a stage that needs a
            run's ``supernet`` and ``data`` does not rebuild, say, the scorer of its ``score`` section).

    Example:
        >>> load_config(None, {"run.seed": 4, "score.scorer": "no_such_scorer"}, only=["run"]).run.seed
        4
    """
    cfg = Config()
    if only is not None:
        cfg._sections = {name: section for name, section in cfg._sections.items() if name in only}
    if base:
        from genas.errors import quiet_deprecations

        with quiet_deprecations():  # a recorded config is read as it was written, old spellings included
            _layer(cfg, list(base.items()), from_cli=False)
    if path is not None:
        _layer(cfg, list(_read_yaml(path).items()), from_cli=False)
    if overrides:
        if isinstance(overrides, dict):
            _layer(cfg, list(overrides.items()), from_cli=False)
        else:
            items = list(overrides)
            if items and isinstance(items[0], str):
                rest, pairs = split_overrides(items)
                if rest:
                    raise ConfigError(f"unexpected argument {rest[0]!r}; overrides are written --section.key value")
            else:
                pairs = items
            _layer(cfg, pairs, from_cli=True)
    return cfg.validate()


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """A plain nested dict of ``cfg`` (YAML- and JSON-serialisable)."""
    return cfg.to_dict()


def dump_config(cfg: Config) -> str:
    """``cfg`` as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
