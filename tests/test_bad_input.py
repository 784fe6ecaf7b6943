"""Every class of bad input, in every command that reads it: one ``error:`` line, exit 2, no traceback,
and the directory listing unchanged (issue 10).

The cases run in-process through :func:`genas.cli.run_cli` (what ``tools/*.py`` run), which keeps the
table cheap; ``test_a_real_process_gives_one_line`` checks the same contract on a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from genas.cli import run_cli
from tests.conftest import REPO, TINY_TRAIN

TRAIN = ("train", "supernet.cli")
EVOLVE = ("evolve", "evolution.cli")
RANK = ("rank", "genas.analysis.rank_cli")
LANDSCAPE = ("landscape", "genas.analysis.landscape.cli")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files of every kind, made once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "random.bin").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "latin1.yaml").write_bytes("train:\n  epochs: 3 # \xe9t\xe9\n".encode("latin-1"))
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("x")
    (d / "random.npz").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    x = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    np.savez(d / "neg_labels.npz", x_train=x, y_train=np.r_[-1, np.zeros(39, int)], x_test=x, y_test=np.zeros(40, int))
    (d / "random.csv").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "archs.txt").write_text("|nor_conv_3x3~0|+|bogus|\n")
    write_broken_npz(d, rng)
    return d


def write_broken_npz(d, rng) -> None:
    """npz files that fail inside zipfile, not numpy: a zip header on random bytes, a cut file, a bad CRC."""
    (d / "zip_header.npz").write_bytes(b"PK\x03\x04" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    x = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    arrays = dict(x_train=x, y_train=np.zeros(40, int), x_test=x, y_test=np.zeros(40, int))
    np.savez(d / "whole.npz", **arrays)
    whole = (d / "whole.npz").read_bytes()
    (d / "whole.npz").unlink()
    (d / "cut.npz").write_bytes(whole[: len(whole) // 2])
    np.savez_compressed(d / "bad_crc.npz", **arrays)
    data = bytearray((d / "bad_crc.npz").read_bytes())
    data[100:140] = bytes(40)  # inside the first member's compressed bytes
    (d / "bad_crc.npz").write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bad_plugin(tmp_path_factory):
    """Scorers that return what is not one score per architecture (in a folder of its own: Python caches it there)."""
    path = tmp_path_factory.mktemp("plugins") / "bad_scorers.py"
    path.write_text("import numpy as np\nfrom scorers import Needs, Scorer, register_scorer\n\n"
                    "@register_scorer('two_columns', needs=Needs(supernet=False), overwrite=True)\n"
                    "class TwoColumns(Scorer):\n    def score(self, archs, ctx):\n        return np.zeros((len(archs), 2))\n\n"
                    "@register_scorer('one_short', needs=Needs(supernet=False), overwrite=True)\n"
                    "class OneShort(Scorer):\n    def score(self, archs, ctx):\n        return np.zeros(len(archs) - 1)\n\n"
                    "@register_scorer('strings', needs=Needs(supernet=False), overwrite=True)\n"
                    "class Strings(Scorer):\n    def score(self, archs, ctx):\n        return ['high'] * len(archs)\n")  # fmt: skip
    return path


def cases(files, tiny_run, plugin):
    f, long_name = files, "n" * 300
    return [
        # files that are not what they claim, directories where a file is expected
        (TRAIN, ["--config", f / "random.bin"], "config file"),
        (TRAIN, ["--config", f / "latin1.yaml"], "not a text (UTF-8) YAML"),
        (TRAIN, ["--config", f / "list.yaml"], "must hold a mapping"),
        (TRAIN, ["--config", f / "a_dir"], "is a directory"),
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "random.npz"], "random.npz"),
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "a_dir"], "a_dir"),
        (EVOLVE, ["--config", f / "random.bin", "--supernet", tiny_run], "config file"),
        (RANK, ["--scorer", "nb201", "--table", f / "random.csv"], "random.csv"),
        (RANK, ["--scorer", "nb201", "--table", f / "a_dir"], "a_dir"),
        (LANDSCAPE, ["path", "--a", "1", "--b", "2", "--table", f / "random.csv"], "random.csv"),
        (LANDSCAPE, ["neighbourhood", "--table", f / "a_dir"], "a_dir"),
        # malformed architectures
        (RANK, ["--scorer", "nb201", "--archs", f / "archs.txt"], "archs.txt:1"),
        (LANDSCAPE, ["path", "--a", "99999", "--b", "2"], "out of range"),
        (LANDSCAPE, ["path", "--a", "|nor_conv_3x3~0|+|x|", "--b", "2"], "NB201"),
        # devices and numbers outside what makes sense
        (TRAIN, ["--run.device", "cuda:x"], "'device' parameter of run"),
        (TRAIN, ["--run.device", "tpu"], "'device' parameter of run"),
        (TRAIN, ["--train.epochs", "1e99"], "'epochs' parameter of train"),
        (TRAIN, ["--max-steps", "-1"], "--max-steps must be a positive"),
        (TRAIN, ["--data.batch_size", "-5"], "'batch_size' parameter of data"),
        (TRAIN, ["--train.lr", "nan"], "train.lr"),
        (TRAIN, ["--train.unsampled_update", "sometimes"], "{'decay', 'freeze'}"),
        (RANK, ["--scorer", "nb201", "--sample", "-3"], "--sample must be in"),
        (LANDSCAPE, ["neighbourhood", "--radius", "9"], "--radius must lie in 1..6"),
        # scorer options of the wrong type, names and lengths
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "angle+flatness", "--score.options.gamma", "abc"], "gamma"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "na:accuracy", "--score.options.na.include_self", "maybe"],
         "include_self"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "flatness", "--score.options.alpha", "[1]"], "alpha"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "x" * 600], "at most 500 characters"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "accuracy", "--search.options.cycles", "5"],
         "search algorithm 'evolution' takes no option 'cycles'"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "accuracy", "--search.algorithm", "reaa"], "Did you mean 'rea'"),
        (RANK, ["--scorer", "angle+flatness", "--supernet", tiny_run, "--score.options.gamma", "abc"], "gamma"),
        # outputs that cannot be written, run names too long for the file system
        (TRAIN, ["--run.root", f / "a_file"], "not a directory"),
        (TRAIN, ["--run.name", long_name], "at most 200 characters"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "accuracy", "--out", f / "a_file"], "not a directory"),
        (EVOLVE, ["--supernet", tiny_run, "--scorer", "accuracy", "--out", f / "a_file" / "sub"], "is not a directory"),
        (EVOLVE, ["--supernet", f / "a_file", "--scorer", "accuracy"], "no trained supernet"),
        (RANK, ["--scorer", "nb201", "--out", f / "a_file"], "not a directory"),
        (LANDSCAPE, ["neighbourhood", "--out", f / "a_file"], "not a directory"),
        (LANDSCAPE, ["path", "--a", "1", "--b", "2", "--out", f / "a_file" / "x"], "is not a directory"),
        # dataset content that cannot work
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "neg_labels.npz"], "labels"),
        (TRAIN, ["--data.batch_size", "5000"], "batch_size"),
        # resumes that must change nothing
        (TRAIN, ["--resume", f / "a_dir"], "holds no run"),
        # npz files zipfile refuses (issue 27): one line naming the file, not BadZipFile
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "zip_header.npz"], "zip_header.npz is not a readable npz file"),
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "cut.npz"], "cut.npz is not a readable npz file"),
        (TRAIN, ["--data.dataset", "npz", "--data.options.root", f / "bad_crc.npz"], "bad_crc.npz is not a readable npz file"),
        (TRAIN, ["--data.dataset", "cifar10", "--data.options.root", f / "cut.npz"], "cut.npz is not a readable npz file"),
        # plugin scorers that break the one-score-per-architecture contract: no search folder, no history left
        (EVOLVE, ["--supernet", tiny_run, "--plugin", plugin, "--scorer", "two_columns"], "returned shape (1, 2) for 1"),
        (EVOLVE, ["--supernet", tiny_run, "--plugin", plugin, "--scorer", "one_short"], "returned shape (0,) for 1"),
        (EVOLVE, ["--supernet", tiny_run, "--plugin", plugin, "--scorer", "strings", "--out", "deep/er/search"],
         "returned list, not numbers"),
        (RANK, ["--supernet", tiny_run, "--plugin", plugin, "--scorer", "two_columns", "--sample", "20", "--out", "r"],
         "returned shape (1, 2) for 1"),
        (RANK, ["--plugin", plugin, "--scorer", "strings", "--sample", "20", "--out", "r/s"], "returned list, not numbers"),
    ]


def listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def bad_input_failure(capsys, module: str, argv: list[str], needle: str, watched: list, listing=listing) -> str | None:
    """Run ``module.main(argv)`` as a command does; None when it failed as a user mistake must (exit 2, one
    ``error:`` line holding ``needle``, no traceback, nothing under ``watched`` changed), else what happened."""
    import importlib

    before = [listing(d) for d in watched]
    try:
        code = run_cli(importlib.import_module(module).main, argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    except Exception as exc:  # a traceback for the user: collect it with the rest
        code = f"traceback {type(exc).__name__}: {str(exc)[:150]}"
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    ok = code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    changed = [d.name for d, old in zip(watched, before) if listing(d) != old]
    if ok and not changed and "Traceback" not in err:
        return None
    return f"{' '.join(argv[-4:])}: exit {code}, {err!r} (wanted {needle!r})" + (f"; changed: {changed}" if changed else "")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ of a default run would land here
    return tmp_path


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(files, tiny_run, bad_plugin, in_tmp, capsys,
                                                              nb201_table_path, monkeypatch):  # fmt: skip
    monkeypatch.setenv("GENAS_NB201_TABLE", str(nb201_table_path))
    watched = [in_tmp, files, tiny_run]
    failures = []
    for (command, module), argv, needle in cases(files, tiny_run, bad_plugin):
        argv = [str(a) for a in argv]
        if command == "train":
            argv = [*TINY_TRAIN, *argv]
        failure = bad_input_failure(capsys, module, argv, needle, watched)
        if failure:
            failures.append(f"{command} {failure}")
    assert not failures, "\n".join(failures)


def test_a_real_process_gives_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train_supernet.py"), "--train.epochs", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=3600)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and not os.listdir(tmp_path)


def test_darts_genotypes_malformed_in_every_form():
    from genas.errors import InvalidArchitectureError
    from genas.spaces import create_space

    space = create_space("darts")
    bad = [
        '{"normal": [["sep_conv_3x3", 0], ',  # broken JSON
        '{"normal": 5, "reduce": []}',  # a number where a list belongs
        '{"normal": [["sep_conv_3x3", "zero"]], "reduce": []}',
        "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], reduce=5, reduce_concat=[2])",
        "Genotype(normal=[(",
        "1 2 3",
        "[1, 2, x]",
        {"normal": [["nope", 0]] * 8, "reduce": [["sep_conv_3x3", 0]] * 8},
        [0] * 27,
        None,
    ]
    for obj in bad:
        with pytest.raises(InvalidArchitectureError) as info:
            space.parse(obj)
        assert "\n" not in str(info.value) and str(info.value), obj
