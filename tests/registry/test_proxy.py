"""The server client through an HTTP proxy named by the environment, as Prefect's own client goes through it.

The server's name (``api.prefect.test``) is only ever resolved by the proxy on 127.0.0.1, which maps it to a
loopback port: no traffic leaves this machine.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowdeck.errors import RegistryError
from flowdeck.redact import redact
from flowdeck.registry import choose
from flowdeck.registry.server.client import PrefectClient, ServerConfig
from flowdeck.registry.server.proxy import proxy_for
from tests.servers.echo_http import EchoServer
from tests.servers.forward_proxy import ForwardProxy
from tests.servers.git import make_test_tls

HOST = "api.prefect.test"
SENTINEL = "pr0xy-sentinel-pass"
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
               "no_proxy")


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., ForwardProxy]]:
    """Start forward proxies (arguments as ForwardProxy's); all are stopped after the test."""
    started: list[ForwardProxy] = []

    def make(routes: dict[str, int], credentials: str | None = None) -> ForwardProxy:
        started.append(ForwardProxy(routes, credentials))
        return started[-1]

    yield make
    for proxy in started:
        proxy.stop()


@dataclass
class Servers:
    plain: EchoServer
    secure: EchoServer  # certificate for api.prefect.test, from the CA in `ca`
    ca: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A plain-http and an https test server on 127.0.0.1 (certificate for api.prefect.test), and the CA."""
    tls = make_test_tls(tmp_path_factory.mktemp("tls"))
    plain, secure = EchoServer(), EchoServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls["cert"], tls["key"])
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for srv in (plain, secure):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield Servers(plain, secure, tls["ca"])
    for srv in (plain, secure):
        srv.shutdown()
        srv.server_close()


def _client(url: str, **env: str) -> PrefectClient:
    config = choose.server_config({"PREFECT_API_URL": url, **env})
    assert isinstance(config, ServerConfig)
    return PrefectClient(config, retries=0)


def test_https_goes_through_a_connect_tunnel(
        servers: Servers, clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch,
        make_proxy: Callable[..., ForwardProxy]) -> None:
    secure, ca = servers.secure, servers.ca
    proxy = make_proxy({HOST: secure.server_address[1]})
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    url = f"https://{HOST}:{secure.server_address[1]}/api"
    with _client(url, PREFECT_API_SSL_CERT_FILE=str(ca)) as client:
        assert client.check_version() == "3.1.0"
        client.get("flows/x")
    # One tunnel for both requests; the certificate was checked against the server's name, not the proxy's.
    assert proxy.log == [("CONNECT", f"{HOST}:{secure.server_address[1]}", None)]


def test_a_proxy_refusing_its_credentials_is_named_and_not_retried(
        servers: Servers, clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch,
        make_proxy: Callable[..., ForwardProxy]) -> None:
    secure = servers.secure
    proxy = make_proxy({HOST: secure.server_address[1]}, credentials=f"corp:{SENTINEL}")
    monkeypatch.setenv("https_proxy", f"http://corp:wrong-{SENTINEL}@127.0.0.1:{proxy.port}")
    config = choose.server_config({"PREFECT_API_URL": f"https://{HOST}:{secure.server_address[1]}/api"})
    assert isinstance(config, ServerConfig)
    with pytest.raises(RegistryError, match="refused the tunnel: 407") as refused, \
            PrefectClient(config, backoff=0.01) as client:
        client.check_version()
    assert "https_proxy" in (refused.value.hint or "") and SENTINEL not in str(refused.value)
    assert len(proxy.log) == 1  # the same answer every time: asked once


def test_names_in_any_script_and_case_insensitive_headers(
        servers: Servers, clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch,
        make_proxy: Callable[..., ForwardProxy]) -> None:
    plain = servers.plain
    port = plain.server_address[1]
    proxy = make_proxy({"xn--bcher-kva.test": port})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    config = choose.server_config({
        "PREFECT_API_URL": f"http://bücher.test:{port}/api", "PREFECT_API_KEY": "pnu_key",
        "PREFECT_CLIENT_CUSTOM_HEADERS": '{"authorization": "Bearer gateway", "X-Team": "data"}'})
    assert isinstance(config, ServerConfig)
    with PrefectClient(config, retries=0) as client:
        client.check_version()
    assert proxy.log[0][1] == f"http://xn--bcher-kva.test:{port}/api/admin/version"
    sent = plain.seen[-1]["headers"]
    assert sent["authorization"] == "Bearer gateway" and "Authorization" not in sent
    assert redact("loading data") == "loading data"  # an ordinary header value is not a secret


def test_plain_http_is_forwarded_with_the_proxy_credentials_which_stay_secret(
        servers: Servers, clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], make_proxy: Callable[..., ForwardProxy]) -> None:
    plain = servers.plain
    port = plain.server_address[1]
    proxy = make_proxy({HOST: port}, credentials=f"corp:{SENTINEL}")
    monkeypatch.setenv("http_proxy", f"http://corp:{SENTINEL}@127.0.0.1:{proxy.port}")
    with _client(f"http://{HOST}:{port}/api") as client:
        assert client.check_version() == "3.1.0"
    method, target, auth = proxy.log[0]
    assert (method, target) == ("GET", f"http://{HOST}:{port}/api/admin/version") and auth
    assert plain.seen[-1]["path"] == "/api/admin/version"

    # Wrong credentials: a clear error that never shows them.
    monkeypatch.setenv("http_proxy", f"http://corp:wrong-{SENTINEL}@127.0.0.1:{proxy.port}")
    with pytest.raises(RegistryError) as refused, _client(f"http://{HOST}:{port}/api") as client:
        client.check_version()
    assert "refused the credentials (HTTP 407)" in str(refused.value) and SENTINEL not in str(refused.value)
    assert "http_proxy" in (refused.value.hint or "")
    out, err = capfd.readouterr()
    assert SENTINEL not in out + err


def test_no_proxy_and_loopback_servers_are_reached_directly(
        servers: Servers, clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "internal.corp,.example.org")
    assert proxy_for("https", "prefect.internal.corp", 443) is None
    assert proxy_for("https", "api.example.org", 443) is None
    found = proxy_for("https", "api.prefect.cloud", 443)
    assert found is not None and found.variable == "HTTPS_PROXY"
    monkeypatch.setenv("NO_PROXY", "prefect.internal:4200")  # an entry may name the port, as in httpx
    assert proxy_for("http", "prefect.internal", 4200) is None
    assert proxy_for("http", "prefect.internal", 4201) is not None
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "my.localhost"):
        assert proxy_for("http", host, 80) is None, host
    plain = servers.plain
    with _client(f"http://127.0.0.1:{plain.server_address[1]}/api") as client:
        assert client.check_version() == "3.1.0"


@pytest.mark.parametrize("setting", ["socks5://127.0.0.1:1080", "http://127.0.0.1:99999"])
def test_an_unusable_proxy_setting_is_named(setting: str, clean_proxy_env: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", setting)
    with pytest.raises(RegistryError, match="ALL_PROXY") as refused:
        _client(f"https://{HOST}/api")
    assert "NO_PROXY" in (refused.value.hint or "")
