"""Run a genas tool, pausing it at its K-th write of ``checkpoints/last.pt`` so a test can SIGKILL it there.

Usage (by tests/test_kill_resume.py and tests/test_elastic.py)::

    python tests/_pause_at_write.py WHEN K MARKER_DIR TOOL [ARGS...]

``WHEN`` is ``before`` (the temporary file is written, ``os.replace`` not yet done: a kill there is
a kill in the middle of the atomic write) or ``after`` (``last.pt`` was just replaced).  At the pause
the process writes ``MARKER_DIR/paused<RANK>`` holding its pid, then sleeps until it is killed.
Every process also writes ``MARKER_DIR/pid<RANK>`` at start.  Under ``torchrun`` only the first start
of the worker group pauses (``TORCHELASTIC_RESTART_COUNT`` 0): a restarted group runs through.
"""

import os
import runpy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    when, k, marker, tool = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    rank = os.environ.get("RANK", "0")
    marker.mkdir(parents=True, exist_ok=True)
    first_start = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_start:
        (marker / f"pid{rank}").write_text(str(os.getpid()))
    real_replace, writes = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        is_last = Path(dst).name == "last.pt" and first_start
        if is_last:
            writes[0] += 1
        if is_last and writes[0] == k and when == "before":
            pause()
        real_replace(src, dst, *args, **kwargs)
        if is_last and writes[0] == k and when == "after":
            pause()

    def pause() -> None:
        (marker / f"paused{rank}").write_text(str(os.getpid()))
        while True:
            time.sleep(1)

    os.replace = replace
    sys.argv = [tool, *sys.argv[5:]]
    runpy.run_path(tool, run_name="__main__")


if __name__ == "__main__":
    main()
