"""Images/s of NB201 supernet training: genas's trainer vs a plain reference-style loop, side by side.

Setting (issue 2): C=16, N=5, 32x32 RGB input, 10 classes, batch 64, fp32.  The plain loop is
written the way the reference SPOS/RLNAS code does it: NCHW tensors from a ``DataLoader``,
paths drawn with numpy's global RNG, ``optimizer.zero_grad()`` then ``step()``.  Both run on
the same in-memory data, without augmentation, alternating rounds in one process.

    python benchmarks/train_throughput.py                 # CPU, ~2 minutes
    python benchmarks/train_throughput.py --device cuda --amp bf16 --steps 100
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from _common import interleaved, machine, median, print_json, timed, write_result  # noqa: I001
from genas.config import TrainConfig
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


def engine_loop(device: torch.device, data, steps: int, channels_last: bool, amp: str):
    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, channels=16, layers=5, device=device)
    loader = build_loader(data.train, data, 64, train=True, seed=0, augment="none", device=device, channels_last=channels_last)
    cfg = TrainConfig(epochs=10_000, channels_last=channels_last, amp=amp)
    trainer = SupernetTrainer(net, UniformPathSampler(net.space, net.num_search_cells, 0), loader, cfg, device, progress=False)

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
    }  # fmt: skip
    print_json(result)
    print(f"engine {ips['engine']:.1f} img/s vs plain {ips['plain']:.1f} img/s: {result['ratio_engine_vs_plain']:.2f}x")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
