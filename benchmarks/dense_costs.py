"""Parameters and FLOPs of the found backbones inside RetinaNet and DeepLabV3, next to ResNet-18 / -50 (issue 26).

Every model is built by its library from its own config (Detectron2's model-zoo RetinaNet R-50-FPN
1x with ``RESNETS.DEPTH`` 18 or 50, or ``configs/dense/detectron2_retinanet_genas.yaml``; mmseg's
``deeplabv3_r18-d8`` / ``deeplabv3_r50-d8`` Cityscapes configs, or
``configs/dense/mmseg_deeplabv3_genas.py``) and counted by one counter, fvcore's
``FlopCountAnalysis`` (one fused multiply-add = 1 FLOP, convolutions and matrix products; what
Detectron2's ``flop_count_operators`` reports), on one image: 800 x 1216 for RetinaNet (the
shorter side of its recipe, padded to a multiple of 32), 512 x 1024 for DeepLabV3 (its crop).  Parameters
are ``genas.counting.count_params`` of the whole detector / segmentor, and of its backbone alone.

    python benchmarks/dense_costs.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from _common import REPO

#: the cell the CIFAR-10 search of docs/ranking.md returned (evolution, angle+flatness, seed 0); DARTS-V2 for DARTS
NB201_FOUND = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
            "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def flops(model, inputs) -> float:
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(model, inputs)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return float(fca.total())


def retinanet(backbone: str) -> tuple:
    import torch
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from genas.export.detectron2 import add_genas_config

    cfg = add_genas_config(get_cfg())
    if backbone.startswith("resnet"):
        cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml"))
        cfg.MODEL.RESNETS.DEPTH = int(backbone[6:])
        if cfg.MODEL.RESNETS.DEPTH < 50:
            cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    else:
        cfg.merge_from_file(str(REPO / "configs" / "dense" / "detectron2_retinanet_genas.yaml"))
        cfg.MODEL.GENAS.ARCH, cfg.MODEL.GENAS.NETWORK = _genas(backbone)
        if backbone == "genas-darts_imagenet":
            cfg.MODEL.GENAS.CHANNELS, cfg.MODEL.GENAS.LAYERS = 48, 14
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    image = torch.zeros(3, 800, 1216)

    class Wrapped(torch.nn.Module):  # the tensors of the forward, without post-processing
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            feats = self.m.backbone(x)
            return self.m.head([feats[f] for f in self.m.head_in_features])

    with torch.no_grad():
        f = flops(Wrapped(model), (model.preprocess_image([{"image": image}]).tensor,))
    return model, model.backbone.bottom_up, f


def deeplabv3(backbone: str) -> tuple:
    import torch
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    if backbone.startswith("resnet"):
        depth = backbone[6:]
        name = "deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py" if depth == "18" else \
            "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py"  # fmt: skip
        import mmseg

        cfg = Config.fromfile(str(Path(mmseg.__file__).parent / ".mim" / "configs" / "deeplabv3" / name))
    else:
        import genas.export.mmseg  # noqa: F401  (registers GenasBackbone)
        from genas.export import create_network

        cfg = Config.fromfile(str(REPO / "configs" / "dense" / "mmseg_deeplabv3_genas.py"))
        arch, network = _genas(backbone)
        cfg.model.backbone.arch, cfg.model.backbone.network = arch, network or None
        if backbone == "genas-darts_imagenet":
            cfg.model.backbone.channels, cfg.model.backbone.layers = 48, 14
            cfg.model.backbone.geometry = None
        net = create_network(network or "nb201", arch, **({"channels": 48, "layers": 14} if network else {}),
                             **({} if network else {"geometry": "dense"}))  # fmt: skip
        cfg.model.decode_head.in_channels = net.feature_info[-1]["num_chs"]
    cfg.model.pop("data_preprocessor", None)
    for head in ("auxiliary_head",):
        cfg.model.pop(head, None)
    model = MODELS.build(cfg.model).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m._forward(x)

    with torch.no_grad():
        f = flops(Wrapped(model), (torch.zeros(1, 3, 512, 1024),))
    return model, model.backbone, f


def _genas(backbone: str) -> tuple[str, str]:
    if backbone == "genas-nb201":
        return NB201_FOUND, ""
    return DARTS_V2, "darts_imagenet"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="resnet18,resnet50,genas-nb201,genas-darts_imagenet")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dense_costs.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    from genas.counting import count_params
    from genas.io import atomic_write_json

    rows = []
    for task, build in (("RetinaNet (Detectron2)", retinanet), ("DeepLabV3 (MMSeg)", deeplabv3)):
        for backbone in args.backbones.split(","):
            model, body, f = build(backbone)
            rows.append({"task": task, "backbone": backbone, "params_M": round(count_params(model) / 1e6, 2),
                         "backbone_params_M": round(count_params(body) / 1e6, 2), "GFLOPs": round(f / 1e9, 1)})  # fmt: skip
            print(rows[-1], flush=True)
    print("| task | backbone | params (M) | of which backbone (M) | GFLOPs (fvcore, 1 MAC = 1) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['task']} | {r['backbone']} | {r['params_M']} | {r['backbone_params_M']} | {r['GFLOPs']} |")
    atomic_write_json(Path(args.out), {"counter": "fvcore FlopCountAnalysis", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
