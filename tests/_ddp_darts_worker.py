"""Run under torchrun by test_distributed.py: ``tools/search_darts.py``'s main with DDP, dump each rank's alphas."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import genas.differentiable.cli as cli  # noqa: E402
import genas.differentiable.stage as stage  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    captured = []
    run = stage.run
    stage.run = lambda *a, **k: captured.append(run(*a, **k))
    assert cli.main(sys.argv[2:]) == 0
    search = captured[0]
    rank = int(os.environ["RANK"])
    torch.save({"arch": search.model.arch_values(), "history": search.history, "steps": len(search.train_loader)},
               out / f"darts_rank{rank}.pt")  # fmt: skip


if __name__ == "__main__":
    main()
