"""Prefect compatibility, second pass (issue #12): what validate says about files Prefect reads."""

from __future__ import annotations

from pathlib import Path

from flowdeck.validation import validate_file


def _report(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    report = validate_file(path, env={})
    return [f"{p.severity}: {str(p).replace(str(path), 'prefect.yaml')}" for p in report.sorted()]


def test_a_duplicate_key_with_the_same_value_is_a_warning_that_says_so(tmp_path: Path) -> None:
    text = ("deployments:\n- name: d\n  entrypoint: f.py:f\n  work_pool:\n    name: p\n"
            "  tags: [a, b]\n  tags: [a, b]\n")
    assert _report(tmp_path, text) == [
        "warning: prefect.yaml:7:3: deployments[0].tags: duplicate key 'tags' (first defined at line 6, column 3) "
        "with the same value both times; nothing is lost (hint: remove one of the two 'tags' keys)"]


def test_a_duplicate_key_with_different_values_stays_an_error(tmp_path: Path) -> None:
    text = "deployments:\n- name: d\n  entrypoint: f.py:f\n  tags: [a]\n  tags: [b]\n"
    (message,) = _report(tmp_path, text)
    assert message.startswith("error: prefect.yaml:5:3: deployments[0].tags: duplicate key 'tags'")
    assert "silently lost" in message
