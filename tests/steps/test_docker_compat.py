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
        build_docker_image(image_name="example.invalid/x", tag="v1", dockerfile="auto")
    assert str(caught.value) == (
        "dockerfile: auto, but a Dockerfile already exists in the build context (hint: write "
        "`dockerfile: Dockerfile` to build yours, or remove or rename it to generate one)")
    assert (tmp_path / "Dockerfile").read_text() == "FROM scratch\n"
