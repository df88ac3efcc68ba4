"""The package's public surface is exactly ``__all__``, and every name in it exists and is documented."""

from __future__ import annotations

import inspect

import flowdeck.templating as templating


def test_all_names_exist_and_are_documented() -> None:
    for name in templating.__all__:
        obj = getattr(templating, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), name


def test_public_names_are_listed() -> None:
    public = {name for name in vars(templating) if not name.startswith("_")}
    modules = {"apply", "blocks", "diagnostics", "expressions", "keypath", "names", "pipeline",
               "placeholders", "references", "sandbox", "taint", "variables", "annotations"}
    assert public - modules == set(templating.__all__)


def test_prefect_regex_is_unchanged() -> None:
    assert templating.PLACEHOLDER_REGEX.pattern == r"({{\s*([\w\.\-\[\]$]+)\s*}})"
    assert templating.ANGLE_PLACEHOLDER_REGEX.pattern == r"(<<\s*([\w\.\-\[\]$]+)\s*>>)"
