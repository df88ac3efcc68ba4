"""A boto3 session whose model loader does not list every AWS service to load one.

Before loading a model, botocore's loader checks the service's name against the list of every service it
knows: it lists each data directory (about 450 of them in botocore's own data) and looks inside each one, some
2,800 ``stat`` calls, every time a process builds its first client. That was a third of building the S3 client
here (0.05 of 0.15 s), which a worker pays on every flow run. This loader answers the same question by looking
at the one service's directory; anything that asks for the whole list still gets botocore's own, unchanged.
Every other part of botocore (credentials, SSO and STS models, endpoints, ``AWS_DATA_PATH``) is untouched.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, overload

__all__ = ["KnownServices", "quick_session"]


class KnownServices(Sequence[str]):
    """What ``Loader.list_available_services`` returns: ``name in services`` looks at that one name's
    directories; iterating, indexing or measuring it builds botocore's own sorted list, once."""

    def __init__(self, loader: Any, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._all: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        # The test botocore applies to each directory in its full listing, applied to this one only.
        if not isinstance(name, str) or not name or os.sep in name or name in (os.curdir, os.pardir):
            return False
        for base in self._loader.search_paths:
            service = os.path.join(base, name)
            if not os.path.isdir(service):
                continue
            for version in os.listdir(service):
                if self._loader.file_loader.exists(os.path.join(service, version, self._type_name)):
                    return True
        return False

    def _list(self) -> list[str]:
        if self._all is None:
            from botocore.loaders import Loader

            self._all = list(Loader.list_available_services(self._loader, self._type_name))
        return self._all

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())


@functools.cache  # one class per process, not one per session
def _loader_class() -> type:
    from botocore.loaders import Loader

    class QuickLoader(Loader):  # type: ignore[misc]
        """botocore's ``Loader``, checking a service's name without listing every service."""

        def list_available_services(self, type_name: str) -> KnownServices:
            return KnownServices(self, type_name)

    return QuickLoader


def quick_session(**session_args: Any) -> Any:
    """``boto3.Session(**session_args)`` with the quick loader. Its search path is the one botocore's own
    ``create_loader`` builds: ``AWS_DATA_PATH`` (or the profile's ``data_path``) before botocore's data."""
    import boto3
    import botocore.session

    core = botocore.session.Session(profile=session_args.get("profile_name"))
    extra = core.get_config_variable("data_path")
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in extra.split(os.pathsep)] if extra else None
    core.register_component("data_loader", _loader_class()(extra_search_paths=paths))
    return boto3.Session(botocore_session=core, **session_args)
