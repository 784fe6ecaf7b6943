"""``genas launch`` (``python -m genas.launch``): torchrun itself, with one-line errors when the group cannot run.

Every argument is torchrun's (``torch.distributed.run``'s parser and ``run`` are called as they are:
the same c10d rendezvous, elastic agent and restarts). What changes is how a failure reads:

* a rendezvous that never completes (a node that never starts, a wrong ``--rdzv-endpoint`` or
  ``--rdzv-id`` on one node) ends with one line naming the endpoint, the id, the nodes expected and
  the timeout, exit status 2, instead of torchrun's 40-line traceback;
* a worker that fails (a genas error already printed by the worker as its own ``error:`` line, or a
  crash) ends with one line naming the rank and its exit code, and the launcher exits with that code.

    genas launch --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint 10.0.0.1:29500 \\
        --rdzv-id imagenet --max-restarts 3 tools/train_supernet.py --config configs/imagenet/darts_supernet.yaml
"""

from __future__ import annotations

import sys
from typing import Sequence

__all__ = ["main"]


def _join_timeout(rdzv_conf: str) -> str:
    for item in (rdzv_conf or "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "join_timeout":
            return value.strip()
    return "600"  # torch.distributed.elastic's default


def main(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with ``argv``; return its exit status (0, a failed worker's code, or 2 for a rendezvous failure)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError, RendezvousTimeoutError
    from torch.distributed.run import get_args_parser, run

    parser = get_args_parser()
    parser.prog = "genas launch"
    parser.description = "torchrun (torch.distributed.run) with one-line errors for a failed rendezvous or worker."
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    where = f"{args.rdzv_endpoint or '(local)'} (id {args.rdzv_id})"
    try:
        run(args)
    except RendezvousTimeoutError:
        print(f"error: the rendezvous at {where} did not complete within join_timeout {_join_timeout(args.rdzv_conf)} s: "
              f"fewer than the --nnodes {args.nnodes} nodes joined; start every node with the same --rdzv-endpoint "
              "and --rdzv-id, or allow longer with --rdzv-conf join_timeout=SECONDS", file=sys.stderr)  # fmt: skip
        return 2
    except RendezvousError as exc:
        print(f"error: the rendezvous at {where} failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else 1
        how = f"was killed by signal {-failure.exitcode}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        print(f"error: worker rank {rank} {how} (its own output is above; {len(exc.failures)} worker(s) failed)",
              file=sys.stderr)  # fmt: skip
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
