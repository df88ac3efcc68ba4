"""Which recorded version a server's deployment holds (pure: the artifacts and deployment are built here)."""

from __future__ import annotations

from typing import Any

from flowdeck.registry.server.live import deployment_fields, held_version, live_id, recorded_fields


def _record(times: int, **extra: Any) -> dict[str, Any]:
    return {"entrypoint": "flows/hello.py:hello", "parameters": {"times": times},
            "work_pool": {"name": "p", "job_variables": {"env": {"A": "1"}}},
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/x"}}], **extra}


def _art(art_id: str, times: int, label: str = "v1") -> dict[str, Any]:
    return {"id": art_id, "data": {"label": label, "record": _record(times)}}


def _dep(times: int, label: str = "v1", **extra: Any) -> dict[str, Any]:
    # As the server returns it: more fields than a version sets, some of them unset.
    return {"id": "dep", "entrypoint": "flows/hello.py:hello", "version": label, "parameters": {"times": times},
            "job_variables": {"env": {"A": "1"}}, "tags": [], "enforce_parameter_schema": False,
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/x"}}],
            "paused": False, "description": None, "schedules": [], **extra}


def test_a_deployment_holds_the_version_whose_fields_it_carries() -> None:
    versions = [_art("a", 1), _art("b", 2), _art("c", 3)]
    assert held_version(_dep(2), versions) == "b"
    assert deployment_fields(_dep(2)) == recorded_fields(_record(2), "v1")
    # Fields that belong to the deployment (schedules, paused, description...) do not matter.
    assert held_version(_dep(2, paused=True, description="by hand"), versions) == "b"


def test_a_changed_deployment_holds_no_version() -> None:
    versions = [_art("a", 1), _art("b", 2)]
    assert held_version(_dep(99), versions) is None
    assert held_version(_dep(2, label="by-hand"), versions) is None
    assert held_version(_dep(2, pull_steps=[]), versions) is None


def test_equal_versions_prefer_the_pointer_else_the_newest() -> None:
    versions = [_art("a", 1), _art("b", 1), _art("c", 2)]
    assert held_version(_dep(1), versions) == "b"
    assert held_version(_dep(1), versions, prefer=("a",)) == "a"
    assert held_version(_dep(1), versions, prefer=("c", "a")) == "a"


def test_live_is_what_the_deployment_holds_else_the_pointer() -> None:
    versions = [_art("a", 1), _art("b", 2)]
    assert live_id(_dep(1), versions, {"artifact_id": "b"}) == "a"
    assert live_id(_dep(99), versions, {"artifact_id": "b"}) == "b"
    assert live_id(None, versions, {"artifact_id": "b"}) == "b"
    assert live_id(_dep(1), versions, None) == "a"
