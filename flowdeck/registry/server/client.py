"""A small hand-written HTTP client for a Prefect server's REST API (or Prefect Cloud's).

Why not ``prefect-client``: it is heavy (70 packages, seconds to import) and installs the same top-level
``prefect`` package as ``prefect``, colliding with a user's own Prefect. This client does what Prefect's
own does and nothing more:

* Base URL from ``PREFECT_API_URL`` (see :mod:`flowdeck.registry.choose`); authentication by
  ``PREFECT_API_AUTH_STRING`` (HTTP Basic, a self-hosted server, wins) or ``PREFECT_API_KEY``
  (``Authorization: Bearer``, Prefect Cloud).
* Sends only the fields the caller sets: the server forbids unknown fields, and older servers reject
  newer ones.
* Retries 429, 502 and 503 (and dropped connections) with exponential backoff, honouring
  ``Retry-After``, up to ``PREFECT_CLIENT_MAX_RETRIES`` times (default 10).
* Fetches a CSRF token when the server asks for one (``PREFECT_SERVER_CSRF_PROTECTION_ENABLED``).
* Refuses a server whose major version it does not speak (:meth:`PrefectClient.check_version`).
* Turns 401, 403, 404, 409 and 422 into :class:`~flowdeck.errors.RegistryError` with what failed, which
  field and what to do. Messages never hold a credential: the URL is printed without its user-info and
  every credential is registered for redaction.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flowdeck.errors import RegistryError, RegistryNotFound
from flowdeck.redact import redact, register_secret
from flowdeck.registry.server.http import (
    HttpTransport,
    Interrupted,
    NotSent,
    ProxyRefused,
    Response,
    UntrustedCertificate,
    header_safe,
)
from flowdeck.registry.server.proxy import ProxySettingError
from flowdeck.secret_names import is_secret_name

__all__ = ["PAGE", "SUPPORTED_MAJOR", "PrefectClient", "ServerConfig", "safe_url"]

#: The server major version this client speaks (Prefect 3).
SUPPORTED_MAJOR = 3
#: The most items a Prefect server returns for one filter request.
PAGE = 200
_RETRY_STATUS = frozenset({429, 502, 503})


def safe_url(url: str) -> str:
    """``url`` without user-info (``https://user:pass@host`` -> ``https://host``), for messages."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # malformed, or a port out of range
        return "(invalid URL)"
    host = parts.hostname or ""
    if port:
        host += f":{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class ServerConfig:
    """Where the server is and how to authenticate; ``source`` says which setting chose it (for messages)."""

    url: str
    auth_string: str | None = None
    api_key: str | None = None
    source: str = "PREFECT_API_URL"
    #: How many times a 429/502/503 or a dropped connection is retried (``PREFECT_CLIENT_MAX_RETRIES``).
    max_retries: int = 10
    #: The CA bundle for an https server (``PREFECT_API_SSL_CERT_FILE``, else ``SSL_CERT_FILE``); None:
    #: certifi's, as Prefect's own client.
    ssl_cert_file: str | None = None
    #: Skip certificate checks (``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``): self-signed development servers.
    tls_insecure_skip_verify: bool = False
    #: Headers sent with every request (``PREFECT_CLIENT_CUSTOM_HEADERS``): an authenticating proxy's, say.
    custom_headers: tuple[tuple[str, str], ...] = ()
    #: Seconds to wait to connect, and for each read of an answer (``PREFECT_API_REQUEST_TIMEOUT``).
    request_timeout: float = 30.0
    #: Statuses retried besides 429, 502 and 503 (``PREFECT_CLIENT_RETRY_EXTRA_CODES``), on every request.
    retry_extra_codes: frozenset[int] = frozenset()

    def headers(self) -> dict[str, str]:
        """The authentication header (Basic wins over Bearer, as in Prefect's client), then the custom ones
        (which, as in Prefect's client, may replace it)."""
        auth: dict[str, str] = {}
        if self.auth_string:
            auth = {"Authorization": "Basic " + base64.b64encode(self.auth_string.encode()).decode()}
        elif self.api_key:
            auth = {"Authorization": f"Bearer {self.api_key}"}
        return {**auth, **dict(self.custom_headers)}

    def register_secrets(self) -> None:
        """Mask every credential in all output from now on."""
        for value in (self.auth_string, self.api_key):
            if value:
                register_secret(value)
                register_secret(base64.b64encode(value.encode()).decode())
                if ":" in value:
                    register_secret(value.split(":", 1)[1])
        for name, value in self.custom_headers:
            # An access token for a gateway in front (CF-Access-Client-Secret, X-API-Key), or anything
            # token-like; not `X-Team: data`, whose masking would blank the word everywhere.
            if is_secret_name(name) or (len(value) >= 16 and " " not in value and not value.isalpha()):
                register_secret(value)
        parts = urlsplit(self.url)
        if parts.password:
            register_secret(parts.password)


def _detail(response: Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        # A 422 says what is wrong in `exception_detail`; never echo `request_body` (it may hold a secret).
        return body.get("detail") or body.get("exception_detail") or body.get("exception_message") or "(no detail)"
    return body


def _explain_422(detail: Any) -> str:
    """``field a.b: what is wrong`` for each problem pydantic reported."""
    if not isinstance(detail, list):
        return str(detail)
    problems = []
    for item in detail[:5]:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        where = ".".join(loc) or "request"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(problems) or str(detail)


# Requests that a server may safely receive twice: reads (Prefect's filters and counts are POSTs), deletes, and
# the two upserts (a flow or a deployment by name). A lost answer to one of these is retried like a GET; the
# others (an artifact, a flow run, a state, logs) could be applied twice, so their failure is reported.
_IDEMPOTENT_POST = re.compile(r"(?:^|/)(?:filter|count)$|^(?:flows|deployments)/?$")


def _idempotent(method: str, path: str) -> bool:
    if method in {"GET", "DELETE", "PUT", "PATCH"}:
        return True
    return method == "POST" and _IDEMPOTENT_POST.search(path.strip("/")) is not None


@functools.cache
def _tls_context(cert_file: str | None, insecure: bool) -> ssl.SSLContext:
    """One TLS context per process and setting (loading a CA bundle costs ~30 ms, and a flow run opens
    three clients), made as Prefect's own client makes it: ``cert_file`` or certifi's bundle, or no checks
    at all when ``insecure``. A plain-http server needs none."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cert_file is None:
        try:
            import certifi
        except ImportError:  # a dependency, but installed without it: the system's store
            return ssl.create_default_context()
        cert_file = certifi.where()
    return ssl.create_default_context(cafile=cert_file)


class PrefectClient:
    """A synchronous client for one Prefect API base URL; counts the requests it sends."""

    def __init__(self, config: ServerConfig, *, timeout: float | None = None, retries: int | None = None,
                 backoff: float = 0.25, version_checked: bool = False) -> None:
        """``timeout``: the config's ``request_timeout`` unless given. ``version_checked``: another client of
        this process already checked this server's version, so the first request need not
        (:meth:`check_version`)."""
        config.register_secrets()
        self.config = config
        self.retries = config.max_retries if retries is None else retries
        self.backoff = backoff
        self.requests = 0
        #: The HTTP status of the last answer (201 vs 200 tells a new object from an existing one).
        self.last_status = 0
        self._csrf: dict[str, str] = {}
        self._retry_status = _RETRY_STATUS | config.retry_extra_codes
        self._version_checked = version_checked
        self._unreachable: str | None = None
        base = config.url.rstrip("/") + "/"
        for name, value in (("API key", config.api_key), ("API auth string", config.auth_string)):
            if value and not header_safe(value):
                raise RegistryError(f"the {name} holds a line break or another control character, or a "
                                    "character outside Latin-1",
                                    hint=f"set PREFECT_{name.upper().replace(' ', '_')} (or FLOWDECK_...) "
                                         "to the value alone")
        context = None
        if base.startswith("https:"):
            try:
                context = _tls_context(config.ssl_cert_file, config.tls_insecure_skip_verify)
            except OSError as exc:  # a missing or unreadable bundle; ssl.SSLError for a malformed one
                raise RegistryError(f"cannot load the CA bundle {config.ssl_cert_file}: {exc}",
                                    hint="point PREFECT_API_SSL_CERT_FILE (or SSL_CERT_FILE) at a PEM file of "
                                         "CA certificates") from None
        try:
            self._http = HttpTransport(base, {"Accept": "application/json", **config.headers()},
                                       config.request_timeout if timeout is None else timeout, context)
        except ProxySettingError as exc:
            raise RegistryError(str(exc), hint="fix that variable, or add the server's host to NO_PROXY") from None
        except ValueError as exc:
            raise RegistryError(f"{config.source} is not a usable URL ({redact(str(exc))}): {safe_url(config.url)}",
                                hint=f"set {config.source} to the server's API, e.g. http://127.0.0.1:4200/api"
                                ) from None

    # ------------------------------------------------------------------------------------------ plumbing

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PrefectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The server's URL without credentials."""
        return safe_url(self.config.url)

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None) -> Response:
        if self._unreachable is not None:
            # The server was already given up on: fail at once instead of waiting through every retry again
            # (a clean-up after a lost server would otherwise take minutes).
            raise RegistryError(self._unreachable, hint=f"check {self.config.source} and that the server is running")
        attempt = 0
        csrf_fetched = False
        while True:
            headers = dict(self._csrf) if method != "GET" else {}
            try:
                self.requests += 1
                response = self._http.request(method, path, json_body=body, params=params, headers=headers)
            except UntrustedCertificate as exc:  # the same answer every time: not retried
                raise RegistryError(
                    f"the Prefect server at {self.where} presented a certificate flowdeck does not trust: "
                    f"{redact(str(exc))}",
                    hint="set PREFECT_API_SSL_CERT_FILE (or SSL_CERT_FILE) to the CA bundle that signed it, or "
                         "PREFECT_API_TLS_INSECURE_SKIP_VERIFY=true for a development server") from None
            except ProxyRefused as exc:  # its answer will not change either
                proxy = self._http.proxy
                raise RegistryError(
                    f"cannot reach the Prefect server at {self.where}: {redact(str(exc))}",
                    hint=f"check the user:password in {proxy.variable if proxy else 'the proxy variable'}, or add "
                         "the server's host to NO_PROXY") from None
            except (NotSent, Interrupted) as exc:
                # A refused connection never reached the server: safe to retry any method. Other
                # failures may have been applied, so only idempotent methods are retried.
                never_sent = isinstance(exc, NotSent)
                # A server that refuses connections is down, not busy: a few quick tries only.
                limit = min(self.retries, 3) if never_sent else self.retries
                if attempt < limit and (never_sent or _idempotent(method, path)):
                    attempt += 1
                    time.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))  # capped as for busy answers
                    continue
                message = (f"cannot reach the Prefect server at {self.where}: "
                           f"{redact(str(exc)) or type(exc).__name__}")
                if never_sent:
                    self._unreachable = message
                raise RegistryError(message, hint=f"check {self.config.source} and that the server is running "
                                                  "(`prefect server start`)") from None
            proxy = self._http.proxy
            if response.status_code == 407 and proxy is not None:  # a forwarded request: the proxy's answer
                raise RegistryError(f"{proxy.where} refused the credentials (HTTP 407)",
                                    hint=f"set {proxy.variable} to http://user:password@host:port with valid "
                                         "credentials, or add the server's host to NO_PROXY")
            if response.status_code in self._retry_status and attempt < self.retries:
                attempt += 1
                # Exponential, capped, with jitter so that parallel writers do not retry in lockstep.
                delay = min(self.backoff * 2 ** (attempt - 1), 5.0) * (0.5 + random.random())
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), 30.0)
                time.sleep(delay)
                continue
            if (response.status_code == 403 and not csrf_fetched and method != "GET"
                    and "csrf" in response.text.lower()):
                csrf_fetched = True
                self._fetch_csrf()
                continue
            return response

    def _fetch_csrf(self) -> None:
        client_id = str(uuid.uuid4())
        # Through _send: a busy server's 503 on the token is retried like any other answer.
        response = self._send("GET", "csrf-token", None, {"client": client_id})
        if response.status_code != 200:
            raise RegistryError(f"the Prefect server at {self.where} requires a CSRF token but did not give one "
                                f"(HTTP {response.status_code})", hint="check the server's CSRF settings")
        token = response.json().get("token")
        self._csrf = {"Prefect-Csrf-Token": str(token), "Prefect-Csrf-Client": client_id}

    def request(self, method: str, path: str, body: Any = None, *, params: Mapping[str, Any] | None = None,
                what: str = "", hint: str | None = None) -> Any:
        """Send one request; return the decoded JSON body (``None`` for an empty one).

        ``what`` names the object for error messages ("deployment 'etl/nightly'"); ``hint`` replaces the
        default advice for a 404 or 422.
        """
        if not self._version_checked and path not in ("admin/version", "/admin/version"):
            self.check_version()
        response = self._send(method, path, body, params)
        status = self.last_status = response.status_code
        if status < 400:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return response.text
        subject = what or f"{method} {path}"
        detail = _detail(response)
        if status == 401:
            raise RegistryError(
                f"the Prefect server at {self.where} refused the credentials (HTTP 401)",
                hint="set PREFECT_API_AUTH_STRING=user:password (a self-hosted server) or PREFECT_API_KEY "
                     "(Prefect Cloud) to a valid credential")
        if status == 403:
            raise RegistryError(f"the Prefect server at {self.where} forbids {subject} (HTTP 403): "
                                f"{redact(str(detail))}", hint=hint or "check the API key's permissions")
        if status == 404:
            raise RegistryNotFound(f"{subject} not found on the Prefect server at {self.where}",
                                   hint=hint or "check the name")
        if status == 409:
            raise RegistryError(f"{subject}: the Prefect server at {self.where} refused it (HTTP 409): "
                                f"{redact(str(detail))}", hint=hint)
        if status == 422:
            explained = redact(_explain_422(detail))
            if "extra inputs are not permitted" in explained.lower():
                advice = "an older server does not know this field; upgrade the server or remove the field"
            else:
                advice = "fix that value (in prefect.yaml or on the command line) and run again"
            raise RegistryError(f"{subject}: the Prefect server at {self.where} rejected {explained}",
                                hint=hint or advice)
        if status in self._retry_status:
            raise RegistryError(f"{subject}: the Prefect server at {self.where} still answered HTTP {status} "
                                f"after {self._tries()}: {redact(str(detail))[:300]}", hint=self._busy_hint())
        raise RegistryError(f"{subject}: the Prefect server at {self.where} answered HTTP {status}: "
                            f"{redact(str(detail))[:300]}", hint="retry; check the server's log")

    def _tries(self) -> str:
        return f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"

    def _busy_hint(self) -> str:
        return ("the server (or a proxy in front of it) is overloaded or down: check its log and run again "
                "later; PREFECT_CLIENT_MAX_RETRIES sets how many times flowdeck retries")

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, what: str = "",
            hint: str | None = None) -> Any:
        """``GET path``."""
        return self.request("GET", path, params=params, what=what, hint=hint)

    def post(self, path: str, body: Any = None, *, what: str = "", hint: str | None = None) -> Any:
        """``POST path`` with a JSON body."""
        return self.request("POST", path, body if body is not None else {}, what=what, hint=hint)

    def post_all(self, path: str, body: Mapping[str, Any], *, what: str = "") -> list[Any]:
        """Every item a ``.../filter`` endpoint answers for ``body``, read in pages of :data:`PAGE` (the
        server's largest). Give ``body`` a total ``sort`` where the set may change between pages."""
        found: list[Any] = []
        while True:
            page = self.post(path, {**body, "limit": PAGE, "offset": len(found)}, what=what)
            found.extend(page)
            if len(page) < PAGE:
                return found

    def patch(self, path: str, body: Any, *, what: str = "", hint: str | None = None) -> Any:
        """``PATCH path`` with a JSON body."""
        return self.request("PATCH", path, body, what=what, hint=hint)

    def delete(self, path: str, *, what: str = "", hint: str | None = None) -> Any:
        """``DELETE path``."""
        return self.request("DELETE", path, what=what, hint=hint)

    def get_or_none(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """``GET path``, or ``None`` when the server answers 404."""
        try:
            return self.get(path, params=params)
        except RegistryNotFound:
            return None

    # ------------------------------------------------------------------------------------------- version

    def check_version_in_background(self) -> Callable[[], None]:
        """Start :meth:`check_version` on a thread of its own, so the first requests need not wait a round
        trip for it; the returned function waits for it and raises what it raised: call it before acting on
        an answer. Until then only this client's caller may use it (one more thread, not many)."""
        self._version_checked = True
        failure: list[BaseException] = []

        def check() -> None:
            try:
                self.check_version()
            except BaseException as exc:  # handed to the caller's thread by wait()
                failure.append(exc)

        thread = threading.Thread(target=check, name="flowdeck-version-check", daemon=True)
        thread.start()

        def wait() -> None:
            thread.join()
            if failure:
                raise failure[0]

        return wait

    def check_version(self) -> str:
        """The server's version; a major version other than :data:`SUPPORTED_MAJOR` is refused."""
        self._version_checked = True
        if urlsplit(self.config.url).hostname == "api.prefect.cloud":
            # Prefect Cloud has no /admin/version; Prefect's own client skips the check there too.
            return "cloud"
        response = self._send("GET", "admin/version", None, None)
        if response.status_code == 401:
            raise RegistryError(
                f"the Prefect server at {self.where} refused the credentials (HTTP 401)",
                hint="set PREFECT_API_AUTH_STRING=user:password (a self-hosted server) or PREFECT_API_KEY "
                     "(Prefect Cloud) to a valid credential")
        if response.status_code == 404:
            raise RegistryError(f"{self.where} does not look like a Prefect API (no /admin/version)",
                                hint=f"{self.config.source} should end in /api, e.g. http://127.0.0.1:4200/api")
        if response.status_code in self._retry_status:
            raise RegistryError(f"the Prefect server at {self.where} still answered HTTP {response.status_code} "
                                f"to /admin/version after {self._tries()}", hint=self._busy_hint())
        if response.status_code >= 400:
            raise RegistryError(f"the Prefect server at {self.where} answered HTTP {response.status_code} "
                                "to /admin/version", hint="check the server's log")
        try:
            version = str(response.json())
        except (ValueError, json.JSONDecodeError):
            version = response.text.strip().strip('"')
        major = version.split(".", 1)[0]
        if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
            raise RegistryError(
                f"the Prefect server at {self.where} runs version {version}; flowdeck speaks Prefect "
                f"{SUPPORTED_MAJOR}.x servers only",
                hint=f"use a Prefect {SUPPORTED_MAJOR} server, or unset {self.config.source} to use flowdeck's "
                     "own store")
        return version
