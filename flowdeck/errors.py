"""The error and warning tree of flowdeck.

Every error a user can cause is a :class:`FlowdeckError`. It carries a message, and where known the
source :class:`Location` (file, line, column), the key path inside the file and a hint saying how to fix
it. ``str(error)`` gives the one-line form the CLI prints::

    prefect.yaml:14:7: pull[0].git_clone.repository: is required (hint: add `repository: <url>`)

Warnings have their own classes (rooted at :class:`FlowdeckWarning`) and are raised through
:func:`warnings.warn`, so callers decide whether to print, collect or escalate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CommandError",
    "ConfigError",
    "ConfigSyntaxError",
    "ConfigValidationError",
    "DeployError",
    "DeprecatedNameWarning",
    "DiskFullError",
    "DockerError",
    "FlowRunError",
    "FlowdeckError",
    "FlowdeckWarning",
    "GitError",
    "HistoryError",
    "Location",
    "MissingDependencyError",
    "MissingValueWarning",
    "Problem",
    "RecipeError",
    "RegistryError",
    "RegistryNotFound",
    "StepExecutionError",
    "StepInputError",
    "StorageError",
    "StoreCorruptError",
    "StoreError",
    "StoreRowError",
    "TemplateError",
    "UnknownKeyWarning",
    "UnknownStepError",
    "UsageError",
    "WorkingDirectoryError",
]


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_message(
    message: str,
    *,
    location: Location | None = None,
    key_path: str | None = None,
    hint: str | None = None,
) -> str:
    """Render the canonical one-line form ``file:line:col: key.path: message (hint: ...)``."""
    parts: list[str] = []
    if location is not None:
        parts.append(str(location))
    if key_path:
        parts.append(key_path)
    parts.append(message)
    text = ": ".join(parts)
    if hint:
        text += f" (hint: {hint})"
    return text


class _Located(Exception):
    """What errors and warnings share: a message, where it applies, and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        key_path: str | None = None,
        hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.key_path = key_path
        self.hint = hint
        # Extra lines shown under the one-line message (e.g. the offending source line and a caret).
        self.detail = detail

    def __str__(self) -> str:
        return format_message(self.message, location=self.location, key_path=self.key_path, hint=self.hint)


class FlowdeckError(_Located):
    """Base class of every error flowdeck raises on purpose (exit code 1 in the CLI)."""

    exit_code: int = 1

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, for ``--json`` outputs."""
        loc = self.location
        return {
            "error": type(self).__name__,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "key_path": self.key_path,
            "hint": self.hint,
        }


class UsageError(FlowdeckError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class ConfigError(FlowdeckError):
    """A problem with a ``prefect.yaml`` file."""


class ConfigSyntaxError(ConfigError):
    """The file cannot be read or parsed as YAML (bad encoding, syntax, duplicate keys)."""


@dataclass(frozen=True)
class Problem:
    """One finding of validation: an error or a warning, with where and how to fix it."""

    severity: Literal["error", "warning"]
    message: str
    location: Location | None = None
    key_path: str | None = None
    hint: str | None = None
    code: str = "invalid"
    detail: str | None = None

    def __str__(self) -> str:
        return format_message(self.message, location=self.location, key_path=self.key_path, hint=self.hint)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, for ``validate --json``."""
        loc = self.location
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "key_path": self.key_path,
            "hint": self.hint,
        }



class ConfigValidationError(ConfigError):
    """A file that parsed but is not valid. Holds *every* problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        first = errors[0] if errors else (self.problems[0] if self.problems else None)
        count = len(errors)
        if first is None:
            super().__init__("invalid configuration")
        elif count == 1:
            super().__init__(first.message, location=first.location, key_path=first.key_path, hint=first.hint)
        else:
            super().__init__(
                f"{first.message} (and {count - 1} more problem{'s' if count > 2 else ''})",
                location=first.location,
                key_path=first.key_path,
                hint=first.hint,
            )

    def errors(self) -> list[Problem]:
        """The problems of severity ``error``."""
        return [p for p in self.problems if p.severity == "error"]


class UnknownStepError(ConfigError):
    """A step name that is not built in, not an alias and cannot be imported."""


class StepInputError(ConfigError):
    """A step got an argument it does not take, lacks a required one, or got a wrong type."""


class TemplateError(FlowdeckError):
    """A placeholder that cannot be resolved or is used in a way that cannot work."""


class MissingDependencyError(FlowdeckError):
    """An optional package is needed (the hint names the exact ``pip install`` command)."""


class StepExecutionError(FlowdeckError):
    """A step failed while running. Names the section, index, step and id; chains the cause."""

    def __init__(
        self,
        message: str,
        *,
        section: str,
        index: int,
        step: str,
        step_id: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, location=location, key_path=None, hint=hint)
        self.section = section
        self.index = index
        self.step = step
        self.step_id = step_id

    def __str__(self) -> str:
        short = self.step.replace(":", ".").rsplit(".", 1)[-1]
        where = f"{self.section}[{self.index}] {short}"
        if self.step_id:
            where += f" (id {self.step_id})"
        return format_message(f"{where} failed: {self.message}", location=self.location, hint=self.hint)


class CommandError(FlowdeckError):
    """A local command run by a step (a shell script line, pip) failed or could not start.

    ``returncode`` is the exit status (None when the command never started); ``stdout`` and ``stderr`` hold
    the redacted output captured up to the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
        location: Location | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, location=location, key_path=key_path, hint=hint)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class WorkingDirectoryError(FlowdeckError):
    """A directory a step should run in or change to does not exist or cannot be entered."""


class GitError(FlowdeckError):
    """A git operation failed (credentials are always removed from the message)."""


class StorageError(FlowdeckError):
    """A transfer to or from S3, Azure Blob Storage or GCS failed."""


class DockerError(FlowdeckError):
    """A container image build or push failed."""


class StoreError(FlowdeckError):
    """The local state store (blocks, variables, deployments) cannot be used or lacks an entry."""


class StoreCorruptError(StoreError):
    """The store's database file is damaged (truncated, overwritten); names the file and how to recover."""


class StoreRowError(StoreError):
    """One entry of the store cannot be read (invalid JSON, a wrong shape); names it, never its value."""


class DiskFullError(StoreError):
    """A store write failed because its filesystem is full; names the path. Nothing was half-written."""


class RecipeError(FlowdeckError):
    """An unknown recipe, or missing or bad recipe inputs."""


class DeployError(FlowdeckError):
    """A deployment cannot be recorded (selection, entrypoint, parameters)."""


class HistoryError(FlowdeckError):
    """A version history operation is impossible (no such version, nothing to roll back to)."""


class FlowdeckWarning(_Located, UserWarning):
    """Base class of flowdeck's warnings; carries a location and hint like the errors do."""


class UnknownKeyWarning(FlowdeckWarning):
    """A key flowdeck (and Prefect) ignores, probably a typo."""


class DeprecatedNameWarning(FlowdeckWarning):
    """A legacy spelling (``prefect.projects.steps.*``) that still works."""


class MissingValueWarning(FlowdeckWarning):
    """A placeholder resolved to "" because its environment variable or Prefect variable is missing."""



class SettingWarning(FlowdeckWarning):
    """An environment setting flowdeck ignores in part (a custom header it must set itself, say)."""


class SecretWarning(FlowdeckWarning):
    """A secret was kept out of what flowdeck stores (a token removed from a URL, say)."""


class FlowRunError(FlowdeckError):
    """A Prefect flow run cannot be executed (no deployment, no entrypoint, no server)."""


class RegistryError(FlowdeckError):
    """The shared registry (a Prefect server or Prefect Cloud) refused or failed a request."""


class RegistryNotFound(RegistryError):
    """The server has no such object (HTTP 404); callers that expect absence catch this one."""
