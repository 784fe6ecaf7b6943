"""A registered scorer on a trained supernet as a landscape accuracy source."""

from __future__ import annotations

import numpy as np
import pytest

from genas.landscape import ScorerSource, accuracy_path, path_tree
from genas.landscape.cli import main as landscape_main
from genas.spaces import create_space
from scorers import ScoringContext, create_scorer

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_scorer_source_path_and_barrier(tiny_run):
    space = create_space("nb201")
    a, b = space.parse(A), space.parse(B)
    src = ScorerSource.from_run("accuracy", str(tiny_run), bn_batches=2, eval_batches=2, eval_batch_size=32)
    path = accuracy_path(path_tree(a, b), src)
    assert path.tree.distance == 3 and len(path.values) == 4
    ctx = ScoringContext.from_run(str(tiny_run), bn_batches=2, eval_batches=2, eval_batch_size=32)
    direct = create_scorer("accuracy").score([a, b], ctx)
    assert np.allclose([path.values[0], path.values[-1]], direct)
    bar = path.barrier()
    assert bar.raw == pytest.approx((path.values[0] + path.values[-1]) / 2 - min(path.values[1:-1]))


def test_landscape_cli_path_with_a_scorer(tiny_run, nb201_table_path, capsys):
    assert landscape_main(["path", "--a", A, "--b", B, "--table", str(nb201_table_path), "--scorer", "angle",
                           "--supernet", str(tiny_run)]) == 0  # fmt: skip
    assert "scorer 'angle'" in capsys.readouterr().out
