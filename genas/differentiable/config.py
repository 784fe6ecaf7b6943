"""The ``differentiable`` config section: the search protocol, with the A2M reference code as default.

Every field is a YAML key under ``differentiable:``, a command-line override
(``--differentiable.epochs 10``) and a keyword of :class:`DifferentiableConfig` alike; the
architect is a name plus its own options (``--differentiable.architect_options.rho 0.1``, the old
``--differentiable.rho`` with a one-line deprecation warning for one release).  The
defaults are the A2M code's protocol (SPEC section 5): SGD on w (lr 0.025 cosine to 0.001,
momentum 0.9, wd 3e-4, grad clip 5), Adam on alpha (3e-4, betas (0.5, 0.999), wd 1e-3), the
architecture step before the weight step, validation augmentation as the A2M paper sets it per
method (:meth:`DifferentiableConfig.valid_augment_for`), and the genotype of the epoch with the
lowest validation loss (early stopping, patience 10).  AutoDL's NB201 DARTS-V1 protocol is
``weight_decay: 5e-4, nesterov: true, order: weights_first, valid_augment: true, select: last,
patience: null``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, ClassVar

from genas.config import Section, config_section, set_options
from genas.errors import ConfigError
from genas.parsing import coerce, parse_scalar
from genas.schedule import SGD_CONSTRAINTS
from genas.validation import Boolean, Interval, Nullable, OneOf, Text

__all__ = ["DifferentiableConfig", "VariantsConfig"]


_OLD_ARCHITECT_KEYS = ("rho", "eps", "fd")  # differentiable.<key> before differentiable.architect_options.<key>


@config_section("differentiable")
@dataclass
class DifferentiableConfig(Section):
    """Differentiable architecture search (DARTS family) with a pluggable architect."""

    architect: str = "a2m"  # darts | darts2 | a2m (or a registered plugin)
    # the architect's own options, e.g. a2m's {rho: 0.01, eps: 0.01, fd: central}; unset ones keep its defaults
    architect_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    arch_lr: float = 3e-4
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    alpha_init: float = 1e-3  # alpha = alpha_init * randn
    order: str = "arch_first"  # arch_first (DARTS / A2M code) | weights_first (AutoDL NB201)
    valid_augment: bool | None = None  # augment the alpha half; None: per method (valid_augment_for)
    select: str = "best_valid"  # best_valid (lowest validation loss) | last
    patience: int | None = 10  # stop when more epochs than this passed without a lower validation loss; null: never
    table: str | None = None  # NAS-Bench-201 table for the per-epoch benchmark accuracy ($GENAS_NB201_TABLE)
    channels_last: bool = True  # channels_last memory format (pooling is several times faster on CPU)
    eval_batches: int | None = None  # cap on validation batches per epoch; null: the whole valid half

    set_first: ClassVar[tuple[str, ...]] = ("architect",)
    constraints: ClassVar[dict[str, Any]] = {
        "architect": Text(), **SGD_CONSTRAINTS, "arch_lr": Interval(float, 0.0, 100.0, "right"),
        "arch_weight_decay": Interval(float, 0.0, 1.0), "alpha_init": Interval(float, 0.0, 10.0),
        "order": OneOf(("arch_first", "weights_first")), "valid_augment": Nullable(Boolean()),
        "select": OneOf(("best_valid", "last")), "patience": Nullable(Interval(int, 1, 100_000)),
        "table": Nullable(Text()), "channels_last": Boolean(), "eval_batches": Nullable(Interval(int, 1)),
    }  # fmt: skip

    def set(self, key: str, value: Any, from_cli: bool) -> None:
        """``architect`` drops the options the new architect does not take; its options are checked by name here."""
        from genas.differentiable.architects import architect_options

        if key == "architect":
            super().set(key, value, from_cli)
            taken = architect_options(self.architect)  # an unknown name fails here, with a suggestion
            self.architect_options = {k: v for k, v in self.architect_options.items() if k in taken}
            return
        if key == "architect_options":
            self.__dict__["architect_options"] = {}  # a mapping replaces the earlier layer's
        if set_options("differentiable", "architect_options", key, value, from_cli, self._set_option, "{rho: 0.1}"):
            return
        if key in _OLD_ARCHITECT_KEYS:  # the spelling before architect_options (a2m's rho, eps, fd)
            from genas.errors import deprecated

            deprecated(f"differentiable.{key} (--differentiable.{key})",
                       f"differentiable.architect_options.{key} (--differentiable.architect_options.{key})")
            if key in architect_options(self.architect):  # as before: ignored by an architect without it
                self._set_option(key, value, from_cli)
            return
        if key.partition(".")[0] not in self.keys():
            close = difflib.get_close_matches(key, architect_options(self.architect), n=1, cutoff=0.5)
            if close:
                raise ConfigError(f"unknown config key 'differentiable.{key}'. Did you mean "
                                  f"'differentiable.architect_options.{close[0]}' (an option of architect "
                                  f"{self.architect!r})?")  # fmt: skip
        super().set(key, value, from_cli)

    def _set_option(self, key: str, value: Any, from_cli: bool) -> None:
        import typing

        from genas.differentiable.architects import ARCHITECTS, architect_options

        taken = architect_options(self.architect)
        if key not in taken:
            raise ConfigError(f"architect {self.architect!r} has no option {key!r}; its options: "
                              f"{', '.join(taken) or 'none'} (differentiable.architect_options.NAME)")  # fmt: skip
        if from_cli and isinstance(value, str):
            value = parse_scalar(value)
        hint = typing.get_type_hints(ARCHITECTS.get(self.architect).__init__).get(key, Any)
        self.architect_options[key] = coerce(value, hint, f"differentiable.architect_options.{key}")

    def check(self) -> None:
        from genas.differentiable.architects import create_architect

        create_architect(self.architect, **self.architect_options)  # the name, and the options by its own checks
        betas = self.arch_betas
        if len(betas) != 2 or not all(isinstance(b, float) and 0.0 <= b < 1.0 for b in betas):
            raise ConfigError("The 'arch_betas' parameter of differentiable must be two floats in [0, 1). "
                              f"Got {betas!r} instead.")

    def valid_augment_for(self, space: str, variants: Sequence[str]) -> bool:
        """Whether the batches alpha trains on are augmented: ``valid_augment`` if set, else per method.

        The A2M paper turns validation augmentation off only for DARTS and A2-DARTS on NB201
        (section 5.3, Appendix C.4); AsquaredM's scripts of every variant (beta-DARTS, SDARTS-RS,
        PC-DARTS, DARTS-) keep its default, on, and its DARTS-space search always augments.  So,
        unset: off on NB201 without a variant (any architect), on otherwise.
        """
        if self.valid_augment is not None:
            return self.valid_augment
        return space != "nb201" or bool(variants)

    def architect_kwargs(self) -> dict[str, Any]:
        """The options set for architect ``self.architect`` (the others keep its defaults)."""
        return dict(self.architect_options)


@config_section("variants")
class VariantsConfig(Section):
    """DARTS variants (``--variant beta,pc`` = ``--variants.use beta,pc``) and their options.

    The shape every pluggable kind has: names, and per name an options mapping in the variant's own
    keywords, checked by the variant's constructor: ``--variants.options.pc.k 2``, or in YAML
    ``options: {pc: {k: 2, form: asquaredm}}``.  A plugin variant's options are set the same way.
    An option not given keeps the variant's default.  The old flat spelling ``--variants.pc_k 2``
    (``<variant>_<option>``, ``-`` written ``_``) still works for one release, with a one-line
    deprecation warning.

    Args:
        use: Variant names (``beta``, ``sdarts-rs``, ``pc``, ``darts-minus``, ``na`` or a plugin).
        options: Per variant name, its options.
        **old: Options by their old flat spelling (deprecated: one warning line each).
    """

    def __init__(self, use: Sequence[str] | str | None = None, options: dict[str, dict[str, Any]] | None = None,
                 **old: Any) -> None:  # fmt: skip
        self.__dict__.update(use=[], options={})
        self.set("use", [] if use is None else use, from_cli=False)
        self.set("options", dict(options or {}), from_cli=False)
        for key, value in old.items():
            self.set(key, value, from_cli=False)

    def keys(self) -> list[str]:
        return ["use", "options"]

    def set(self, key: str, value: Any, from_cli: bool) -> None:
        if key == "use":
            self.__dict__["use"] = [v.strip() for v in coerce(value, list[str], "variants.use") if v.strip()]
            return
        if set_options("variants", "options", key, value, from_cli, self._set_variant_options, "{pc: {k: 2}}"):
            return
        owner = _variant_of(key)
        if owner is None:
            raise ConfigError(f"unknown config key 'variants.{key}'. Keys of 'variants': use, options "
                              "(variants.options.NAME.OPTION, e.g. variants.options.pc.k)")  # fmt: skip
        option = key[len(owner.replace("-", "_")) + 1:]
        from genas.errors import deprecated

        deprecated(f"variants.{key} (--variants.{key})", f"variants.options.{owner}.{option} "
                                                         f"(--variants.options.{owner}.{option})")  # fmt: skip
        self._set_option(owner, option, value, from_cli)

    def _set_variant_options(self, key: str, value: Any, from_cli: bool) -> None:
        """``pc`` with a mapping of pc's options, or ``pc.k`` with one value."""
        name, _, option = key.partition(".")
        if option:
            self._set_option(name, option, value, from_cli)
            return
        if not isinstance(value, dict):
            raise ConfigError(f"variants.options.{name} must be a mapping of variant {name!r}'s options, e.g. "
                              f"{{k: 2}}. Got {value!r} instead.")  # fmt: skip
        for opt, item in value.items():
            self._set_option(name, str(opt), item, from_cli)

    def _set_option(self, name: str, option: str, value: Any, from_cli: bool) -> None:
        import typing

        from genas.differentiable.variants import VARIANTS, variant_options

        taken = variant_options(name)  # an unknown variant fails here, with a suggestion
        if option not in taken:
            raise ConfigError(f"variant {name!r} has no option {option!r}; its options: {', '.join(taken) or 'none'} "
                              f"(variants.options.{name}.OPTION)")  # fmt: skip
        if from_cli and isinstance(value, str):
            value = parse_scalar(value)
        if value is None:  # null keeps the default
            self.options.get(name, {}).pop(option, None)
            return
        hint = typing.get_type_hints(VARIANTS.get(name).__init__).get(option, Any)
        self.options.setdefault(name, {})[option] = coerce(value, hint, f"variants.options.{name}.{option}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value, from_cli=False)

    def validate(self) -> VariantsConfig:
        self.check()
        return self

    def check(self) -> None:
        self.build()  # unknown names (with a suggestion), duplicates and bad options fail at load
        for name in self.options:  # options of a variant not in use would be silently ignored
            if self.options[name] and name not in self.use:
                used = f"variants in use: {', '.join(self.use)}" if self.use else "no variant is in use"
                raise ConfigError(f"variants.options.{name} are options of variant {name!r}, which needs --variant "
                                  f"{name} ({used}); add {name} to --variant or drop variants.options.{name}")  # fmt: skip

    def options_for(self, name: str) -> dict[str, Any]:
        """The options set for variant ``name``."""
        return dict(self.options.get(name, {}))

    def build(self) -> Any:
        """The :class:`~genas.differentiable.variants.VariantSet` these keys describe."""
        from genas.differentiable.variants import create_variants

        return create_variants(self.use, {name: self.options_for(name) for name in self.use})

    def to_dict(self) -> dict[str, Any]:
        return {"use": list(self.use), "options": {k: dict(v) for k, v in self.options.items() if v}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VariantsConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"VariantsConfig(use={self.use!r}, options={self.to_dict()['options']!r})"


def _variant_of(key: str) -> str | None:
    """The registered variant whose old flat option ``key`` is (``pc_k`` -> ``pc``); None if none."""
    from genas.differentiable.variants import VARIANTS

    owners = [v for v in VARIANTS.list() if key.startswith(v.replace("-", "_") + "_")]
    return max(owners, key=len) if owners else None
