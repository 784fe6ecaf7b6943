"""Weight-sharing supernets, their single-path samplers, training and BN recalibration.

Example:
    >>> import torch
    >>> from supernet import create_supernet
    >>> net = create_supernet("nb201", num_classes=10, channels=8, layers=1)
    >>> arch = net.space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    >>> net(torch.randn(2, 3, 16, 16), arch).shape
    torch.Size([2, 10])
"""

from genas.lazy import lazy_exports
from supernet.config import SupernetConfig, TrainConfig  # registers the `supernet` and `train` config sections

__all__ = [
    "SUPERNETS", "create_supernet", "Supernet", "Subnet", "FeatureInfo", "NB201Supernet", "NB201Subnet",
    "DartsSupernet", "DartsSubnet", "UniformPathSampler", "recalibrate_bn", "SupernetConfig", "TrainConfig",
]  # fmt: skip

__getattr__, __dir__ = lazy_exports(__name__, {
    "SUPERNETS": "supernet.registry", "create_supernet": "supernet.registry", "Supernet": "supernet.base",
    "Subnet": "supernet.base", "FeatureInfo": "supernet.base", "NB201Supernet": "supernet.nb201",
    "NB201Subnet": "supernet.nb201", "DartsSupernet": "supernet.darts", "DartsSubnet": "supernet.darts",
    "UniformPathSampler": "supernet.sampler", "recalibrate_bn": "supernet.bn",
})  # fmt: skip
