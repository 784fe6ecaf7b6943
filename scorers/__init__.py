"""The scorer registry and the built-in scorers that rank subnets of a trained supernet.

Built-ins: ``accuracy``, ``loss``, ``angle`` (RLNAS), ``flatness`` (GeNAS eq. 4), ``nb201``
(table oracle), and the zero-cost proxies that need no trained supernet (``grad_norm``, ``snip``,
``grasp``, ``fisher``, ``synflow``, ``jacov``, ``naswot``, ``zen``, ``params``, ``flops``; see
``scorers/zero_cost.py``); expressions ``angle+flatness``, ``accuracy+0.5*flatness``, ``na:accuracy``.
Third-party scorers register with :func:`register_scorer` from a ``--plugin`` file or module,
or through the ``genas.scorers`` entry-point group (see ``docs/writing_a_scorer.md``).

Example:
    >>> from scorers import create_scorer, list_scorers
    >>> "flatness" in list_scorers()
    True
    >>> create_scorer("flatness").sigmas
    (0.002, 0.01, 0.02)
"""

from genas.lazy import lazy_exports
from scorers.config import ScoreConfig  # registers the `score` config section
from scorers.base import Needs, Scorer, cached_scores, finalize_scores  # noqa: I001
from scorers.registry import SCORERS, create_scorer, create_scorers, load_plugin, origin_of, parse_expression, register_scorer
from scorers.builtins import list_scorers, scorer_table
from scorers.combine import WeightedSum
from scorers.neighborhood import NeighborhoodAware
from scorers.accuracy import Accuracy, Loss
from scorers.angle import Angle
from scorers.flatness import Flatness, flatness_from_losses
from scorers.oracle import NB201Oracle

__all__ = [
    "SCORERS", "Scorer", "Needs", "ScoringContext", "ScoreConfig", "register_scorer", "create_scorer", "create_scorers",
    "list_scorers", "scorer_table", "load_plugin", "origin_of", "finalize_scores", "cached_scores", "parse_expression",
    "WeightedSum", "NeighborhoodAware", "Accuracy", "Loss", "Angle", "Flatness", "NB201Oracle", "flatness_from_losses",
]  # fmt: skip

# the context holds the supernet and its batches: it pulls in torch, so it loads when first used
__getattr__, __dir__ = lazy_exports(__name__, {"ScoringContext": "scorers.context"})
