"""The server client's HTTP transport against a real HTTP server on loopback (the standard library's)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.errors import RegistryError, SettingWarning
from flowdeck.redact import redact
from flowdeck.registry import choose
from flowdeck.registry.server import http as transport
from flowdeck.registry.server.client import PrefectClient, ServerConfig
from flowdeck.registry.server.http import HttpTransport, Interrupted, NotSent
from tests.servers.echo_http import EchoServer
from tests.servers.git import make_test_tls


@pytest.fixture
def server() -> Iterator[EchoServer]:
    srv = EchoServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _transport(srv: EchoServer, **headers: str) -> HttpTransport:
    return HttpTransport(f"http://127.0.0.1:{srv.server_address[1]}/api/", headers, 5.0, None)


def test_requests_share_one_kept_alive_connection(server: EchoServer) -> None:
    http = _transport(server, Accept="application/json")
    first = http.request("GET", "flows/x")
    second = http.request("POST", "/flows/filter", json_body={"limit": 2, "name": "é"})
    assert (first.status_code, first.json()) == (200, {"path": "/api/flows/x", "method": "GET"})
    assert second.status_code == 201 and server.connections == 1
    sent = server.seen[1]
    assert json.loads(sent["body"]) == {"limit": 2, "name": "é"}
    assert sent["headers"]["Content-Type"] == "application/json" and sent["headers"]["Accept"] == "application/json"
    http.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused(server: EchoServer) -> None:
    # A request written to a connection the server has closed would fail after it may have been sent; a POST
    # that creates something could then not be retried. The transport checks an idle connection first.
    server.close_idle_after = 0.2
    http = _transport(server)
    http.request("GET", "flows/a")
    time.sleep(0.6)
    assert http.request("POST", "logs/", json_body=[{"message": "m"}]).status_code == 201
    assert server.connections == 2


def test_an_idle_connection_past_the_keep_alive_expiry_is_not_reused(
        server: EchoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server keeps it open, but a NAT or load balancer in between may have forgotten it silently.
    monkeypatch.setattr(transport, "KEEPALIVE", 0.2)
    http = _transport(server)
    http.request("GET", "a")
    http.request("GET", "b")
    assert server.connections == 1
    time.sleep(0.3)
    http.request("POST", "c", json_body={})
    assert server.connections == 2


def test_a_body_with_a_lone_surrogate_is_still_sent(server: EchoServer) -> None:
    # A file name that is not UTF-8 comes out of os.fsdecode with a lone surrogate, and can reach a log line.
    _transport(server).request("POST", "logs/", json_body=[{"message": "pulled bad\udcff.py"}])
    assert json.loads(server.seen[0]["body"]) == [{"message": "pulled bad?.py"}]


def test_query_parameters_are_encoded_as_prefect_expects(server: EchoServer) -> None:
    http = _transport(server)
    http.request("GET", "block_documents/x", params={"include_secrets": True, "gone": None, "tag": ["a", "b c"]})
    assert server.seen[0]["path"] == "/api/block_documents/x?include_secrets=true&tag=a&tag=b+c"


def test_names_in_paths_are_percent_encoded(server: EchoServer) -> None:
    http = _transport(server)
    http.request("GET", "deployments/name/my flow/nächtlich?#")
    http.request("GET", "variables/name/50% off")
    assert [seen["path"] for seen in server.seen] == [
        "/api/deployments/name/my%20flow/n%C3%A4chtlich%3F%23", "/api/variables/name/50%25%20off"]


def test_an_escape_in_the_base_url_is_sent_as_written(server: EchoServer) -> None:
    port = server.server_address[1]
    HttpTransport(f"http://127.0.0.1:{port}/prefect%20srv/api", {}, 5.0, None).request("GET", "flows/x")
    assert server.seen[0]["path"] == "/prefect%20srv/api/flows/x"


def test_informational_and_undecodable_answers_are_interrupted_exchanges(server: EchoServer) -> None:
    http = _transport(server)
    with pytest.raises(Interrupted, match="103"):
        http.request("GET", "hints")
    with pytest.raises(Interrupted, match="decompress"):
        http.request("GET", "badgzip")
    assert http.request("GET", "after").json()["path"] == "/api/after"


def test_gzip_answers_are_decoded(server: EchoServer) -> None:
    answer = _transport(server).request("GET", "gzip/x")
    assert answer.json() == {"path": "/api/gzip/x", "method": "GET"}
    assert server.seen[0]["headers"]["Accept-Encoding"] == "gzip"


def test_credentials_in_the_url_are_sent_as_basic_authentication(server: EchoServer) -> None:
    port = server.server_address[1]
    HttpTransport(f"http://us%40r:p%3Ass@127.0.0.1:{port}/api", {}, 5.0, None).request("GET", "x")
    sent = server.seen[0]["headers"]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == "us@r:p:ss"


def test_a_refused_connection_was_never_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(NotSent):
            HttpTransport(f"http://127.0.0.1:{port}/api", {}, 5.0, None).request("GET", "x")


def test_a_connection_dropped_without_an_answer_is_interrupted(server: EchoServer) -> None:
    http = _transport(server)
    with pytest.raises(Interrupted):
        http.request("POST", "hangup", json_body={})
    assert http.request("GET", "after").status_code == 200  # the broken connection was not kept


def test_threads_can_share_one_transport(server: EchoServer) -> None:
    http = _transport(server)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                assert http.request("GET", f"t{n}/{i}").json()["path"] == f"/api/t{n}/{i}"
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(server.seen) == 60
    assert server.connections <= 6


@pytest.mark.parametrize("url", ["localhost:4200/api", "ftp://host/api", "http://127.0.0.1:99999/api"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        HttpTransport(url, {}, 5.0, None)


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ValueError, match="Authorization"):
        HttpTransport("http://127.0.0.1:9/api", {"Authorization": "Bearer k\nX: y"}, 5.0, None)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An https server on 127.0.0.1 with a certificate from a throwaway CA; (API URL, CA file)."""
    import ssl

    tls = make_test_tls(tmp_path_factory.mktemp("tls"))
    srv = EchoServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls["cert"], tls["key"])
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{srv.server_address[1]}/api", tls["ca"]
    srv.shutdown()
    srv.server_close()


def test_tls_trusts_the_ca_file_prefect_reads_and_can_skip_checks_as_prefect_does(
        tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, ca = tls_server
    for name in ("PREFECT_API_SSL_CERT_FILE", "SSL_CERT_FILE", "PREFECT_API_TLS_INSECURE_SKIP_VERIFY",
                 "FLOWDECK_API_SSL_CERT_FILE", "FLOWDECK_API_TLS_INSECURE_SKIP_VERIFY"):
        monkeypatch.delenv(name, raising=False)

    def version(**env: str) -> str:
        config = choose.server_config({"PREFECT_API_URL": url, **env})
        assert isinstance(config, ServerConfig)
        with PrefectClient(config, retries=0) as client:
            return client.check_version()

    # certifi's bundle by default, as Prefect: a private CA is not trusted.
    with pytest.raises(RegistryError, match=r"does not trust.*CERTIFICATE_VERIFY_FAILED") as refused:
        version()
    assert "PREFECT_API_SSL_CERT_FILE" in (refused.value.hint or "")
    assert version(PREFECT_API_SSL_CERT_FILE=str(ca)) == "3.1.0"
    assert version(SSL_CERT_FILE=str(ca)) == "3.1.0"  # Prefect's default for its setting
    assert version(PREFECT_API_TLS_INSECURE_SKIP_VERIFY="true") == "3.1.0"
    with pytest.raises(RegistryError, match="cannot load the CA bundle"):
        version(PREFECT_API_SSL_CERT_FILE=str(ca) + ".missing")
    with pytest.raises(RegistryError, match="must be true or false"):
        version(FLOWDECK_API_TLS_INSECURE_SKIP_VERIFY="sometimes")


def test_credentials_read_from_files_lose_their_trailing_newline() -> None:
    config = choose.server_config({"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_API_KEY": "pnu_k\n",
                                   "PREFECT_API_AUTH_STRING": "u:p w\r\n"})
    assert isinstance(config, ServerConfig)
    assert (config.api_key, config.auth_string) == ("pnu_k", "u:p w")
    with pytest.raises(RegistryError, match="line break or another control character"):
        PrefectClient(ServerConfig("http://127.0.0.1:9/api", api_key="a\nb"))


def test_custom_headers_and_timeout_are_read_as_prefect_reads_them(server: EchoServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    token = "cf-access-sentinel-0123456789"
    with pytest.warns(SettingWarning, match="User-Agent is ignored"):
        config = choose.server_config({
            "PREFECT_API_URL": url, "PREFECT_API_KEY": "pnu_key",
            "PREFECT_CLIENT_CUSTOM_HEADERS": json.dumps({"CF-Access-Client-Secret": token, "User-Agent": "x"}),
            "PREFECT_API_REQUEST_TIMEOUT": "0.5"})
    assert isinstance(config, ServerConfig) and config.request_timeout == 0.5
    with PrefectClient(config, retries=0) as client:
        client.check_version()
        sent = server.seen[-1]["headers"]
        assert sent["CF-Access-Client-Secret"] == token and sent["User-Agent"] == "flowdeck"
        assert sent["Authorization"] == "Bearer pnu_key"
        assert token not in redact(f"header {token}")  # masked wherever it could be printed
        started = time.monotonic()
        with pytest.raises(RegistryError, match="cannot reach"):
            client.get("slow")
        assert time.monotonic() - started < 1.8  # the 0.5 s timeout, not the 2 s answer


def test_extra_retry_codes_are_retried(server: EchoServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    plain = choose.server_config({"PREFECT_API_URL": url})
    extra = choose.server_config({"PREFECT_API_URL": url, "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500, 504"})
    assert isinstance(plain, ServerConfig) and isinstance(extra, ServerConfig)
    assert extra.retry_extra_codes == {500, 504}
    with PrefectClient(plain, backoff=0.01, version_checked=True) as client, \
            pytest.raises(RegistryError, match="HTTP 500"):
        client.get("fail-once/a")
    with PrefectClient(extra, backoff=0.01, version_checked=True) as client:
        assert client.get("fail-once/b") == {"path": "/api/fail-once/b", "method": "GET"}


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("PREFECT_CLIENT_CUSTOM_HEADERS", "{not json sentinel-9f3", "not valid JSON"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '["X-A"]', "JSON object"),
    ("FLOWDECK_CLIENT_CUSTOM_HEADERS", '{"Bad Name": "v"}', "not a valid header name"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-A": "a\\nb"}', "string on one line"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-A\\n": "v"}', "not a valid header name"),
    ("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-Team": "\\u56e2\\u961f"}', "Latin-1"),
    ("PREFECT_API_REQUEST_TIMEOUT", "soon", "number of seconds"),
    ("PREFECT_API_REQUEST_TIMEOUT", "0", "number of seconds"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "500,oops", "HTTP error statuses"),
    ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "200", "HTTP error statuses"),
])
def test_bad_client_settings_are_named(name: str, value: str, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem) as refused:
        choose.server_config({"PREFECT_API_URL": "http://127.0.0.1:9/api", name: value})
    assert name in str(refused.value) and "sentinel" not in str(refused.value)
