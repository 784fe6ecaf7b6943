"""The `genas` command, the README's commands and CI's agreement with them."""

from __future__ import annotations

import re

import pytest

from genas.commands import main
from tests.conftest import REPO


def test_genas_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "evolve", "rank-nb201", "landscape", "scorers"):
        assert name in out
    assert main(["evolv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown command 'evolv'. Did you mean 'evolve'") and "\n" not in err


def test_genas_scorers_lists_builtins(capsys):
    assert main(["scorers"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("accuracy", "angle", "flatness", "nb201", "na:A"))


def test_genas_train_reports_config_errors_in_one_line(capsys):
    assert main(["train", "--train.epoch", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Did you mean 'train.epochs'" in err and len(err.splitlines()) == 1


def test_usage_mistakes_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evolve", "--no-such-flag"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unrecognized arguments: --no-such-flag") and len(err.splitlines()) == 1


def test_readme_commands_match_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    test_cmd = re.search(r"# --- test command \(README\) ---\n(.+)\n# --- end ---", ci).group(1).strip()
    assert f"\n{test_cmd}\n" in readme  # the README shows exactly the command CI runs
    assert "pip install -e . && python tools/train_supernet.py" in readme


def test_default_threads_follow_the_free_cores(monkeypatch):
    """run.threads unset: $OMP_NUM_THREADS wins; otherwise the cores not busy (1-minute load), at least 1."""
    import torch

    from genas import distributed

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(distributed.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        for load, expected in ((0.0, 4), (1.2, 3), (2.6, 1), (9.0, 1)):
            monkeypatch.setattr(distributed.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
            assert distributed.free_cores() == expected
        monkeypatch.setattr(distributed.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: the cores are shared among the local ranks
        assert distributed.free_cores() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(1)
        assert distributed.set_threads(None) == 1  # the environment's choice is left alone
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert distributed.set_threads(None) == 2
        assert distributed.set_threads(1) == 1  # an explicit run.threads always applies
    finally:
        torch.set_num_threads(before)


def test_a_users_own_modules_do_not_shadow_genas(tmp_path):
    """genas installs four top-level names (genas, scorers, supernet, evolution); a user's own ``export.py``,
    ``analysis.py`` or ``differentiable.py`` in the working directory, which ``python -m`` and ``python -c``
    put first on ``sys.path``, must not be picked up in place of genas's packages."""
    import subprocess
    import sys

    for name in ("export", "analysis", "differentiable", "commands"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user own {name}.py was imported')\n")
    code = ("import genas, genas.export, genas.analysis, genas.differentiable, genas.commands\n"
            "from genas.export import read_arch\nfrom genas.analysis.ranking import rank_report\n"
            "from genas.differentiable import create_architect\nprint('ok')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    for argv in (["--version"], ["export", "--check", "--arch", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "--format", "pt"], ["search-darts", "--check"], ["rank-nb201", "--help"]):  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "genas", *argv], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, f"{argv}: {proc.stderr}"
        assert "user own" not in proc.stderr
