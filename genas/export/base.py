"""What every exported network offers: timm's model API on a fresh module built from one architecture.

A network here is a plain ``nn.Module`` whose weights are its own (not a view on a supernet). It
records its feature levels while it is built, as timm models do (``feature_info``: channels, total
stride, and the module whose output the level is), and exposes the same surface as a timm model:
``forward_features``, ``forward_head(pre_logits=)``, ``forward_intermediates``,
``prune_intermediate_layers``, ``reset_classifier``, ``get_classifier``, ``pretrained_cfg``. timm's
``features_only`` wrapper (``feature_cls='getter'``) and the dense-task backbones read the levels
from ``forward_intermediates``, never by running the children one after another, because a DARTS
cell reads the two previous states.

Counting (:func:`model_stats`) uses :mod:`genas.counting`, the counters the search constraints use.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from genas.counting import count_flops, count_params
from genas.errors import ConfigError
from genas.export.options import NETWORK_CONSTRAINTS
from genas.registry import Registry
from genas.validation import Configurable
from genas.spaces import create_space

__all__ = ["Network", "take_indices", "model_stats", "pretrained_cfg", "check_input_size", "geometry_hparams", "NETWORKS"]


def pretrained_cfg(**overrides: Any) -> dict[str, Any]:
    """A timm-style pretrained config (input size, normalisation, first conv, classifier) with ``overrides``."""
    cfg = {
        "url": "", "num_classes": 10, "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0,
        "interpolation": "bilinear", "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616),
        "first_conv": "stem.0", "classifier": "classifier", "license": "mit",
    }  # fmt: skip
    cfg.update(overrides)
    return cfg


def geometry_hparams(geometry: str | None, output_stride: int | None) -> dict[str, Any]:
    """The ``hparams`` entries of a non-default geometry (a classification network's record stays as it was)."""
    out: dict[str, Any] = {}
    if geometry not in (None, "cifar"):
        out["geometry"] = geometry
    if output_stride is not None:
        out["output_stride"] = output_stride
    return out


def take_indices(num_levels: int, indices: int | Sequence[int] | None, owner: str) -> tuple[list[int], int]:
    """Absolute feature-level indices and the largest, timm's convention for ``indices``.

    ``None`` takes every level, an int ``n`` the last ``n``, a sequence the levels named
    (negative counts from the end).

    Raises:
        ConfigError: An index outside ``[-num_levels, num_levels - 1]`` (the message names both).
    """
    allowed = f"{num_levels} feature levels: indices 0..{num_levels - 1} or -{num_levels}..-1"
    if indices is None:
        indices = num_levels
    if isinstance(indices, bool) or not isinstance(indices, (int, Sequence)) or isinstance(indices, str):
        raise ConfigError(f"out_indices of {owner} must be an int or a sequence of ints; got {indices!r}")
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise ConfigError(f"out_indices={indices} (the last n levels) is out of range: {owner} has {allowed}")
        return list(range(num_levels - indices, num_levels)), num_levels - 1
    taken = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -num_levels <= i < num_levels:
            raise ConfigError(f"out_indices {tuple(indices)!r} is out of range: {owner} has {allowed}")
        taken.append(i % num_levels)
    if not taken:
        raise ConfigError(f"out_indices of {owner} is empty; it has {allowed}")
    return taken, max(taken)


class Network(nn.Module, Configurable, ABC):
    """Base class of the standalone networks.

    Subclasses set ``arch``, ``hparams``, ``feature_info``, ``num_features``, ``global_pool``
    and ``classifier`` in ``__init__`` and implement :meth:`_run` and :meth:`_prune_after`.
    """

    name: ClassVar[str] = ""  # registry name
    space: ClassVar[str] = ""  # the search space its architectures come from
    default_cfg_overrides: ClassVar[dict[str, Any]] = {}
    #: what the caller passes itself; the other ``__init__`` keywords are the ``model`` section's options
    #: (``drop_path_rate`` is scheduled by ``retrain.drop_path``)
    not_options: ClassVar[tuple[str, ...]] = ("arch", "num_classes", "in_chans", "drop_path_rate", "device", "dtype")
    #: the limits of every network's options (each network takes the ones its ``__init__`` names)
    constraints: ClassVar[dict[str, Any]] = NETWORK_CONSTRAINTS

    arch: Any
    hparams: dict[str, Any]
    feature_info: list[dict[str, Any]]
    num_features: int
    classifier: nn.Module

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.pretrained_cfg: dict[str, Any] = pretrained_cfg(**{**self.default_cfg_overrides, "num_classes": num_classes})
        self.default_cfg = self.pretrained_cfg  # timm's older name for the same dict
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    @classmethod
    def parse_arch(cls, arch: Any) -> Any:
        """``arch`` as an architecture object of this network's space (strings and genotypes parse)."""
        return create_space(cls.space).parse(arch)

    # ---- the level walk subclasses implement --------------------------------------------
    @abstractmethod
    def _run(self, x: torch.Tensor, take: Sequence[int] = (), stop: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the body; return the last map computed and the maps of levels ``take`` (in order).

        ``stop``: return right after level ``stop`` (``None``: run to the end of ``forward_features``).
        """

    @abstractmethod
    def _prune_after(self, level: int) -> None:
        """Drop every module that only computes levels after ``level``."""

    @abstractmethod
    def stage_modules(self) -> list[list[nn.Module]]:
        """The modules of the stem, then of each level after the one before (what ``frozen_stages`` freezes)."""

    # ---- timm's model API ----------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (before pooling and the classifier)."""
        return self._run(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling and the classifier; the pooled features when ``pre_logits``."""
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature maps of the levels in ``feature_info`` (timm's signature and meaning).

        Args:
            x: Images ``(N, C, H, W)``.
            indices: Levels to return: all if None, the last n if an int, else those listed.
            norm: Accepted for timm compatibility; these networks have no separate final norm.
            stop_early: Stop after the last level asked for (the final output is then that level).
            output_fmt: Only ``"NCHW"``.
            intermediates_only: Return only the list of maps.

        Returns:
            The maps, or ``(final feature map, maps)``.
        """
        if output_fmt != "NCHW":
            raise ConfigError(f"output_fmt of {self.name} must be 'NCHW'. Got {output_fmt!r} instead.")
        take, last = take_indices(len(self.feature_info), indices, self.name)
        final, maps = self._run(x, take, last if (stop_early or intermediates_only) else None)
        return maps if intermediates_only else (final, maps)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Keep only what the levels ``indices`` need; return them as absolute indices (timm's contract)."""
        take, last = take_indices(len(self.feature_info), indices, self.name)
        self._prune_after(last)
        if prune_head:
            self.reset_classifier(0)
        return take

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` (0: none, ``forward`` returns pooled features)."""
        if global_pool not in (None, "avg"):
            raise ConfigError(f"global_pool of {self.name} must be 'avg'. Got {global_pool!r} instead.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ConfigError(f"num_classes of {self.name} must be an int >= 0. Got {num_classes!r} instead.")
        self.num_classes = num_classes
        device = next((p.device for p in self.parameters()), None)
        self.classifier = nn.Linear(self.num_features, num_classes, device=device) if num_classes else nn.Identity()

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

    def extra_repr(self) -> str:
        return f"arch={self.arch}"


def model_stats(net: Network, image_size: int | Sequence[int]) -> dict[str, float]:
    """Parameters and multiply-adds of ``net``'s deployed forward pass on one image.

    The auxiliary head (a training-only tower) is left out of the parameter count, as DARTS
    reports model size; FLOPs count what ``forward`` runs (the counters of :mod:`genas.counting`,
    the ones ``search.max_params`` / ``search.max_flops`` use).

    Returns:
        ``params``, ``params_M``, ``flops``, ``mflops`` (and ``aux_params`` when there is an auxiliary head).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    body = nn.ModuleList(m for name, m in net.named_children() if name != "auxiliary_head")
    params = count_params(body)
    flops = count_flops(net, (1, net.in_chans, *size))
    out = {"params": params, "params_M": params / 1e6, "flops": flops, "mflops": flops / 1e6}
    aux = getattr(net, "auxiliary_head", None)
    if aux is not None:
        out["aux_params"] = count_params(aux)
    return out


def check_input_size(net: Network, image_size: int, train: bool = True) -> None:
    """Raise ConfigError when ``net`` cannot run on ``image_size`` images (probed on a copy, two zero images)."""
    probe = copy.deepcopy(net).train(train)
    x = torch.zeros(2, net.in_chans, image_size, image_size, device=next(net.parameters()).device)
    run = getattr(probe, "forward_train", probe)  # the auxiliary tower runs in training mode only
    try:
        with torch.no_grad():
            run(x)
    except RuntimeError as exc:
        aux = getattr(net, "auxiliary_head", None) is not None
        hint = " (the DARTS auxiliary head needs 32x32 CIFAR or 224x224 ImageNet images; set model.options.auxiliary false)" if aux else ""
        raise ConfigError(
            f"network {net.name} cannot run on {image_size}x{image_size} images{hint}: {str(exc).splitlines()[0]}"
        ) from exc


#: The network registry; the built-in networks register themselves in their modules, imported on the first lookup.
NETWORKS: Registry[type[Network]] = Registry("network", builtins=("genas.export.nb201", "genas.export.darts"))
