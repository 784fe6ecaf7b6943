"""Search over a space with a fitness function: algorithms behind one ask/tell interface, and the runner.

Fitness is any callable ``fitness(archs) -> scores`` with higher = better (negate lower-is-better
scorers before passing them).  Algorithms: ``evolution`` (SPOS/GeNAS, SPEC section 4), ``rea``
(regularized evolution) and ``random``; :func:`run_search` drives one with batching, sharding
across ``torchrun`` ranks, history files and exact resume.

Example:
    >>> from genas.spaces import create_space
    >>> from evolution import create_algorithm, run_search
    >>> space = create_space("nb201")
    >>> algo = create_algorithm("evolution", space, seed=0, population=20, topk=5, mutations=8,
    ...                         crossovers=8, iterations=8)
    >>> fitness = lambda archs: [a.ops.count("nor_conv_3x3") for a in archs]
    >>> result = run_search(algo, fitness, None, progress=False)
    >>> str(result.best.arch), result.best.score, result.num_scored
    ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|', 6.0, 160)
"""

from genas.lazy import lazy_exports
from evolution.config import SearchConfig  # registers the `search` config section

__all__ = [
    "ALGORITHMS", "Individual", "SearchAlgorithm", "create_algorithm", "list_algorithms", "algorithm_from_config",
    "Evolution", "RegularizedEvolution", "RandomSearch", "SearchConfig",
    "run_search", "SearchResult", "read_history",
    "Constraint", "count_params", "count_flops",
]  # fmt: skip

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(("ALGORITHMS", "Individual", "SearchAlgorithm", "create_algorithm", "list_algorithms",
                     "algorithm_from_config"), "evolution.base"),
    "Evolution": "evolution.spos", "RegularizedEvolution": "evolution.rea", "RandomSearch": "evolution.random_search",
    "run_search": "evolution.runner", "SearchResult": "evolution.runner", "read_history": "evolution.runner",
    "Constraint": "evolution.constraints", "count_params": "genas.counting", "count_flops": "genas.counting",
})  # fmt: skip
