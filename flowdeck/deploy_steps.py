"""The build and push steps of one ``flowdeck deploy``: each distinct step list runs once.

Several deployments of a project often share their build and push steps; :class:`StepCache` runs an identical
list once and hands each deployment a copy of its outputs (Prefect caches docker steps the same way), along
with the output names that hold or derive from a secret, which :mod:`flowdeck.deploy` must never store.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from flowdeck.config import Project, StepEntry
from flowdeck.jsontypes import dumps_sorted
from flowdeck.steps.runner import RunOptions, StepRecord, run_steps
from flowdeck.templating.taint import derived_taint, taint_outputs

if TYPE_CHECKING:
    from flowdeck.deploy import DeployOptions

__all__ = ["StepCache"]


def _key(steps: list[StepEntry]) -> str:
    return dumps_sorted([(s.section, s.written, s.inputs) for s in steps], separators=(",", ":"))


class StepCache:
    """Identical build/push step lists run once per deploy (Prefect caches docker steps the same way)."""

    def __init__(self, project: Project, options: DeployOptions) -> None:
        self.project = project
        self.options = options
        self.outputs: dict[str, dict[str, Any]] = {}
        # Per step list: the output names that hold or derive from a secret (never stored).
        self.tainted: dict[str, dict[str, str]] = {}

    def run(self, steps: list[StepEntry]) -> dict[str, Any]:
        """Run the build, then the push steps of ``steps`` (once per distinct list); a copy of their outputs."""
        if not steps:
            return {}
        key = _key(steps)
        if key not in self.outputs:
            run_options = RunOptions(resolver=self.options.resolver, strict=self.options.strict,
                                     install_requires=self.options.install_requires, root=self.project.root,
                                     locate=self.project.locate)
            outputs: dict[str, Any] = {}
            records: list[StepRecord] = []
            for section in ("build", "push"):
                outputs = run_steps([s for s in steps if s.section == section], outputs, run_options, records)
            self.outputs[key] = outputs
            self.tainted[key] = taint_outputs(outputs, derived_taint(steps, records))
        return copy.deepcopy(self.outputs[key])

    def taint(self, steps: list[StepEntry]) -> dict[str, str]:
        """The tainted output names of a step list :meth:`run` ran."""
        return self.tainted.get(_key(steps), {})
