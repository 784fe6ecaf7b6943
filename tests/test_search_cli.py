"""End to end on CPU: evolve.py with every scorer family, resume, ranking tool, CLI errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from evolution.cli import main as evolve_main
from genas.analysis.rank_cli import main as rank_main
from tests.conftest import REPO

SMALL = ["--search.options.population", "6", "--search.options.topk", "2", "--search.options.mutations", "2", "--search.options.crossovers", "2",
         "--search.options.iterations", "2", "--run.progress", "false", "--score.bn_batches", "2", "--score.bn_batch_size", "32",
         "--score.eval_batches", "2", "--score.eval_batch_size", "32"]  # fmt: skip
PLUGIN = str(REPO / "examples" / "scorer_plugin" / "genas_gradnorm.py")


def evolve(tiny_run, out, *args):
    return evolve_main(["--supernet", str(tiny_run), "--out", str(out), *SMALL, *args])


@pytest.mark.parametrize(
    "scorer, extra",
    [
        ("accuracy", []),
        ("loss", []),
        ("angle", []),
        ("flatness", ["--score.options.sigmas", "[1e-3,5e-3]"]),
        ("angle+flatness", []),
        ("accuracy+0.5*flatness", []),
        ("na:accuracy", ["--score.options.na.k", "2"]),
        ("trained_grad_norm", ["--plugin", PLUGIN]),
    ],
)
def test_evolve_every_scorer_family(tiny_run, tmp_path, scorer, extra):
    out = tmp_path / "search"
    assert evolve(tiny_run, out, "--scorer", scorer, *extra) == 0
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    archs = [line["arch"] for line in lines]
    assert len(archs) == len(set(archs)) >= 6  # never scored twice
    best = json.loads((out / "best_arch.json").read_text())
    assert best["scorer"] == scorer and best["seed"] == 0 and "torch" in best["versions"]
    assert best["supernet_checkpoint"].endswith("last.pt")
    assert best["score"] == max(line["score"] for line in lines)
    assert (out / "search_curve.png").stat().st_size > 1000


def test_evolve_builds_its_scorer_once_and_parses_the_run_config_once(tiny_run, tmp_path, monkeypatch):
    """The stage is built once (issue 23): one scorer for the config check and the search alike."""
    import genas.runs
    import scorers.registry

    calls = {"create_scorers": 0, "parse run config": 0}
    real_create, real_parse = scorers.registry.create_scorers, genas.runs.yaml_load

    def counting_create(*args, **kwargs):
        calls["create_scorers"] += 1
        return real_create(*args, **kwargs)

    def counting_parse(*args, **kwargs):
        calls["parse run config"] += 1
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(scorers.registry, "create_scorers", counting_create)
    monkeypatch.setattr(genas.runs, "yaml_load", counting_parse)
    monkeypatch.setattr(genas.runs, "_CONFIG_CACHE", {})
    assert evolve(tiny_run, tmp_path / "once", "--scorer", "angle+flatness") == 0
    assert calls == {"create_scorers": 1, "parse run config": 1}


def test_evolve_nb201_oracle_needs_no_supernet_weights(tiny_run, tmp_path, nb201_table_path, monkeypatch):
    monkeypatch.setenv("GENAS_NB201_TABLE", str(nb201_table_path))
    out = tmp_path / "oracle"
    assert evolve(tiny_run, out, "--scorer", "nb201", "--score.options.dataset", "cifar10") == 0
    best = json.loads((out / "best_arch.json").read_text())
    assert best["score"] > 90.0


def test_interrupted_search_resumes_to_the_same_result(tiny_run, tmp_path, monkeypatch):
    from scorers.accuracy import Accuracy

    full = tmp_path / "full"
    evolve(tiny_run, full, "--scorer", "accuracy")
    calls = {"n": 0}
    original = Accuracy.score_one

    def flaky(self, arch, ctx):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return original(self, arch, ctx)

    cut = tmp_path / "cut"
    monkeypatch.setattr(Accuracy, "score_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        evolve(tiny_run, cut, "--scorer", "accuracy")
    monkeypatch.setattr(Accuracy, "score_one", original)
    scored_before = len((cut / "history.jsonl").read_text().splitlines())
    assert 0 < scored_before < 9
    evolve(tiny_run, cut, "--scorer", "accuracy", "--resume")
    a = [json.loads(x) for x in (full / "history.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (cut / "history.jsonl").read_text().splitlines()]
    assert [x["arch"] for x in a] == [x["arch"] for x in b]
    assert [x["score"] for x in a] == [x["score"] for x in b]
    assert json.loads((full / "best_arch.json").read_text())["arch"] == json.loads((cut / "best_arch.json").read_text())["arch"]


def run(tool, *args, env=None):
    return subprocess.run([sys.executable, str(REPO / "tools" / tool), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip


def one_line_error(proc, needle):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0], lines[0]


def test_evolve_cli_errors(tiny_run, tmp_path):
    one_line_error(run("evolve.py", "--supernet", tmp_path / "nothing", "--scorer", "accuracy"), "tools/train_supernet.py")
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--scorer", "acuracy"), "Did you mean 'accuracy'")
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--scorer", "angle++flatness"), "malformed scorer expression")
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--scorer", "flatness", "--score.options.sigmas", "[0.01,0.001]"),
                   "strictly increasing")  # fmt: skip
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--plugin", tmp_path / "missing.py", "--scorer", "x"), "does not exist")
    bad = tmp_path / "bad.py"
    bad.write_text("import nonexistent_module_xyz\n")
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--plugin", bad, "--scorer", "x"), "bad.py' raised on import")
    shape = tmp_path / "shape.py"
    shape.write_text("import numpy as np\nfrom scorers import Scorer, Needs, register_scorer\n"
                     "@register_scorer('wrong_shape', needs=Needs(supernet=False))\nclass W(Scorer):\n"
                     "    def score(self, archs, ctx):\n        return np.zeros(len(archs) + 1)\n")  # fmt: skip
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--plugin", shape, "--scorer", "wrong_shape", "--out", tmp_path / "w",
                       *SMALL), "returned shape")  # fmt: skip
    one_line_error(run("evolve.py", "--supernet", tiny_run, "--scorer", "accuracy", "--search.max_params", "1e-9",
                       "--out", tmp_path / "c", *SMALL), "the space spans params 0.00")  # fmt: skip
    assert not (tmp_path / "c").exists()  # refused in seconds, before any scoring or writing
    no_init = tmp_path / "noinit"
    import shutil

    shutil.copytree(tiny_run, no_init)
    (no_init / "checkpoints" / "init.pt").unlink()
    one_line_error(run("evolve.py", "--supernet", no_init, "--scorer", "angle", "--out", tmp_path / "a", *SMALL), "init checkpoint")


def test_rank_nb201_reports_tau_and_resumes(tiny_run, tmp_path, nb201_table_path):
    out = tmp_path / "rank"
    args = ["--supernet", str(tiny_run), "--scorer", "accuracy,angle", "--scorer", "nb201", "--sample", "20", "--table",
            str(nb201_table_path), "--out", str(out), "--run.progress", "false", "--score.eval_batches", "2",
            "--score.bn_batches", "2"]  # fmt: skip
    assert rank_main(args) == 0
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 20 and set(rows[0]) == {"index", "arch", "nb201_cifar10_test", "accuracy", "angle", "nb201"}
    summary = json.loads((out / "summary.json").read_text())
    truth = [float(r["nb201_cifar10_test"]) for r in rows]
    for name in ("accuracy", "angle"):
        tau = stats.kendalltau([float(r[name]) for r in rows], truth).statistic
        assert summary["results"][name]["kendall_tau"] == pytest.approx(tau)
    assert summary["results"]["nb201"]["kendall_tau"] > 0.6  # the oracle (cifar10-valid) agrees with test accuracy
    assert (out / "scatter.png").exists()
    before = (out / "scores.csv").read_text()
    assert rank_main([*args, "--resume"]) == 0
    assert (out / "scores.csv").read_text() == before


def test_rank_nb201_errors(tiny_run, tmp_path, nb201_table_path, tiny_darts_run):
    bad = tmp_path / "table.csv"
    bad.write_text("index,arch,speed\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n")
    one_line_error(run("rank_nb201.py", "--supernet", tiny_run, "--scorer", "accuracy", "--table", bad), "speed")
    listed = tmp_path / "archs.txt"
    listed.write_text("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\nGenotype(normal=[], normal_concat=[])\n")
    one_line_error(run("rank_nb201.py", "--supernet", tiny_run, "--scorer", "accuracy", "--table", nb201_table_path,
                       "--archs", listed), "archs.txt:2")  # fmt: skip
    one_line_error(run("rank_nb201.py", "--supernet", tiny_darts_run, "--scorer", "accuracy", "--table", nb201_table_path),
                   "needs an NB201 supernet")  # fmt: skip
    one_line_error(run("rank_nb201.py", "--scorer", "accuracy", "--table", nb201_table_path), "--supernet")
    one_line_error(run("rank_nb201.py", "--scorer", "nb201", "--table", nb201_table_path, "--sample", "99999"), "--sample")


def test_rank_on_listed_architectures(tmp_path, nb201_table_path):
    listed = tmp_path / "archs.txt"
    listed.write_text("# three by index, one by string\n6111\n9930\n0\n|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    assert rank_main(["--scorer", "nb201", "--table", str(nb201_table_path), "--archs", str(listed), "--out",
                      str(tmp_path / "r"), "--run.progress", "false", "--topk", "1"]) == 0  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "r" / "scores.csv").open()))
    assert [int(r["index"]) for r in rows][:3] == [6111, 9930, 0]
    assert np.isclose(float(rows[0]["nb201"]), 91.6067, atol=1e-3)  # the oracle's default: cifar10-valid


def test_evolve_on_a_darts_supernet(tiny_darts_run, tmp_path):
    out = tmp_path / "darts"
    assert evolve(tiny_darts_run, out, "--scorer", "accuracy+flatness") == 0
    best = json.loads((out / "best_arch.json").read_text())
    from genas.spaces import create_space

    arch = create_space("darts").parse(best["arch"])  # a Genotype string or its JSON form
    assert arch.space == "darts"


def test_constraints_are_respected(tiny_run, tmp_path):
    from evolution import count_params
    from genas.spaces import create_space
    from supernet.factory import load_trained

    net = load_trained(tiny_run).model
    space = create_space("nb201")
    sizes = sorted(count_params(net.subnet(space.sample(np.random.default_rng(i)))) for i in range(40))
    limit = sizes[len(sizes) // 2] / 1e6  # about half of the space fits
    out = tmp_path / "constrained"
    assert evolve(tiny_run, out, "--scorer", "angle", "--search.max_params", str(limit)) == 0
    for line in (out / "history.jsonl").read_text().splitlines():
        arch = space.parse(json.loads(line)["arch"])
        assert count_params(net.subnet(arch)) / 1e6 <= limit
