"""An example genas scorer plugin: ``trained_grad_norm``, a gradient norm on the trained supernet.

trained_grad_norm(a) = || dL/dw ||_2 of the subnet's weights on one held-out batch, computed on the
trained supernet's subnet (BN recalibrated).  The built-in ``grad_norm`` is the zero-cost proxy of
Abdelfattah et al. (ICLR 2021) on a freshly initialised network; this plugin asks the same question of
the trained weights, and shows everything a plugin needs.

Use it without installing anything::

    python tools/evolve.py --plugin examples/scorer_plugin/genas_gradnorm.py --scorer trained_grad_norm
    python tools/evolve.py --plugin examples/scorer_plugin/genas_gradnorm.py --scorer accuracy+0.01*trained_grad_norm

or install the folder (``pip install examples/scorer_plugin``): its ``pyproject.toml`` declares the
entry point ``genas.scorers: trained_grad_norm = genas_gradnorm``, so ``--scorer trained_grad_norm``
works with no ``--plugin`` at all.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scorers import Needs, Scorer, register_scorer


@register_scorer("trained_grad_norm", description="L2 norm of the loss gradient of the trained subnet on one held-out batch")
class TrainedGradNorm(Scorer):
    """Gradient norm of the cross-entropy on ``batches`` held-out batches.

    Args:
        batches: How many validation batches to average the norm over.
    """

    higher_is_better = True
    needs = Needs(supernet=True, data=True)

    def __init__(self, batches: int = 1) -> None:  # explicit options: a misspelt one raises
        if not isinstance(batches, int) or batches < 1:
            raise ValueError(f"trained_grad_norm: 'batches' must be an int >= 1, got {batches!r}")
        self.batches = batches

    def score(self, archs, ctx):
        out = []
        for arch in archs:
            sub = ctx.subnet(arch)  # eval mode, BN statistics recalibrated for this architecture
            params = [p for p in sub.parameters() if p.requires_grad]
            norms = []
            for x, y in ctx.valid_batches[: self.batches]:
                with torch.enable_grad():
                    loss = F.cross_entropy(sub(x), y)
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)).item())
            out.append(float(np.mean(norms)))
        return np.array(out)
