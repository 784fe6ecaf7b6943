"""The listing of every scorer (``--list-scorers``).

The built-in scorers register themselves when :data:`scorers.registry.SCORERS` first looks a name
up (the registry knows their modules).  Those modules import torch lazily, so listing the scorers
costs no torch import.
"""

from __future__ import annotations

from scorers.registry import SCORERS

__all__ = ["list_scorers", "scorer_table"]


def list_scorers(pattern: str = "*") -> list[str]:
    """Registered scorer names matching ``pattern`` (built-ins, plugins loaded so far, entry points)."""
    return SCORERS.list(pattern)


def scorer_table() -> list[tuple[str, str, str, str]]:
    """(name, direction, needs, description) of every registered scorer, plus the expression forms."""
    rows = []
    for name in list_scorers():
        entry = SCORERS.entry(name)
        cls = entry.obj
        rows.append((name, "higher" if cls.higher_is_better else "lower", cls.needs.describe(), entry.description))
    rows.append(("A+B, A+0.5*B", "higher", "union", "weighted sum of normalised scores; flatness weight defaults to gamma*beta (GeNAS eq. 5)"))  # fmt: skip
    rows.append(("na:A", "as A", "as A", "neighbourhood-aware: mean of A over the arch and k radius-1 neighbours"))
    return rows
