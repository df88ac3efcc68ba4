"""The project configuration: a loaded ``prefect.yaml`` with Prefect's section and override rules.

This module does not validate (see :mod:`flowdeck.validate`); it gives structured access to what the
file says: its deployments, and for each deployment the build, push and pull steps that will run.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.errors import ConfigError, FlowdeckWarning, Location, Problem, StepInputError
from flowdeck.keys import KeyPath, LoadedFile, format_key_path
from flowdeck.steps.aliases import resolve_name
from flowdeck.steps.registry import StepSpec

__all__ = [
    "DEFAULT_FILE",
    "FILE_DIRECTORY",
    "SECTIONS",
    "WORKING_DIRECTORY",
    "Project",
    "SectionSteps",
    "StepEntry",
    "choose_root",
    "load_project",
    "normalize_section",
    "parse_step",
]

DEFAULT_FILE = "prefect.yaml"
SECTIONS = ("build", "push", "pull")
RESERVED_KEYS = ("id", "requires")


def normalize_section(value: Any) -> list[Any] | None:
    """Prefect's wrapping rule: a single mapping becomes a one-item list; ``null`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, dict):
        return [value] if value else []
    if isinstance(value, list):
        return value
    return None  # a wrong type is reported by validation


@dataclass(frozen=True)
class StepEntry:
    """One step of a section, as written and as flowdeck will run it."""

    section: str
    index: int
    written: str
    canonical: str
    spec: StepSpec | None
    inputs: dict[str, Any]
    step_id: str | None
    requires: tuple[str, ...]
    path: KeyPath
    location: Location | None
    deprecated: bool = False

    @property
    def short_name(self) -> str:
        """The last segment of the written name (``git_clone``)."""
        return self.written.rsplit(".", 1)[-1].rsplit(":", 1)[-1]

    def arguments(self) -> dict[str, Any]:
        """The inputs without the reserved ``id`` and ``requires`` keys."""
        return {k: v for k, v in self.inputs.items() if k not in RESERVED_KEYS}


@dataclass(frozen=True)
class SectionSteps:
    """The effective steps of one section for one deployment, and where they were written."""

    section: str
    steps: list[StepEntry] | None
    path: KeyPath | None


def _requires(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip()) if "," in value else (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)


def parse_step(section: str, index: int, item: Any, path: KeyPath, project: Project | None) -> StepEntry | None:
    """Turn one list item of a section into a :class:`StepEntry` (None for an empty step).

    Raises :class:`StepInputError` for a malformed step; validation reports the same problems in full.
    """
    location = project.locate(path) if project else None
    if item is None or item == {}:
        return None
    if not isinstance(item, dict):
        raise StepInputError(
            "a step must be a mapping of a step name to its arguments",
            location=location,
            key_path=format_key_path(path),
            hint="write `- prefect.deployments.steps.run_shell_script:` and indent the arguments under it",
        )
    if len(item) != 1:
        names = ", ".join(str(k) for k in item)
        raise StepInputError(
            f"a step must have exactly one key, found {len(item)} ({names})",
            location=location,
            key_path=format_key_path(path),
            hint="indent the arguments under the step name",
        )
    name, raw_inputs = next(iter(item.items()))
    name = str(name)
    inputs: dict[str, Any] = dict(raw_inputs) if isinstance(raw_inputs, dict) else {}
    resolution = resolve_name(name)
    step_id = inputs.get("id")
    return StepEntry(
        section=section,
        index=index,
        written=name,
        canonical=resolution.canonical,
        spec=resolution.spec,
        inputs=inputs,
        step_id=str(step_id) if step_id is not None else None,
        requires=_requires(inputs.get("requires")),
        path=path,
        location=location,
        deprecated=resolution.deprecated,
    )


@dataclass
class Project:
    """A loaded ``prefect.yaml`` and the directory it belongs to."""

    file: LoadedFile
    root: Path
    # Which rule chose ``root``: WORKING_DIRECTORY (Prefect's) or FILE_DIRECTORY (the fallback).
    root_rule: str = "working directory"

    @property
    def data(self) -> dict[str, Any]:
        """The top-level mapping (empty when the file is empty)."""
        return self.file.data if isinstance(self.file.data, dict) else {}

    @property
    def name(self) -> str:
        """How messages name the file."""
        return self.file.source.file

    def locate(self, path: KeyPath) -> Location | None:
        """The location of the value at ``path``."""
        return self.file.source.locate(path)

    def locate_key(self, path: KeyPath) -> Location | None:
        """The location of the key ending ``path``."""
        return self.file.source.locate_key(path)

    def deployments(self) -> list[dict[str, Any]]:
        """The deployment mappings (non-mapping entries are skipped; validation reports them)."""
        raw = self.data.get("deployments")
        if not isinstance(raw, list):
            return []
        return [d if isinstance(d, dict) else {} for d in raw]

    def deployment_names(self) -> list[str]:
        """Names of the deployments that have one."""
        return [str(d["name"]) for d in self.deployments() if d.get("name")]

    def section(self, name: str, deployment: int | None = None) -> SectionSteps:
        """The effective steps of ``name`` for a deployment (or the top level), per Prefect's rules.

        build: the deployment's key wins when present, even null or [] (which disable it).
        push: the deployment's value wins only when non-empty.
        pull: the deployment's value wins unless null; then the top level; None means "generate
        a default" (see :mod:`flowdeck.deploy`), [] means "no pull steps".
        """
        top_path: KeyPath = (name,)
        top_raw = self.data.get(name)
        chosen_raw: Any = top_raw
        chosen_path: KeyPath | None = top_path if name in self.data else None
        if deployment is not None:
            dep = self.deployments()[deployment]
            dep_path: KeyPath = ("deployments", deployment, name)
            if name in dep:
                dep_raw = dep[name]
                use_dep = (
                    True if name == "build"
                    else bool(normalize_section(dep_raw)) if name == "push"
                    else dep_raw is not None
                )
                if use_dep:
                    chosen_raw, chosen_path = dep_raw, dep_path
        steps = normalize_section(chosen_raw)
        if steps is None or chosen_path is None:
            return SectionSteps(name, None if chosen_raw is None else [], chosen_path)
        entries: list[StepEntry] = []
        for index, item in enumerate(steps):
            entry = parse_step(name, index, item, (*chosen_path, index), self)
            if entry is not None:
                entries.append(entry)
        return SectionSteps(name, entries, chosen_path)


def load_project(path: Path | str | None = None, *, root: Path | None = None) -> Project:
    """Load ``prefect.yaml`` (or ``path``). The project root is given, or chosen by :func:`choose_root`.

    Raises :class:`ConfigSyntaxError` when the file cannot be read or parsed; a file that parses but is
    not a mapping raises :class:`ConfigError`. Use :func:`flowdeck.validate.validate_project` for the rest.
    """
    # Here, not at the top: a worker running pull steps parses no YAML and need not import the parser.
    from flowdeck.source import load_yaml_file

    file_path = Path(path) if path is not None else Path(DEFAULT_FILE)
    loaded = load_yaml_file(file_path, display_name=str(path) if path is not None else DEFAULT_FILE)
    if loaded.data is not None and not isinstance(loaded.data, dict):
        kind = type(loaded.data).__name__
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number"}.get(kind, kind)
        raise ConfigError(
            f"the file holds {kind}, not a mapping of prefect.yaml sections",
            location=loaded.source.locate(()) or Location(loaded.source.file, 1, 1),
            hint="a prefect.yaml has top-level keys such as `deployments:`, `build:`, `push:` and `pull:`",
        )
    _merge_legacy_deployments(loaded, file_path)
    if root is not None:
        return Project(file=loaded, root=root)
    project_root, rule = choose_root(file_path, loaded.data, Path.cwd())
    project = Project(file=loaded, root=project_root, root_rule=rule)
    if rule == WORKING_DIRECTORY and file_path.resolve().parent != project_root:
        logging.getLogger("flowdeck.config").info(
            "entrypoints are resolved relative to the working directory %s, as in Prefect (not to the "
            "directory of %s)", project_root, loaded.source.file)
    if rule == FILE_DIRECTORY:
        warnings.warn(FlowdeckWarning(
            f"entrypoints are resolved relative to {project_root} (the directory of {loaded.source.file}): "
            "none of them exists relative to the working directory, where Prefect looks for them",
            hint=f"run flowdeck from {project_root}, or write the entrypoints relative to the directory you "
                 "deploy from"), stacklevel=2)
    return project


LEGACY_DEPLOYMENT_FILES = ("deployment.yaml", "deployment.yml")


def _merge_legacy_deployments(loaded: LoadedFile, file_path: Path) -> None:
    """Prefect 2.10's layout: build/push/pull in prefect.yaml, the deployments in ``deployment.yaml`` beside
    it (a ``deployments:`` list, or one deployment mapping). Read as Prefect 2.10 did, when prefect.yaml has
    no deployments of its own; Prefect 3 ignores that file silently, so this warns how to merge it."""
    data = loaded.data
    if not isinstance(data, dict) or data.get("deployments"):
        return
    legacy = next((file_path.parent / n for n in LEGACY_DEPLOYMENT_FILES if (file_path.parent / n).is_file()), None)
    if legacy is None:
        return
    shown = str(Path(loaded.source.file).parent / legacy.name) if loaded.source.file != DEFAULT_FILE else legacy.name
    from flowdeck.source import load_yaml_file

    extra = load_yaml_file(legacy, display_name=shown)
    prefix: KeyPath
    if isinstance(extra.data, dict) and isinstance(extra.data.get("deployments"), list):
        deployments, prefix = extra.data["deployments"], ("deployments",)
    elif isinstance(extra.data, dict) and extra.data:
        deployments, prefix = [extra.data], ()
    else:
        return
    data["deployments"] = deployments
    index_shift: KeyPath = ("deployments",) if prefix else ("deployments", 0)
    for table, target in ((extra.source.values, loaded.source.values), (extra.source.keys, loaded.source.keys)):
        for path, location in table.items():
            if prefix and path[:1] == prefix:
                target[("deployments", *path[1:])] = location
            elif not prefix:
                target[(*index_shift, *path)] = location
    loaded.problems.extend(extra.problems)
    where = extra.source.locate(()) or Location(shown, 1, 1)
    loaded.problems.append(Problem(
        "warning", f"the deployments are read from {shown}, as Prefect 2.10 did; Prefect 3 ignores that file",
        location=where, key_path="deployments",
        hint=f"merge it into {loaded.source.file}: copy its "
             f"{'`deployments:` list' if prefix else 'deployment, as one `- name: ...` item under `deployments:`'}"
             f" to the end of {loaded.source.file}, then delete {legacy.name}", code="legacy-deployment-file"))


WORKING_DIRECTORY = "working directory"
FILE_DIRECTORY = "file directory"


def _entrypoints(data: Any) -> list[str]:
    deployments = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(deployments, list):
        return []
    found = [d.get("entrypoint") for d in deployments if isinstance(d, dict)]
    return [e for e in found if isinstance(e, str) and e and "{{" not in e]


def choose_root(file_path: Path, data: Any, cwd: Path) -> tuple[Path, str]:
    """The project root: the working directory, as in Prefect (entrypoints, pushed files and the default
    pull directory are relative to where ``prefect deploy`` runs), unless none of the file's entrypoints
    exists from there but some exist relative to the file's own directory (flowdeck's earlier rule)."""
    from flowdeck.flowinfo import flow_file

    cwd = cwd.resolve()
    file_dir = file_path.resolve().parent
    if file_dir == cwd:
        return cwd, WORKING_DIRECTORY

    def found(root: Path) -> bool:
        for entrypoint in _entrypoints(data):
            path = flow_file(root, entrypoint, search_path=False)
            if path is not None and path.is_file():
                return True
        return False

    if not found(cwd) and found(file_dir):
        return file_dir, FILE_DIRECTORY
    return cwd, WORKING_DIRECTORY
