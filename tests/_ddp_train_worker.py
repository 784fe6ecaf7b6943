"""Run under torchrun by test_distributed.py: train a tiny supernet with DDP, dump each rank's weights."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from genas.config import load_config  # noqa: E402
from supernet.cli import train_from_config  # noqa: E402
from supernet.factory import load_trained  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    cfg = load_config("quickstart", sys.argv[2:])
    captured = {}
    import supernet.train as train_mod

    original_fit = train_mod.SupernetTrainer.fit

    def fit(self, *a, **k):  # record what this rank saw
        captured["steps_per_epoch"] = len(self.loader)
        captured["samples"] = self.loader.num_samples
        captured["trainer"] = self
        return original_fit(self, *a, **k)

    train_mod.SupernetTrainer.fit = fit
    run = train_from_config(cfg)
    rank = int(os.environ["RANK"])
    trainer = captured["trainer"]
    torch.save({"model": trainer.model.state_dict(), "samples": captured["samples"],
                "steps": captured["steps_per_epoch"], "run": str(run.path)}, out / f"rank{rank}.pt")  # fmt: skip
    if rank == 0:
        load_trained(run.path)  # the checkpoint rank 0 wrote loads


if __name__ == "__main__":
    main()
