"""Architecture-space geometry: neighbourhoods, paths and barriers (A2M paper, sections 4.1 and 5.1).

Everything takes the architecture objects of a search space and an accuracy *source*: any
callable ``source(archs) -> np.ndarray`` (:class:`TableSource`, :class:`CallableSource`,
:class:`TrainToThresholdSource`, or a supernet scorer).

Example:
    >>> from genas.tables import load_nb201_table  # doctest: +SKIP
    >>> from genas.analysis.landscape import TableSource, accuracy_path, path_tree
    >>> table = load_nb201_table()  # doctest: +SKIP
    >>> tree = path_tree(table.arch(81), table.arch(1459))  # doctest: +SKIP
    >>> accuracy_path(tree, TableSource(table, "cifar10")).barrier().raw  # doctest: +SKIP
"""

from genas.analysis.landscape.neighborhood import (
    NeighborTree,
    nb201_neighbor_codes,
    nb201_neighborhood_size,
    neighbor_tree,
    neighborhood,
    resolve_space,
    sample_tree_neighbors,
    single_moves,
)
from genas.analysis.landscape.paper import DATASET_NAMES, PAPER_KS, PAPER_MODEL_ACCURACY, PAPER_PAIRS, PAPER_TIERS
from genas.analysis.landscape.paths import BARRIER_FORMS, AccuracyPath, Barrier, PathTree, accuracy_path, barrier, path_tree
from genas.analysis.landscape.sources import AccuracySource, CallableSource, ScorerSource, TableSource, evaluate
from genas.analysis.landscape.stats import (
    KSResult,
    ks_statistic,
    neighborhood_accuracies,
    neighborhood_ks,
    parse_tier,
    pooled_neighbor_accuracies,
    select_tier,
    tier_ks,
)
from genas.analysis.landscape.training import TrainRecord, TrainToThresholdSource

__all__ = [
    # sources
    "AccuracySource", "TableSource", "CallableSource", "ScorerSource", "TrainToThresholdSource", "TrainRecord", "evaluate",
    # neighbourhoods
    "neighborhood", "NeighborTree", "neighbor_tree", "sample_tree_neighbors", "single_moves", "resolve_space",
    "nb201_neighbor_codes", "nb201_neighborhood_size",
    # paths and barriers
    "PathTree", "path_tree", "AccuracyPath", "accuracy_path", "Barrier", "barrier", "BARRIER_FORMS",
    # statistics
    "KSResult", "select_tier", "pooled_neighbor_accuracies", "ks_statistic", "tier_ks", "neighborhood_ks",
    "neighborhood_accuracies", "parse_tier",
    # the paper's settings
    "PAPER_TIERS", "PAPER_PAIRS", "PAPER_KS", "PAPER_MODEL_ACCURACY", "DATASET_NAMES",
]  # fmt: skip
