"""One data table mapping every Prefect spelling of a step to flowdeck's canonical name.

Aliases are resolved when a file is loaded; the runner and the stored history see canonical names (the
original spelling is kept alongside for messages).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowdeck.steps.registry import BUILTIN_STEPS, StepSpec, get_spec

__all__ = ["ALIASES", "DEPRECATED_PREFIXES", "Resolution", "resolve_name"]

_CANON = "flowdeck.steps."

# The public functions of Prefect's step modules (prefect/deployments/steps/{__init__,pull,utility}.py and
# each integration's ``deployments/steps.py``). ``agit_clone`` is the async twin of ``git_clone`` that
# ``git_clone`` dispatches to; Prefect imports any of these by name, so each must resolve here too.
_CORE = ("git_clone", "set_working_directory", "run_shell_script", "pip_install_requirements",
         "pull_from_remote_storage", "pull_with_block")
_PULL = ("git_clone", "agit_clone", "set_working_directory", "pull_from_remote_storage", "pull_with_block")
# The async twin and the Prefect 2 name of git_clone.
_RENAMED = {"agit_clone": "git_clone", "git_clone_project": "git_clone"}
_UTILITY = ("run_shell_script", "pip_install_requirements")
_AWS = ("push_to_s3", "pull_from_s3")
_AZURE = ("push_to_azure_blob_storage", "pull_from_azure_blob_storage")
_GCP = ("push_to_gcs", "pull_from_gcs")
_DOCKER = ("build_docker_image", "push_docker_image")


def _table() -> dict[str, str]:
    table: dict[str, str] = {}

    def add(prefix: str, names: tuple[str, ...]) -> None:
        for name in names:
            table[f"{prefix}.{name}"] = _CANON + _RENAMED.get(name, name)

    add("prefect.deployments.steps", _CORE)
    add("prefect.deployments.steps.pull", _PULL)
    add("prefect.deployments.steps.utility", _UTILITY)
    add("prefect.projects.steps", _CORE)
    add("prefect.projects.steps", ("git_clone_project",))
    add("prefect.deployments.steps", ("git_clone_project",))
    add("prefect.deployments.steps.pull", ("git_clone_project",))
    add("prefect_aws.deployments.steps", _AWS)
    add("prefect_aws.projects.steps", _AWS)
    add("prefect_azure.deployments.steps", _AZURE)
    add("prefect_azure.projects.steps", _AZURE)
    add("prefect_gcp.deployments.steps", _GCP)
    add("prefect_gcp.deployment.steps", _GCP)
    add("prefect_gcp.projects.steps", _GCP)
    add("prefect_docker.deployments.steps", _DOCKER)
    add("prefect_docker.projects.steps", _DOCKER)
    for spec in BUILTIN_STEPS:
        table[spec.name] = spec.name
    return table


ALIASES: dict[str, str] = _table()

# Spellings that still work but are deprecated in Prefect itself.
DEPRECATED_PREFIXES = ("prefect.projects.steps.", "prefect_aws.projects.steps.",
                       "prefect_azure.projects.steps.", "prefect_gcp.projects.steps.",
                       "prefect_docker.projects.steps.")


@dataclass(frozen=True)
class Resolution:
    """What a step name in a file means."""

    written: str
    canonical: str
    spec: StepSpec | None
    deprecated: bool

    @property
    def builtin(self) -> bool:
        """True for flowdeck's own implementations (reached directly or through an alias)."""
        return self.spec is not None


def _dotted(name: str) -> str:
    """``pkg.mod:func`` as ``pkg.mod.func``: Prefect's ``import_object`` accepts both separators."""
    module, sep, attr = name.rpartition(":")
    if not sep or "/" in module or "\\" in module or module.endswith(".py") or "." in attr:
        return name
    return f"{module}.{attr}"


def resolve_name(name: str) -> Resolution:
    """Map a written step name to its canonical one; unknown names map to themselves (imported later)."""
    canonical = ALIASES.get(name) or ALIASES.get(_dotted(name))
    if canonical is None:
        return Resolution(name, name, None, False)
    return Resolution(name, canonical, get_spec(canonical), name.startswith(DEPRECATED_PREFIXES))
