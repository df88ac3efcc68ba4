"""Which snapshots a pull pins: the deployment's job variable on a server, and a pull step's own input."""

from __future__ import annotations

from typing import Any

from flowdeck.publish import with_snapshots
from flowdeck.snapshot.pin import JOB_VARIABLE, current_pin, pin_of_deployment, pin_variable, pinned_snapshots, step_pin

ONE = [{"location": "s3://bucket/flows/", "id": "1" * 64}]
TWO = [{"location": "s3://bucket/flows/", "id": "2" * 64}]
STEPS = [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "bucket", "folder": "flows"}}]


def _deployment(version: str, pull_steps: list[Any], pin: dict[str, Any] | None) -> dict[str, Any]:
    return {"version": version, "pull_steps": pull_steps, "job_variables": {JOB_VARIABLE: pin} if pin else {}}


def test_a_deployment_names_the_snapshots_of_the_version_it_serves() -> None:
    pin = pin_variable("v1", STEPS, ONE)
    assert pin_of_deployment(_deployment("v1", STEPS, pin)) == (ONE, "v1")
    assert pin_variable("v1", STEPS, None) is None
    assert pin_of_deployment(_deployment("v1", STEPS, None)) is None


def test_a_deployment_rewritten_since_is_not_pinned() -> None:
    pin = pin_variable("v1", STEPS, ONE)
    # `prefect deploy` set another version label, or someone edited the pull steps.
    assert pin_of_deployment(_deployment("1.0", STEPS, pin)) is None
    edited = [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "bucket", "folder": "other"}}]
    assert pin_of_deployment(_deployment("v1", edited, pin)) is None


def test_a_steps_own_snapshots_pin_it_and_the_versions_name_is_kept() -> None:
    assert current_pin() is None
    with step_pin(ONE) as pin:
        assert pin is not None and pin.for_location("s3://bucket/flows/") == "1" * 64
    assert current_pin() is None
    with pinned_snapshots(ONE, "etl/prod version 7"):
        with step_pin(ONE) as same:
            assert same is not None and same.version == "etl/prod version 7"
        with step_pin(None) as kept:
            assert kept is not None and kept.version == "etl/prod version 7"
        with step_pin(TWO) as own:
            assert own is not None and own.for_location("s3://bucket/flows/") == "2" * 64


def test_only_steps_published_under_flowdecks_name_get_snapshots() -> None:
    steps = [*STEPS, {"flowdeck.steps.pull_from_s3": {"bucket": "bucket", "folder": "flows"}},
             {"flowdeck.steps.git_clone": {"repository": "https://example.invalid/r.git"}}]
    published = with_snapshots(steps, ONE)
    assert published[0] == STEPS[0] and published[2] == steps[2]
    assert published[1] == {"flowdeck.steps.pull_from_s3": {"bucket": "bucket", "folder": "flows", "snapshots": ONE}}
    assert with_snapshots(steps, []) == steps
