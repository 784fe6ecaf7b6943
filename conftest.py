"""Loaded by pytest before anything is collected: one torch thread per test process.

The suite runs as ``pytest -n 2`` (two worker processes on the project's 2-core machine); with
torch's default of one thread per core each worker would spin against the other
(``benchmarks/threads.py``), and with ``run.threads`` unset genas picks threads from the load at
start, which would make bit-exact comparisons between two runs depend on the moment.
``$OMP_NUM_THREADS`` set by the caller wins.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
