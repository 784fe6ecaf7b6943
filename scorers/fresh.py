"""Freshly initialised networks of single architectures, and the images they are scored on.

A zero-cost proxy scores an architecture at initialisation: no trained supernet, one seeded init
and a batch of labelled training images.  :class:`FreshNetworks` builds one private, never-trained
supernet (on first use) and, for each architecture, re-initialises its subnet's parameters with a
generator seeded by ``(seed, architecture)``.  A score therefore depends neither on the order in
which architectures are scored nor on which proxy asked first: every proxy sees the same weights
and, for a given batch size, the same images.

The initialisation is PyTorch's default (conv / linear weights and biases uniform in
``±1/sqrt(fan_in)``, BN weight 1 and bias 0, running statistics reset), drawn on the CPU and copied
to the device, so CPU and CUDA start from the same weights.  NB201 cells are built as in the
zero-cost-nas reference network (``foresight/models/nasbench2_ops.py``): non-affine BN without
running statistics and a conv bias (``bias = not affine``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


from genas.errors import ConfigError
from genas.lazy import lazy_import, no_grad
from genas.spaces import SearchSpace, create_space
from scorers.base import noise_seed

torch = lazy_import("torch")
nn = lazy_import("torch.nn")  # imported when first used: listing scorers needs no torch

__all__ = ["FreshNetworks", "default_init", "gaussian_init", "network_options"]

Batch = "tuple[torch.Tensor, torch.Tensor]"  # a name for annotations (torch loads lazily)
_NETWORK_KEYS = ("channels", "layers", "affine", "stem_multiplier")


def _uniform(t: torch.Tensor, bound: float, gen: torch.Generator) -> None:
    t.copy_(torch.empty(t.shape, dtype=torch.float32).uniform_(-bound, bound, generator=gen))


@no_grad
def default_init(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default init of every conv, linear and BN layer of ``module``, drawn from ``generator``.

    Args:
        module: Re-initialised in place (gradients cleared).
        generator: A CPU generator; the draws are copied to the parameters' device.

    Returns:
        ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            bound = 1.0 / math.sqrt(max(1, m.weight[0].numel()))  # kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))
            _uniform(m.weight, bound, generator)
            if m.bias is not None:
                _uniform(m.bias, bound, generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
    for p in module.parameters():
        p.grad = None
    return module


@no_grad
def gaussian_init(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Zen-NAS init: conv / linear weights N(0, 1), biases 0, BN weight 1 and bias 0 (statistics reset)."""
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
    return module


def network_options(supernet: Any = None) -> dict[str, Any]:
    """The network shape of a ``supernet`` config section (or dict), unset (None) values dropped."""
    if supernet is None:
        return {}
    items = supernet.items() if isinstance(supernet, dict) else ((k, getattr(supernet, k, None)) for k in _NETWORK_KEYS)
    return {k: v for k, v in items if k in _NETWORK_KEYS and v is not None}


class FreshNetworks:
    """Seeded fresh networks of a space's architectures plus the labelled images proxies read.

    Args:
        space: The search space (it needs a registered supernet: ``darts`` or ``nb201``).
        bundle: The dataset; its training split supplies the images (with its training augmentation).
        seed: Seeds every architecture's init and the image draw.
        device: Where networks and images live.
        network: Supernet shape (``channels``, ``layers``, ``affine``, ``stem_multiplier``); unset keys
            keep the space's defaults (NB201: the benchmark's C=16, N=5).
    """

    def __init__(self, space: SearchSpace, bundle: Any, *, seed: int = 0, device: torch.device | str = "cpu",
                 network: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.space = space
        self.bundle = bundle
        self.seed = seed
        self.device = torch.device(device)
        self.options = dict(network or {})
        self._net: Any = None
        self._images: dict[int, Batch] = {}
        self._cache: OrderedDict[Any, Any] = OrderedDict()

    @classmethod
    def from_data(cls, data: Any, space: str | SearchSpace = "nb201", *, seed: int = 0,
                  device: torch.device | str = "cpu", supernet: Any = None) -> FreshNetworks:  # fmt: skip
        """From a ``data`` config section (or a ready :class:`~genas.data.DataBundle`) and a space."""
        from genas.data import DataBundle, build_data

        bundle = data if isinstance(data, DataBundle) else build_data(data, seed)
        space = create_space(space) if isinstance(space, str) else space
        return cls(space, bundle, seed=seed, device=device, network=network_options(supernet))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images."""
        return (self.bundle.channels, self.bundle.image_size, self.bundle.image_size)

    def _supernet(self, who: str) -> Any:
        if self._net is None:
            from supernet import SUPERNETS, create_supernet

            if self.space.name not in SUPERNETS:
                raise ConfigError(f"scorer {who!r} builds a network of each architecture and does not support space "
                                  f"{self.space.name!r}; supported spaces: {', '.join(SUPERNETS.list())}")  # fmt: skip
            opts = dict(self.options)
            if self.space.name == "nb201":
                opts["track_running_stats"] = False  # the zero-cost-nas reference cells
            self._net = create_supernet(self.space.name, num_classes=self.bundle.num_classes,
                                        in_chans=self.bundle.channels, device=self.device, **opts)  # fmt: skip
            if self.space.name == "nb201" and not self._net.hparams["affine"]:
                _add_cell_conv_bias(self._net)
        return self._net

    def network(self, arch: Any, who: str = "zero-cost proxy") -> nn.Module:
        """``arch``'s subnet, freshly initialised from ``(seed, arch)``, in train mode.

        The subnet shares its modules with the private supernet: the next call re-initialises
        them, so a proxy that changes weights in place works on a ``copy.deepcopy``.
        """
        arch = self.space.parse(arch)
        sub = self._supernet(who).subnet(arch)
        gen = torch.Generator().manual_seed(noise_seed(self.seed, "fresh-init", arch))
        return default_init(sub, gen).train()

    def images(self, batch_size: int, who: str) -> Batch:
        """``batch_size`` labelled training images, the same for every architecture (one seeded draw)."""
        n = len(self.bundle.train)
        if isinstance(batch_size, int) and batch_size > n:
            raise ConfigError(f"The 'batch_size' parameter of scorer {who!r} must be an int in the range [1, {n}] "
                              f"(the training split of {self.bundle.name!r} holds {n} images). Got {batch_size} instead.")  # fmt: skip
        if batch_size not in self._images:
            from genas.data import build_loader

            loader = build_loader(self.bundle.train, self.bundle, batch_size, train=True, seed=self.seed, device=self.device)
            self._images[batch_size] = loader.batches(1, self.seed)[0]
        return self._images[batch_size]

    def cached(self, key: Any, compute: Callable[[], Any], size: int = 4) -> Any:
        """``compute()``, kept for the last ``size`` keys (work shared by proxies, e.g. one gradient pass)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = compute()
        self._cache[key] = value
        if len(self._cache) > size:
            self._cache.popitem(last=False)
        return value


def _add_cell_conv_bias(net: nn.Module) -> None:
    """Give each NB201 cell conv the bias the reference network has (its cells are affine-free: bias = not affine)."""
    from supernet.nb201 import NB201SearchCell

    for cell in net.cells:
        if isinstance(cell, NB201SearchCell):
            for m in cell.modules():
                if isinstance(m, nn.Conv2d) and m.bias is None:
                    m.bias = nn.Parameter(torch.zeros(m.out_channels, device=m.weight.device, dtype=m.weight.dtype))
