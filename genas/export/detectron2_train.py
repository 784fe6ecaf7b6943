"""Detectron2's own training loop with the genas backbone: ``python -m genas.export.detectron2_train``.

Detectron2's ``tools/train_net.py`` as its projects write theirs: the same command line
(``--config-file``, ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url``,
``--resume``, ``--eval-only``, then ``KEY VALUE`` overrides), :func:`add_genas_config` before the
config file is read, ``DefaultTrainer`` with ``COCOEvaluator`` on every ``DATASETS.TEST``, and
``detectron2.engine.launch`` for several processes.  ``--coco NAME JSON IMAGES`` registers a
COCO-format dataset with ``register_coco_instances`` in every process (Detectron2's built-in
``coco_2017_*`` names need no flag: they read ``$DETECTRON2_DATASETS/coco``)::

    python -m genas.export.detectron2_train --config-file configs/dense/detectron2_retinanet_genas.yaml \\
        --num-gpus 8 MODEL.GENAS.ARCH runs/.../best_arch.json MODEL.GENAS.WEIGHTS runs/retrain-.../model.pt

On CPU, ``--num-gpus N`` runs N processes over gloo (Detectron2's ``launch`` picks gloo when there
is no GPU).  Two changes to Detectron2's ``create_ddp_model``, made by importing this module:
Detectron2 0.6 hands DDP ``device_ids=[local_rank]`` even for a model on the CPU, which DDP
refuses, so a CPU model gets none; and a model with a genas backbone is wrapped with
``find_unused_parameters=True``, because a found cell may hold ops on a dead edge (an NB201 edge
into a node whose output no edge carries on), which exist in the network (the benchmark counts
them) but receive no gradient.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genas.errors import ConfigError
from genas.export.detectron2 import add_genas_config  # registers the backbone builders; needs detectron2
from genas.export.backbone import DenseBackbone

from detectron2 import engine  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.data.datasets import register_coco_instances  # noqa: E402
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.evaluation import COCOEvaluator  # noqa: E402

__all__ = ["Trainer", "setup", "register_coco", "main", "cli"]


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with ``COCOEvaluator`` (what ``tools/train_net.py`` builds for COCO-style datasets)."""

    @classmethod
    def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None) -> COCOEvaluator:
        return COCOEvaluator(dataset_name, output_dir=output_folder or os.path.join(cfg.OUTPUT_DIR, "inference"))


def _cpu_safe_ddp(create: Any) -> Any:
    """Detectron2's ``create_ddp_model``, without ``device_ids`` for a model on the CPU (DDP refuses them there)."""

    def create_ddp_model(model: Any, **kwargs: Any) -> Any:
        first = next(model.parameters(), None)
        if first is not None and first.device.type == "cpu":
            kwargs.setdefault("device_ids", None)
        if any(isinstance(m, DenseBackbone) for m in model.modules()):
            kwargs.setdefault("find_unused_parameters", True)  # an op on a dead edge gets no gradient
        return create(model, **kwargs)

    create_ddp_model.genas_cpu_safe = True  # type: ignore[attr-defined]
    return create_ddp_model


if not getattr(engine.defaults.create_ddp_model, "genas_cpu_safe", False):
    engine.defaults.create_ddp_model = _cpu_safe_ddp(engine.defaults.create_ddp_model)


def register_coco(datasets: Sequence[Sequence[str]]) -> list[str]:
    """Register each ``(name, json, images)`` with ``register_coco_instances``; one line for a bad entry."""
    names = []
    for name, json_file, image_root in datasets:
        if not Path(json_file).is_file():
            raise ConfigError(f"--coco {name}: no COCO annotation file at {json_file}; give NAME JSON IMAGES")
        if not Path(image_root).is_dir():
            raise ConfigError(f"--coco {name}: no image folder at {image_root}; give NAME JSON IMAGES")
        if name not in DatasetCatalog.list():
            register_coco_instances(name, {}, json_file, image_root)
        names.append(name)
    return names


def setup(args: argparse.Namespace) -> Any:
    """The frozen config of ``--config-file`` and the overrides, with the ``MODEL.GENAS`` node."""
    cfg = add_genas_config(get_cfg())
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args: argparse.Namespace) -> Any:
    """One process: train (or, with ``--eval-only``, evaluate) and return the evaluation results."""
    register_coco(args.coco)
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def parser() -> argparse.ArgumentParser:
    p = default_argument_parser()
    p.add_argument("--coco", nargs=3, action="append", default=[], metavar=("NAME", "JSON", "IMAGES"),
                   help="register a COCO-format dataset NAME (annotation JSON, image folder); repeatable")  # fmt: skip
    return p


def cli(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not Path(args.config_file).is_file():
        raise ConfigError(f"--config-file {args.config_file}: no such file")
    register_coco(args.coco)  # a bad path fails here, before any process starts
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))  # fmt: skip
    return 0


if __name__ == "__main__":
    from genas.cli import run_cli

    sys.exit(run_cli(cli))
