"""Analysis downstream of scoring: ranking quality against NAS-Bench-201 and the architecture landscape.

* :mod:`genas.analysis.ranking` — Kendall tau-b, Spearman and top-k precision of scores against a table.
* :mod:`genas.analysis.rank_cli` — ``python tools/rank_nb201.py``: scorers vs the NAS-Bench-201 table.
* :mod:`genas.analysis.landscape` — neighbourhoods, paths and barriers (A2M paper), over any accuracy source
  (the table, a scorer on a trained supernet, or training to a loss threshold).

This package sits below every stage it reads (``genas``, ``supernet``, ``scorers``); nothing imports it.
"""
