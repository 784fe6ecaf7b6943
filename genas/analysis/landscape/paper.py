"""Reference settings and figures of the A2M paper's NB201 landscape study (SPEC 1.3).

Dataset keys are the canonical ones of :func:`genas.tables.normalize_dataset`.
"""

from __future__ import annotations

__all__ = ["DATASET_NAMES", "PAPER_TIERS", "PAPER_PAIRS", "PAPER_MODEL_ACCURACY", "PAPER_KS"]

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet16-120"}

#: Inclusive test-accuracy intervals (percent) of the tiers of paper Table 8 / Fig. 4.
PAPER_TIERS: dict[str, dict[str, tuple[float, float]]] = {
    "cifar10": {"A": (92.3, 93.7), "B": (84.3, 85.7), "C": (74.3, 75.7)},
    "cifar100": {"A": (69.3, 70.7), "B": (64.3, 65.7), "C": (54.3, 55.7)},
    "imagenet16": {"A": (45.9, 47.3), "B": (34.3, 35.7), "C": (24.3, 25.7)},
}

#: NB201 indices (a, b) of the model pairs whose paths the paper plots (Fig. 7).
PAPER_PAIRS: dict[str, dict[str, tuple[int, int]]] = {
    "cifar10": {"A": (81, 1459), "B": (0, 163), "C": (40, 12094)},
    "cifar100": {"A": (81, 11711), "B": (31, 7680), "C": (146, 4461)},
    "imagenet16": {"A": (65, 2246), "B": (17, 5845), "C": (2, 348)},
}

#: Test accuracy of model ``a`` of each pair as the paper states it (section 5.1.1).
PAPER_MODEL_ACCURACY: dict[str, dict[str, float]] = {
    "cifar10": {"A": 94.3, "B": 85.86, "C": 75.44},
    "cifar100": {"A": 72.30, "B": 65.19, "C": 55.88},
    "imagenet16": {"A": 45.53, "B": 36.41, "C": 27.26},
}

#: Paper Table 8: (dataset, tier, radius) -> (KS statistic, number of pooled neighbour samples).
#: The C rows at radius 3 are missing from the paper text available to us.
PAPER_KS: dict[tuple[str, str, int], tuple[float, int]] = {
    ("cifar10", "A", 1): (0.408, 76056), ("cifar100", "A", 1): (0.472, 35976), ("imagenet16", "A", 1): (0.702, 1464),
    ("cifar10", "B", 1): (0.370, 8544), ("cifar100", "B", 1): (0.113, 38976), ("imagenet16", "B", 1): (0.146, 15744),
    ("cifar10", "C", 1): (0.511, 5496), ("cifar100", "C", 1): (0.366, 6048), ("imagenet16", "C", 1): (0.359, 3672),
    ("cifar10", "A", 2): (0.267, 760560), ("cifar100", "A", 2): (0.307, 359760), ("imagenet16", "A", 2): (0.484, 14640),
    ("cifar10", "B", 2): (0.215, 85440), ("cifar100", "B", 2): (0.040, 389760), ("imagenet16", "B", 2): (0.066, 157440),
    ("cifar10", "C", 2): (0.318, 54960), ("cifar100", "C", 2): (0.224, 60480), ("imagenet16", "C", 2): (0.214, 36720),
    ("cifar10", "A", 3): (0.160, 4056320), ("cifar100", "A", 3): (0.184, 1918720),
    ("imagenet16", "A", 3): (0.280, 78080),
    ("cifar10", "B", 3): (0.127, 455680), ("cifar100", "B", 3): (0.021, 2078720),
    ("imagenet16", "B", 3): (0.031, 839680),
}  # fmt: skip
