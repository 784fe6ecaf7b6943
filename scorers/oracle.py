"""``nb201``: the NAS-Bench-201 table as a scorer (an oracle for benchmarking search algorithms)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scorers.base import Needs, Scorer
from scorers.registry import register_scorer

if TYPE_CHECKING:
    from scorers.context import ScoringContext

__all__ = ["NB201Oracle"]


@register_scorer("nb201", description="NAS-Bench-201 table accuracy (oracle; table via table= or $GENAS_NB201_TABLE)")
class NB201Oracle(Scorer):
    """Looks architectures up in the NAS-Bench-201 accuracy table (in percent).

    Args:
        dataset: ``cifar10``, ``cifar10-valid``, ``cifar100`` or ``imagenet16-120`` (aliases accepted).
        metric: ``valid`` or ``test`` (None: the table's default for the dataset).
        epochs: 200 or 12.
        table: Path of the table CSV (None: ``$GENAS_NB201_TABLE``).
    """

    higher_is_better = True
    needs = Needs(supernet=False)

    def __init__(self, dataset: str = "cifar10-valid", metric: str | None = None, epochs: int = 200, table: str | None = None) -> None:
        from genas.tables import column_name, load_nb201_table

        self.dataset, self.metric, self.epochs, self.table = dataset, metric, epochs, table
        self._column = column_name(dataset, metric, epochs)  # validates the names early
        self._table = load_nb201_table(table)

    def normalized(self, values: np.ndarray) -> np.ndarray:
        return values / 100.0

    def score(self, archs: Sequence[Any], ctx: ScoringContext) -> np.ndarray:
        if ctx.space.name != "nb201":
            from genas.errors import ConfigError

            raise ConfigError(f"scorer 'nb201' scores NAS-Bench-201 architectures, not the {ctx.space.name!r} space")
        parsed = [ctx.space.parse(a) for a in archs]
        return np.asarray(self._table.accuracy(parsed, dataset=self.dataset, metric=self.metric, epochs=self.epochs), dtype=np.float64)

    def options(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metric": self.metric, "epochs": self.epochs, "table": self.table}
