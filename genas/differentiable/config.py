"""The ``differentiable`` config section: the search protocol, with the A2M reference code as default.

Every field is a YAML key under ``differentiable:``, a command-line override
(``--differentiable.rho 0.1``) and a keyword of :class:`DifferentiableConfig` alike.  The
defaults are the A2M code's protocol (SPEC section 5): SGD on w (lr 0.025 cosine to 0.001,
momentum 0.9, wd 3e-4, grad clip 5), Adam on alpha (3e-4, betas (0.5, 0.999), wd 1e-3), the
architecture step before the weight step, validation augmentation as the A2M paper sets it per
method (:meth:`DifferentiableConfig.valid_augment_for`), and the genotype of the epoch with the
lowest validation loss (early stopping, patience 10).  AutoDL's NB201 DARTS-V1 protocol is
``weight_decay: 5e-4, nesterov: true, order: weights_first, valid_augment: true, select: last,
patience: null``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, ClassVar

from genas.config import Section, config_section
from genas.errors import ConfigError
from genas.validation import Boolean, Interval, Nullable, OneOf, Text

__all__ = ["DifferentiableConfig", "VariantsConfig"]


@config_section("differentiable")
@dataclass
class DifferentiableConfig(Section):
    """Differentiable architecture search (DARTS family) with a pluggable architect."""

    architect: str = "a2m"  # darts | darts2 | a2m (or a registered plugin)
    rho: float = 1e-2  # a2m: architecture-neighbourhood radius (NB201 1e-2, DARTS space 1e-1)
    eps: float = 1e-2  # a2m: finite-difference step
    fd: str = "central"  # a2m: central (paper, 4 gradients) | forward (3 gradients)
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

    constraints: ClassVar[dict[str, Any]] = {
        "architect": Text(), "rho": Interval(float, 0.0, None, "neither"), "eps": Interval(float, 0.0, None, "neither"),
        "fd": OneOf(("central", "forward")), "epochs": Interval(int, 1, 100_000),
        "lr": Interval(float, 0.0, 100.0, "right"), "lr_min": Interval(float, 0.0, "lr"),
        "momentum": Interval(float, 0.0, 1.0, "left"), "nesterov": Boolean(), "weight_decay": Interval(float, 0.0, 1.0),
        "grad_clip": Nullable(Interval(float, 0.0, None, "neither")), "arch_lr": Interval(float, 0.0, 100.0, "right"),
        "arch_weight_decay": Interval(float, 0.0, 1.0), "alpha_init": Interval(float, 0.0, 10.0),
        "order": OneOf(("arch_first", "weights_first")), "valid_augment": Nullable(Boolean()),
        "select": OneOf(("best_valid", "last")), "patience": Nullable(Interval(int, 1, 100_000)),
        "table": Nullable(Text()), "channels_last": Boolean(), "eval_batches": Nullable(Interval(int, 1)),
    }  # fmt: skip

    def check(self) -> None:
        from genas.differentiable.architects import ARCHITECTS

        ARCHITECTS.get(self.architect)  # an unknown name fails here, with a suggestion
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
        """The section's values of the options architect ``self.architect`` accepts (``rho``, ``eps``, ``fd``)."""
        from genas.differentiable.architects import architect_options

        accepted = architect_options(self.architect)
        return {k: getattr(self, k) for k in ("rho", "eps", "fd") if k in accepted}


@config_section("variants")
@dataclass
class VariantsConfig(Section):
    """DARTS variants (``--variant beta,pc`` = ``--variants.use beta,pc``) and their options.

    An option of variant ``v`` is the key ``<v>_<option>`` with ``-`` written ``_``
    (``pc_k``, ``sdarts_rs_eps_max``); ``null`` keeps the variant's default.
    """

    use: list[str] = field(default_factory=list)  # beta | sdarts-rs | pc | darts-minus | na (or a plugin)
    beta_init: float | None = None  # beta: lambda at epoch 0 (default 0)
    beta_slope: float | None = None  # beta: lambda increase per epoch (default 0.5)
    beta_normal_weight: float | None = None  # beta: weight of the normal alphas' term (DARTS space; default 1)
    beta_reduce_weight: float | None = None  # beta: weight of the reduce alphas' term (DARTS space; default 1)
    sdarts_rs_eps_min: float | None = None  # sdarts-rs: noise half-width at epoch 0 (default 0.03)
    sdarts_rs_eps_max: float | None = None  # sdarts-rs: half-width reached at the last epoch (default 0.3)
    pc_k: int | None = None  # pc: 1/K of the channels through the mixed op (default 4)
    pc_edge_norm: bool | None = None  # pc: edge-normalisation betas (default: true for form pcdarts, false asquaredm)
    pc_warmup: int | None = None  # pc: epochs without architecture steps (default 0; PC-DARTS code 15)
    pc_form: str | None = None  # pc: pcdarts (per edge, default) | asquaredm (per cell, AsquaredM's NB201 code)
    darts_minus_beta0: float | None = None  # darts-minus: auxiliary skip weight at epoch 0 (default 1)
    darts_minus_source: str | None = None  # darts-minus: edge (the edge's input, default) | cell (AsquaredM NB201)
    na_size: int | None = None  # na: edges changed per neighbour (default 1)
    na_samples: int | None = None  # na: neighbours averaged with the architecture (default 3)
    na_margin: float | None = None  # na: added to the drawn op's logit of a neighbour (default 0)

    constraints: ClassVar[dict[str, Any]] = {
        "beta_init": Nullable(Interval(float, 0.0, None)), "beta_slope": Nullable(Interval(float, 0.0, None)),
        "beta_normal_weight": Nullable(Interval(float, 0.0, None)),
        "beta_reduce_weight": Nullable(Interval(float, 0.0, None)),
        "sdarts_rs_eps_min": Nullable(Interval(float, 0.0, 1.0)), "sdarts_rs_eps_max": Nullable(Interval(float, 0.0, 1.0)),
        "pc_k": Nullable(Interval(int, 1, None)), "pc_edge_norm": Nullable(Boolean()),
        "pc_warmup": Nullable(Interval(int, 0, None)), "pc_form": Nullable(OneOf(("asquaredm", "pcdarts"))),
        "darts_minus_beta0": Nullable(Interval(float, 0.0, None)),
        "darts_minus_source": Nullable(OneOf(("cell", "edge"))),
        "na_size": Nullable(Interval(int, 0, None)), "na_samples": Nullable(Interval(int, 1, None)),
        "na_margin": Nullable(Interval(float, 0.0, None)),
    }  # fmt: skip

    def check(self) -> None:
        self.use = [v.strip() for v in self.use if v.strip()]
        self.build()  # unknown names (with a suggestion), duplicates and bad options fail at load
        for key, value in self.to_dict().items():  # an option of a variant not in use would be silently ignored
            owner = self._variant_of(key)
            if value is not None and owner is not None and owner not in self.use:
                used = f"variants in use: {', '.join(self.use)}" if self.use else "no variant is in use"
                raise ConfigError(f"variants.{key} is an option of variant {owner!r}, which needs --variant {owner} "
                                  f"({used}); add {owner} to --variant or drop variants.{key}")  # fmt: skip

    @staticmethod
    def _variant_of(key: str) -> str | None:
        """The registered variant whose option ``key`` is (``pc_k`` -> ``pc``); None for ``use``."""
        from genas.differentiable.variants import VARIANTS

        owners = [v for v in VARIANTS.list() if key.startswith(v.replace("-", "_") + "_")]
        return max(owners, key=len) if key != "use" and owners else None

    def options_for(self, name: str) -> dict[str, Any]:
        """The keys set for variant ``name``, without their prefix (``pc_k`` -> ``k``)."""
        prefix = name.replace("-", "_") + "_"
        return {k[len(prefix):]: v for k, v in self.to_dict().items() if k.startswith(prefix) and v is not None}

    def build(self) -> Any:
        """The :class:`~genas.differentiable.variants.VariantSet` these keys describe."""
        from genas.differentiable.variants import create_variants

        return create_variants(self.use, {name: self.options_for(name) for name in self.use})
