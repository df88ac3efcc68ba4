"""``flowdeck flow-run execute``: flowdeck runs a whole Prefect flow run in place of ``prefect flow-run execute``.

A Prefect work pool launches it (``job_variables.command``) with ``PREFECT__FLOW_RUN_ID`` and
``PREFECT_API_URL``. It reads the run and its deployment from the server, marks it RUNNING, runs the pull
steps with flowdeck's engine, calls the entrypoint in a child process, ships its output as the run's logs,
and ends it COMPLETED, FAILED or CRASHED, or CANCELLED on a signal or a cancellation from the UI. No
``prefect`` package is needed.
"""

from __future__ import annotations

from flowdeck.flowrun.execute import ExecuteOptions, Outcome, execute_flow_run

__all__ = ["ExecuteOptions", "Outcome", "execute_flow_run"]
