"""Zero-cost proxies: scores of an architecture at initialisation, with no trained supernet.

Each proxy reads a freshly initialised network of the architecture and a batch of labelled
training images from ``ctx.fresh`` (:class:`scorers.fresh.FreshNetworks`, built by
``ScoringContext.for_data``), so it runs before, or instead of, any supernet training:

    ``grad_norm``, ``snip``, ``grasp``, ``fisher``, ``synflow``  (``scorers/saliency.py``;
    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021),
    ``jacov``, ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021),
    ``zen`` (Lin et al., "Zen-NAS", ICCV 2021)  (``scorers/activation.py``),
    ``params``, ``flops``: the size baselines every paper reports (this module).

They take part in sums like any scorer (``angle+0.5*synflow``, ``na:jacov``); in a sum, the
saliency sums that span orders of magnitude (``grad_norm``, ``snip``, ``fisher``, ``synflow``)
enter as their natural logarithm.  ``docs/scorers.md`` lists every difference from the
reference code.

Example:
    >>> from genas.config import DataConfig
    >>> from scorers import ScoringContext, create_scorer
    >>> ctx = ScoringContext.for_data(DataConfig(dataset="digits"), "nb201", supernet={"channels": 4, "layers": 1})
    >>> cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    >>> bool(create_scorer("params").score([cell], ctx)[0] > 0)
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genas.counting import count_flops, count_params
from genas.validation import check_int
from scorers.base import Needs, Scorer
from scorers.fresh import FreshNetworks
from scorers.registry import register_scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["ZeroCostScorer", "Params", "Flops", "log_normalized"]


def log_normalized(values: np.ndarray) -> np.ndarray:
    """Natural log of positive scores (0 -> -inf, the worst), for sums of proxies spanning many decades."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(values)


class ZeroCostScorer(Scorer, ABC):
    """Base of the zero-cost proxies: :meth:`measure` one architecture on ``ctx.fresh``.

    Subclasses take their options as explicit keywords and check them in ``__init__``.
    """

    higher_is_better = True
    needs = Needs(supernet=False, fresh_network=True)

    @property
    def owner(self) -> str:
        """How parameter errors name this proxy (``scorer 'snip'``)."""
        return f"scorer {self.name!r}"

    def _batch_size(self, value: Any) -> int:
        return check_int(value, "batch_size", self.owner, 1)

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        fresh = ctx.require_fresh(self.name)
        return np.array([self.measure(ctx.space.parse(a), fresh) for a in archs], dtype=np.float64)

    @abstractmethod
    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        """The proxy's value for ``arch`` (NaN when it is undefined; the engine then uses the worst value)."""


@register_scorer("params", description="parameters of the architecture's network, in millions (baseline)")
class Params(ZeroCostScorer):
    """Number of parameters of the architecture's network, in millions (the baseline of every zero-cost paper)."""

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        return count_params(fresh.network(arch, self.name)) / 1e6


@register_scorer("flops", description="multiply-adds of one forward pass of one image, in millions (baseline)")
class Flops(ZeroCostScorer):
    """Multiply-adds of one forward pass of one image (conv and linear layers), in millions."""

    def measure(self, arch: Any, fresh: FreshNetworks) -> float:
        net = fresh.network(arch, self.name)
        return count_flops(net, (1, *fresh.image_shape), device=fresh.device) / 1e6
