"""Use the found network: standalone models, their checkpoint, retraining, timm models, ONNX / TorchScript.

The last stage of the flow (``best_arch.json -> network``). A network is a fresh module built
from one architecture with the supernets' own op modules (:mod:`supernet.ops`), with timm's model
API and ``feature_info``; :func:`network_from_run` copies a trained supernet's weights for the
architecture's path into it; :func:`save_network` / :func:`load_network` keep it in one file.
timm registration lives in :mod:`genas.export.timm_models` (``import genas.export.timm_models``), ONNX and
TorchScript in :mod:`genas.export.formats`, retraining in :mod:`genas.export.retrain`, detection / segmentation
backbones in :mod:`genas.export.backbone` (with :mod:`genas.export.detectron2` and :mod:`genas.export.mmseg` for the
frameworks); none of them is imported here, so genas never needs timm, onnx, Detectron2 or MMSeg.

Example:
    >>> import torch
    >>> from genas.export import create_network, model_stats
    >>> DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    ...     "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    ...     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    ...     "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    >>> net = create_network("darts", DARTS_V2, channels=36, layers=20, auxiliary=True)
    >>> model_stats(net, 32)["params"]   # the DARTS reference prints "param size = 3.349342MB"
    3349342
"""

import genas.export.config  # noqa: F401  (registers the model and retrain config sections)
from genas.lazy import lazy_exports

__all__ = [
    "NETWORKS", "create_network", "list_networks", "network_for_space", "Network", "NB201Network", "DartsNetwork",
    "DartsImageNetNetwork", "read_arch", "guess_space", "model_stats", "save_network", "load_network", "load",
    "NETWORK_FORMAT", "network_from_run", "network_from_supernet",
]  # fmt: skip

__getattr__, __dir__ = lazy_exports(__name__, {
    "NETWORKS": "genas.export.registry", "create_network": "genas.export.registry", "list_networks": "genas.export.registry",
    "network_for_space": "genas.export.registry", "Network": "genas.export.base", "model_stats": "genas.export.base",
    "NB201Network": "genas.export.nb201", "DartsNetwork": "genas.export.darts", "DartsImageNetNetwork": "genas.export.darts",
    "read_arch": "genas.export.arch", "guess_space": "genas.export.arch", "save_network": "genas.export.checkpoint",
    "load_network": "genas.export.checkpoint", "load": "genas.export.checkpoint", "NETWORK_FORMAT": "genas.export.checkpoint",
    "network_from_run": "genas.export.inherit", "network_from_supernet": "genas.export.inherit",
})  # fmt: skip
