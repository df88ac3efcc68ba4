"""Building the boto3 S3 client of ``S3Remote`` (:mod:`.s3`): credentials, assume-role, retry and pool settings.

Kept apart from :mod:`.s3` so that module stays about the store's operations."""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping
from typing import Any

from flowdeck.redact import register_secret
from flowdeck.steps.storage.botoloader import quick_session
from flowdeck.steps.storage.transfer import DEFAULT_WORKERS

__all__ = ["Clients", "make_client"]


class Clients:
    """The S3 client, and on demand a second one (sharing its session's loaded models, so it costs about
    10 ms) that does not sign request bodies, for snapshot packs (see ``S3Remote.upload_body`` in :mod:`.s3`)."""

    def __init__(self, session: Any, config: Any, kwargs: dict[str, Any]) -> None:
        self._session, self._config, self._kwargs = session, config, kwargs
        self.signed = session.client("s3", config=config, **kwargs)
        self._unsigned: Any = None
        self._lock = threading.Lock()

    @property
    def unsigned(self) -> Any:
        """The client that sends ``UNSIGNED-PAYLOAD`` instead of a sha256 of each body."""
        with self._lock:
            if self._unsigned is None:
                from botocore.config import Config

                # A user's own payload_signing_enabled (client_parameters.config.s3) wins.
                s3 = {"payload_signing_enabled": False, **(self._config.s3 or {})}
                config = self._config.merge(Config(s3=s3))
                self._unsigned = self._session.client("s3", config=config, **self._kwargs)
            return self._unsigned


def make_client(session_args: dict[str, Any], params: dict[str, Any], workers: int) -> Clients:
    """The boto3 S3 clients for these settings. Loading botocore's S3 model allocates many long-lived objects,
    which set off the cyclic garbage collector's full passes again and again: with it paused, building the
    client costs 0.09 to 0.15 s of CPU instead of 0.18 to 0.21 s (measured here). The pause lasts only as
    long as that (a push's other threads meanwhile hash files, which makes no cyclic garbage).

    Those objects are then moved straight to the oldest generation (``gc.freeze()`` + ``gc.unfreeze()``,
    documented to do exactly that), where they end up anyway: otherwise the first collection after the pause
    walks all of them (in the youngest generation, then the middle one), holding the interpreter lock while
    every stream waits: collections took 0.032 s of a 20 x 10 MiB pull, and 0.001 s with this (medians of
    6). The oldest generation is still collected as usual. A host process that froze objects itself (before
    forking) is left as it is."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_client(session_args, params, workers)
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _build_client(session_args: dict[str, Any], params: dict[str, Any], workers: int) -> Clients:
    from botocore.config import Config

    role = session_args.pop("assume_role_arn", None)
    role_kwargs = session_args.pop("assume_role_kwargs", {})
    session = quick_session(**session_args)
    if role:
        sts = session.client("sts", endpoint_url=params.get("endpoint_url"))
        got = sts.assume_role(
            RoleArn=role, RoleSessionName=role_kwargs.pop("RoleSessionName", "flowdeck"), **role_kwargs
        )["Credentials"]
        register_secret(got["SecretAccessKey"])
        register_secret(got["SessionToken"])
        session = quick_session(
            aws_access_key_id=got["AccessKeyId"],
            aws_secret_access_key=got["SecretAccessKey"],
            aws_session_token=got["SessionToken"],
            region_name=session_args.get("region_name"),
        )
    user_config = params.pop("config", None) or {}
    # flowdeck retries transfers itself (with one policy for all stores), so botocore makes one attempt.
    config = Config(
        max_pool_connections=max(workers, DEFAULT_WORKERS) + 4,
        retries={"total_max_attempts": 1, "mode": "standard"},
        request_checksum_calculation="when_required",
        connect_timeout=10,
        read_timeout=60,
    )
    if isinstance(user_config, Mapping):
        config = config.merge(Config(**user_config))
    kwargs = {
        k: params[k]
        for k in ("endpoint_url", "verify", "use_ssl", "api_version", "region_name")
        if params.get(k) is not None
    }
    if params.get("verify_cert_path"):
        kwargs["verify"] = str(params["verify_cert_path"])
    return Clients(session, config, kwargs)
