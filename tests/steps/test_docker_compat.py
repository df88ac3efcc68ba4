"""build_docker_image refuses `dockerfile: auto` beside an existing Dockerfile, as Prefect does (issue #12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.errors import StepInputError
from flowdeck.steps.cache import clear_step_cache
from flowdeck.steps.docker import build_docker_image


def test_dockerfile_auto_with_an_existing_dockerfile_is_refused(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    clear_step_cache()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StepInputError) as caught:
        # A loopback base image: without the check this would try (and fail) to build, never reaching out.
        build_docker_image(image_name="example.invalid/x", tag="v1", dockerfile="auto",
                           base_image="127.0.0.1:9/none:1")
    assert str(caught.value) == (
        "dockerfile: auto, but a Dockerfile already exists in the build context (hint: write "
        "`dockerfile: Dockerfile` to build yours, or remove or rename it to generate one)")
    assert (tmp_path / "Dockerfile").read_text() == "FROM scratch\n"


def test_an_invalid_ignore_line_in_an_auto_context_is_a_located_warning(tmp_path: Path) -> None:
    from flowdeck.errors import FlowdeckWarning
    from flowdeck.steps.docker_context import staged_auto_context

    (tmp_path / ".prefectignore").write_text("*.log\n!\n[z-a]*\n")
    (tmp_path / "flow.py").write_text("x\n")
    (tmp_path / "run.log").write_text("x\n")
    with pytest.warns(FlowdeckWarning) as caught, staged_auto_context(tmp_path, "p", "base:1") as auto:
        staged = sorted(p.name for p in auto.context.iterdir())
    assert "flow.py" in staged and "run.log" not in staged
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{tmp_path / '.prefectignore'}:2:1: ignore pattern '!' is not valid") for m in messages)
    assert any(":3:1: ignore pattern '[z-a]*' is not valid" in m for m in messages)
