"""Every code block of README.md and docs/*.md that is meant to run is run here, so no snippet can rot.

* ``python`` blocks are executed, in order, one fresh Python process per page (as a reader would
  run them), in a scratch directory holding
  a small trained ``runs/nb201-digits`` (the README's default run); ``../shared/data`` paths point at
  the shared data (the block is skipped, with the reason, where that data is absent).
* ``bash`` blocks: every ``python tools/<tool>.py ...`` and ``genas <command> ...`` line runs with
  ``--check`` appended: the command line, the config and every name and option in it are checked as
  the real run would check them, without the hours of work some of them stand for.
* A block preceded by ``<!-- not run: why -->`` is a template or an excerpt and is left alone.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genas.cli import run_cli
from tests.conftest import REPO, SHARED

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!--\s*not run[^>]*-->\s*\n)?```(\w+)[^\n]*\n(.*?)```", re.S)
TOOLS = {"train_supernet.py": "supernet.cli", "evolve.py": "evolution.cli", "rank_nb201.py": "genas.analysis.rank_cli",
         "landscape.py": "genas.analysis.landscape.cli", "search_darts.py": "genas.differentiable.cli",
         "retrain.py": "genas.export.retrain_cli", "export.py": "genas.export.cli"}  # fmt: skip


def blocks(page: Path, lang: str) -> list[str]:
    return [m.group(3) for m in BLOCK.finditer(page.read_text()) if m.group(2) == lang and not m.group(1)]


def commands(text: str) -> list[list[str]]:
    """Each genas command of a bash block (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        for part in re.split(r"\s*(?:&&|;)\s*", line):
            words = shlex.split(part) if part else []
            while words and ("=" in words[0] and not words[0].startswith("-")):  # VAR=value prefixes
                words = words[1:]
            if words[:1] == ["torchrun"]:
                words = [w for w in words[1:] if not w.startswith("--nproc")]
                words = ["python", *words]
            if len(words) >= 2 and words[0] == "python" and words[1].startswith("tools/"):
                out.append(words[1:])
            elif words[:1] == ["genas"]:
                out.append(words)
    return out


def _check_argv(words: list[str]) -> tuple[str, list[str]] | None:
    from genas.commands import COMMANDS

    if words[0] == "genas":
        if len(words) < 2 or words[1] not in COMMANDS or words[1] == "scorers":
            return None
        module, rest = COMMANDS[words[1]][0], words[2:]
    else:
        tool = Path(words[0]).name
        if tool not in TOOLS:
            raise AssertionError(f"the docs name a tool that does not exist: {words[0]}")
        module, rest = TOOLS[tool], words[1:]
    if "--list-scorers" in rest or "--help" in rest or "..." in rest:
        return None
    return module, [*rest, "--check"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_bash_commands_pass_check(page, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPO)
    found = [c for b in blocks(page, "bash") for c in commands(b)]
    failures = []
    for words in found:
        target = _check_argv(words)
        if target is None:
            continue
        module, argv = target
        try:
            code = run_cli(importlib.import_module(module).main, argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err.strip()
        if code != 0:
            failures.append(f"{' '.join(words)}: exit {code}: {err}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, tiny_run):
    """A working directory with the README's default run (a small one) in ``runs/nb201-digits``."""
    d = tmp_path_factory.mktemp("docs")
    shutil.copytree(tiny_run, d / "runs" / "nb201-digits")
    return d


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run(page, scratch, monkeypatch):
    monkeypatch.chdir(scratch)
    code = "\n".join(blocks(page, "python"))
    if "../shared/data" in code:
        if not SHARED.is_dir():
            pytest.skip(f"{page.name} reads ../shared/data, which is absent here")
        code = code.replace("../shared/data", str(SHARED))
    script = scratch / f"{page.stem}_blocks.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO), "GENAS_NB201_TABLE": str(SHARED / "nb201" / "nb201_accuracy.csv")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=scratch, env=env,
                          timeout=3600)  # fmt: skip
    assert proc.returncode == 0, f"{page.name}: its python blocks fail:\n{proc.stderr[-3000:]}"
