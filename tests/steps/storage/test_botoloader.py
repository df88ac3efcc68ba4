"""The quick model loader answers exactly as botocore's own, without listing every service to build a client."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flowdeck.steps.storage.botoloader import KnownServices, quick_session

_ARGS = {"aws_access_key_id": "AKIDFLOWDECKTEST", "aws_secret_access_key": "not-a-secret", "region_name": "us-east-1"}


def _plain_services() -> list[str]:
    import boto3

    return list(boto3.Session(**_ARGS).get_available_services())


def test_membership_matches_botocores_full_listing() -> None:
    session = quick_session(**_ARGS)
    loader = session._session.get_component("data_loader")
    known = KnownServices(loader, "service-2")
    listed = _plain_services()
    assert all(name in known for name in listed)
    for name in ("nope", "", ".", "..", "../s3", "s3/2006-03-01", "S3", 3):
        assert name not in known
    # Anything that wants the list itself gets botocore's, sorted, unchanged.
    assert list(session.get_available_services()) == listed
    assert len(known) == len(listed) and known[0] == listed[0]


def test_an_unknown_service_is_still_botocores_error() -> None:
    from botocore.exceptions import UnknownServiceError

    with pytest.raises(UnknownServiceError, match=r"Valid service names are: .*s3"):
        quick_session(**_ARGS).client("no-such-service")


def test_credential_services_still_load() -> None:
    # SSO and assume-role credentials load these models through the same loader.
    session = quick_session(**_ARGS)
    for name in ("s3", "sts", "sso", "sso-oidc"):
        assert session.client(name).meta.service_model.service_name == name


def test_aws_data_path_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "flowdeck-test" / "2020-01-01" / "service-2.json"
    model.parent.mkdir(parents=True)
    model.write_text(json.dumps({"version": "2.0", "metadata": {}, "operations": {}, "shapes": {}}))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    assert "flowdeck-test" in quick_session(**_ARGS).get_available_services()
    assert "flowdeck-test" in _plain_services()


def test_building_a_client_lists_one_service_not_all(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    listdir = os.listdir

    def counting(path: str | os.PathLike[str] = ".") -> list[str]:
        calls.append(path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    quick_session(**_ARGS).client("s3", endpoint_url="http://127.0.0.1:9")
    assert 0 < len(calls) < 20  # botocore's own loader: one per service directory, about 450
