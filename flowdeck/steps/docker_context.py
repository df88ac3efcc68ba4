"""``dockerfile: auto``: generate a Dockerfile and stage a build context that honours the ignore files.

Prefect writes ``./Dockerfile`` into the project, builds, and deletes it. flowdeck instead stages the
context in a temporary directory (hard links where the filesystem allows, copies otherwise):
- files matched by ``.prefectignore`` (gitignore rules, each path judged on its own, as Prefect's push
  steps do) are left out;
- ``.dockerignore`` is kept, so the engine applies it with its own exact rules;
- the generated Dockerfile sits outside the staged context, so a project's own ``Dockerfile`` is never
  overwritten or clobbered, and nothing is left in the project when the build ends or fails.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pathspec

from flowdeck.errors import FlowdeckWarning, Location

__all__ = [
    "BASE_IMAGE_ENV",
    "AutoContext",
    "default_base_image",
    "generate_dockerfile",
    "staged_auto_context",
]

log = logging.getLogger("flowdeck.steps.docker")

PREFECTIGNORE = ".prefectignore"
DOCKERIGNORE = ".dockerignore"


BASE_IMAGE_ENV = "FLOWDECK_AUTO_BASE_IMAGE"


def default_base_image() -> str:
    """``$FLOWDECK_AUTO_BASE_IMAGE``, else ``python:<major>.<minor>-slim`` of the running Python.

    Prefect uses its own ``prefecthq/prefect:<version>-python<x.y>`` image; flowdeck has no Prefect
    version to pick, so the plain Python image is the default and an organisation can name its own base
    once in the environment instead of in every file.
    """
    chosen = os.environ.get(BASE_IMAGE_ENV, "").strip()
    return chosen or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def generate_dockerfile(base_image: str, project_name: str, *, has_requirements: bool) -> str:
    """The Dockerfile ``dockerfile: auto`` builds: the layout of Prefect's, installing with pip."""
    workdir = f"/opt/prefect/{project_name}/"
    lines = [f"FROM {base_image}"]
    if has_requirements:
        # Copied and installed before the code, so code changes reuse the dependency layer.
        lines.append(f"COPY requirements.txt {workdir}requirements.txt")
        lines.append(f"RUN python -m pip install --no-cache-dir -r {workdir}requirements.txt")
    lines.append(f"COPY . {workdir}")
    lines.append(f"WORKDIR {workdir}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AutoContext:
    """A staged build context and the generated Dockerfile beside it."""

    context: Path
    dockerfile: Path
    text: str


def _ignore_spec(root: Path) -> pathspec.GitIgnoreSpec | None:
    path = root / PREFECTIGNORE
    if not path.is_file():
        return None
    lines: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except (ValueError, re.error) as exc:
            # Skipped with a located warning, as the storage pushes do (flowdeck.ignore), never a crash.
            warnings.warn(FlowdeckWarning(f"ignore pattern {line!r} is not valid ({exc}); it is skipped",
                                          location=Location(str(path), number, 1),
                                          hint="fix or remove the line"), stacklevel=2)
            continue
        lines.append(line)
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _place(src: Path, dst: Path) -> None:
    if src.is_symlink():
        dst.symlink_to(os.readlink(src))
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage(root: Path, target: Path) -> None:
    spec = _ignore_spec(root)
    # Without negations an excluded directory cannot hold an included file, so it need not be walked.
    prunable = spec is not None and not any(p.include is False for p in spec.patterns)
    for current, dirnames, filenames in os.walk(root):
        here = Path(current)
        rel_dir = here.relative_to(root)
        keep_dirs: list[str] = []
        for name in dirnames:
            rel = (rel_dir / name).as_posix()
            if (here / name).is_symlink():
                filenames.append(name)
            elif not (prunable and spec is not None and spec.match_file(rel + "/")):
                keep_dirs.append(name)
        dirnames[:] = keep_dirs
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel != DOCKERIGNORE and spec is not None and spec.match_file(rel):
                continue
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            _place(here / name, dst)


@contextmanager
def staged_auto_context(root: Path, project_name: str, base_image: str | None) -> Iterator[AutoContext]:
    """Stage ``root`` and write the generated Dockerfile; everything is removed on exit."""
    base = base_image or default_base_image()
    scratch = Path(tempfile.mkdtemp(prefix="flowdeck-build-"))
    try:
        context = scratch / "context"
        context.mkdir()
        _stage(root, context)
        has_requirements = (context / "requirements.txt").is_file()
        if base_image is None and not os.environ.get(BASE_IMAGE_ENV, "").strip():
            _warn_without_prefect(context, base)
        text = generate_dockerfile(base, project_name, has_requirements=has_requirements)
        dockerfile = scratch / "Dockerfile"
        dockerfile.write_text(text, encoding="utf-8")
        yield AutoContext(context, dockerfile, text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _warn_without_prefect(context: Path, base: str) -> None:
    requirements = context / "requirements.txt"
    text = requirements.read_text(encoding="utf-8", errors="replace") if requirements.is_file() else ""
    if "prefect" not in text.lower():
        log.warning(
            "dockerfile: auto uses %s, which has no Prefect; a worker needs it in the image: add prefect "
            "to requirements.txt or set base_image (e.g. prefecthq/prefect:3-python3.12)",
            base,
        )
