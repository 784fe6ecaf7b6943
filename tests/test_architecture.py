"""The house is one-way: which top-level package may import which (``docs/architecture.md``).

Read from the source (every ``import``, ``from ... import`` and ``importlib.import_module("...")``
string, at module level or inside a function), so a lazy import downstream cannot hide.  And the
fast paths: ``--help`` of every command and ``--list-scorers`` import no torch.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: the stages, each its own floor: the design card's top-level folders, and the packages under ``genas.``
#: that are stages of their own (the rest of ``genas`` is the core every stage shares)
STAGES = ("genas", "supernet", "scorers", "evolution", "genas.differentiable", "genas.export", "genas.analysis",
          "genas.commands")  # fmt: skip

#: stage -> the stages it may import (besides itself and third-party code)
ALLOWED = {
    "genas": set(),
    "supernet": {"genas"},
    "scorers": {"genas", "supernet"},
    "evolution": {"genas", "supernet", "scorers"},
    "genas.differentiable": {"genas", "supernet"},
    "genas.export": {"genas", "supernet"},
    "genas.analysis": {"genas", "supernet", "scorers"},
    "genas.commands": set(STAGES),
}


def stage_of(module: str) -> str | None:
    """The stage a dotted module name belongs to (the longest matching prefix), or None for third-party code."""
    if module == "genas.__main__":  # ``python -m genas`` is the ``genas`` command
        return "genas.commands"
    found = [s for s in STAGES if module == s or module.startswith(s + ".")]
    return max(found, key=len) if found else None


def imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from genas import export`` imports the stage ``genas.export``, ``from genas import errors`` the core
            names |= {f"genas.{a.name}" for a in node.names} if node.module == "genas" else {node.module}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return {stage_of(n) for n in names} - {None}


def edges() -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for path in sorted(REPO.glob("*/**/*.py")):
        rel = path.relative_to(REPO)
        pkg = stage_of(".".join(rel.with_suffix("").parts))
        if pkg is None or rel.parts[0] in ("tests", "tools", "benchmarks", "examples"):
            continue
        for target in imported_packages(path) - {pkg}:
            out.setdefault(pkg, {}).setdefault(target, set()).add(str(rel))
    return out


def test_imports_flow_one_way():
    bad = [f"{pkg} -> {target} ({', '.join(sorted(files))})" for pkg, targets in edges().items()
           for target, files in targets.items() if target not in ALLOWED[pkg]]  # fmt: skip
    assert not bad, "imports against the flow of docs/architecture.md:\n" + "\n".join(bad)


def test_the_edge_parser_sees_lazy_and_string_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from scorers import x\n    import importlib\n    importlib.import_module('evolution.cli')\n"
                 "    from genas import export\n    from genas.analysis.ranking import y\n")
    assert imported_packages(f) == {"scorers", "evolution", "genas.export", "genas.analysis"}


def _imports_torch(*args: str) -> bool:
    code = ("import runpy, sys; sys.argv = {argv!r}\ntry:\n    runpy.run_path({tool!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('TORCH' if 'torch._C' in sys.modules else 'NO-TORCH')")  # fmt: skip
    tool = str(REPO / "tools" / args[0])
    proc = subprocess.run([sys.executable, "-c", code.format(argv=[tool, *args[1:]], tool=tool)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] in ("TORCH", "NO-TORCH"), proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1] == "TORCH"


@pytest.mark.parametrize("tool", sorted(p.name for p in (REPO / "tools").glob("*.py")))
def test_help_imports_no_torch(tool):
    assert not _imports_torch(tool, "--help")


def test_list_scorers_imports_no_torch():
    assert not _imports_torch("evolve.py", "--list-scorers")


def test_genas_version_and_help_import_no_torch():
    code = ("import sys\nfrom genas.commands import main\nmain(['--version'])\nmain(['--help'])\n"
            "print('TORCH' if 'torch._C' in sys.modules else 'NO-TORCH')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.stdout.splitlines()[0].startswith("genas ") and proc.stdout.strip().endswith("NO-TORCH"), proc.stdout


def _runtime_imports(path) -> set[str]:
    """Every module a file imports at run time (module level or in a function; not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}  # fmt: skip
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_import_runs_in_a_circle():
    """Not even through function-level imports (issue 23 found export/arch -> checkpoint -> registry -> arch)."""
    modules = {}
    for pkg in ("genas", "supernet", "scorers", "evolution"):
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: {n for n in _runtime_imports(p) if n in modules and n != m} for m, p in modules.items()}
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:  # depth-first search; a grey node met again closes a cycle
        state[m] = "grey"
        for n in sorted(graph[m]):
            if state.get(n) == "grey":
                cycles.append(" -> ".join(stack[stack.index(n):] + [m, n]) if n in stack else f"{m} -> {n}")
            elif n not in state:
                visit(n, stack + [m])
        state[m] = "black"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "imports in a circle:\n" + "\n".join(cycles)


@pytest.mark.parametrize("walk", ["python tools/evolve.py --scorer angle+flatness", "python tools/search_darts.py --variant beta"])
def test_the_documented_walks_enter_at_most_eight_files_each_once(walk):
    """docs/architecture.md walks each command through at most 8 files, none twice, each one real (issue 23)."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split(f"## A walk: `{walk}`", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^\d+\. `([\w/]+\.py)`", section, flags=re.M)
    assert 1 < len(steps) <= 8 and len(set(steps)) == len(steps), steps
    assert all((REPO / f).is_file() for f in steps), steps
