"""Expressions: ``{{ $BRANCH | default('main') }}``, ``{{ a ~ '-' ~ b }}``, ``<< name | lower >>``.

Whatever sits between ``{{ }}`` (or ``<< >>``) and is not a plain placeholder name is an expression in
jinja's expression syntax, evaluated in :data:`flowdeck.templating.sandbox.SANDBOX`. The names inside
it are placeholder names and resolve by the placeholder rules: ``build-image.tag`` (a hyphen with no
spaces around it belongs to the name; write ``a - b`` to subtract), ``$ENV``, ``prefect.blocks.*``,
``prefect.variables.*``. Before jinja sees the text, each name is swapped for a context variable, so
hyphens and ``$`` never reach jinja's parser and a dotted name is one lookup, not attribute access.

Compatibility with Prefect, which leaves such text alone: Go and Helm templates (``{{json .Config}}``,
``{{ .Values.x | quote }}``: a field starting with ``.``) and other text that is not a valid expression
(``{{ a b }}``) stay verbatim; text that is not valid but uses expression syntax (``|``, ``~`` or ``(``)
is an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowdeck.redact import redact
from flowdeck.templating.diagnostics import Where
from flowdeck.templating.keypath import NOTSET
from flowdeck.templating.placeholders import PlaceholderType, determine_placeholder_type, is_plain_name

if TYPE_CHECKING:
    from jinja2 import Undefined
    from jinja2.environment import TemplateExpression

# jinja2 (and the sandbox built on it) is imported on the first expression found: most pull steps have
# none, and `flowdeck flow-run execute` would otherwise import it in every flow run.

__all__ = ["UNAVAILABLE", "Expression", "Lookup", "OnMissing", "expressions_in", "render_expressions"]

#: A lookup's answer for a name the current phase cannot resolve: the expression stays verbatim.
UNAVAILABLE = object()

#: ``lookup(name, kind)`` gives the value, :data:`NOTSET` (missing: jinja undefined) or UNAVAILABLE.
Lookup = Callable[[str, PlaceholderType], Any]
#: ``on_missing(name, kind, expression_text)`` is told each missing name an expression really used.
OnMissing = Callable[[str, PlaceholderType, str], None]

_SEGMENTS = (
    re.compile(r"\{\{((?:(?!\{\{|\}\})[^\n])*)\}\}"),
    re.compile(r"<<((?:(?!<<|>>)[^\n])*)>>"),
)
_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<name>\$*[A-Za-z_]\w*(?:-\w+)*(?:\.\w+(?:-\w+)*|\[\d+\])*)
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none",
                       "True", "False", "None"})
_MARKERS = ("|", "~", "(")


@dataclass(frozen=True)
class Expression:
    """One expression: its text as written, the jinja source it became, and the names it uses."""

    full_match: str
    source: str
    names: tuple[str, ...]

    @property
    def kinds(self) -> tuple[PlaceholderType, ...]:
        """The placeholder kind of each name."""
        return tuple(determine_placeholder_type(name) for name in self.names)


def _tokens(content: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(content)]


def _looks_like_go(tokens: list[tuple[str, str]]) -> bool:
    """Go and Helm templates (``{{json .Config}}``, ``{{ .Values.x | quote }}``) start a field with a
    ``.`` after a space or a bracket; a jinja expression never does. Prefect leaves them alone, so do we."""
    previous = "space"
    for kind, text in tokens:
        if text == "." and (previous == "space" or previous in ("(", ",", "|")):
            return True
        previous = kind if kind == "space" else text
    return False


def _rewrite(content: str) -> tuple[str, tuple[str, ...]]:
    """Swap every placeholder name in ``content`` for ``_fdN``; keep filters, tests, keywords, attributes."""
    tokens = _tokens(content)
    significant = [i for i, (kind, _) in enumerate(tokens) if kind != "space"]
    names: list[str] = []
    out: list[str] = []
    for position, i in enumerate(significant):
        kind, text = tokens[i]
        prev = tokens[significant[position - 1]][1] if position > 0 else ""
        prev2 = tokens[significant[position - 2]][1] if position > 1 else ""
        nxt = tokens[significant[position + 1]][1] if position + 1 < len(significant) else ""
        nxt2 = tokens[significant[position + 2]][1] if position + 2 < len(significant) else ""
        method = ""
        is_name = kind == "name" and prev not in (".", "|", "is") and text not in _KEYWORDS
        is_name = is_name and not (prev == "not" and prev2 == "is") and not (nxt == "=" and nxt2 != "=")
        if is_name and nxt == "(":
            # `name.upper()` calls a method on the value of `name`; a bare `f()` is a (missing) global.
            is_name = "." in text
            if is_name:
                text, method = text.rsplit(".", 1)
                method = "." + method
        if is_name:
            if text not in names:
                names.append(text)
            text = f"_fd{names.index(text)}" + method
        # Keep the original spacing between tokens so jinja's error columns stay meaningful.
        gap = "".join(t for _, t in tokens[(significant[position - 1] + 1 if position else 0):i])
        out.append(gap + text)
    return "".join(out), tuple(names)


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> TemplateExpression:
    from flowdeck.templating.sandbox import SANDBOX

    return SANDBOX.compile_expression(source, undefined_to_none=False)


def parse_expression(full_match: str, content: str, where: Where) -> Expression | None:
    """The expression in ``content``, or None when it is text to leave alone (see the module docs)."""
    if is_plain_name(content) is not None or _looks_like_go(_tokens(content)):
        return None
    from jinja2 import TemplateSyntaxError

    source, names = _rewrite(content)
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        if not any(marker in content for marker in _MARKERS):
            return None
        hint = "write filters as `{{ name | lower }}`, join text with `~`, quote literal strings"
        if "No filter named" in str(exc.message):
            from flowdeck.templating.sandbox import ALLOWED_FILTERS

            hint = f"the filters available are {', '.join(sorted(ALLOWED_FILTERS))}"
        raise where.error(f"invalid expression {full_match!r}: {exc.message}", hint=hint) from None
    except RecursionError:  # jinja's parser and compiler recurse once per nesting level or operator
        raise where.error(f"expression {_shorten(full_match)!r} is nested too deeply or chains too many "
                          "operators or filters", hint="split it into several steps or simpler expressions") from None
    return Expression(full_match, source, names)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit // 2] + " … " + text[-limit // 2:]


def expressions_in(text: str, where: Where | None = None) -> list[Expression]:
    """Every expression in one string, in order of appearance (syntax errors raise TemplateError)."""
    found: list[tuple[int, Expression]] = []
    for regex in _SEGMENTS:
        for match in regex.finditer(text):
            expression = parse_expression(match.group(), match.group(1), where or Where())
            if expression is not None:
                found.append((match.start(), expression))
    return [expression for _, expression in sorted(found, key=lambda item: item[0])]


@functools.cache
def _missing_class() -> type[Undefined]:
    from jinja2 import Undefined

    class _Missing(Undefined):
        """A name with no value: works with ``default`` and ``is defined``; rendering it is recorded."""

        __slots__ = ("_fd_used",)

        def __init__(self, name: str, used: list[str]) -> None:
            super().__init__(name=name)
            self._fd_used = used

        def _record(self) -> None:
            if self._undefined_name not in self._fd_used:
                self._fd_used.append(str(self._undefined_name))

        def __str__(self) -> str:
            self._record()
            return ""

        def __iter__(self) -> Any:
            self._record()
            return iter(())

    return _Missing


def evaluate(expression: Expression, values: list[Any], on_missing: OnMissing, where: Where) -> Any:
    """Run one expression with the given name values; a missing (NOTSET) value is jinja-undefined."""
    from jinja2 import TemplateError as JinjaError
    from jinja2 import Undefined

    from flowdeck.templating.sandbox import SecurityError

    _Missing: Any = _missing_class()
    used: list[str] = []
    context = {
        f"_fd{i}": _Missing(name, used) if value is NOTSET else value
        for i, (name, value) in enumerate(zip(expression.names, values, strict=True))
    }
    try:
        result = _compile(expression.source)(**context)
        if isinstance(result, _Missing):
            result._record()
            result = NOTSET if determine_placeholder_type(str(result._undefined_name)) is \
                PlaceholderType.STANDARD else ""
        elif isinstance(result, Undefined):
            result._fail_with_undefined_error()  # e.g. an attribute the value does not have
    except SecurityError as exc:
        raise where.error(f"expression {expression.full_match!r} is not allowed: {redact(str(exc))}",
                          hint="expressions may use names, literals, operators and the usual filters "
                               "(default, lower, upper, replace, trim, join, tojson, ...)") from None
    except (JinjaError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError,
            RecursionError) as exc:
        raise where.error(f"expression {expression.full_match!r} failed: {redact(str(exc))}") from None
    for name in used:
        on_missing(name, determine_placeholder_type(name), expression.full_match)
    return str(result) if isinstance(result, str) else result


def render_expressions(text: str, lookup: Lookup, on_missing: OnMissing, where: Where) -> tuple[Any, bool]:
    """Evaluate the expressions in ``text`` whose names are all available.

    Returns ``(result, final)``. A string that is exactly one expression gives its raw result (a dict
    stays a dict) and ``final=True``: like a whole-string placeholder, it is not scanned again in this
    phase. Otherwise each result is put in with ``str()``; expressions with an unavailable name stay
    verbatim.
    """
    expressions = expressions_in(text, where)
    whole = len(expressions) == 1 and expressions[0].full_match == text
    for expression in expressions:
        values = [lookup(name, kind) for name, kind in zip(expression.names, expression.kinds, strict=True)]
        if any(value is UNAVAILABLE for value in values):
            continue
        result = evaluate(expression, values, on_missing, where)
        if whole:
            return result, True
        text = text.replace(expression.full_match, "" if result is NOTSET else str(result))
    return text, False
