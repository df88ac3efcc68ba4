"""``flowdeck flow-run execute``: flowdeck runs a whole Prefect flow run in place of ``prefect flow-run execute``.

A Prefect work pool launches it (``job_variables.command``) with ``PREFECT__FLOW_RUN_ID`` and
``PREFECT_API_URL``. It reads the run and its deployment from the server, marks it RUNNING, runs the pull
steps with flowdeck's engine, calls the entrypoint in a child process, ships its output as the run's logs,
and ends it COMPLETED, FAILED or CRASHED, or CANCELLED on a signal or a cancellation from the UI. No
``prefect`` package is needed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExecuteOptions", "Outcome", "execute_flow_run"]


def __getattr__(name: str) -> Any:
    # Lazy, so the flow's child process (``flowdeck.flowrun.child``) does not import the server client.
    if name in __all__:
        from flowdeck.flowrun import execute

        return getattr(execute, name)
    raise AttributeError(f"module 'flowdeck.flowrun' has no attribute {name!r}")
