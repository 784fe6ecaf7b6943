"""Pack a dataset's splits into one small file for a remote machine, and unpack it there.

The accelerator machines used for the GPU figures take at most 64 MiB of files per call, which
the full CIFAR-10 arrays (180 MB) exceed. This writes the splits a run needs, exactly as genas
makes them here (e.g. the NB201 halves of CIFAR-10, seed 0), to an npz with ``x_valid`` (see
``genas.data.save_split_npz``), xz-compressed with a byte-delta filter (about 0.66 of raw for
CIFAR images):

    python benchmarks/pack_split.py pack --dataset cifar10 --root ../shared/data/cifar10/cifar10_uint8.npz \\
        --split nb201 --valid 2048 --test 1 --out .carry/c10_nb201.npz.xz
    python benchmarks/pack_split.py unpack .carry/c10_nb201.npz.xz /tmp/c10_nb201.npz   # on the remote side

A run trained on the unpacked file (``--data.options.root /tmp/c10_nb201.npz``) sees the same training
images as one trained on the full arrays with ``--data.options.split nb201``.
"""

from __future__ import annotations

import argparse
import io
import lzma
import tempfile
from pathlib import Path

import numpy as np

from _common import REPO  # noqa: F401  (puts the repository on sys.path)
from genas.data import create_dataset, save_split_npz
from genas.io import atomic_writer

FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 3}, {"id": lzma.FILTER_LZMA2, "preset": 6}]


def pack(args: argparse.Namespace) -> None:
    bundle = create_dataset(args.dataset, root=args.root, split=args.split, seed=args.seed)
    sizes = {k: v for k, v in (("train", args.train), ("valid", args.valid), ("test", args.test)) if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "split.npz"
        save_split_npz(bundle, str(npz), sizes)
        raw = npz.read_bytes()
    packed = lzma.compress(raw, format=lzma.FORMAT_XZ, filters=FILTERS)
    with atomic_writer(args.out, "wb") as fh:
        fh.write(packed)
    print(f"{args.out}: {len(packed) / 2**20:.1f} MiB ({len(packed) / len(raw):.2f} of {len(raw) / 2**20:.1f} MiB raw)")


def unpack(args: argparse.Namespace) -> None:
    raw = lzma.decompress(Path(args.packed).read_bytes())
    with atomic_writer(args.out, "wb") as fh:
        fh.write(raw)
    with np.load(io.BytesIO(raw)) as npz:
        print(f"{args.out}: " + ", ".join(f"{k} {npz[k].shape}" for k in npz.files if k.startswith("x_")))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="write the splits of a dataset, xz-compressed")
    a.add_argument("--dataset", default="cifar10")
    a.add_argument("--root", required=True)
    a.add_argument("--split", default="nb201")
    a.add_argument("--seed", type=int, default=0)
    for part in ("train", "valid", "test"):
        a.add_argument(f"--{part}", type=int, default=None, help=f"keep the first N {part} samples")
    a.add_argument("--out", required=True)
    b = sub.add_parser("unpack", help="decompress a packed file to an npz")
    b.add_argument("packed")
    b.add_argument("out")
    args = p.parse_args(argv)
    pack(args) if args.cmd == "pack" else unpack(args)


if __name__ == "__main__":
    main()
