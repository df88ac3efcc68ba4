"""The S3 client builder: the objects it loads go straight to the collector's oldest generation, which may not
change what the client does."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.steps.storage import s3client
from flowdeck.steps.storage.s3 import S3Remote
from tests.servers.s3 import S3Server


@pytest.fixture
def bucket(moto_server: S3Server) -> Iterator[str]:
    """A fresh bucket on moto."""
    name = f"fd-client-{id(object())}"
    moto_server.client().create_bucket(Bucket=name)
    yield name


def _session_args(server: S3Server) -> dict[str, str]:
    return {"aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key,
            "region_name": "us-east-1"}


def test_the_client_has_botocores_own_s3_model(moto_server: S3Server) -> None:
    import boto3

    ours = s3client.make_client(_session_args(moto_server), {"endpoint_url": moto_server.endpoint}, 4).signed
    plain = boto3.Session(**_session_args(moto_server)).client("s3", endpoint_url=moto_server.endpoint)
    assert ours.meta.service_model.api_version == plain.meta.service_model.api_version
    assert ours.meta.service_model.operation_names == plain.meta.service_model.operation_names
    assert ours.can_paginate("list_objects_v2")
    # boto3's injected transfer methods (large uploads and downloads use them) are there.
    assert hasattr(ours, "upload_file") and hasattr(ours, "download_file")


def test_assume_role_goes_through_sts(moto_server: S3Server, bucket: str, tmp_path: Path) -> None:
    creds = {**_session_args(moto_server), "assume_role_arn": "arn:aws:iam::123456789012:role/flowdeck"}
    remote = S3Remote(bucket, creds, {"endpoint_url": moto_server.endpoint})
    remote.write("k.json", b"{}")
    assert remote.read("k.json") == b"{}"


def test_loaded_objects_skip_the_young_collections() -> None:
    s3client.make_client({"region_name": "us-east-1"}, {"endpoint_url": "http://127.0.0.1:9"}, 4)
    assert gc.get_freeze_count() == 0  # nothing is left frozen: they are in the oldest generation
    assert gc.get_count()[0] < 1000  # not the tens of thousands of model objects


def test_a_hosts_own_frozen_objects_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        s3client.make_client({"region_name": "us-east-1"}, {"endpoint_url": "http://127.0.0.1:9"}, 4)
        # Neither unfrozen nor joined by the client's objects (a frozen object that dies leaves the count).
        assert frozen - 1000 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
