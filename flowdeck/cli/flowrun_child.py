"""The flow's child process of `flowdeck flow-run execute`: ``python -m flowdeck.cli.flowrun_child SPEC.json``."""

from __future__ import annotations

import sys
from pathlib import Path

from flowdeck.flowrun.child import run_child

if __name__ == "__main__":
    sys.exit(run_child(Path(sys.argv[1])))
