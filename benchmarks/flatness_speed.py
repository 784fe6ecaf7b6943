"""Seconds per candidate of GeNAS flatness: genas's batched engine vs the reference procedure.

Setting (issue 3): an NB201 subnet of a C=16, N=5 supernet, 32x32 RGB input, 3 sigmas
(2e-3, 1e-2, 2e-2), 1,024 validation images in batches of 256.  Side by side, alternating:

* ``reference``: the GeNAS code's procedure: ``deepcopy`` of the whole supernet, Gaussian noise
  added to every parameter (cumulatively, one copy), one full pass over the images per sigma,
  NCHW, ``no_grad``;
* ``engine``: ``Flatness`` as the search runs it (active path only, noise keyed by parameter name,
  channels_last), with its default engine for the device (``threads`` on CPU: one BN-folded copy
  of the subnet per core; ``vmap`` on CUDA);
* ``engine_<name>``: each other engine explicitly (``loop``: sequential in place; ``vmap``;
  ``threads``), so their costs can be compared; on CUDA ``engine_tf32``, the default engine with
  TF32 convolutions allowed (not exact; for comparison);
* ``engine_grouped``: the ``grouped`` engine (the 3 perturbed copies as convolution groups with BN
  folded, one forward per batch); ``grouped_4cand`` / ``loop_4cand``: four candidates (the best
  cell and three seeded samples) scored in one grouped forward (``candidates=4``) against the loop
  engine one by one, both reported per candidate; on CUDA also ``engine_grouped_tf32`` and
  ``engine_grouped_bf16`` (inexact). The bf16 loss error of the grouped engine against exact fp32
  is printed on every device (``grouped_bf16_max_loss_error``);
* ``floor``: the same number of plain forwards of the subnet (3 x 1,024 images, channels_last),
  i.e. the cost of the evaluation alone; ``floor_nchw`` the same in NCHW; on CUDA
  ``floor_merged`` the same images in one forward of 1,024 per sigma (as the engine joins them).
  ``engine_vs_floor`` divides by the fastest of these. The floors and the engine compute in
  exact fp32 (TF32 off, see ``scorers/perturb.py``); the reference runs with PyTorch's defaults,
  as the GeNAS code does (cuDNN TF32 on for convolutions).

BN recalibration is excluded from every contender (the reference does not do it either).

    python benchmarks/flatness_speed.py                    # CPU, ~4 minutes
    python benchmarks/flatness_speed.py --device cuda --rounds 5
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
import torch.nn.functional as F

from _common import interleaved, machine, median, print_json, timed, write_result  # noqa: I001
from scorers import ScoringContext, create_scorer
from scorers.perturb import exact_fp32
from supernet import create_supernet

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SIGMAS = (2e-3, 1e-2, 2e-2)


def reference(net, arch, batches):
    """GeNAS ``tester_wlm.py``: one deepcopy, cumulative noise on every parameter, a pass per sigma."""

    def run():
        with torch.no_grad():
            model = copy.deepcopy(net).eval()
            losses, prev = [], 0.0
            for sigma in SIGMAS:
                for p in model.parameters():
                    p.add_(torch.normal(0, sigma - prev, size=p.shape, device=p.device))
                prev = sigma
                total = sum(F.cross_entropy(model(x, arch), y).item() for x, y in batches)
                losses.append(total / len(batches))
        return losses

    return run


def floor(sub, batches):
    def run():
        with torch.no_grad(), exact_fp32():
            for _ in SIGMAS:
                for x, _y in batches:
                    sub(x)

    return run


def engine(ctx, arch, batching, **options):
    scorer = create_scorer("flatness", sigmas=list(SIGMAS), batching=batching, **options)

    def run():
        scorer.losses(arch, ctx)

    return run


def several(ctx, archs, batching, candidates=1):
    """Flatness of ``archs``, ``candidates`` per forward; the benchmark divides its time by len(archs)."""
    scorer = create_scorer("flatness", sigmas=list(SIGMAS), batching=batching, candidates=candidates)

    def run():
        if candidates > 1:
            scorer.grouped_losses(archs, ctx)
        else:
            for a in archs:
                scorer.losses(a, ctx)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, channels=16, layers=5, device=device).eval()
    arch = net.space.parse(ARCH)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    nchw = [(x[i : i + args.batch].to(device), y[i : i + args.batch].to(device)) for i in range(0, args.images, args.batch)]
    cl = [(a.contiguous(memory_format=torch.channels_last), b) for a, b in nchw]
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    ctx = ScoringContext(net_cl, device=device, valid_batches=cl)  # no train batches: no BN recalibration
    default = "loop" if device.type == "cuda" else "threads"
    runners = {"reference": reference(net, arch, nchw), "engine": engine(ctx, arch, default)}
    runners.update({f"engine_{b}": engine(ctx, arch, b) for b in ("loop", "threads", "vmap") if b != default})
    runners["engine_grouped"] = engine(ctx, arch, "grouped")
    four = [arch] + [net.space.sample(np.random.default_rng(s)) for s in range(3)]
    runners["grouped_4cand"] = several(ctx, four, "grouped", candidates=4)
    runners["loop_4cand"] = several(ctx, four, "loop")
    runners.update({"floor": floor(net_cl.subnet(arch).eval(), cl), "floor_nchw": floor(net.subnet(arch).eval(), nchw)})
    if device.type == "cuda":
        runners["engine_tf32"] = engine(ctx, arch, default, tf32=True)  # inexact: shows what TF32 would buy
        runners["engine_grouped_tf32"] = engine(ctx, arch, "grouped", tf32=True)
        runners["engine_grouped_bf16"] = engine(ctx, arch, "grouped", bf16=True)
        merged = [(torch.cat([b[0] for b in cl]), torch.cat([b[1] for b in cl]))]
        runners["floor_merged"] = floor(net_cl.subnet(arch).eval(), merged)
    for fn in runners.values():
        fn()  # warm-up
    times = interleaved({k: (lambda f=f: timed(f, device)) for k, f in runners.items()}, args.rounds)
    sec = {k: median(v) / (4 if k.endswith("_4cand") else 1) for k, v in times.items()}
    exact = create_scorer("flatness", sigmas=list(SIGMAS), batching="grouped").losses(arch, ctx)
    bf16_err = float(np.abs(create_scorer("flatness", sigmas=list(SIGMAS), batching="grouped", bf16=True).losses(arch, ctx)
                            - exact).max())  # fmt: skip
    best = min((k for k in sec if k.startswith("floor")), key=sec.get)  # the fastest plain forwards
    result = {
        "benchmark": "flatness_speed",
        "setting": {"space": "nb201", "C": 16, "N": 5, "input": "32x32x3", "sigmas": list(SIGMAS),
                    "images": args.images, "batch": args.batch, "rounds": args.rounds, "engine_batching": default},
        "machine": machine(device),
        "seconds_per_candidate": {k: round(v, 4) for k, v in sec.items()},
        "speedup_engine_vs_reference": round(sec["reference"] / sec["engine"], 3),
        "floor_used": best,
        "engine_vs_floor": round(sec["engine"] / sec[best], 3),
        "speedup_floor_vs_reference": round(sec["reference"] / sec[best], 3),
        "speedup_grouped_vs_engine": round(sec["engine"] / sec["engine_grouped"], 3),
        "speedup_grouped_4cand_vs_loop_4cand": round(sec["loop_4cand"] / sec["grouped_4cand"], 3),
        "grouped_bf16_max_loss_error": float(f"{bf16_err:.3g}"),
        "spread": {k: [round(min(v), 4), round(max(v), 4)] for k, v in times.items()},
    }  # fmt: skip
    print_json(result)
    print(f"engine {sec['engine']:.3f} s/candidate, reference {sec['reference']:.3f} s: "
          f"{result['speedup_engine_vs_reference']:.2f}x faster; {result['engine_vs_floor']:.3f}x the floor ({best})")  # fmt: skip
    write_result(args.out, result)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
