"""The flow's child process of `flowdeck flow-run execute`: ``python -m flowdeck.cli.flowrun_child SPEC.json``.

With ``-`` instead of a path, the path comes as one line on stdin: the parent starts the child before the
pull steps end (:mod:`flowdeck.flowrun.launch`). An empty stdin means the flow is not to run after all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flowdeck.flowrun.child import run_child


def _spec_from_stdin() -> str:
    line = sys.stdin.readline().strip()
    # The flow gets an empty stdin, as when it is started with its spec's path.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return line


if __name__ == "__main__":
    spec = sys.argv[1] if sys.argv[1] != "-" else _spec_from_stdin()
    sys.exit(run_child(Path(spec)) if spec else 0)
