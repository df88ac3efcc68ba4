"""Taint tracking: which step outputs hold or derive from a secret, and the located error for using one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flowdeck.errors import TemplateError
from flowdeck.redact import register_secret
from flowdeck.templating.taint import check_untainted, derived_taint, taint_outputs


def _step(canonical: str, inputs: dict[str, Any], *, builtin: bool, index: int = 0) -> SimpleNamespace:
    return SimpleNamespace(section="build", index=index, canonical=canonical, spec=object() if builtin else None,
                           short_name=canonical.rsplit(".", 1)[-1], arguments=lambda: inputs)


def _record(step_id: str, output: dict[str, Any], index: int = 0) -> SimpleNamespace:
    return SimpleNamespace(section="build", index=index, step_id=step_id, output=output)


@pytest.mark.parametrize(("canonical", "builtin", "value", "tainted"), [
    ("flowdeck.steps.run_shell_script", True, "{{ prefect.blocks.secret.tok }}", True),
    ("flowdeck.steps.run_shell_script", True, "{{ prefect.blocks.aws-credentials.prod }}", True),
    ("flowdeck.steps.run_shell_script", True, "{{ $GH_PAT | trim }}", True),
    ("flowdeck.steps.run_shell_script", True, "{{ prefect.blocks.string.registry }}", False),
    ("flowdeck.steps.run_shell_script", True, "{{ $REGION }}", False),
    ("mypkg.steps.custom", False, "{{ prefect.blocks.secret.tok }}", True),
    ("mypkg.steps.custom", False, "{{ prefect.blocks.aws-credentials.prod }}", False),
    ("flowdeck.steps.push_docker_image", True, "{{ prefect.blocks.docker-registry-credentials.r }}", False),
])
def test_which_steps_taint_their_outputs(canonical: str, builtin: bool, value: str, tainted: bool) -> None:
    steps = [_step(canonical, {"script": f"echo {value}"}, builtin=builtin)]
    found = taint_outputs({"s": {"stdout": "x"}, "stdout": "x"},
                          derived_taint(steps, [_record("s", {"stdout": "x"})]))
    assert (set(found) == {"s", "stdout"}) is tainted, found


def test_an_output_showing_a_secret_is_tainted_in_any_shape() -> None:
    register_secret('pa"ss-word-123')
    found = taint_outputs({"a": {"stdout": 'x "pa\\"ss-word-123"'}, "b": ["ok"], "c": "fine"})
    assert set(found) == {"a"}


def test_using_a_tainted_output_is_a_located_error_also_in_an_expression() -> None:
    tainted = {"leak": "it holds a secret value"}
    check_untainted({"x": "{{ other.stdout }}", "y": "{{ leaky.stdout }}"}, tainted)
    for template in ({"x": "{{ leak.stdout }}"}, {"x": "{{ leak.stdout | upper }}"}, {"x": "a-{{ leak }}"},
                     {"x": ["{{ leak['stdout'] }}"]}):
        with pytest.raises(TemplateError, match="derived from a secret") as info:
            check_untainted(template, tainted, base_path=("deployments", 0), locate=lambda path: None)
        assert info.value.key_path is not None and info.value.key_path.startswith("deployments[0].x")
