"""Building the boto3 S3 client of ``S3Remote`` (:mod:`.s3`): credentials, assume-role, retry and pool settings.

Kept apart from :mod:`.s3` so that module stays about the store's operations."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Mapping
from typing import Any

from flowdeck.redact import register_secret
from flowdeck.steps.storage.transfer import DEFAULT_WORKERS

__all__ = ["Clients", "make_client"]

_SERVICES = ("s3", "sts")  # the only clients a flowdeck session makes (sts: assume_role_arn)


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


def _session(**kwargs: Any) -> Any:
    """A boto3 session (``kwargs`` as for ``boto3.Session``) whose model loader is :func:`_loader`'s."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _loader(core.get_config_variable("data_path")))
    return boto3.Session(botocore_session=core, **kwargs)


def _loader(data_path: str | None) -> Any:
    """botocore's model loader (with the same search path: ``AWS_DATA_PATH``), minus one scan.

    Before it loads any model (the S3 API, its endpoint rules, its paginators), botocore checks the name
    against ``list_available_services``, which lists every service directory on its search path (449 in
    botocore 1.44: about 900 ``listdir`` and 1,800 ``stat`` calls), twice per client. Without it, building an
    S3 client took 0.079 s of CPU instead of 0.099 s here (medians of 8, imports done before), and a pull waits
    for that client before anything else. This session only makes the clients in ``_SERVICES``, so only
    they are looked for; a model that is missing still fails as it would."""
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    class _Loader(Loader):  # type: ignore[misc]
        def list_available_services(self, type_name: str) -> list[str]:
            found = []
            for name in _SERVICES:
                try:
                    self.list_api_versions(name, type_name)
                except DataNotFoundError:
                    continue
                found.append(name)
            return found

    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    return _Loader(extra_search_paths=paths)


def _build_client(session_args: dict[str, Any], params: dict[str, Any], workers: int) -> Clients:
    from botocore.config import Config

    role = session_args.pop("assume_role_arn", None)
    role_kwargs = session_args.pop("assume_role_kwargs", {})
    session = _session(**session_args)
    if role:
        sts = session.client("sts", endpoint_url=params.get("endpoint_url"))
        got = sts.assume_role(
            RoleArn=role, RoleSessionName=role_kwargs.pop("RoleSessionName", "flowdeck"), **role_kwargs
        )["Credentials"]
        register_secret(got["SecretAccessKey"])
        register_secret(got["SessionToken"])
        session = _session(
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
