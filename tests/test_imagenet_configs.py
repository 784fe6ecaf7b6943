"""configs/imagenet/ (issue 25): the GeNAS ImageNet protocol, run end to end at toy scale on images the test writes.

The configs are used as shipped; only the sizes a CPU cannot afford are overridden (width, depth,
epochs, population, batch), never the recipe (stem, schedule, smoothing, warm-up, augmentation, FLOP budget).
"""

from __future__ import annotations

import csv
import json

import pytest

from genas.cli import run_cli
from genas.errors import GenasWarning
from tests.imagedata import write_image_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, per_class=24, val_per_class=4)


def test_supernet_search_and_retrain_configs_run_on_an_image_folder(images, tmp_path, capsys):
    from evolution.cli import main as evolve
    from genas.export.retrain_cli import main as retrain
    from supernet.cli import main as train

    data = ["--data.options.root", str(images), "--data.options.workers", "1", "--data.valid_fraction", "0.25", "--data.batch_size", "8",
            "--data.eval_batch_size", "16", "--run.root", str(tmp_path), "--run.progress", "false"]  # fmt: skip
    assert run_cli(train, ["--config", "imagenet/darts_supernet", *data, "--data.options.image_size", "32",
                           "--supernet.options.channels", "8", "--supernet.options.layers", "5", "--train.epochs", "2"]) == 0  # fmt: skip
    run = tmp_path / "darts-imagenet"
    cfg = (run / "config.yaml").read_text()
    for line in ("stem: imagenet", "schedule: linear", "label_smoothing: 0.1", "augment: rrc", "max_flops: 600"):
        assert line in cfg
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[-1]["lr"]) == pytest.approx(0.0005)  # linear decay to lr_min
    assert run_cli(evolve, ["--config", "imagenet/darts_supernet", "--supernet", str(run), "--scorer", "angle+flatness",
                            "--search.options.population", "4", "--search.options.topk", "2", "--search.options.mutations",
                            "2", "--search.options.crossovers", "2", "--search.options.iterations", "1",
                            "--score.bn_batches", "2", "--score.bn_batch_size", "8", "--score.eval_batches", "2",
                            "--score.eval_batch_size", "8", "--run.progress", "false"]) == 0  # fmt: skip
    best = run / "search-angle+flatness-evolution" / "best_arch.json"
    assert json.loads(best.read_text())["arch"].startswith("Genotype(")
    # the retraining recipe at 224 px (the auxiliary head needs it) on a narrow, shallow darts_imagenet network
    with pytest.warns(GenasWarning, match="channels_last is off for this CPU run"):  # (torch's CPU crash avoided)
        assert run_cli(retrain, ["--config", "imagenet/retrain_darts", "--arch", str(best), *data, "--data.options.image_size",
                                 "224", "--model.options.channels", "8", "--model.options.layers", "3", "--retrain.epochs", "2",
                                 "--retrain.warmup_epochs", "1", "--run.name", "rt"]) == 0  # fmt: skip
    rows = list(csv.DictReader(open(tmp_path / "rt" / "metrics.csv")))
    lr0 = 0.5 * 8 / 1024  # lr 0.5 at the reference global batch 1024, scaled to this run's 8; the warm-up epoch ends at it
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr0, 0.0])
    assert (tmp_path / "rt" / "model.pt").is_file()
