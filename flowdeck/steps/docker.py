"""``build_docker_image`` and ``push_docker_image``: Prefect's docker steps, run through docker or podman.

Signatures, argument names and output keys are Prefect's (``prefect_docker.deployments.steps``). The
differences are additions: ``push_docker_image`` also returns the pushed manifest's ``digest`` and
``image_with_digest`` (``name@sha256:...``) so a deployment can pin exactly what was pushed, and
``dockerfile: auto`` honours ``.prefectignore`` and takes a ``base_image``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import flowdeck
from flowdeck.container import Engine, detect_engine, registry_login, run_engine, tls_args
from flowdeck.errors import DockerError, StepInputError
from flowdeck.redact import register_secret
from flowdeck.steps.cache import cacheable
from flowdeck.steps.docker_context import staged_auto_context
from flowdeck.steps.docker_names import check_tag, check_tags, default_tag, qualify_image_name, registry_of

__all__ = ["build_docker_image", "push_docker_image"]

log = logging.getLogger("flowdeck.steps.docker")

_BACKENDS = ("docker-py", "buildx")
_DIGEST_LINE = re.compile(r"digest: (sha256:[0-9a-f]{64})")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CREDENTIALS_HINT = 'credentials: "{{ prefect.blocks.docker-registry-credentials.<name> }}"'

# docker-py build() keyword arguments that have a CLI equivalent: name -> (flag, kind).
_BUILD_FLAGS: dict[str, tuple[str, str]] = {
    "platform": ("--platform", "value"),
    "target": ("--target", "value"),
    "network_mode": ("--network", "value"),
    "shmsize": ("--shm-size", "value"),
    "isolation": ("--isolation", "value"),
    "nocache": ("--no-cache", "bool"),
    "squash": ("--squash", "bool"),
    "forcerm": ("--force-rm", "bool"),
    "quiet": ("--quiet", "bool"),
    "cache_from": ("--cache-from", "list"),
    "labels": ("--label", "map"),
    "extra_hosts": ("--add-host", "hosts"),
}
# Accepted for compatibility; the CLI already does what they ask (or they mean nothing to it).
_IGNORED_BUILD_KWARGS = {"rm", "decode", "timeout", "use_config_proxy", "encoding", "stream", "gzip"}


def _check_backend(build_backend: object) -> None:
    if build_backend not in _BACKENDS:
        raise StepInputError(f"build_backend must be one of {', '.join(_BACKENDS)}, got {build_backend!r}",
                             hint="both run through the docker or podman command line")


def _flag_args(build_kwargs: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in build_kwargs.items():
        if name in _IGNORED_BUILD_KWARGS or value is None:
            continue
        if name not in _BUILD_FLAGS:
            known = ", ".join(sorted({"buildargs", "path", "pull", "push", *_BUILD_FLAGS}))
            raise StepInputError(f"build_docker_image got an unknown argument {name!r}",
                                 hint=f"build options it understands: {known}")
        flag, kind = _BUILD_FLAGS[name]
        if kind == "bool":
            args += [flag] if value else []
        elif kind == "value":
            args += [flag, str(value)]
        elif kind == "list":
            for item in value if isinstance(value, list) else [value]:
                args += [flag, str(item)]
        elif kind == "map":
            for k, v in dict(value).items():
                args += [flag, f"{k}={v}"]
        else:  # hosts: {hostname: ip}
            for k, v in dict(value).items():
                args += [flag, f"{k}:{v}"]
    return args


def _buildarg_args(buildargs: object) -> tuple[list[str], dict[str, str]]:
    """``--build-arg NAME`` with the value in the child's environment, so values never show in argv."""
    if buildargs is None:
        return [], {}
    if not isinstance(buildargs, dict):
        kind = type(buildargs).__name__
        raise StepInputError(f"buildargs must be a mapping of names to values, got {kind}")
    args: list[str] = []
    env: dict[str, str] = {}
    for name, value in buildargs.items():
        text = "" if value is None else str(value)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            args += ["--build-arg", str(name)]
            env[str(name)] = text
        else:
            args += ["--build-arg", f"{name}={text}"]
    return args, env


def _pull_args(engine: Engine, pull: object) -> list[str]:
    if not pull:
        return []
    return ["--pull=always"] if engine.is_podman else ["--pull"]


def _resolve_dockerfile(context: Path, dockerfile: str) -> Path:
    # docker-py reads `dockerfile` relative to the build context; the CLI would read it from cwd.
    path = Path(dockerfile)
    path = path if path.is_absolute() else context / path
    if not path.is_file():
        raise StepInputError(
            f"dockerfile {dockerfile!r} not found (looked for {path})",
            hint="give its path relative to the build context, or `dockerfile: auto` to generate one",
        )
    return path


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _run_build(
    engine: Engine, context: Path, dockerfile: Path, refs: list[str], extra: list[str], env: dict[str, str]
) -> str:
    with tempfile.TemporaryDirectory(prefix="flowdeck-iid-") as scratch:
        iidfile = Path(scratch) / "iid"
        args = ["build", "--iidfile", str(iidfile), "-f", str(dockerfile)]
        for ref in refs:
            args += ["-t", ref]
        args += [*extra, *tls_args(engine, None), str(context)]
        try:
            run_engine(engine, args, action=f"build of {refs[0]}", env=env)
        except DockerError as exc:
            # Prefect's default pull=True also pulls a base image that exists only locally.
            pulling = any(a.startswith("--pull") for a in extra)
            if pulling and exc.hint and ("log in" in exc.hint or "does not exist" in exc.hint):
                exc.hint += "; if the base image exists only locally, set `pull: false` on the step"
            raise
        try:
            return iidfile.read_text(encoding="utf-8").strip()
        except OSError:
            raise DockerError(f"{engine.name} build of {refs[0]} wrote no image id",
                              hint=f"check that `{engine.name} build --iidfile` works") from None


@cacheable
def build_docker_image(
    image_name: str,
    dockerfile: str = "Dockerfile",
    tag: str | None = None,
    additional_tags: list[str] | None = None,
    ignore_cache: bool = False,
    persist_dockerfile: bool = False,
    dockerfile_output_path: str = "Dockerfile.generated",
    build_backend: str = "docker-py",
    platform: str | None = None,
    buildargs: dict[str, Any] | None = None,
    path: str | None = None,
    push: bool = False,
    base_image: str | None = None,
    **build_kwargs: Any,
) -> dict[str, Any]:
    """Build an image from the working directory (or ``path``) and tag it ``image_name:tag``.

    ``platform``, ``buildargs``, ``path`` and ``push`` are the build options real files pass (in Prefect
    they travel in ``**build_kwargs``); other docker-py build options are accepted in ``build_kwargs``.

    Returns ``image_name``, ``tag``, ``image`` (``name:tag``), ``image_id`` and ``additional_tags``;
    with ``push: true`` it also pushes, adding ``digest`` and ``image_with_digest``.
    """
    _check_backend(build_backend)
    name = qualify_image_name(image_name)
    tag = check_tag(tag, "tag") if tag is not None else default_tag()
    extra_tags = check_tags(additional_tags)
    options = {**build_kwargs, "platform": platform}
    context = Path(path or os.getcwd()).resolve()
    if not context.is_dir():
        raise StepInputError(f"build context {str(context)!r} is not a directory",
                             hint="`path` is the directory sent to the engine (default: the working dir)")
    if dockerfile == "auto" and (context / "Dockerfile").exists():
        # Prefect refuses too ("Dockerfile already exists."): which of the two is built would be ambiguous.
        raise StepInputError(
            "dockerfile: auto, but a Dockerfile already exists in the build context",
            hint="write `dockerfile: Dockerfile` to build yours, or remove or rename it to generate one")
    pull = options.pop("pull", True)
    buildarg_args, buildarg_env = _buildarg_args(buildargs)
    labels = {"io.flowdeck.version": flowdeck.__version__, **dict(options.pop("labels", None) or {})}
    flags = _flag_args({**options, "labels": labels})
    engine = detect_engine()
    extra = [*_pull_args(engine, pull), *buildarg_args, *flags]
    refs = [f"{name}:{t}" for t in [tag, *extra_tags]]
    if dockerfile == "auto":
        with staged_auto_context(context, Path.cwd().name, base_image) as auto:
            if persist_dockerfile:
                _write_atomic(Path(dockerfile_output_path), auto.text)
            image_id = _run_build(engine, auto.context, auto.dockerfile, refs, extra, buildarg_env)
    else:
        dockerfile_path = _resolve_dockerfile(context, dockerfile)
        image_id = _run_build(engine, context, dockerfile_path, refs, extra, buildarg_env)
    log.info("built %s (%s)", refs[0], image_id)
    result: dict[str, Any] = {
        "image_name": name,
        "tag": tag,
        "image": refs[0],
        "image_id": image_id,
        "additional_tags": additional_tags,
    }
    if push:
        pushed = _push(engine, name, tag, extra_tags, None)
        result.update(digest=pushed, image_with_digest=f"{name}@{pushed}")
    return result


def _docker_digest(engine: Engine, output: str, ref: str, name: str) -> str:
    found = _DIGEST_LINE.findall(output)
    if found:
        return str(found[-1])
    # Older or unusual output: the daemon records the pushed digest in RepoDigests.
    text = run_engine(engine, ["image", "inspect", "--format", "{{json .RepoDigests}}", ref],
                      action=f"inspect of {ref}", stream=False)
    for match in re.findall(r'"([^"]+)@(sha256:[0-9a-f]{64})"', text):
        if match[0] == name:
            return str(match[1])
    raise DockerError(f"pushed {ref} but could not read its digest",
                      hint="push it again with `ignore_cache: true`")


def _push_one(engine: Engine, name: str, tag: str, env: dict[str, str] | None) -> str:
    ref = f"{name}:{tag}"
    host = registry_of(name)
    with tempfile.TemporaryDirectory(prefix="flowdeck-digest-") as scratch:
        args = ["push", *tls_args(engine, host)]
        digestfile = Path(scratch) / "digest"
        if engine.is_podman:
            args += ["--digestfile", str(digestfile)]
        output = run_engine(engine, [*args, ref], action=f"push of {ref}", registry=host, env=env)
        if engine.is_podman:
            digest = digestfile.read_text(encoding="utf-8").strip() if digestfile.is_file() else ""
            if not _DIGEST.match(digest):
                raise DockerError(f"podman pushed {ref} but wrote no digest",
                                  hint="check that `podman push --digestfile` works")
            return digest
        return _docker_digest(engine, output, ref, name)


def _push(
    engine: Engine, name: str, tag: str, extra_tags: list[str], credentials: dict[str, Any] | None
) -> str:
    if credentials is None:
        digest = _push_one(engine, name, tag, None)
        for extra in extra_tags:
            _push_one(engine, name, extra, None)
        return digest
    username, password = credentials.get("username"), credentials.get("password")
    register_secret(password)
    if not username or not password:
        raise StepInputError("credentials need a username and a password",
                             hint="use a docker-registry-credentials block: username, password, registry_url")
    registry_url = credentials.get("registry_url") or registry_of(name)
    with registry_login(engine, str(registry_url), str(username), str(password)) as env:
        digest = _push_one(engine, name, tag, env)
        for extra in extra_tags:
            _push_one(engine, name, extra, env)
    return digest


@cacheable
def push_docker_image(
    image_name: str,
    tag: str | None = None,
    credentials: dict[str, Any] | None = None,
    additional_tags: list[str] | None = None,
    ignore_cache: bool = False,
    build_backend: str = "docker-py",
) -> dict[str, Any]:
    """Push ``image_name:tag`` (and each additional tag), logging in with ``credentials`` if given.

    Returns Prefect's ``image_name``, ``tag``, ``image`` and ``additional_tags``, plus the pushed
    manifest's ``digest`` (``sha256:...``) and ``image_with_digest`` (``image_name@digest``).
    """
    if credentials is not None:
        register_secret(credentials.get("password") if isinstance(credentials, dict) else None)
        if not isinstance(credentials, dict):
            raise StepInputError("credentials must be a mapping (a docker-registry-credentials block)",
                                 hint=_CREDENTIALS_HINT)
    _check_backend(build_backend)
    name = qualify_image_name(image_name)
    # Prefect would push every local tag and report "name:None"; the engines' CLIs push `latest`.
    tag = check_tag(tag, "tag") if tag is not None else "latest"
    extra_tags = check_tags(additional_tags)
    digest = _push(detect_engine(), name, tag, extra_tags, credentials)
    log.info("pushed %s:%s (%s)", name, tag, digest)
    return {
        "image_name": name,
        "tag": tag,
        "image": f"{name}:{tag}",
        "additional_tags": additional_tags,
        "digest": digest,
        "image_with_digest": f"{name}@{digest}",
    }
