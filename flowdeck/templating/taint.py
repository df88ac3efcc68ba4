"""Taint tracking: which step outputs hold, or are derived from, a secret, and where a template uses them.

``deploy`` stores the deployment's fields and pull steps templated with the build and push outputs. A
secret must never reach that record, however it travelled:

* an output that shows a registered secret (in any shape :mod:`flowdeck.redact` masks) is tainted;
* the outputs of ``run_shell_script`` are tainted when its inputs use a secret: a block (other than a
  ``string`` block) or an environment variable whose name looks secret
  (:func:`flowdeck.secret_names.is_secret_name`); those of a custom step when they use a ``secret``
  block or such a variable; so
  ``echo {{ prefect.blocks.secret.key }} | base64`` is tainted although its output is not the secret.

A template that refers to a tainted output (as a placeholder or inside an expression) is a located
error: the value would be written into the store in clear. The hint says how to pass it instead: a
block reference in the pull step, which the worker resolves at run time and which is stored as written.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from flowdeck.errors import SecretWarning
from flowdeck.redact import contains_secret, strip_url_credentials
from flowdeck.secret_names import is_secret_name
from flowdeck.templating.diagnostics import Where
from flowdeck.templating.keypath import KeyPath, Locator, format_key_path
from flowdeck.templating.names import Reference, referenced_names
from flowdeck.templating.placeholders import PlaceholderType

__all__ = ["check_untainted", "derived_taint", "keep_secrets_out", "secret_inputs", "taint_outputs"]

# Blocks that hold no secret: a reference to one does not taint a step's outputs.
_PLAIN_BLOCKS = ("prefect.blocks.string.",)
_CUT = re.compile(r"[.\[]")


def secret_inputs(inputs: Any) -> list[Reference]:
    """The references in a step's inputs that bring a secret in (secret blocks, secret-named variables)."""
    try:
        references = referenced_names(inputs)
    except Exception:  # a broken template is reported by validation, not here
        return []
    return [ref for ref in references
            if (ref.kind is PlaceholderType.BLOCK_DOCUMENT and not ref.name.startswith(_PLAIN_BLOCKS))
            or (ref.kind is PlaceholderType.ENV_VAR and is_secret_name(ref.name.lstrip("$")))]


def _is_shell(step: Any) -> bool:
    return str(getattr(step, "canonical", "")).endswith("run_shell_script")


def _computes(step: Any, ref: Reference) -> bool:
    """Whether ``step`` may compute its outputs from the secret ``ref`` brings in.

    The shell step may print anything it is given. A custom step is usually *given* credentials blocks to
    authenticate with, so only a ``secret`` block or a secret-named variable taints its outputs; the
    built-in steps never put their credentials in their outputs (and a value check catches any that did).
    """
    if _is_shell(step):
        return True
    if getattr(step, "spec", None) is not None:
        return False
    return ref.kind is PlaceholderType.ENV_VAR or ref.name.startswith("prefect.blocks.secret.")


def derived_taint(steps: Sequence[Any], records: Sequence[Any]) -> Iterator[tuple[str | None, Any, str]]:
    """``(step_id, output, reason)`` of each step (a StepEntry, with its StepRecord) that computed from a secret."""
    by_position = {(step.section, step.index): step for step in steps}
    for record in records:
        step = by_position.get((record.section, record.index))
        if step is None:
            continue
        used = [ref for ref in secret_inputs(step.arguments()) if _computes(step, ref)]
        if used:
            yield record.step_id, record.output, f"step {step.short_name!r} uses {used[0].text}"


def _shows_secret(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if contains_secret(item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def taint_outputs(
    outputs: Mapping[str, Any], derived: Iterable[tuple[str | None, Mapping[str, Any] | None, str]] = ()
) -> dict[str, str]:
    """The tainted output names (step ids and flattened keys), each with the reason, for error messages.

    ``derived`` lists ``(step_id, output, reason)`` for the steps that computed from a secret input.
    """
    tainted: dict[str, str] = {}
    for step_id, output, reason in derived:
        if step_id:
            tainted[step_id] = reason
        for key in output or {}:
            tainted.setdefault(str(key), reason)
    for key, value in outputs.items():
        if key not in tainted and _shows_secret(value):
            tainted[key] = "it holds a secret value"
    return tainted


def _tainted_name(name: str, tainted: Mapping[str, str]) -> str | None:
    """``build.stdout`` is tainted when ``build`` or ``build.stdout`` is."""
    for match in [*_CUT.finditer(name), None]:
        prefix = name[:match.start()] if match is not None else name
        if prefix in tainted:
            return prefix
    return None


def check_untainted(
    template: Any, tainted: Mapping[str, str], *, base_path: KeyPath = (), locate: Locator | None = None
) -> None:
    """Raise a located TemplateError where ``template`` uses a tainted step output."""
    if not tainted:
        return
    for ref in referenced_names(template, base_path, locate=locate):
        if ref.kind is not PlaceholderType.STANDARD:
            continue
        hit = _tainted_name(ref.name, tainted)
        if hit is None:
            continue
        raise Where(ref.key_path, locate).error(
            f"{ref.text!r} would store a secret in the deployment: the output '{hit}' is derived from a "
            f"secret ({tainted[hit]})",
            hint="refer to the secret where it is needed instead, e.g. "
                 "'{{ prefect.blocks.secret.<name> }}' in the pull step: block references are stored as "
                 "written and resolved by the worker when the flow runs")


#: ``locate(path)`` for a path inside the stored record: the source key path, or None.
RecordLocator = Callable[[KeyPath], "KeyPath | None"]


def keep_secrets_out(
    value: Any, *, path: KeyPath = (), source_path: RecordLocator | None = None, locate: Locator | None = None
) -> Any:
    """``value`` (a record about to be stored) with no secret in it.

    Credentials in URLs (``https://user:TOKEN@host``) are removed with a located :class:`SecretWarning`;
    any other string that shows a registered secret is a located TemplateError (the value is never
    quoted). ``source_path`` maps a path in the record to the key path in the source file, for locations.
    """

    def where(at: KeyPath) -> Where:
        mapped = source_path(at) if source_path is not None else None
        return Where(mapped if mapped is not None else at, locate if mapped is not None else None)

    def walk(item: Any, at: KeyPath) -> Any:
        if isinstance(item, dict):
            return {key: walk(child, (*at, key)) for key, child in item.items()}
        if isinstance(item, list):
            return [walk(child, (*at, i)) for i, child in enumerate(item)]
        if not isinstance(item, str):
            return item
        stripped = strip_url_credentials(item)
        if stripped != item:
            place = where(at)
            warnings.warn(SecretWarning(
                "the credentials written in this URL are not stored; the worker will use the URL without them",
                location=place.locate(place.path) if place.locate is not None else None,
                key_path=format_key_path(place.path) or None,
                hint="give them with a block instead, e.g. `access_token: '{{ prefect.blocks.secret.<name> }}'` "
                     "or `credentials: '{{ prefect.blocks.github-credentials.<name> }}'` on git_clone"),
                stacklevel=2)
        if contains_secret(stripped):
            raise where(at).error(
                "this value would store a secret in the deployment in clear",
                hint="pass the secret with a block reference ('{{ prefect.blocks.secret.<name> }}'), which is "
                     "stored as written and resolved by the worker, or with an environment variable whose "
                     "name looks secret (*_TOKEN, *_KEY, *_PASSWORD, ...), which stays a placeholder")
        return stripped

    return walk(value, tuple(path))
