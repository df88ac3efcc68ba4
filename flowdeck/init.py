"""``flowdeck init``: start a project from a recipe (a ``prefect.yaml`` and a ``.prefectignore``).

Inputs come from three places, later ones winning:

1. automatic values, as Prefect computes them: ``name`` (``--name``, else the directory's name),
   ``directory`` (the absolute directory), ``repository`` (from ``git remote origin``, without any
   credentials in it), ``branch`` (the current branch, else ``main``), ``dockerfile`` (``Dockerfile`` when
   one exists, else ``auto`` for docker recipes);
2. ``--field KEY=VALUE`` (split on the first ``=``);
3. answers to prompts, for inputs still missing, when the caller passes ``ask`` (a terminal).

Without a recipe, one is inferred like Prefect does: a git remote gives ``git`` (``docker-git`` with a
Dockerfile), else a Dockerfile gives ``docker``, else ``local``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from flowdeck.errors import FlowdeckWarning, RecipeError
from flowdeck.recipes import Recipe, input_placeholders, load_recipe, render_recipe
from flowdeck.redact import redact_url

__all__ = ["InitResult", "initialize_project", "parse_fields"]

log = logging.getLogger("flowdeck.init")

# How to describe an input a template needs that the recipe does not list (automatic ones).
_AUTOMATIC_DOCS = {
    "name": "the project name",
    "directory": "the project directory",
    "directory_name": "the project directory's name (where `dockerfile: auto` copies the code)",
    "repository": "the git repository URL to clone (automatic from `git remote get-url origin`)",
    "branch": "the git branch to clone",
    "dockerfile": "the Dockerfile to build, or `auto`",
}

Ask = Callable[[str, str], str]


@dataclass
class InitResult:
    """What ``initialize_project`` did."""

    directory: Path
    recipe: str
    inferred: bool
    inputs: dict[str, str]
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def parse_fields(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict, split on the first ``=`` (values may contain ``=``)."""
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--field {pair!r} must be KEY=VALUE", hint="e.g. `--field bucket=my-bucket`")
        fields[key.strip()] = value
    return fields


def _git(directory: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None


def _automatic_inputs(directory: Path, recipe_name: str | None, name: str | None) -> dict[str, str]:
    values = {"name": name or directory.name, "directory": str(directory), "directory_name": directory.name}
    remote = _git(directory, "config", "--get", "remote.origin.url")
    if remote:
        clean = redact_url(remote)
        if clean != remote:
            # Never copy a token from the remote URL into a file that gets committed.
            warnings.warn(FlowdeckWarning(
                "the git remote URL holds credentials; prefect.yaml gets the URL without them",
                hint="use `--field credentials=BLOCK` with a github/gitlab/bitbucket-credentials block",
            ), stacklevel=3)
        values["repository"] = clean
    # symbolic-ref also names the branch of a repository without commits; detached HEAD gives None.
    values["branch"] = _git(directory, "symbolic-ref", "--short", "-q", "HEAD") or "main"
    if (directory / "Dockerfile").exists():
        values["dockerfile"] = "Dockerfile"
    elif recipe_name is not None and "docker" in recipe_name:
        values["dockerfile"] = "auto"
    return values


def _infer_recipe(directory: Path) -> str:
    has_remote = _git(directory, "config", "--get", "remote.origin.url") is not None
    has_dockerfile = (directory / "Dockerfile").exists()
    if has_remote:
        return "docker-git" if has_dockerfile else "git"
    return "docker" if has_dockerfile else "local"


def _git_block_type(repository: str | None) -> str:
    host = (urlsplit(repository).hostname or "") if repository and "://" in repository else (repository or "")
    if "gitlab" in host:
        return "gitlab-credentials"
    if "bitbucket" in host:
        return "bitbucket-credentials"
    return "github-credentials"


def _block_reference(recipe: Recipe, key: str, value: str, inputs: dict[str, str]) -> str:
    """Turn a block name given for a block input into its placeholder (a placeholder stays as is)."""
    if "{{" in value:
        return value
    block_type = recipe.block_inputs[key]
    name = value.strip()
    if "/" in name:
        block_type, _, name = name.partition("/")
    elif block_type == "git":
        block_type = _git_block_type(inputs.get("repository"))
    return f"{{{{ prefect.blocks.{block_type}.{name} }}}}"


def _missing(recipe: Recipe, values: dict[str, str]) -> dict[str, str]:
    needed = dict(recipe.required_inputs)
    for key in input_placeholders(recipe, values):
        needed.setdefault(key, _AUTOMATIC_DOCS.get(key, "a value for the recipe"))
    return {key: doc for key, doc in needed.items() if not values.get(key)}


def _write_new(path: Path, text: str, *, force: bool) -> bool:
    """Write ``text`` to ``path`` atomically; without ``force`` an existing file is kept. True if written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        if force:
            os.replace(tmp, path)
            return True
        try:
            # link() refuses to replace an existing file, atomically: no check-then-write race.
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def initialize_project(
    directory: Path,
    *,
    recipe: str | None = None,
    fields: Iterable[str] | dict[str, str] = (),
    name: str | None = None,
    force: bool = False,
    ask: Ask | None = None,
) -> InitResult:
    """Create ``prefect.yaml`` and ``.prefectignore`` in ``directory`` from a recipe.

    Missing inputs are asked for through ``ask(key, description)`` when given; otherwise they are a
    :class:`RecipeError` listing the exact ``--field`` flags to add. Unknown fields are a warning.
    """
    directory = directory.resolve()
    given = dict(fields) if isinstance(fields, dict) else parse_fields(fields)
    inferred = recipe is None
    recipe_name = recipe or _infer_recipe(directory)
    chosen = load_recipe(recipe_name)
    values = _automatic_inputs(directory, recipe_name, name)
    values.update(given)

    known = set(chosen.required_inputs) | set(chosen.optional_inputs) | set(chosen.block_inputs)
    known |= set(_AUTOMATIC_DOCS) | set(input_placeholders(chosen, values))
    unknown = sorted(set(given) - known)
    if unknown:
        inputs = sorted(set(chosen.required_inputs) | set(chosen.optional_inputs)) or ["(none)"]
        warnings.warn(FlowdeckWarning(
            f"recipe {chosen.name!r} does not use the field(s) {', '.join(unknown)}; they are ignored",
            hint=f"its inputs are: {', '.join(inputs)}",
        ), stacklevel=2)

    missing = _missing(chosen, values)
    if missing and ask is not None:
        for key, doc in missing.items():
            values[key] = ask(key, doc)
        missing = _missing(chosen, values)
    if missing:
        flags = " ".join(f"--field {key}=..." for key in missing)
        details = "; ".join(f"{key}: {doc}" for key, doc in missing.items())
        raise RecipeError(
            f"recipe {chosen.name!r} needs {len(missing)} more input(s): {details}",
            hint=f"add {flags}",
        )

    for key in chosen.block_inputs:
        if values.get(key):
            values[key] = _block_reference(chosen, key, values[key], values)

    text = render_recipe(chosen, values)
    result = InitResult(directory, chosen.name, inferred, values)
    ignore_text = resources.files("flowdeck").joinpath("default.prefectignore").read_text(encoding="utf-8")
    for filename, content in ((".prefectignore", ignore_text), ("prefect.yaml", text)):
        path = directory / filename
        if _write_new(path, content, force=force):
            result.created.append(path)
            log.debug("wrote %s", path)
        else:
            result.kept.append(path)
    return result
