"""The table of built-in steps: canonical names, where they live, their inputs and outputs.

Canonical names are ``flowdeck.steps.<name>``. Implementations are imported lazily from ``target`` so that
``flowdeck --help`` and ``flowdeck validate`` never import a cloud SDK. Every Prefect spelling of a step is
mapped here by :mod:`flowdeck.steps.aliases`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN_STEPS", "Param", "StepSpec", "get_spec", "load_callable"]

# JSON types a parameter may take once templated ("any" accepts everything).
JsonType = str


@dataclass(frozen=True)
class Param:
    """One argument of a built-in step."""

    name: str
    types: tuple[JsonType, ...] = ("any",)
    required: bool = False
    doc: str = ""
    secret: bool = False


@dataclass(frozen=True)
class StepSpec:
    """A built-in step: its canonical name, implementation, inputs and outputs."""

    name: str
    target: str
    summary: str
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    accepts_extra: bool = False
    extra: str | None = None
    section_hint: tuple[str, ...] = field(default=("build", "push", "pull"))

    @property
    def short_name(self) -> str:
        """The last segment of the canonical name (``git_clone``)."""
        return self.name.rsplit(".", 1)[-1]

    def param(self, name: str) -> Param | None:
        """The parameter called ``name``, if the step has one."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    def required(self) -> list[str]:
        """Names of the required parameters."""
        return [p.name for p in self.params if p.required]


def _p(name: str, *types: str, required: bool = False, doc: str = "", secret: bool = False) -> Param:
    return Param(name, types or ("any",), required, doc, secret)


_STR = "string"
_BOOL = "boolean"
_OBJ = "object"
_ARR = "array"
_NULL = "null"

_CREDS_DOC = "a dict of credentials, usually `{{ prefect.blocks.<type>.<name> }}`"

# Added by `flowdeck deploy` to a pull step published under flowdeck's name: the version's own code.
_PULL_SNAPSHOTS = _p("snapshots", _ARR, _NULL,
                     doc="`[{location, id}]`: pull these code snapshots (set by `flowdeck deploy`)")
_STORAGE_PUSH_EXTRA = (
    _p("ignore_file", _STR, _NULL, doc="ignore file relative to the working directory"),
    _p("prune", _BOOL, doc="delete remote files of the folder that are no longer in the tree"),
    _p("max_workers", "integer", doc="parallel transfers (default 16)"),
    _p("external_symlinks", _STR, _NULL,
       doc="a file symlink leading outside the project: warn (default), refuse or follow"),
    _p("plain_layout", _BOOL, doc="also write the per-file objects Prefect's pull steps read (default true)"),
)

BUILTIN_STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "flowdeck.steps.run_shell_script",
        "flowdeck.steps.shell:run_shell_script",
        "Run a script, one process per line unless `shell: true`.",
        (
            _p("script", _STR, required=True, doc="the commands to run"),
            _p("directory", _STR, _NULL, doc="working directory"),
            _p("env", _OBJ, _NULL, doc="extra environment variables"),
            _p("stream_output", _BOOL, doc="echo output while it runs (default true)"),
            _p("expand_env_vars", _BOOL, doc="expand $VAR and ${VAR} in each line"),
            _p("shell", _BOOL, doc="run each line through the shell (pipes, redirects)"),
        ),
        ("stdout", "stderr"),
    ),
    StepSpec(
        "flowdeck.steps.set_working_directory",
        "flowdeck.steps.workdir:set_working_directory",
        "Change the working directory of the following steps and of the flow run.",
        (_p("directory", _STR, required=True),),
        ("directory",),
    ),
    StepSpec(
        "flowdeck.steps.pip_install_requirements",
        "flowdeck.steps.pip:pip_install_requirements",
        "pip install -r a requirements file.",
        (
            _p("directory", _STR, _NULL),
            _p("requirements_file", _STR),
            _p("stream_output", _BOOL),
        ),
        ("stdout", "stderr"),
    ),
    StepSpec(
        "flowdeck.steps.git_clone",
        "flowdeck.steps.git:git_clone",
        "Clone a git repository at a branch or a pinned commit.",
        (
            _p("repository", _STR, required=True, doc="repository URL"),
            _p("branch", _STR, _NULL),
            _p("commit_sha", _STR, _NULL, doc="full commit sha to check out"),
            _p("include_submodules", _BOOL),
            _p("access_token", _STR, _NULL, secret=True),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            _p("directories", _ARR, _NULL, doc="sparse checkout of these directories"),
            _p("clone_directory_name", _STR, _NULL),
            _p("cache", _BOOL, doc="use the worker's mirror cache (default true)"),
        ),
        ("directory",),
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.pull_from_remote_storage",
        "flowdeck.steps.remote:pull_from_remote_storage",
        "Download a remote folder given as an s3://, gs:// or az:// URL.",
        (_p("url", _STR, required=True),),
        ("directory",),
        accepts_extra=True,
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.pull_with_block",
        "flowdeck.steps.remote:pull_with_block",
        "Download code with a storage block.",
        (_p("block_document_name", _STR, required=True), _p("block_type_slug", _STR, required=True)),
        ("directory",),
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.push_to_s3",
        "flowdeck.steps.storage.s3:push_to_s3",
        "Upload the project to an S3 bucket folder.",
        (
            _p("bucket", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            _p("client_parameters", _OBJ, _NULL),
            *_STORAGE_PUSH_EXTRA,
        ),
        ("bucket", "folder", "snapshot"),
        extra="s3",
        section_hint=("push",),
    ),
    StepSpec(
        "flowdeck.steps.pull_from_s3",
        "flowdeck.steps.storage.s3:pull_from_s3",
        "Download a folder of an S3 bucket into the working directory.",
        (
            _p("bucket", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            _p("client_parameters", _OBJ, _NULL),
            _p("max_workers", "integer"),
            _PULL_SNAPSHOTS,
        ),
        ("bucket", "folder", "directory"),
        extra="s3",
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.push_to_azure_blob_storage",
        "flowdeck.steps.storage.azure:push_to_azure_blob_storage",
        "Upload the project to an Azure Blob Storage container folder.",
        (
            _p("container", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("credentials", _OBJ, required=True, doc=_CREDS_DOC, secret=True),
            *_STORAGE_PUSH_EXTRA,
        ),
        ("container", "folder", "snapshot"),
        extra="azure",
        section_hint=("push",),
    ),
    StepSpec(
        "flowdeck.steps.pull_from_azure_blob_storage",
        "flowdeck.steps.storage.azure:pull_from_azure_blob_storage",
        "Download a folder of an Azure Blob Storage container into the working directory.",
        (
            _p("container", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("credentials", _OBJ, required=True, doc=_CREDS_DOC, secret=True),
            _p("max_workers", "integer"),
            _PULL_SNAPSHOTS,
        ),
        ("container", "folder", "directory"),
        extra="azure",
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.push_to_gcs",
        "flowdeck.steps.storage.gcs:push_to_gcs",
        "Upload the project to a GCS bucket folder.",
        (
            _p("bucket", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("project", _STR, _NULL),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            *_STORAGE_PUSH_EXTRA,
        ),
        ("bucket", "folder", "snapshot"),
        extra="gcs",
        section_hint=("push",),
    ),
    StepSpec(
        "flowdeck.steps.pull_from_gcs",
        "flowdeck.steps.storage.gcs:pull_from_gcs",
        "Download a folder of a GCS bucket into the working directory.",
        (
            _p("bucket", _STR, required=True),
            _p("folder", _STR, required=True),
            _p("project", _STR, _NULL),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            _p("max_workers", "integer"),
            _PULL_SNAPSHOTS,
        ),
        ("bucket", "folder", "directory"),
        extra="gcs",
        section_hint=("pull",),
    ),
    StepSpec(
        "flowdeck.steps.build_docker_image",
        "flowdeck.steps.docker:build_docker_image",
        "Build a container image with docker or podman.",
        (
            _p("image_name", _STR, required=True),
            _p("dockerfile", _STR),
            _p("tag", _STR, _NULL),
            _p("additional_tags", _ARR, _NULL),
            _p("ignore_cache", _BOOL),
            _p("persist_dockerfile", _BOOL),
            _p("dockerfile_output_path", _STR),
            _p("build_backend", _STR),
            _p("platform", _STR, _NULL),
            _p("buildargs", _OBJ, _NULL),
            _p("path", _STR, _NULL, doc="build context (default: the working directory)"),
            _p("push", _BOOL),
            _p("base_image", _STR, _NULL, doc="base image for `dockerfile: auto`"),
        ),
        ("image_name", "tag", "image", "image_id", "additional_tags"),
        accepts_extra=True,
        section_hint=("build",),
    ),
    StepSpec(
        "flowdeck.steps.push_docker_image",
        "flowdeck.steps.docker:push_docker_image",
        "Push a container image; outputs its digest.",
        (
            _p("image_name", _STR, required=True),
            _p("tag", _STR, _NULL),
            _p("credentials", _OBJ, _NULL, doc=_CREDS_DOC, secret=True),
            _p("additional_tags", _ARR, _NULL),
            _p("ignore_cache", _BOOL),
            _p("build_backend", _STR),
        ),
        ("image_name", "tag", "image", "additional_tags", "digest", "image_with_digest"),
        section_hint=("push",),
    ),
)

_BY_NAME = {spec.name: spec for spec in BUILTIN_STEPS}


def get_spec(canonical: str) -> StepSpec | None:
    """The spec of a canonical step name, or None."""
    return _BY_NAME.get(canonical)


def load_callable(spec: StepSpec) -> Callable[..., Any]:
    """Import and return the implementation of a built-in step."""
    module_name, _, attr = spec.target.partition(":")
    module = importlib.import_module(module_name)
    func: Callable[..., Any] = getattr(module, attr)
    return func
