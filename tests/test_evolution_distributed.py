"""run_search under torchrun: 2 CPU processes (gloo) give the result of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evolution import Evolution, read_history, run_search
from genas.spaces import NB201Space

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch.distributed as dist
    sys.path.insert(0, {root!r})
    from evolution import Evolution, run_search
    from genas.spaces import NB201Space

    dist.init_process_group("gloo")
    rank, out = dist.get_rank(), sys.argv[1]
    scored = []

    def fitness(archs):
        scored.extend(str(a) for a in archs)
        return [a.ops.count("nor_conv_3x3") + 1e-5 * a.code for a in archs]

    algo = Evolution(NB201Space(), seed=5, population=15, topk=4, mutations=6, crossovers=6, iterations=3)
    res = run_search(algo, fitness, out + "/run", progress=False, chunk_size=int(sys.argv[2]))
    with open(f"{{out}}/rank{{rank}}.json", "w") as fh:
        json.dump({{"scored": scored, "history": [[str(i.arch), i.score] for i in res.history]}}, fh)
    dist.destroy_process_group()
    """
)


@pytest.mark.distributed
@pytest.mark.parametrize("chunk_size", [4])
def test_two_ranks_equal_one_process(tmp_path, chunk_size):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path), str(chunk_size)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    algo = Evolution(NB201Space(), seed=5, population=15, topk=4, mutations=6, crossovers=6, iterations=3)
    single = run_search(algo, lambda b: [a.ops.count("nor_conv_3x3") + 1e-5 * a.code for a in b], tmp_path / "single",
                        progress=False)  # fmt: skip
    expected = [[str(i.arch), i.score] for i in single.history]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["history"] == ranks[1]["history"] == expected
    # each architecture was scored by exactly one rank, and both ranks did work
    assert sorted(ranks[0]["scored"] + ranks[1]["scored"]) == sorted(a for a, _ in expected)
    assert ranks[0]["scored"] and ranks[1]["scored"]
    strip = lambda recs: [(r["index"], r["arch"], r["score"]) for r in recs]  # noqa: E731
    run, one = (read_history(tmp_path / d / "history.jsonl") for d in ("run", "single"))
    assert strip(run) == strip(one)
    assert json.loads((tmp_path / "run" / "best_arch.json").read_text()) == json.loads(
        (tmp_path / "single" / "best_arch.json").read_text()
    )
