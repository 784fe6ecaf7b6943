"""Small image datasets the tests write: an ImageFolder tree and WebDataset shards of the same images.

Each image is one solid colour that encodes its number (red = n % 256, green = n // 256, blue =
the class * 40), so a test can read back which file a batch holds even after resizing and
cropping (with ``augment="none"``). PNG keeps the colours exact; JPEG is close enough.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def image_bytes(number: int, label: int, size: int = 40, fmt: str = "PNG") -> bytes:
    from PIL import Image

    colour = (number % 256, number // 256, (label * 40) % 256)
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format=fmt)
    return buf.getvalue()


def write_image_folder(root: Path, classes: int = 3, per_class: int = 40, val_per_class: int = 4, size: int = 40,
                       fmt: str = "PNG") -> Path:  # fmt: skip
    """``root/train/c<k>/<n>.png`` and ``root/val/c<k>/<n>.png``; numbers run over train then val."""
    ext = ".png" if fmt == "PNG" else ".jpg"
    number = 0
    for part, count in (("train", per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = root / part / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                (folder / f"{number:05d}{ext}").write_bytes(image_bytes(number, label, size, fmt))
                number += 1
    return root


def write_shards(root: Path, classes: int = 3, per_class: int = 40, val_per_class: int = 4, size: int = 40,
                 per_shard: int = 25) -> Path:  # fmt: skip
    """``root/train/shard-<i>.tar`` and ``root/val/shard-<i>.tar``: ``<key>.png`` + ``<key>.cls`` pairs."""
    number = 0
    for part, count in (("train", per_class), ("val", val_per_class)):
        (root / part).mkdir(parents=True, exist_ok=True)
        samples = []
        for label in range(classes):
            for _ in range(count):
                samples.append((number, label))
                number += 1
        for s, start in enumerate(range(0, len(samples), per_shard)):
            with tarfile.open(root / part / f"shard-{s:04d}.tar", "w") as tar:
                for n, label in samples[start : start + per_shard]:
                    for ext, data in (("png", image_bytes(n, label, size)), ("cls", str(label).encode())):
                        info = tarfile.TarInfo(f"{n:06d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
    return root


def numbers(x) -> list[int]:
    """The image numbers of a batch ``x`` (normalised NCHW) of solid-colour images."""
    centre = x[:, :2, x.shape[2] // 2, x.shape[3] // 2].double().cpu().numpy()
    rgb = centre * np.array(STD[:2])[None] + np.array(MEAN[:2])[None]
    red, green = np.rint(rgb[:, 0] * 255).astype(int), np.rint(rgb[:, 1] * 255).astype(int)
    return (green * 256 + red).tolist()
