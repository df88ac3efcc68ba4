"""What ``deploy`` would reject for reasons visible in the file alone (issue #12).

``validate`` runs these as errors, so a file it passes does not then fail to deploy: a file with no
deployments, a deployment without an entrypoint or a name, and two deployments that would be stored under
the same ``flow/name``. ``deploy`` and ``steps run`` only act on some deployments (or none), so for them a
missing entrypoint elsewhere in the file is not an error; they call :func:`check_names` alone.
"""

from __future__ import annotations

from typing import Any

from flowdeck.config import Project
from flowdeck.errors import Location, Problem
from flowdeck.flowinfo import split_entrypoint
from flowdeck.keys import KeyPath, format_key_path

__all__ = ["check_deployable", "check_names", "flow_key"]


def flow_key(dep: dict[str, Any]) -> str | None:
    """The flow a deployment certainly belongs to as far as the file says: its ``flow_name``, else its
    entrypoint (one file and function is one flow); None when neither is written or both are templated."""
    flow_name = dep.get("flow_name")
    if isinstance(flow_name, str) and flow_name and "{{" not in flow_name:
        return f"flow {flow_name}"
    entrypoint = dep.get("entrypoint")
    if isinstance(entrypoint, str) and entrypoint and "{{" not in entrypoint:
        module, function = split_entrypoint(entrypoint.replace("\\", "/"))
        return f"entrypoint {module.removeprefix('./')}:{function}"
    return None


def _shown(dep: dict[str, Any], name: str) -> str:
    flow_name = dep.get("flow_name")
    if isinstance(flow_name, str) and flow_name:
        return f"{flow_name}/{name}"
    entrypoint = dep.get("entrypoint")
    function = split_entrypoint(entrypoint)[1] if isinstance(entrypoint, str) else ""
    return f"{function.replace('_', '-')}/{name}" if function else name


def check_names(project: Project) -> list[Problem]:
    """Two deployments with one name: an error when they are certainly one flow (the same flow_name, or the
    same entrypoint), else a warning (their flows' names are known only from the flow files)."""
    problems: list[Problem] = []
    seen: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    raw = project.data.get("deployments")
    if not isinstance(raw, list):
        return problems
    for index, dep in enumerate(raw):
        if not isinstance(dep, dict):
            continue
        name = dep.get("name")
        if not isinstance(name, str) or not name:
            continue
        earlier = seen.setdefault(name, [])
        path: KeyPath = ("deployments", index, "name")
        same = [i for i, other in earlier if flow_key(other) is not None and flow_key(other) == flow_key(dep)]
        if same:
            first = project.locate(("deployments", same[0], "name"))
            where = f" (line {first.line})" if first else ""
            problems.append(Problem(
                "error", f"deployment '{_shown(dep, name)}' is defined twice: deployments[{same[0]}]{where} "
                "has the same flow and name", location=project.locate(path), key_path=format_key_path(path),
                hint="give each deployment of a flow its own name; deploy would refuse to record both",
                code="duplicate-name"))
        elif earlier:
            problems.append(Problem(
                "warning", f"deployment name '{name}' is also used by deployments[{earlier[0][0]}]",
                location=project.locate(path), key_path=format_key_path(path),
                hint="names are unique per flow: if both flows have the same name, deploy refuses them; "
                     "`--name` cannot tell these apart", code="duplicate-name"))
        earlier.append((index, dep))
    return problems


def check_deployable(project: Project) -> list[Problem]:
    """Errors for what ``deploy`` rejects whichever deployment is chosen."""
    problems: list[Problem] = []
    raw = project.data.get("deployments")
    if not isinstance(raw, list) or not raw:
        if raw is None or raw == []:
            key = ("deployments",)
            problems.append(Problem(
                "error", "the file has no deployments, so there is nothing to deploy",
                location=(project.locate_key(key) if "deployments" in project.data else None)
                or Location(project.name, 1, 1),
                key_path="deployments",
                hint="add one under `deployments:` (`- name: ...` with an `entrypoint:`)"
                     + ("; with Prefect 2.10's layout keep the deployment.yaml beside this file"
                        if any(k in project.data for k in ("build", "push", "pull")) else "")
                     + "; a file that only holds steps can still be used with `flowdeck steps run`",
                code="no-deployments"))
        return problems
    for index, dep in enumerate(raw):
        if not isinstance(dep, dict):
            continue
        base: KeyPath = ("deployments", index)
        missing = [key for key in ("name", "entrypoint") if dep.get(key) in (None, "")]
        if not missing:
            continue
        label = f"deployment '{dep['name']}'" if "name" not in missing else f"deployments[{index}]"
        fixes = {"name": "`name: ...`",
                 "entrypoint": "`entrypoint: path/to/flow.py:function_name` (relative to the directory you "
                               "deploy from)"}
        problems.append(Problem(
            "error", f"{label} has no {' and no '.join(missing)}", location=project.locate(base),
            key_path=format_key_path(base), hint="add " + " and ".join(fixes[k] for k in missing),
            code="no-" + "-".join(missing)))
    return problems
