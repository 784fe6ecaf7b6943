"""A registered scorer on a trained supernet as a landscape accuracy source."""

from __future__ import annotations

import numpy as np
import pytest

from genas.analysis.landscape import ScorerSource, accuracy_path, path_tree
from genas.analysis.landscape.cli import main as landscape_main
from genas.spaces import create_space
from scorers import ScoreConfig, ScoringContext, create_scorer

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_scorer_source_path_and_barrier(tiny_run):
    space = create_space("nb201")
    a, b = space.parse(A), space.parse(B)
    score = ScoreConfig(scorer="accuracy", bn_batches=2, eval_batches=2, eval_batch_size=32)
    src = ScorerSource.from_config(score, str(tiny_run))
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


def test_landscape_cli_honours_score_options_and_plugins(tiny_run, nb201_table_path, capsys, tmp_path):
    """--score.* and --plugin reach the scorer: a plugin scorer with an option of its own."""
    plugin = tmp_path / "const_plugin.py"
    plugin.write_text("from scorers import Needs, Scorer, register_scorer\n"
                      "@register_scorer('const_k', needs=Needs(supernet=False), overwrite=True)\n"
                      "class K(Scorer):\n    def __init__(self, k: float = 1.0):\n        self.k = k\n"
                      "    def score_one(self, arch, ctx):\n        return self.k\n")  # fmt: skip
    assert landscape_main(["path", "--a", A, "--b", B, "--table", str(nb201_table_path), "--scorer", "const_k",
                           "--supernet", str(tiny_run), "--plugin", str(plugin), "--score.options.k", "7.5"]) == 0  # fmt: skip
    assert "7.50 -> 7.50" in capsys.readouterr().out
