"""``apply_values``: Prefect's substitution of step outputs and ``{{ $ENV }}``, with locations.

Semantics follow Prefect exactly (see prefect-behaviour.md §1.2): a string that is exactly one
standard placeholder becomes the raw value (or :data:`NOTSET`), other strings get ``str(value)``,
``{{ $VAR }}`` always reads ``os.environ``, block and variable placeholders are left for later phases,
dict keys whose value is NOTSET are dropped (with ``remove_notset``), NOTSET list items always are.
On top: expressions, ``<< >>`` delimiters, located warnings for unset environment variables, ``strict``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flowdeck.secret_names import is_secret_name
from flowdeck.templating.diagnostics import Where, missing_env
from flowdeck.templating.expressions import UNAVAILABLE, render_expressions
from flowdeck.templating.keypath import NOTSET, KeyPath, Locator, get_from_dict
from flowdeck.templating.placeholders import PlaceholderType, placeholders_in

__all__ = ["apply_values"]

logger = logging.getLogger("flowdeck.templating")


@dataclass(frozen=True)
class _Options:
    values: Any
    remove_notset: bool
    warn_on_notset: bool
    skip_prefixes: tuple[str, ...]
    strict: bool
    keep_secret_env: bool = False

    def skipped(self, name: str) -> bool:
        if self.keep_secret_env and name.startswith("$") and is_secret_name(name.lstrip("$")):
            return True
        return name.startswith(self.skip_prefixes) if self.skip_prefixes else False

    def not_found(self, name: str, where: Where) -> None:
        if self.warn_on_notset:
            logger.warning(where.describe(f"value for placeholder {name!r} not found in provided values"))


def apply_values(
    template: Any,
    values: Any,
    remove_notset: bool = True,
    warn_on_notset: bool = False,
    skip_prefixes: Iterable[str] | None = None,
    *,
    strict: bool = False,
    locate: Locator | None = None,
    base_path: KeyPath = (),
    keep_secret_env: bool = False,
) -> Any:
    """Fill step outputs (``values``) and environment variables into ``template``.

    ``skip_prefixes`` leaves placeholders whose name starts with one of them untouched (deploy uses
    ``["ctx."]``). ``keep_secret_env`` leaves ``{{ $NAME }}`` untouched, also inside an expression,
    when NAME looks secret (:func:`flowdeck.secret_names.is_secret_name`): deploy stores no secret.
    ``strict`` turns an unset ``{{ $VAR }}`` into a TemplateError instead of a
    MissingValueWarning. ``locate`` and ``base_path`` place errors and warnings in the source file.
    """
    options = _Options(values, remove_notset, warn_on_notset, tuple(skip_prefixes or ()), strict, keep_secret_env)
    return _apply(template, options, Where(tuple(base_path), locate))


def _apply(template: Any, options: _Options, where: Where) -> Any:
    if template is NOTSET or template is None or isinstance(template, (bool, int, float)):
        return template
    if isinstance(template, str):
        return _apply_str(template, options, where)
    if isinstance(template, dict):
        result: dict[Any, Any] = {}
        for key, value in template.items():
            resolved = _apply(value, options, where.child(key))
            if resolved is not NOTSET:
                result[key] = resolved
            elif not options.remove_notset:
                result[key] = value
        return result
    if isinstance(template, list):
        items = (_apply(item, options, where.child(i)) for i, item in enumerate(template))
        return [item for item in items if item is not NOTSET]
    raise where.error(f"unexpected template type {type(template).__name__!r}",
                      hint="quote the value so YAML reads it as a string")


def _lookup(name: str, kind: PlaceholderType, options: _Options) -> Any:
    """A name's value in this phase: the value, NOTSET (missing) or UNAVAILABLE (leave verbatim)."""
    if options.skipped(name):
        return UNAVAILABLE
    if kind is PlaceholderType.STANDARD:
        value = get_from_dict(options.values, name, NOTSET)
    elif kind is PlaceholderType.ENV_VAR:
        value = os.environ.get(name.lstrip("$"), NOTSET)
    else:
        return UNAVAILABLE
    return UNAVAILABLE if value is NOTSET and not options.remove_notset else value


def _apply_str(text: str, options: _Options, where: Where) -> Any:
    def on_missing(name: str, kind: PlaceholderType, expression: str) -> None:
        if kind is PlaceholderType.ENV_VAR:
            missing_env(name, expression, where, strict=options.strict)
        else:
            options.not_found(name, where)

    rendered, final = render_expressions(text, lambda n, k: _lookup(n, k, options), on_missing, where)
    if final or not isinstance(rendered, str):
        return rendered
    text = rendered
    placeholders = [p for p in placeholders_in(text) if not options.skipped(p.name)]
    if not placeholders:
        return text
    first = placeholders[0]
    if len(placeholders) == 1 and first.full_match == text and first.type is PlaceholderType.STANDARD:
        value = get_from_dict(options.values, first.name, NOTSET)
        if value is NOTSET:
            options.not_found(first.name, where)
        return value
    for placeholder in dict.fromkeys(placeholders):
        if placeholder.type is PlaceholderType.STANDARD:
            value = get_from_dict(options.values, placeholder.name, NOTSET)
        elif placeholder.type is PlaceholderType.ENV_VAR:
            value = os.environ.get(placeholder.name.lstrip("$"), NOTSET)
        else:
            continue
        if value is not NOTSET:
            text = text.replace(placeholder.full_match, str(value))
            continue
        if placeholder.type is PlaceholderType.STANDARD:
            options.not_found(placeholder.name, where)
        if options.remove_notset:
            if placeholder.type is PlaceholderType.ENV_VAR:
                missing_env(placeholder.name, placeholder.full_match, where, strict=options.strict)
            text = text.replace(placeholder.full_match, "")
    return text
