"""Seconds per differentiable-search step of ``darts``, ``darts2`` and ``a2m``, side by side, and the ratio to ``darts``.

Setting (issue 12): the NB201 mixed-op supernet, C=16, N=5, 32x32 RGB input, 10 classes,
batch 64, fp32, channels_last.  One step = one architecture update plus one weight update, the
loop's own ``search_step``.  Contenders, alternating rounds in one process:

* ``darts``, ``darts2``, ``a2m`` (the paper's central difference, 4 alpha gradients);
* ``a2m_forward``: ``fd: forward`` (3 alpha gradients);
* ``a2m_full_backward``: A2M whose alpha passes call ``loss.backward()`` (weight gradients
  computed and thrown away): what skipping the weight gradients saves;
* ``darts_plain_sum``, ``a2m_plain_sum``: the mixed op always as a multiply-add chain (without the
  matrix-vector form it uses in architecture passes);
* ``a2m_vmap_pair``: the two finite-difference passes joined into one ``torch.func.vmap``-ed
  pass (NCHW, since vmap's BN batching gives wrong gradients with channels_last on CPU here).

    python benchmarks/a2m_overhead.py                     # CPU, one thread: ~10 minutes
    python benchmarks/a2m_overhead.py --channels 8 --layers 1 --rounds 2
"""

from __future__ import annotations

import argparse

import torch

from _common import interleaved, machine, median, print_json, timed, write_result  # noqa: I001
from genas.differentiable import A2MArchitect, DifferentiableConfig, DifferentiableSearch, arch_gradient
from genas.differentiable.architects import create_architect
from genas.differentiable.mixed import create_mixed_supernet


def plain_sum(ops, x, weights, edge):
    """The mixed op as a multiply-add chain in every pass."""
    w = weights[edge.group][edge.index]
    out = None
    for k, op in enumerate(ops.values(), start=1):
        out = w[k] * op(x) if out is None else out + w[k] * op(x)
    return out


class FullBackwardA2M(A2MArchitect):
    """A2M whose four gradients run a full backward (weight gradients too), as a naive loop would."""

    def gradient(self, step):
        def grad(arch):
            leaves = {k: v.detach().requires_grad_(True) for k, v in arch.items()}
            for p in step.weights:
                p.grad = None
            step.val_loss(leaves).backward()
            return {k: v.grad for k, v in leaves.items()}

        g0 = grad(step.arch)
        tilde = {k: step.arch[k] + self.rho * g0[k] for k in g0}
        g1 = grad(tilde)
        gp = grad({k: tilde[k] + self.eps * g1[k] for k in g1})
        gm = grad({k: tilde[k] - self.eps * g1[k] for k in g1})
        return {k: g1[k] + self.rho * (gp[k] - gm[k]) / (2 * self.eps) for k in g1}


class VmapPairA2M(A2MArchitect):
    """A2M with g+ and g- from one vmapped pass over the stacked pair alpha~ +- eps g1."""

    def gradient(self, step):
        g0 = arch_gradient(step.val_loss, step.arch)
        tilde = {k: step.arch[k] + self.rho * g0[k] for k in g0}
        g1 = arch_gradient(step.val_loss, tilde)
        pair = {k: torch.stack([tilde[k] + self.eps * g1[k], tilde[k] - self.eps * g1[k]]) for k in g1}
        with torch.no_grad():
            g = torch.func.vmap(torch.func.grad(step.val_loss))(pair)
        return {k: g1[k] + self.rho * (g[k][0] - g[k][1]) / (2 * self.eps) for k in g1}


class _Fixed:
    """A loader stand-in that yields the same batch (timing only)."""

    def __init__(self, batch):
        self.batch = batch

    def __len__(self):
        return 1

    def iter_from(self, epoch, step):
        yield self.batch


def contender(architect, args, channels_last: bool, edge_fn=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model = create_mixed_supernet("nb201", num_classes=10, channels=args.channels, layers=args.layers, seed=0)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if edge_fn is not None:
        model.edge_fn = edge_fn
    model.train()
    loader = _Fixed((x, y))
    search = DifferentiableSearch(model, architect, loader, loader, loader, DifferentiableConfig(epochs=10_000))

    def run():
        for _ in range(args.steps):
            search.search_step((x, y), (x, y))

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=2, help="search steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-vmap", action="store_true", help="leave out the vmap contender")
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    runners = {
        "darts": contender(create_architect("darts"), args, True),
        "darts2": contender(create_architect("darts2"), args, True),
        "a2m": contender(create_architect("a2m"), args, True),
        "a2m_forward": contender(create_architect("a2m", fd="forward"), args, True),
        "a2m_full_backward": contender(FullBackwardA2M(), args, True),
        "darts_plain_sum": contender(create_architect("darts"), args, True, plain_sum),
        "a2m_plain_sum": contender(create_architect("a2m"), args, True, plain_sum),
    }
    if not args.no_vmap:
        runners["a2m_vmap_pair"] = contender(VmapPairA2M(), args, False)
        runners["a2m_nchw"] = contender(create_architect("a2m"), args, False)
    for fn in runners.values():  # warm-up (allocator, oneDNN kernel selection)
        fn()
    times = interleaved({k: (lambda f=f: timed(f, device)) for k, f in runners.items()}, args.rounds)
    per_step = {k: median(v) / args.steps for k, v in times.items()}
    result = {
        "benchmark": "a2m_overhead",
        "setting": {"space": "nb201", "C": args.channels, "N": args.layers, "input": "32x32x3", "batch": args.batch,
                    "steps_per_round": args.steps, "rounds": args.rounds, "threads": args.threads},
        "machine": machine(device),
        "seconds_per_step": {k: round(v, 4) for k, v in per_step.items()},
        "ratio_to_darts": {k: round(v / per_step["darts"], 3) for k, v in per_step.items()},
    }  # fmt: skip
    if "a2m_vmap_pair" in per_step:
        result["ratio_vmap_pair_to_a2m_nchw"] = round(per_step["a2m_vmap_pair"] / per_step["a2m_nchw"], 3)
    print_json(result)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
