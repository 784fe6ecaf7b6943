"""genas's zero-cost proxies against the SamsungLabs/zero-cost-nas reference code, same weights, same batch.

Builds the reference NB201 network (``foresight/models/nasbench2.py``) of each architecture, copies
the weights of genas's fresh network into it (conv / linear layers matched by weight shape in
execution order), and prints, per proxy, the reference's ``calc_measure`` summed as its
``find_measures`` does next to genas's score on the same 64 CIFAR-10 training images.  Needs a
checkout of the reference (``git clone https://github.com/SamsungLabs/zero-cost-nas``); it is
imported from there, not copied.  Results: ``docs/scorers.md`` ("Checked against the reference code").

    python benchmarks/zero_cost_reference.py --reference ../zero-cost-nas \\
        --data-root ../shared/data/cifar10/cifar10_uint8.npz
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from _common import write_result  # noqa: F401  (puts the checkout on sys.path)

ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
)
# reference measure -> (genas scorer, its options)
PAIRS = {"grad_norm": ("grad_norm", {}), "snip": ("snip", {}), "grasp": ("grasp", {}), "fisher": ("fisher", {}),
         "synflow": ("synflow", {}), "synflow_bn": ("synflow", {"bn": "train"}), "jacob_cov": ("jacov", {})}  # fmt: skip


def _layers_in_execution_order(net, x):
    import torch
    from torch import nn

    order = []
    handles = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
               for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]  # fmt: skip
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return order


def copy_weights(src, dst, x) -> None:
    """Copy ``src``'s conv/linear weights into ``dst``: the k-th layer of a weight shape to the k-th."""
    import torch

    by_shape = defaultdict(list)
    for m in _layers_in_execution_order(src, x):
        by_shape[tuple(m.weight.shape)].append(m)
    seen: dict[tuple, int] = defaultdict(int)
    with torch.no_grad():
        for m in _layers_in_execution_order(dst, x):
            shape = tuple(m.weight.shape)
            other = by_shape[shape][seen[shape]]
            seen[shape] += 1
            m.weight.copy_(other.weight)
            if m.bias is not None:
                m.bias.copy_(other.bias)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True, help="a SamsungLabs/zero-cost-nas checkout")
    p.add_argument("--data-root", required=True, help="CIFAR-10 npz file or folder")
    p.add_argument("archs", nargs="*", default=list(ARCHS))
    args = p.parse_args()
    sys.path.insert(0, args.reference)
    import torch
    import torch.nn.functional as F
    from foresight.models import nasbench2
    from foresight.pruners import measures

    from genas.config import DataConfig
    from scorers import ScoringContext, create_scorer

    torch.set_num_threads(1)
    ctx = ScoringContext.for_data(DataConfig(dataset="cifar10", options={"root": args.data_root}), "nb201", seed=0)
    x, y = ctx.fresh.images(64, "reference check")
    worst = 0.0
    for arch in args.archs:
        ref = nasbench2.get_model_from_arch_str(arch, 10)
        copy_weights(ctx.fresh.network(arch), ref, x[:2])
        ref.train()
        print(arch)
        for name, (ours, opts) in PAIRS.items():
            r = measures.calc_measure(name, ref, "cpu", x.clone(), y.clone(), loss_fn=F.cross_entropy, split_data=1)
            r = float(sum(t.sum() for t in r)) if isinstance(r, list) else float(r)
            g = float(create_scorer(ours, **opts).score([arch], ScoringContext.for_data(ctx.fresh.bundle, "nb201"))[0])
            rel = abs(g - r) / abs(r)
            worst = max(worst, rel)
            print(f"  {name:10s} reference {r:<16.9g} genas {g:<16.9g} relative difference {rel:.1e}")
    print(f"largest relative difference: {worst:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
