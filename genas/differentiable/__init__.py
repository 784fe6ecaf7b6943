"""Differentiable architecture search: mixed-op supernets, architects (DARTS, DARTS 2nd order, A2M), the search loop.

A branch of the flow that produces an architecture without scorers or evolution: the
architecture parameters alpha of a mixed-op supernet are trained by gradient descent on the
validation half while the weights train on the training half, and the architecture is read off
alpha (``docs/a2m.md``).

Example:
    >>> import torch
    >>> from genas.differentiable import create_mixed_supernet, create_architect, ArchStep
    >>> import torch.nn.functional as F
    >>> net = create_mixed_supernet("nb201", num_classes=10, channels=4, layers=1)
    >>> x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    >>> step = ArchStep(val_loss=lambda arch: F.cross_entropy(net(x, arch), y), arch=net.arch_values())
    >>> grad = create_architect("a2m", rho=1e-2).gradient(step)
    >>> grad["alpha"].shape, str(net.derive(net.mixing_weights())).count("~")
    (torch.Size([6, 5]), 6)
"""

from genas.lazy import lazy_exports

import genas.differentiable.config  # noqa: F401,E402  (registers the differentiable config section; no torch)

_WHERE = {
    "genas.differentiable.architects": ["ARCHITECTS", "Architect", "ArchStep", "DartsArchitect", "Darts2Architect",
                                  "A2MArchitect", "a2m_gradient", "arch_gradient", "create_architect",
                                  "list_architects", "register_architect"],
    "genas.differentiable.config": ["DifferentiableConfig"],
    "genas.differentiable.mixed": ["MIXED_SUPERNETS", "MixedOpSupernet", "NB201MixedOp", "DartsMixedOp", "EdgeRef",
                             "create_mixed_supernet", "mixed_op"],
    "genas.differentiable.search": ["DifferentiableSearch", "batch_stats_only"],
    "genas.differentiable.variants": ["Variant", "VariantSet"],
}  # fmt: skip
__all__ = [name for names in _WHERE.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _WHERE.items() for name in names})
