"""Reading ``prefect.yaml``: decoding, YAML parsing with a location for every value, duplicate keys.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two equal keys. We
compose the node tree ourselves, check it for duplicates, construct the data with PyYAML's safe
constructor (so anchors, aliases and ``<<:`` merge keys behave exactly as in Prefect) and walk nodes and
data together to build a :class:`SourceMap` from key paths to locations.

Hostile input is refused here, with a location, so that nothing downstream ever sees it: files over
:data:`MAX_FILE_BYTES`, characters YAML forbids, and (through :class:`flowdeck.yaml_loader.BoundedLoader`)
alias bombs, recursive aliases, nesting past 100 levels, huge integers and scalars PyYAML cannot build.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from flowdeck.errors import ConfigSyntaxError, Location, Problem
from flowdeck.keys import KeyPath, LoadedFile, SourceMap, format_key_path, iter_paths
from flowdeck.yaml_loader import BoundedLoader, LimitError

__all__ = ["MAX_FILE_BYTES", "KeyPath", "LoadedFile", "SourceMap", "format_key_path", "iter_paths",
           "load_yaml_file", "parse_yaml_text"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: The largest file flowdeck parses (PyYAML reads about a megabyte a second; real files are a few KiB).
MAX_FILE_BYTES = 2 << 20


def _decode(raw: bytes, name: str) -> str:
    """Decode UTF-8, or UTF-8/16/32 with a BOM; normalise line endings to ``\\n``."""
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    )
    encoding, body = "utf-8", raw
    for bom, enc in boms:
        if raw.startswith(bom):
            encoding, body = enc, raw[len(bom):]
            break
    else:
        # UTF-16 without a BOM: every other byte of ASCII text is NUL.
        if len(raw) >= 4 and raw[1] == 0 and raw[3] == 0 and raw[0] != 0:
            encoding = "utf-16-le"
        elif len(raw) >= 4 and raw[0] == 0 and raw[2] == 0 and raw[1] != 0:
            encoding = "utf-16-be"
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        column = exc.start - (body.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigSyntaxError(
            f"the file is not valid {encoding.upper()} (byte 0x{body[exc.start]:02x})",
            location=Location(name, line, column),
            hint="save the file as UTF-8",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_SYNTAX_HINTS = (
    ("found character '\\t'", "YAML indentation must use spaces, not tabs"),
    ("found unhashable key", "quote values that start with a template: key: \"{{ step.output }}\""),
    ("while constructing a mapping", "quote values that start with a template: key: \"{{ step.output }}\""),
    ("mapping values are not allowed here",
     "quote a value that contains ': ', or check the indentation of this line"),
    ("could not find expected ':'", "every key needs a ':' after it; check the indentation of this block"),
    ("expected <block end>, but found '-'", "check the indentation of this list item"),
    ("expected <block end>", "check the indentation: this line is not aligned with its siblings"),
    ("found undefined alias", "define the anchor (&name) before using it as *name"),
    ("expected '<document start>'", "the file is not a YAML mapping; check the first lines"),
    ("but found another document", "a prefect.yaml holds one YAML document; remove the extra `---`"),
)


# What YAML 1.1 allows in a stream (PyYAML's Reader refuses the rest with only a character offset).
_FORBIDDEN = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _char_name(char: str) -> str:
    code = ord(char)
    names = {0: "NUL", 0x7F: "DEL", 0x1B: "ESC", 0x08: "backspace", 0x0C: "form feed", 0x0B: "vertical tab"}
    name = names.get(code) or unicodedata.name(char, "")
    if 0xD800 <= code <= 0xDFFF:
        name = "a lone surrogate"
    elif not name:
        name = "a control character"
    return f"U+{code:04X} ({name})"


def _check_characters(text: str, name: str) -> None:
    """Refuse characters YAML forbids, at their line and column (PyYAML gives only an offset)."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    index = found.start()
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    more = len(_FORBIDDEN.findall(text)) - 1
    also = f" (and {more} more such character{'s' if more > 1 else ''} further on)" if more else ""
    raise ConfigSyntaxError(
        f"the file contains the character {_char_name(found.group())}, which YAML does not allow{also}",
        location=Location(name, line, column),
        hint="remove it (an editor that shows invisible characters helps); inside a double-quoted string "
        f"write it as the escape \"\\x{ord(found.group()):02x}\" instead"
        if ord(found.group()) < 0x100 else "remove it (an editor that shows invisible characters helps)",
        detail=_snippet(_FORBIDDEN.sub("?", text), line, column),
    )


# A syntax error inside something opened earlier: PyYAML's context names it and marks where it opened.
_OPENERS = {
    "while scanning a quoted scalar": ("quoted string", "add the closing quote"),
    "while parsing a flow sequence": ("list '['", "close the list with ']' (or quote a value that starts with '[')"),
    "while parsing a flow mapping": (
        "mapping '{'", "close the mapping with '}' (or quote a value that starts with '{', such as a template)"
    ),
}


_SNIPPET_WIDTH = 100


def _snippet(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1].replace("\t", " ")
    if len(source) > _SNIPPET_WIDTH:
        # Show a window around the column of a very long line, not all of it.
        start = max(0, min(column - 1 - _SNIPPET_WIDTH // 2, len(source) - _SNIPPET_WIDTH))
        head = "…" if start else ""
        tail = "…" if start + _SNIPPET_WIDTH < len(source) else ""
        column = column - start + len(head)
        source = head + source[start:start + _SNIPPET_WIDTH] + tail
    return f"  {line:>4} | {source}\n       | {' ' * (column - 1)}^"


def _unclosed_error(exc: yaml.MarkedYAMLError, name: str, text: str) -> ConfigSyntaxError | None:
    """A quote or bracket never closed: locate the error where it was opened, name where it was noticed."""
    opened, found = exc.context_mark, exc.problem_mark
    if exc.context not in _OPENERS or opened is None or found is None:
        return None
    what, hint = _OPENERS[exc.context or ""]
    if what == "quoted string" and 0 <= opened.index < len(text):
        what = f"quoted string ({text[opened.index]})"
    line, column = opened.line + 1, opened.column + 1
    return ConfigSyntaxError(
        f"YAML syntax error: the {what} opened here is never closed ({exc.problem} at line {found.line + 1}, "
        f"column {found.column + 1})",
        location=Location(name, line, column),
        hint=hint,
        detail=_snippet(text, line, column),
    )


def _syntax_error(exc: yaml.MarkedYAMLError, name: str, text: str) -> ConfigSyntaxError:
    unclosed = _unclosed_error(exc, name, text)
    if unclosed is not None:
        return unclosed
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    line = mark.line + 1 if mark else 1
    column = mark.column + 1 if mark else 1
    full = f"{exc.context or ''} {problem}"
    hint = next((h for needle, h in _SYNTAX_HINTS if needle in full), None)
    if isinstance(exc, LimitError):
        return ConfigSyntaxError(problem, location=Location(name, line, column), hint=exc.hint,
                                 detail=_snippet(text, line, column))
    if "{{" in (text.split("\n")[line - 1] if line <= text.count("\n") + 1 else "") and (
        "unhashable" in full or "constructing a mapping" in full or "flow mapping" in full
    ):
        hint = "quote values that start with a template: key: \"{{ step.output }}\""
    return ConfigSyntaxError(
        f"YAML syntax error: {problem}",
        location=Location(name, line, column),
        hint=hint,
        detail=_snippet(text, line, column),
    )


def _loc(name: str, node: yaml.Node) -> Location:
    return Location(name, node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar_key(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _same_node(a: yaml.Node, b: yaml.Node, depth: int = 0, equal: set[tuple[int, int]] | None = None) -> bool:
    """Whether two YAML nodes hold the same value (same tags and scalars, recursively; bounded depth).

    Pairs already found equal are remembered, so aliases that expand exponentially compare in linear time.
    """
    equal = set() if equal is None else equal
    if a is b or (id(a), id(b)) in equal:
        return True
    if depth > 100 or type(a) is not type(b) or a.tag != b.tag:
        return False
    if isinstance(a, yaml.ScalarNode):
        return bool(a.value == b.value)
    if len(a.value) != len(b.value):
        return False
    if isinstance(a, yaml.MappingNode):
        same = all(_same_node(ka, kb, depth + 1, equal) and _same_node(va, vb, depth + 1, equal)
                   for (ka, va), (kb, vb) in zip(a.value, b.value, strict=True))
    else:
        same = all(_same_node(x, y, depth + 1, equal) for x, y in zip(a.value, b.value, strict=True))
    if same:
        equal.add((id(a), id(b)))
    return same


def _check_duplicates(root: yaml.Node, name: str) -> list[Problem]:
    """Report every key written twice in one mapping (merged keys overridden on purpose are fine)."""
    problems: list[Problem] = []
    seen_nodes: set[int] = set()

    def visit(node: yaml.Node, path: KeyPath) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            first_values: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                key = _scalar_key(key_node)
                if key_node.tag == _MERGE_TAG:
                    visit(value_node, path)
                    continue
                if key is not None:
                    if key in first and _same_node(first_values[key], value_node):
                        earlier = _loc(name, first[key])
                        problems.append(Problem(
                            "warning",
                            f"duplicate key '{key}' (first defined at line {earlier.line}, column "
                            f"{earlier.column}) with the same value both times; nothing is lost",
                            location=_loc(name, key_node),
                            key_path=format_key_path((*path, key)),
                            hint=f"remove one of the two '{key}' keys",
                            code="duplicate-key-same",
                        ))
                    elif key in first:
                        where = format_key_path((*path, key))
                        earlier = _loc(name, first[key])
                        problems.append(Problem(
                            "error",
                            f"duplicate key '{key}' (first defined at line {earlier.line}, column "
                            f"{earlier.column}); YAML keeps only the last one, so the first is silently lost",
                            location=_loc(name, key_node),
                            key_path=where,
                            hint=(
                                f"rename or remove one of the two '{key}' keys"
                                if not (key == "name" and len(path) == 2 and path[0] == "deployments")
                                else "if this starts another deployment, begin it with `- name:`"
                            ),
                            code="duplicate-key",
                        ))
                    else:
                        first[key] = key_node
                        first_values[key] = value_node
                visit(value_node, (*path, key if key is not None else "?"))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, (*path, index))

    visit(root, ())
    return problems


def _build_map(node: yaml.Node, data: Any, path: KeyPath, smap: SourceMap, depth: int = 0) -> None:
    """Walk nodes (merges already flattened by the constructor) beside the constructed data."""
    if depth > 200:  # aliases can make a deep (but finite) tree; locations that deep are never needed
        return
    smap.values.setdefault(path, _loc(smap.file, node))
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _match_key(key_node, data)
            if key is None:
                continue
            child = (*path, key)
            # Later pairs win, as in the constructed dict (own keys come after merged ones).
            smap.keys[child] = _loc(smap.file, key_node)
            smap.values.pop(child, None)
            _build_map(value_node, data[key], child, smap, depth + 1)
    elif isinstance(node, yaml.SequenceNode) and isinstance(data, list):
        for index, (item_node, item) in enumerate(zip(node.value, data, strict=False)):
            _build_map(item_node, item, (*path, index), smap, depth + 1)


def _match_key(node: yaml.Node, data: dict[Any, Any]) -> Any:
    """The key of ``data`` that a scalar key node constructed to (``1:`` is the int 1, ``on:`` True)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.value in data:
        return node.value
    for key in data:
        if not isinstance(key, str) and str(key).lower() == str(node.value).lower():
            return key
    return None


def parse_yaml_text(text: str, name: str) -> tuple[Any, SourceMap, list[Problem]]:
    """Parse YAML text; return the data, its source map and duplicate-key problems.

    Raises :class:`ConfigSyntaxError` for syntax errors, characters YAML forbids, and documents that
    exceed the limits of :mod:`flowdeck.yaml_loader` (alias bombs, recursive aliases, deep nesting).
    """
    _check_characters(text, name)
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        problems = _check_duplicates(node, name) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except yaml.reader.ReaderError as exc:
        index = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        raise ConfigSyntaxError(f"YAML error: {exc.reason}", location=Location(name, line, column)) from None
    except yaml.YAMLError as exc:
        raise ConfigSyntaxError(f"YAML error: {exc}", location=Location(name, 1, 1)) from None
    finally:
        loader.dispose()
    smap = SourceMap(name)
    if node is not None:
        _build_map(node, data, (), smap)
    return data, smap, problems


def load_yaml_file(path: Path, display_name: str | None = None) -> LoadedFile:
    """Read and parse a YAML file. ``display_name`` is how locations name the file (default: as given)."""
    name = display_name or str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # never more: a huge file is refused, not read
    except FileNotFoundError:
        raise ConfigSyntaxError(
            f"{name} not found",
            hint="run flowdeck in the project root, pass --file PATH, or create one with `flowdeck init`",
        ) from None
    except IsADirectoryError:
        raise ConfigSyntaxError(f"{name} is a directory, not a file", hint="pass --file PATH/prefect.yaml") from None
    except OSError as exc:
        raise ConfigSyntaxError(f"cannot read {name}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigSyntaxError(
            f"{name} is larger than {MAX_FILE_BYTES // (1 << 20)} MiB, the most flowdeck reads",
            location=Location(name, 1, 1),
            hint="a prefect.yaml this large is almost certainly generated by mistake; split it into several "
            "files (deploy each with --file)",
        )
    text = _decode(raw, name)
    data, smap, problems = parse_yaml_text(text, name)
    return LoadedFile(path=path, data=data, source=smap, problems=problems, text=text)
