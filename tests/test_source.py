"""Loading prefect.yaml: encodings, anchors, locations, duplicate keys, syntax errors."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from flowdeck.errors import ConfigSyntaxError, Location
from flowdeck.source import format_key_path, load_yaml_file

TEXT = "deployments:\n- name: a\n  entrypoint: f.py:f\n"


@pytest.mark.parametrize(
    ("rule", "raw"),
    [
        ("plain UTF-8", TEXT.encode()),
        ("UTF-8 with BOM", codecs.BOM_UTF8 + TEXT.encode()),
        ("UTF-16 LE with BOM", codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")),
        ("UTF-16 BE with BOM", codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")),
        ("UTF-16 LE without BOM", TEXT.encode("utf-16-le")),
        ("CRLF line endings", TEXT.replace("\n", "\r\n").encode()),
    ],
)
def test_encodings_all_load_to_the_same_data(tmp_path: Path, rule: str, raw: bytes) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_bytes(raw)
    loaded = load_yaml_file(path, "prefect.yaml")
    assert loaded.data == {"deployments": [{"name": "a", "entrypoint": "f.py:f"}]}, rule
    assert loaded.source.locate(("deployments", 0, "entrypoint")) == Location("prefect.yaml", 3, 15), rule


def test_every_value_keeps_its_location(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text("pull:\n  - prefect.deployments.steps.git_clone:\n      repository: https://x/r.git\n")
    loaded = load_yaml_file(path, "prefect.yaml")
    key = ("pull", 0, "prefect.deployments.steps.git_clone", "repository")
    assert loaded.source.locate(key) == Location("prefect.yaml", 3, 19)
    assert loaded.source.locate_key(key) == Location("prefect.yaml", 3, 7)
    # A path below a scalar falls back to the nearest known ancestor.
    assert loaded.source.locate((*key, "nope")) == Location("prefect.yaml", 3, 19)


def test_anchors_aliases_and_merge_keys_work_like_pyyaml(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(
        "definitions:\n"
        "  pool: &pool\n"
        "    name: p\n"
        "    work_queue_name: q\n"
        "  base: &base\n"
        "    tags: [a]\n"
        "deployments:\n"
        "- <<: *base\n"
        "  name: d\n"
        "  tags: [b]\n"
        "  work_pool: *pool\n"
    )
    loaded = load_yaml_file(path, "prefect.yaml")
    dep = loaded.data["deployments"][0]
    assert dep == {"tags": ["b"], "name": "d", "work_pool": {"name": "p", "work_queue_name": "q"}}
    assert loaded.problems == []  # a key overriding a merged one is not a duplicate
    # The alias points at where the anchor was written.
    assert loaded.source.locate(("deployments", 0, "work_pool", "name")) == Location("prefect.yaml", 3, 11)
    assert loaded.source.locate(("deployments", 0, "tags")) == Location("prefect.yaml", 10, 9)


def test_duplicate_keys_name_both_locations(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text("build: null\npush: null\nbuild:\n- x.y: {}\n")
    loaded = load_yaml_file(path, "prefect.yaml")
    assert [str(p) for p in loaded.problems] == [
        "prefect.yaml:3:1: build: duplicate key 'build' (first defined at line 1, column 1); YAML keeps only "
        "the last one, so the first is silently lost (hint: rename or remove one of the two 'build' keys)"
    ]


def test_a_second_name_in_one_deployment_suggests_a_new_list_item(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments:\n- name: a\n  entrypoint: a.py:a\n  name: b\n")
    (problem,) = load_yaml_file(path, "prefect.yaml").problems
    assert problem.hint == "if this starts another deployment, begin it with `- name:`"
    assert problem.location == Location("prefect.yaml", 4, 3)


@pytest.mark.parametrize(
    ("rule", "text", "message", "hint"),
    [
        ("unquoted template", "pull:\n- a.b:\n    directory: {{ x.directory }}\n",
         "prefect.yaml:3:17: YAML syntax error: found unhashable key",
         'quote values that start with a template: key: "{{ step.output }}"'),
        ("tab indentation", "deployments:\n\t- name: a\n",
         "prefect.yaml:2:1: YAML syntax error: found character '\\t' that cannot start any token",
         "YAML indentation must use spaces, not tabs"),
        ("colon in value", "deployments:\n- name: a\n  description: a: b\n",
         "prefect.yaml:3:17: YAML syntax error: mapping values are not allowed here",
         "quote a value that contains ': ', or check the indentation of this line"),
    ],
)
def test_syntax_errors_are_located_with_the_offending_line(
    tmp_path: Path, rule: str, text: str, message: str, hint: str
) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    with pytest.raises(ConfigSyntaxError) as info:
        load_yaml_file(path, "prefect.yaml")
    assert str(info.value) == f"{message} (hint: {hint})", rule
    line = int(message.split(":")[1])
    assert text.split("\n")[line - 1].replace("\t", " ") in (info.value.detail or ""), rule


def test_invalid_utf8_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_bytes(b"name: ok\nbad: \xff\xfe\xfa\n")
    with pytest.raises(ConfigSyntaxError) as info:
        load_yaml_file(path, "prefect.yaml")
    assert str(info.value) == "prefect.yaml:2:6: the file is not valid UTF-8 (byte 0xff) (hint: save the file as UTF-8)"


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigSyntaxError) as info:
        load_yaml_file(tmp_path / "prefect.yaml", "prefect.yaml")
    assert str(info.value) == (
        "prefect.yaml not found (hint: run flowdeck in the project root, pass --file PATH, or create one with "
        "`flowdeck init`)"
    )


@pytest.mark.parametrize(
    ("path", "text"),
    [((), ""), (("a",), "a"), (("a", 0, "b"), "a[0].b"), (("deployments", 1, "pull", 0), "deployments[1].pull[0]")],
)
def test_key_paths_render_like_python_access(path: tuple[str | int, ...], text: str) -> None:
    assert format_key_path(path) == text


# --- hostile input: refused at load time with a location, before anything walks the data -------------------

def _load_error(tmp_path: Path, raw: bytes | str) -> ConfigSyntaxError:
    path = tmp_path / "prefect.yaml"
    path.write_bytes(raw.encode() if isinstance(raw, str) else raw)
    with pytest.raises(ConfigSyntaxError) as info:
        load_yaml_file(path, "prefect.yaml")
    return info.value


@pytest.mark.parametrize(
    ("raw", "where", "named"),
    [
        (b"deployments:\n- name: a\x00b\n", (2, 10), "U+0000 (NUL)"),
        (b"deployments:\n- name: a\x7fb\n", (2, 10), "U+007F (DEL)"),
        (b"deployments:\n- name: a\n  \x1b: x\n", (3, 3), "U+001B (ESC)"),
        (b"# a comment \x08\nname: x\n", (1, 13), "U+0008 (backspace)"),
        (b"name: 'a\x0cb'\n", (1, 9), "U+000C (form feed)"),
        ("name: x\ntags: [\ufffe]\n".encode(), (2, 8), "U+FFFE"),
    ],
)
def test_characters_yaml_forbids_are_located(
    tmp_path: Path, raw: bytes, where: tuple[int, int], named: str
) -> None:
    error = _load_error(tmp_path, raw)
    assert error.location == Location("prefect.yaml", *where)
    assert named in error.message and "YAML does not allow" in error.message
    assert error.hint and "remove it" in error.hint
    assert "?" in (error.detail or "")  # the snippet never prints the raw control character
    assert "\x00" not in str(error) and "\x1b" not in (error.detail or "")


def test_a_lone_surrogate_written_as_an_escape_is_refused(tmp_path: Path) -> None:
    error = _load_error(tmp_path, 'deployments:\n- name: "a\\ud800b"\n')
    assert error.location == Location("prefect.yaml", 2, 9)
    assert "lone surrogate U+D800" in error.message
    # A surrogate pair written as one escape is an ordinary character.
    path = tmp_path / "ok.yaml"
    path.write_text('name: "\\U0001F600"\n')
    assert load_yaml_file(path).data == {"name": "\U0001f600"}


def _laughs(levels: int) -> str:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, levels):
        prev, cur = chr(96 + i), chr(97 + i)
        text += f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]\n"
    return text


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit(tmp_path: Path) -> None:
    text = _laughs(9) + "deployments:\n- name: d\n  parameters: {p: *i}\n"
    assert len(text) < 500  # a few hundred bytes that expand to 9**9 values
    error = _load_error(tmp_path, text)
    # 9**5 values are already past the limit: an alias on line 5 (e: [*d, ...]) crosses it.
    assert error.location is not None and error.location.line == 5
    assert text.split("\n")[4][error.location.column - 1] == "*"
    assert "aliases expand the document to more than 20000 values" in error.message
    assert error.hint and "exponentially" in error.hint


def test_aliases_below_the_limit_still_work(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(_laughs(3) + "deployments:\n- name: d\n  parameters: {p: *c}\n")
    data = load_yaml_file(path).data
    assert len(data["deployments"][0]["parameters"]["p"]) == 9


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("deployments:\n- &d\n  name: a\n  parameters:\n    me: *d\n", (5, 9)),
        ("a: &a [1, *a]\n", (1, 11)),
        ("a: &a\n  <<: *a\n  b: 1\n", (2, 7)),
        ("a: &a {b: [{c: *a}]}\n", (1, 16)),
    ],
    ids=["mapping", "sequence", "merge key", "nested"],
)
def test_a_recursive_alias_is_refused(tmp_path: Path, text: str, where: tuple[int, int]) -> None:
    error = _load_error(tmp_path, text)
    assert error.location == Location("prefect.yaml", *where)
    assert "is inside the node it refers to (a recursive structure)" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "p: " + "[" * 5000 + "]" * 5000 + "\n",
        "p: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        "p:\n" + "".join(" " * i + "- \n" for i in range(0, 2000, 2)),
        "p:\n" + "".join(" " * i + "a:\n" for i in range(0, 600, 2)) + " " * 600 + "x\n",
    ],
    ids=["flow lists", "flow mappings", "block lists", "block mappings"],
)
def test_data_nested_thousands_of_levels_is_refused_where_it_gets_too_deep(tmp_path: Path, text: str) -> None:
    error = _load_error(tmp_path, text)
    assert error.message == "the data is nested more than 100 levels deep"
    assert error.location is not None and error.location.line >= 1
    assert error.detail  # the offending line with a caret


def test_nesting_through_aliases_counts_too(tmp_path: Path) -> None:
    deep = "[" * 60 + "]" * 60
    error = _load_error(tmp_path, f"a: &a {deep}\nb: {'[' * 50}*a{']' * 50}\n")
    assert error.location == Location("prefect.yaml", 2, 54)
    assert "the alias *a nests the data more than 100 levels deep" in error.message


def test_nesting_just_below_the_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text("p: " + "[" * 98 + "1" + "]" * 98 + "\n")
    data = load_yaml_file(path).data["p"]
    for _ in range(98):
        data = data[0]
    assert data == 1


@pytest.mark.parametrize(
    "value",
    ["9" * 5000, "-" + "9" * 1001, "0x" + "f" * 4000, "1_000" * 1000],
    ids=["decimal", "negative", "hex", "underscores"],
)
def test_huge_integers_are_refused_with_a_hint_to_quote_them(tmp_path: Path, value: str) -> None:
    # A key is at most 1024 characters (a YAML rule), so only the shorter integers are tried as keys too.
    texts = [f"deployments:\n- name: {value}\n"] + ([f"deployments:\n- {value}: x\n"] if len(value) < 1024 else [])
    for text in texts:
        error = _load_error(tmp_path, text)
        assert error.location == Location("prefect.yaml", 2, 3 if text.endswith(": x\n") else 9)
        assert error.message == "the integer has more than 1000 digits"
        assert error.hint and "quote it" in error.hint
        assert error.detail and len(error.detail) < 300  # the snippet shows a window, not 5000 digits


def test_long_strings_and_quoted_huge_numbers_load(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(f"a: {'x' * 300_000}\nb: '{'9' * 5000}'\nc: {'9' * 1000}\n")
    data = load_yaml_file(path).data
    assert len(data["a"]) == 300_000 and data["b"] == "9" * 5000 and data["c"] == int("9" * 1000)


def test_a_value_pyyaml_cannot_construct_is_a_located_error(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "deployments:\n- name: a\n  version: 2001-13-45\n")
    assert error.location == Location("prefect.yaml", 3, 12)
    assert "cannot read the value '2001-13-45' as timestamp" in error.message
    assert error.hint == "quote the value to keep it as a string"


@pytest.mark.parametrize(
    ("text", "opened", "message"),
    [
        ('deployments:\n- name: "abc\n  entrypoint: f.py:f\n\n\n',
         (2, 9), "the quoted string (\") opened here is never closed (found unexpected end of stream at line 6"),
        ("deployments:\n- name: 'abc\n  entrypoint: f.py:f\n",
         (2, 9), "the quoted string (') opened here is never closed"),
        ("deployments:\n- name: a\n  tags: [a, b\n  entrypoint: f.py:f\n  description: x\n",
         (3, 9), "the list '[' opened here is never closed (expected ',' or ']', but got ':' at line 4, column 13)"),
        ("a: {b: 1, c: 2\n\n\n", (1, 4), "the mapping '{' opened here is never closed"),
    ],
    ids=["double quote", "single quote", "bracket", "brace"],
)
def test_an_unclosed_quote_or_bracket_names_the_line_it_was_opened_on(
    tmp_path: Path, text: str, opened: tuple[int, int], message: str
) -> None:
    error = _load_error(tmp_path, text)
    assert error.location == Location("prefect.yaml", *opened)
    assert message in error.message
    assert text.split("\n")[opened[0] - 1] in (error.detail or "")


def test_a_file_larger_than_the_limit_is_refused_without_parsing_it(tmp_path: Path) -> None:
    from flowdeck.source import MAX_FILE_BYTES

    path = tmp_path / "prefect.yaml"
    path.write_text('description: "' + "x " * (MAX_FILE_BYTES // 2) + '"\n')
    error = _load_error(tmp_path, path.read_bytes())
    assert error.location == Location("prefect.yaml", 1, 1)
    assert error.message == "prefect.yaml is larger than 2 MiB, the most flowdeck reads"
    assert error.hint and "split it" in error.hint
