"""Images/s of NB201 supernet training: genas's trainer vs a plain reference-style loop, side by side.

Setting (issue 2): C=16, N=5, 32x32 RGB input, 10 classes, batch 64, fp32.  The plain loop is
written the way the reference SPOS/RLNAS code does it: NCHW tensors from a ``DataLoader``,
paths drawn with numpy's global RNG, ``optimizer.zero_grad()`` then ``step()``.  Both run on
the same in-memory data, without augmentation, alternating rounds in one process.

``engine`` is the trainer with the default ``train.unsampled_update decay`` (zero-filled gradients,
issue 17), ``engine_freeze`` the same with ``freeze`` (``None`` gradients): their ratio is what the
reference dynamics cost. (``plain`` calls ``zero_grad()``, which is ``set_to_none`` in PyTorch 2.)

``graph`` is the trainer with ``train.step graph`` (issue 16): on CUDA the masked step captured as
one CUDA graph; on CPU it falls back to the eager step (one warning), which is what a user gets
there.  ``graph_uncaptured`` runs the masked step itself without capture (every op of every edge
under one-hot masks): the honest cost of the mask formulation on a device without graphs.

    python benchmarks/train_throughput.py                 # CPU, ~3 minutes
    python benchmarks/train_throughput.py --device cuda --amp bf16 --steps 100
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from _common import interleaved, machine, median, print_json, timed, write_result  # noqa: I001
from supernet.config import TrainConfig
from genas.data import build_loader, create_dataset
from genas.spaces import NB201Arch
from supernet import UniformPathSampler, create_supernet
from supernet.train import SupernetTrainer


def plain_loop(device: torch.device, data, steps: int):
    """Reference-style SPOS loop (numpy global RNG, DataLoader, NCHW, fp32)."""
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, channels=16, layers=5, device=device)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.from_numpy(data.train.images).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(data.train.labels)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True, drop_last=True)
    np.random.seed(0)

    def sample_path():
        cells = []
        for _ in range(net.num_search_cells):
            while True:
                genes = np.random.randint(0, 5, size=6)
                if genes[0] and genes[1:3].any() and genes[3:].any():
                    break
            cells.append(NB201Arch.from_genes(genes.tolist()))
        return tuple(cells)

    def run():
        net.train()
        done = 0
        while done < steps:
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                opt.zero_grad()
                loss = F.cross_entropy(net(xb, sample_path()), yb)
                loss.backward()
                opt.step()
                done += 1
                if done == steps:
                    break

    return run


def engine_loop(device: torch.device, data, steps: int, channels_last: bool, amp: str, step: str = "eager",
                capture: bool = True, unsampled_update: str = "decay"):  # fmt: skip
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, channels=16, layers=5, device=device)
    loader = build_loader(data.train, data, 64, train=True, seed=0, augment="none", device=device, channels_last=channels_last)
    cfg = TrainConfig(epochs=10_000, channels_last=channels_last, amp=amp, step=step, unsampled_update=unsampled_update)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = SupernetTrainer(net, UniformPathSampler(net.space, net.num_search_cells, 0), loader, cfg, device,
                                  progress=False, graph_capture=capture)  # fmt: skip
    for w in caught:
        if "train.step" in str(w.message):
            print(f"note: {w.message}")

    def run():
        trainer.fit(max_steps=steps)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=12, help="training steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args()
    device = torch.device(args.device)
    data = create_dataset("synthetic", limit=64 * 40, seed=0)  # 32x32x3, 10 classes, in memory
    runners = {
        "plain": plain_loop(device, data, args.steps),
        "engine": engine_loop(device, data, args.steps, True, args.amp),
        "engine_nchw": engine_loop(device, data, args.steps, False, args.amp),
        "engine_freeze": engine_loop(device, data, args.steps, True, args.amp, unsampled_update="freeze"),
        "graph": engine_loop(device, data, args.steps, True, args.amp, step="graph"),
        "graph_uncaptured": engine_loop(device, data, args.steps, True, args.amp, step="graph", capture=False),
    }
    for fn in runners.values():  # warm-up (allocator, oneDNN / cuDNN kernel selection)
        fn()
    times = interleaved({k: (lambda f=f: timed(f, device)) for k, f in runners.items()}, args.rounds)
    ips = {k: args.steps * 64 / median(v) for k, v in times.items()}
    result = {
        "benchmark": "train_throughput",
        "setting": {"space": "nb201", "C": 16, "N": 5, "input": "32x32x3", "batch": 64, "amp": args.amp,
                    "steps_per_round": args.steps, "rounds": args.rounds},
        "machine": machine(device),
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "ratio_engine_vs_plain": round(ips["engine"] / ips["plain"], 3),
        "ratio_engine_nchw_vs_plain": round(ips["engine_nchw"] / ips["plain"], 3),
        "ratio_decay_vs_freeze": round(ips["engine"] / ips["engine_freeze"], 3),
        "ratio_graph_vs_engine": round(ips["graph"] / ips["engine"], 3),
        "ratio_graph_uncaptured_vs_engine": round(ips["graph_uncaptured"] / ips["engine"], 3),
        "graph_step": "captured CUDA graph" if device.type == "cuda" else "eager fallback (no CUDA graphs on CPU)",
    }  # fmt: skip
    print_json(result)
    print(f"train.unsampled_update decay {ips['engine']:.1f} img/s vs freeze {ips['engine_freeze']:.1f} img/s: "
          f"{result['ratio_decay_vs_freeze']:.3f}x")
    print(f"engine {ips['engine']:.1f} img/s vs plain {ips['plain']:.1f} img/s: {result['ratio_engine_vs_plain']:.2f}x; "
          f"graph {ips['graph']:.1f} img/s ({result['ratio_graph_vs_engine']:.2f}x the engine), "
          f"uncaptured masked step {ips['graph_uncaptured']:.1f} img/s")  # fmt: skip
    write_result(args.out, result)


if __name__ == "__main__":
    main()
