"""Tabulated benchmarks: ground-truth accuracies read from files the user points at.

genas never vendors a benchmark table; see :func:`load_nb201_table` for how a path is resolved.

Example:
    >>> from genas.tables import load_nb201_table  # doctest: +SKIP
    >>> table = load_nb201_table("nb201_accuracy.csv")  # doctest: +SKIP
    >>> table.accuracy(table.arch(6111), dataset="cifar10")  # doctest: +SKIP
    94.3733
"""

from genas.tables.nb201 import (
    ACCURACY_COLUMNS,
    NB201_INDEX_RANGE,
    NB201_TABLE_ENV,
    NB201Table,
    codes_to_genes,
    column_name,
    genes_to_codes,
    load_nb201_table,
    normalize_dataset,
)

__all__ = [
    "NB201Table", "load_nb201_table", "normalize_dataset", "column_name", "genes_to_codes", "codes_to_genes",
    "NB201_TABLE_ENV", "NB201_INDEX_RANGE", "ACCURACY_COLUMNS",
]  # fmt: skip
