"""The DARTS evaluation networks (Liu et al., ICLR 2019; reference code ``cnn/model.py``) of one genotype.

``DartsNetwork`` is ``NetworkCIFAR``: a 3C stem, ``layers`` cells (reduce cells at 1/3 and 2/3 depth),
an optional auxiliary tower on the second reduce cell, drop-path on every non-identity op during
training. ``DartsImageNetNetwork`` is ``NetworkImageNet``: the two-conv stride-4 stem plus a stride-2
stem, so its four feature levels sit at strides 4 / 8 / 16 / 32. Ops come from :mod:`supernet.ops`
with affine BN as in the reference's evaluation model; its pooling ops have no BN, unless
``pool_bn=True`` (the supernet's pooling op, used when weights are inherited from a supernet).
Global pooling is adaptive (the reference's ``AvgPool2d(7)`` at 224 px is the same operation).

Example:
    >>> import torch
    >>> genotype = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    ...             "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    ...             "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    ...             "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    >>> net = DartsNetwork(genotype, channels=4, layers=3)
    >>> [(f["module"], f["reduction"]) for f in net.feature_info]
    [('cells.0', 1), ('cells.1', 2), ('cells.2', 4)]
    >>> net(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from genas.export.base import NETWORKS, Network, geometry_hparams
from genas.export.geometry import Block, apply_output_stride, check_geometry, dense_stem
from genas.errors import ConfigError
from genas.spaces import DARTS_OPS
from genas.spaces.darts import DARTS_EDGES, DARTS_NODES
from supernet.darts import run_cell
from supernet.ops import BNOptions, FactorizedReduce, Identity, PoolBN, ReLUConvBN, darts_op, imagenet_stem

__all__ = ["DartsCell", "DartsNetwork", "DartsImageNetNetwork", "drop_path"]

IMAGENET_CFG = dict(num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
                    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), first_conv="stem0.0")  # fmt: skip
CLASSIFIERS = ("classifier", "auxiliary_head.classifier")


def drop_path(x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero whole samples with probability ``prob`` and rescale the rest by ``1 / (1 - prob)`` (DARTS utils)."""
    keep = 1.0 - prob
    mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep, generator=generator)
    return x / keep * mask


def _op(name: str, c: int, stride: int, bn: BNOptions, pool_bn: bool, **dd) -> nn.Module:
    if "pool" in name and not pool_bn:  # the evaluation model's pools carry no BN
        return PoolBN(name[:3], c, stride, None, **dd)
    return darts_op(name, c, stride, bn, **dd)


class DartsCell(nn.Module):
    """One discrete DARTS cell: preprocess both inputs, 8 ops into nodes 2..5, concatenate them."""

    def __init__(self, genes: tuple[int, ...], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 bn: BNOptions, pool_bn: bool, **dd) -> None:  # fmt: skip
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c, bn, **dd) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, bn, **dd)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, bn, **dd)
        active = [(e, DARTS_OPS[g]) for e, g in enumerate(genes) if g]
        self.ops = nn.ModuleList(
            _op(op, c, 2 if reduction and DARTS_EDGES[e][1] < 2 else 1, bn, pool_bn, **dd) for e, op in active
        )  # the order of the supernet subnet's ops (edge order), so inherited weights line up
        self._slot = {e: k for k, (e, _) in enumerate(active)}
        self.drop_prob = 0.0
        self.generator: torch.Generator | None = None

    def _edge(self, e: int, h: torch.Tensor) -> torch.Tensor:
        op = self.ops[self._slot[e]]
        h = op(h)
        if self.training and self.drop_prob > 0.0 and not isinstance(op, Identity):
            h = drop_path(h, self.drop_prob, self.generator)
        return h

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return run_cell(self.preprocess0(s0), self.preprocess1(s1), self._edge, edges=list(self._slot))


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary tower: ReLU, AvgPool(5), 1x1 conv 128, 2x2 conv 768, linear (CIFAR: 8x8 input)."""

    def __init__(self, c: int, num_classes: int, imagenet: bool, **dd) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=False), nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False, **dd), nn.BatchNorm2d(128, **dd), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False, **dd),
        ]  # fmt: skip
        if not imagenet:  # the reference ImageNet tower omits this BN (kept so, "for consistency with the paper")
            layers.append(nn.BatchNorm2d(768, **dd))
        self.features = nn.Sequential(*layers, nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, num_classes, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class DartsNetwork(Network):
    """The DARTS CIFAR evaluation network (``NetworkCIFAR``).

    Args:
        arch: A DARTS architecture (object, ``Genotype``, its string, 28 genes or JSON).
        num_classes: Classifier outputs.
        in_chans: Image channels.
        channels: C of the first cell (DARTS evaluation: 36; the GeNAS supernet: 16).
        layers: Number of cells (DARTS evaluation: 20); reduce cells at layers//3 and 2*layers//3.
        auxiliary: Add the auxiliary tower on cell 2*layers//3 (its logits come from ``forward_train``).
        drop_path_rate: Drop-path probability in training mode (retraining raises it linearly to this).
        stem_multiplier: Stem width = stem_multiplier * C.
        affine: Learnable BN affine parameters in the cells (reference evaluation: True).
        track_running_stats: Keep BN running statistics in the cells.
        pool_bn: A non-affine BN after each pooling op (the supernet's op; the evaluation model has none).
        geometry: ``"cifar"`` (levels at strides 1 / 2 / 4) or ``"dense"`` (a stride-4 stem, reduce cells at
            1/4, 2/4 and 3/4 depth: levels at 4 / 8 / 16 / 32); see :mod:`genas.export.geometry`.
        output_stride: Dilate the cells deeper than this stride instead of striding (None: no dilation).
        device: Where to build the parameters.
        dtype: Parameter dtype.
    """

    name = "darts"
    space = "darts"
    default_cfg_overrides = dict(classifier=CLASSIFIERS)

    def __init__(
        self,
        arch: Any,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_rate: float = 0.0,
        stem_multiplier: int = 3,
        affine: bool = True,
        track_running_stats: bool = True,
        pool_bn: bool = False,
        geometry: str = "cifar",
        output_stride: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_geometry(geometry, self.name)
        self.geometry = geometry
        if geometry == "dense" and layers < 4:
            raise ConfigError(f"geometry 'dense' of {self.name} needs layers >= 4 (a cell per stage). Got {layers} instead.")
        if auxiliary and (geometry == "dense" or output_stride is not None):
            raise ConfigError(f"auxiliary=True of {self.name} needs the classification geometry (geometry 'cifar', "
                              "no output_stride); the tower is a training aid for classification")  # fmt: skip
        self.arch = self.parse_arch(arch)
        self.hparams = dict(num_classes=num_classes, in_chans=in_chans, channels=channels, layers=layers,
                            auxiliary=auxiliary, drop_path_rate=drop_path_rate, stem_multiplier=stem_multiplier,
                            affine=affine, track_running_stats=track_running_stats, pool_bn=pool_bn)  # fmt: skip
        self.hparams.update(geometry_hparams(geometry, output_stride))
        dd = dict(device=device, dtype=dtype)
        self.feature_info = []
        c_stem = self._build_stem(in_chans, channels, stem_multiplier, **dd)
        blocks = self._build_cells(c_stem, channels, layers, BNOptions(affine, track_running_stats), pool_bn, **dd)
        self.auxiliary_head = AuxiliaryHead(self._c_aux, num_classes, self._imagenet, **dd) if auxiliary and num_classes else None
        self.classifier = nn.Linear(self.num_features, num_classes, **dd) if num_classes else nn.Identity()
        self.drop_path_prob = drop_path_rate
        apply_output_stride(self, output_stride, blocks, c_stem[2])

    _imagenet = False

    def _build_stem(self, in_chans: int, c: int, stem_multiplier: int, **dd) -> tuple[int, int, int, bool]:
        """Build the stem; return (channels of s0, channels of s1, stride of s1, reduction_prev)."""
        c_stem = stem_multiplier * c
        if self.geometry == "dense":
            self.stem = dense_stem(in_chans, c_stem, **dd)
            return c_stem, c_stem, 4, False
        self.stem = nn.Sequential(nn.Conv2d(in_chans, c_stem, 3, padding=1, bias=False, **dd), nn.BatchNorm2d(c_stem, **dd))
        return c_stem, c_stem, 1, False

    def _build_cells(self, stem: tuple[int, int, int, bool], c: int, layers: int, bn: BNOptions, pool_bn: bool,
                     **dd) -> list[Block]:  # fmt: skip
        """Build the cells; return their blocks for :func:`genas.export.geometry.apply_output_stride`."""
        c_pp, c_p, stride, reduction_prev = stem
        cells, self._cell_level, blocks = [], {}, []
        stages = 4 if self.geometry == "dense" else 3
        reductions = {k * layers // stages for k in range(1, stages)}
        self._aux_index = 2 * layers // 3
        self._c_aux = c_p
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                if i > 0:
                    self._add_level(f"cells.{i - 1}", c_p, stride, cell=i - 1)
                c, stride = 2 * c, 2 * stride
            genes = self.arch.reduce if reduction else self.arch.normal
            cells.append(DartsCell(genes, c_pp, c_p, c, reduction, reduction_prev, bn, pool_bn, **dd))
            s_in = stride // 2 if reduction else stride
            blocks.append((cells[-1], s_in, stride, ("preprocess1", "ops")))
            blocks.append((cells[-1], s_in // 2 if reduction_prev else s_in, s_in, ("preprocess0",)))
            reduction_prev = reduction
            c_pp, c_p = c_p, len(DARTS_NODES) * c
            if i == self._aux_index:
                self._c_aux = c_p
        self._add_level(f"cells.{layers - 1}", c_p, stride, cell=layers - 1)
        self.cells = nn.ModuleList(cells)
        self.num_features = c_p
        return blocks

    def _add_level(self, module: str, channels: int, stride: int, cell: int | None) -> None:
        if cell is not None:
            self._cell_level[cell] = len(self.feature_info)
        self.feature_info.append(dict(num_chs=channels, reduction=stride, module=module))

    @property
    def drop_path_prob(self) -> float:
        """The drop-path probability every cell uses in training mode."""
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, prob: float) -> None:
        self._drop_path_prob = float(prob)
        for cell in self.cells:
            cell.drop_prob = self._drop_path_prob

    def set_drop_path_generator(self, generator: torch.Generator | None) -> None:
        """Draw drop-path masks from ``generator`` (on the model's device) instead of torch's global one."""
        for cell in self.cells:
            cell.generator = generator

    def _stem(self, x: torch.Tensor, take: Sequence[int], maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s

    def _run_all(self, x: torch.Tensor, take: Sequence[int] = (), stop: int | None = None):
        """(last map, level maps, input of the auxiliary tower or None)."""
        maps: list[torch.Tensor] = []
        s0, s1 = self._stem(x, take, maps)
        if stop == 0 and self._imagenet:
            return s0, maps, None
        aux_in = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_index:
                aux_in = s1
            level = self._cell_level.get(i)
            if level is not None:
                if level in take:
                    maps.append(s1)
                if level == stop:
                    break
        return s1, maps, aux_in

    def _run(self, x: torch.Tensor, take: Sequence[int] = (), stop: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        final, maps, _ = self._run_all(x, take, stop)
        return final, maps

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, auxiliary logits)``; the second is None outside training or without the tower."""
        final, _, aux_in = self._run_all(x)
        aux = self.auxiliary_head(aux_in) if self.training and self.auxiliary_head is not None else None
        return self.forward_head(final), aux

    def _prune_after(self, level: int) -> None:
        if level == len(self.feature_info) - 1:
            return
        last = next((i for i, lv in self._cell_level.items() if lv == level), -1)
        self.cells = self.cells[: last + 1]
        if self._aux_index > last:
            self.auxiliary_head = None

    def _stem_groups(self) -> tuple[list[list[nn.Module]], list[nn.Module]]:
        """The stem's groups of :meth:`stage_modules`, and the modules that open the first cells' group."""
        return [[self.stem]], []

    def stage_modules(self) -> list[list[nn.Module]]:
        done, opening = self._stem_groups()
        groups = done + [list(opening)] + [[] for _ in range(len(self.feature_info) - len(done))]
        level = len(done) - 1
        for i, cell in enumerate(self.cells):
            groups[level + 1].append(cell)
            level += self._cell_level.get(i) is not None
        return groups

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        if self.auxiliary_head is not None:
            if num_classes:
                device = self.auxiliary_head.classifier.weight.device
                self.auxiliary_head.classifier = nn.Linear(768, num_classes, device=device)
            else:
                self.auxiliary_head = None


class DartsImageNetNetwork(DartsNetwork):
    """The DARTS ImageNet evaluation network (``NetworkImageNet``): levels at strides 4 / 8 / 16 / 32.

    Args are those of :class:`DartsNetwork` (ImageNet defaults: C = 48, 14 cells, 1000 classes);
    ``stem_multiplier`` is not used by this stem.
    """

    name = "darts_imagenet"
    default_cfg_overrides = dict(IMAGENET_CFG, classifier=CLASSIFIERS)
    _imagenet = True

    def __init__(self, arch: Any, num_classes: int = 1000, in_chans: int = 3, channels: int = 48, layers: int = 14,
                 auxiliary: bool = False, drop_path_rate: float = 0.0, affine: bool = True,
                 track_running_stats: bool = True, pool_bn: bool = False, output_stride: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:  # fmt: skip
        super().__init__(arch, num_classes, in_chans, channels, layers, auxiliary, drop_path_rate, 1, affine,
                         track_running_stats, pool_bn, output_stride=output_stride, device=device, dtype=dtype)  # fmt: skip
        del self.hparams["stem_multiplier"]

    def _build_stem(self, in_chans: int, c: int, stem_multiplier: int, **dd) -> tuple[int, int, int, bool]:
        self.stem0, self.stem1 = imagenet_stem(in_chans, c, **dd)
        self._add_level("stem0", c, 4, cell=None)
        return c, c, 8, True

    def _stem(self, x: torch.Tensor, take: Sequence[int], maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        if 0 in take:
            maps.append(s0)
        return s0, self.stem1(s0)

    def _prune_after(self, level: int) -> None:
        super()._prune_after(level)
        if level == 0:
            self.stem1 = nn.Identity()

    def _stem_groups(self) -> tuple[list[list[nn.Module]], list[nn.Module]]:
        return [[self.stem0], []], [self.stem1]  # level 0 is the stem's own output


NETWORKS.add("darts", DartsNetwork, description="DARTS CIFAR evaluation network (C=36, 20 cells, auxiliary tower, drop-path)")
NETWORKS.add("darts_imagenet", DartsImageNetNetwork, description="DARTS ImageNet evaluation network (C=48, 14 cells, stride-8 stem)")
