"""Pull steps as a Prefect worker will run them: under flowdeck's names on request, in Prefect's template
language only.

A Prefect worker runs a deployment's pull steps with Prefect's own runner (``prefect flow-run execute``):
it imports each step by name, fills ``{{ name }}`` placeholders with a plain regex (no filters, no
``<< >>``), and resolves a block only when the placeholder is the whole value. So what flowdeck publishes
for such a worker must be in that language; anything else is rendered here or refused with the place in
``prefect.yaml`` that holds it, never handed to a worker to fail on at 3 a.m.

``pull_steps: flowdeck`` (``flowdeck deploy --pull-steps flowdeck``, or the top-level ``flowdeck:`` key of
``prefect.yaml``) publishes every built-in step under its ``flowdeck.steps.<name>`` name with
``requires: flowdeck[<extra>]``, so a worker with flowdeck installed runs flowdeck's pulls (and Prefect's
install-on-demand fetches flowdeck where it is missing). ``as-written`` (the default) keeps the names.

A storage pull step published under flowdeck's name also carries the version's code snapshots (its
``snapshots`` input, :func:`with_snapshots`), so a worker running it pulls exactly that version's code, after
a rollback too; a step published under Prefect's name never gets an input Prefect's step would refuse.

``runner: flowdeck`` (``flowdeck deploy --runner flowdeck``) goes further: the deployment's work pool runs
``flowdeck flow-run execute`` instead of ``prefect flow-run execute`` (``job_variables.command``), so
flowdeck runs the whole flow run (:mod:`flowdeck.flowrun`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowdeck.config import StepEntry
from flowdeck.errors import DeployError, Location
from flowdeck.keys import KeyPath, format_key_path
from flowdeck.steps.aliases import resolve_name
from flowdeck.templating.expressions import expressions_in
from flowdeck.templating.placeholders import (
    ANGLE_PLACEHOLDER_REGEX,
    PLACEHOLDER_REGEX,
    PlaceholderType,
    determine_placeholder_type,
)

__all__ = ["EXTRA_REQUIREMENTS", "PULL_STEP_MODES", "RUNNERS", "RUNNER_COMMAND", "PullStepsError", "flow_runner",
           "flowdeck_requirement", "publish_pull_steps", "pull_steps_mode", "with_runner", "with_snapshots"]

#: ``as-written`` keeps each step's name; ``flowdeck`` publishes built-in steps as ``flowdeck.steps.*``.
PULL_STEP_MODES = ("as-written", "flowdeck")
#: The distribution a worker installs to get flowdeck's steps.
DISTRIBUTION = "flowdeck"


class PullStepsError(DeployError):
    """A pull step holds something Prefect's step runner would not understand."""


#: What each of flowdeck's extras installs (pyproject.toml's optional dependencies), each written by the name it
#: is imported by. Prefect's runner checks a step's ``requires:`` by importing each requirement's name (``-``
#: read as ``_``, extras kept) and pip-installs them all when one fails: ``flowdeck[s3]`` never imports, so it
#: cost a no-op pip run before every pull. A dotted name is the same distribution to pip (names are compared
#: with ``-``, ``_`` and ``.`` alike), so ``azure.storage.blob`` installs azure-storage-blob and imports.
EXTRA_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "s3": ("boto3>=1.34", "zstandard>=0.22"),
    "azure": ("azure.storage.blob>=12.19", "azure.identity>=1.15", "zstandard>=0.22"),
    "gcs": ("google.cloud.storage>=2.14", "zstandard>=0.22"),
}


def flowdeck_requirement(extra: str | None) -> str | list[str]:
    """The ``requires:`` of a published flowdeck step: ``flowdeck``, or for a step that needs an extra,
    ``flowdeck`` and that extra's packages, each by an importable name (see ``EXTRA_REQUIREMENTS``)."""
    if not extra:
        return DISTRIBUTION
    return [DISTRIBUTION, *EXTRA_REQUIREMENTS[extra]]


def pull_steps_mode(data: Mapping[str, Any], option: str | None,
                    locate: Callable[[KeyPath], Location | None] | None = None) -> str:
    """The mode to publish with: the command-line option wins over ``flowdeck: {pull_steps: ...}``."""
    if option is not None:
        if option not in PULL_STEP_MODES:
            raise DeployError(f"unknown pull steps mode '{option}'", hint=f"use one of: {', '.join(PULL_STEP_MODES)}")
        return option
    return _file_setting(data, "pull_steps", PULL_STEP_MODES, "as-written", "pull steps mode", locate)


def _file_setting(data: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, what: str,
                  locate: Callable[[KeyPath], Location | None] | None) -> str:
    """``flowdeck: {key: ...}`` in prefect.yaml, one of ``choices`` (``default`` when absent)."""
    section = data.get("flowdeck")
    value = section.get(key) if isinstance(section, Mapping) else None
    if value is None:
        return default
    if value not in choices:
        path = ("flowdeck", key)
        raise DeployError(f"unknown {what} '{value}'", location=locate(path) if locate else None,
                          key_path=format_key_path(path), hint=f"use one of: {', '.join(choices)}")
    return str(value)


#: The command a work pool runs for a flow run when flowdeck runs it (``--runner flowdeck``).
RUNNER_COMMAND = "flowdeck flow-run execute"
RUNNERS = ("prefect", "flowdeck")


def flow_runner(data: Mapping[str, Any], option: str | None,
                locate: Callable[[KeyPath], Location | None] | None = None) -> str:
    """Who runs the flow runs: ``prefect`` (the pool's command) or ``flowdeck`` (``flowdeck flow-run execute``)."""
    if option is not None:
        return option
    return _file_setting(data, "runner", RUNNERS, "prefect", "runner", locate)


def with_runner(deployment: dict[str, Any], runner: str) -> dict[str, Any]:
    """The deployment with ``work_pool.job_variables.command`` set for ``runner`` (a copy)."""
    if runner != "flowdeck":
        return deployment
    deployment = copy.deepcopy(deployment)
    pool = deployment.get("work_pool")
    pool = dict(pool) if isinstance(pool, Mapping) else {}
    job_variables = dict(pool.get("job_variables") or {})
    job_variables["command"] = RUNNER_COMMAND
    pool["job_variables"] = job_variables
    deployment["work_pool"] = pool
    return deployment


def _refuse(message: str, path: KeyPath, locate: Callable[[KeyPath], Location | None] | None,
            hint: str) -> PullStepsError:
    return PullStepsError(message, location=locate(path) if locate else None, key_path=format_key_path(path),
                          hint=hint)


def _prefect_text(text: str, path: KeyPath, locate: Callable[[KeyPath], Location | None] | None,
                  rendered: bool) -> str:
    """``text`` in Prefect's template language, or a located error saying why it cannot be."""
    for expression in expressions_in(text):
        kinds = set(expression.kinds)
        if not rendered and kinds <= {PlaceholderType.STANDARD}:
            continue  # a dry run has no build/push outputs yet: the real deploy renders or refuses it
        raise _refuse(
            f"'{expression.full_match}' is an expression Prefect's step runner does not evaluate: a worker "
            "would receive it as literal text", path, locate,
            "pull steps run on the worker, where only plain `{{ name }}` placeholders are filled; use a "
            "plain placeholder, compute the value in a build or push step (its outputs are rendered at "
            "deploy time), or set it in the worker's environment and use `{{ $NAME }}`")
    # << name >> means {{ name }}: Prefect only knows the second spelling.
    text = ANGLE_PLACEHOLDER_REGEX.sub(lambda m: "{{ " + m.group(2) + " }}", text)
    blocks = [m for m in PLACEHOLDER_REGEX.finditer(text)
              if determine_placeholder_type(m.group(2)) is PlaceholderType.BLOCK_DOCUMENT]
    if blocks and (len(blocks) > 1 or blocks[0].group(1) != text):
        raise _refuse(
            f"'{blocks[0].group(1)}' is a block inside a longer string; Prefect's step runner only resolves a "
            "block that is the whole value", path, locate,
            "pass the block as the whole value (`credentials: '{{ prefect.blocks.type.name }}'`), or keep "
            "the pull steps for flowdeck's own worker")
    return text


def _prefect_template(value: Any, path: KeyPath, locate: Callable[[KeyPath], Location | None] | None,
                      rendered: bool) -> Any:
    if isinstance(value, str):
        return _prefect_text(value, path, locate, rendered)
    if isinstance(value, dict):
        return {k: _prefect_template(v, (*path, k), locate, rendered) for k, v in value.items()}
    if isinstance(value, list):
        return [_prefect_template(v, (*path, i), locate, rendered) for i, v in enumerate(value)]
    return value


def publish_pull_steps(
    pull_steps: Sequence[Any],
    entries: Sequence[StepEntry] | None,
    *,
    mode: str = "as-written",
    for_prefect: bool = True,
    rendered: bool = True,
    locate: Callable[[KeyPath], Location | None] | None = None,
) -> list[Any]:
    """The pull steps to publish, from the deploy-time templated ``pull_steps``.

    ``entries`` are the parsed steps they came from, in the same order (None for the generated default
    pull step): they say where each step was written, for errors. ``for_prefect`` checks the templates
    for Prefect's runner (always with ``mode='flowdeck'``); ``rendered`` is False in a dry run, where the
    build and push outputs are not known yet.
    """
    published: list[Any] = []
    check = for_prefect or mode == "flowdeck"
    for index, step in enumerate(pull_steps):
        if not isinstance(step, dict) or len(step) != 1:
            published.append(copy.deepcopy(step))
            continue
        name, inputs = next(iter(step.items()))
        inputs = copy.deepcopy(inputs) if isinstance(inputs, dict) else {}
        entry = entries[index] if entries is not None and index < len(entries) else None
        base: KeyPath = (*entry.path, entry.written) if entry is not None else ("pull", index, str(name))
        resolution = resolve_name(str(name))
        if mode == "flowdeck" and resolution.spec is not None:
            name = resolution.spec.name
            # Requirements written for Prefect's own step (prefect-aws, ...) do not apply to flowdeck's.
            inputs["requires"] = flowdeck_requirement(resolution.spec.extra)
        if check:
            inputs = {k: (v if k in ("id", "requires") else _prefect_template(v, (*base, k), locate, rendered))
                      for k, v in inputs.items()}
        published.append({name: inputs})
    return published


#: flowdeck's storage pull steps, which take a ``snapshots`` input (Prefect's own do not).
SNAPSHOT_PULL_STEPS = frozenset({"flowdeck.steps.pull_from_s3", "flowdeck.steps.pull_from_gcs",
                                 "flowdeck.steps.pull_from_azure_blob_storage"})


def with_snapshots(pull_steps: Sequence[Any], snapshots: Sequence[Mapping[str, str]]) -> list[Any]:
    """The published pull steps, each storage step under flowdeck's name given the version's ``snapshots``."""
    published: list[Any] = []
    for step in pull_steps:
        if snapshots and isinstance(step, dict) and len(step) == 1:
            name, inputs = next(iter(step.items()))
            if name in SNAPSHOT_PULL_STEPS and isinstance(inputs, dict):
                step = {name: {**inputs, "snapshots": [dict(s) for s in snapshots]}}
        published.append(step)
    return published
