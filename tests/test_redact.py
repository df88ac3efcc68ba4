"""Redaction of secrets in every shape they are printed in, across chunk boundaries, in linear time."""

from __future__ import annotations

import base64
import json
import random
import shlex
from urllib.parse import quote, quote_plus

import pytest

from flowdeck.redact import (
    KGRAM,
    MASK,
    StreamRedactor,
    contains_secret,
    redact,
    redact_url,
    redact_value,
    register_secret,
    register_secret_env,
)
from flowdeck.secret_names import is_secret_name
from tests.secret_fixtures import make_pem, service_account_json

SHAPES = [
    "plain-secret-value-1",
    'has"quote-secret',
    "back\\slash-secret",
    "tab\tsecret-xyz",
    "new\nline-secret",
    "nonascii-sécret-ü",
    "sq'uote secret",
]


@pytest.mark.parametrize("value", SHAPES)
def test_every_encoding_of_a_secret_is_masked(value: str) -> None:
    register_secret(value)
    for shown in {
        value,
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        json.dumps(json.dumps(value)),
        repr(value),
        shlex.quote(value),
        quote(value, safe=""),
        quote_plus(value),
        json.dumps({"stdout": value}, indent=2),
    }:
        text = f"before {shown} after"
        masked = redact(text)
        assert MASK in masked, (shown, masked)
        assert "secret" not in masked, (shown, masked)


def test_every_line_and_any_piece_of_a_pem_key_is_masked() -> None:
    pem = make_pem()
    register_secret(pem)
    body = pem.splitlines()[1:-1]
    assert len(pem) > 2000
    shown = "\n".join(
        [
            redact(pem),
            *(redact(line) for line in pem.splitlines()),  # line by line
            redact(pem[:700]),  # head -c 700: ends in the middle of a line
            redact("\n".join(line[:20] for line in pem.splitlines())),  # cut -c1-20
            redact("\n".join(line[7:30] for line in pem.splitlines())),  # cut -c8-30
            redact(json.dumps(pem)),
            redact(repr(pem)),
            redact("  " + "\n  ".join(pem.splitlines())),  # indented, as in a kubeconfig
        ]
    )
    for line in body:
        for start in range(0, len(line) - KGRAM + 1, 5):
            assert line[start:start + KGRAM] not in shown, shown


def test_a_service_account_json_is_masked_whole_escaped_and_its_decoded_key_too() -> None:
    pem = make_pem()
    info = service_account_json(pem)
    register_secret(info)  # a `secret` block holding the JSON text
    decoded = json.loads(info)["private_key"]
    shown = "\n".join([redact(info), redact(decoded), *(redact(line) for line in decoded.splitlines()),
                       redact(json.dumps(info)), redact(info[:900])])
    for line in pem.splitlines()[1:-1]:
        assert line[:KGRAM] not in shown and line[-KGRAM:] not in shown
    assert json.loads(info)["private_key_id"] not in shown


def test_short_and_trivial_lines_are_not_masked_everywhere() -> None:
    register_secret('{\n  "type": "x",\n  "password": "hunter2-hunter2"\n}')
    assert redact("{ a } users are here") == "{ a } users are here"
    assert MASK in redact('"password": "hunter2-hunter2"')


def test_a_secret_split_across_two_chunks_of_a_stream_is_masked() -> None:
    pem = make_pem()
    token = "ghp_" + "Ab1" * 12
    register_secret(pem)
    register_secret(token)
    text = f"token={token} and the key:\n{pem}\nend {token}\n"
    for size in (1, 3, 7, 64, 100, 4096):
        stream = StreamRedactor()
        shown = "".join(stream.feed(text[i:i + size]) for i in range(0, len(text), size)) + stream.finish()
        assert token not in shown and token[4:20] not in shown, size
        for line in pem.splitlines()[1:-1]:
            assert line[:KGRAM] not in shown, size
        assert shown.startswith("token=" + MASK) and shown.endswith("end " + MASK + "\n"), shown


def test_a_stream_flushes_complete_lines_at_once() -> None:
    register_secret("a-long-secret-value-0123456789")
    stream = StreamRedactor()
    assert stream.feed("first line\nsecond") == "first line\n"
    assert stream.feed(" line\n") == "second line\n"
    assert stream.feed("x" * 100) == "x" * (100 - len("a-long-secret-value-0123456789") + 1)


def test_url_userinfo_is_removed_also_across_chunks() -> None:
    assert redact_url("clone https://user:tok3n@host/x and http://abc@h/ git@github.com:a/b "
                      "ssh://git@h/r ssh://u:pw@h/r HTTPS://t@h") == (
        "clone https://host/x and http://h/ git@github.com:a/b ssh://git@h/r ssh://h/r HTTPS://h")
    text = "remote: https://x-access-token:S3cr3tT0ken@github.com/acme/repo.git\n"
    for size in (1, 5, 13):
        stream = StreamRedactor()
        shown = "".join(stream.feed(text[i:i + size]) for i in range(0, len(text), size)) + stream.finish()
        assert shown == "remote: https://github.com/acme/repo.git\n", size


def test_redact_value_and_contains_secret() -> None:
    register_secret("SeNtInEl-value-42")
    assert redact_value({"a": ["x SeNtInEl-value-42 y", 3], "b": None}) == {"a": [f"x {MASK} y", 3], "b": None}
    assert contains_secret("xx SeNtInEl-value-42") and not contains_secret("nothing here")


def test_secret_named_environment_values_are_registered() -> None:
    register_secret_env([("GH_PAT", "ghp-pat-value-123"), ("AUTH_ENABLED", "true"), ("HOME", "/home/me-long")])
    assert redact("ghp-pat-value-123 true /home/me-long") == f"{MASK} true /home/me-long"


@pytest.mark.timeout(60)
def test_redaction_is_linear_in_the_size_of_the_output() -> None:
    register_secret(make_pem())
    register_secret("tok-" + "z9" * 10)
    rng = random.Random(7)
    # One 200 KB line of each shape that made the old URL pattern quadratic.
    for line in ("a" * 200_000, "https://" + "a" * 200_000, "a" * 200_000 + "://", "a+" * 100_000 + "@",
                 "x://" * 50_000):
        redact(line)
    pieces = ["https://u:p@h/x", "http://tok@host", "x://", "a://b://c", "plain", "@@@",
              base64.b64encode(rng.randbytes(48)).decode()]
    mixed = " ".join(rng.choice(pieces) for _ in range(2_000_000 // 12))
    assert len(mixed) > 2_000_000
    shown = redact(mixed)
    assert "u:p@" not in shown and "tok@" not in shown
    stream = StreamRedactor()
    for i in range(0, len(mixed), 4096):
        stream.feed(mixed[i:i + 4096])
    stream.finish()


NAMES = {
    # secret
    "GITHUB_TOKEN": True, "githubToken": True, "DEPLOY_KEY": True, "SIGNING_KEY": True, "GH_PAT": True,
    "DB_PASS": True, "DB_PASSWORD": True, "PASSWD": True, "CREDENTIALS": True, "GOOGLE_CREDENTIALS": True,
    "PRIVATE": True, "SSH_PRIVATE_KEY": True, "AUTH": True, "BASIC_AUTH": True, "CERT": True, "TLS_PEM": True,
    "API_KEY": True, "apiKey": True, "MYAPIKEY": True, "ACCESS_KEY": True, "AWS_SECRET_ACCESS_KEY": True,
    "SAS": True, "AZURE_STORAGE_SAS_TOKEN": True, "CONN_STR": True, "CONNECTION_STRING": True,
    "AZURE_STORAGE_CONNECTION_STRING": True, "private_key": True, "client-secret": True, "DSN": True,
    # not secret
    "MONKEY": False, "KEYBOARD_LAYOUT": False, "AUTHOR": False, "GIT_AUTHOR_NAME": False, "BYPASS": False,
    "COMPASS_DIR": False, "PASSTHROUGH": False, "TOKENIZER_PATH": False, "PATH": False, "HOME": False,
    "REGION": False, "IMAGE_TAG": False, "client_email": False, "SECRETARY": False,
}


@pytest.mark.parametrize(("name", "secret"), sorted(NAMES.items()))
def test_the_secret_name_rule(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_the_cli_stream_masks_a_secret_written_in_two_halves_with_a_flush_between() -> None:
    import io

    from flowdeck.cli.output import RedactingStream

    secret = "half-and-half-secret-0123456789"
    register_secret(secret)
    inner = io.StringIO()
    stream = RedactingStream(inner)
    stream.write("token: " + secret[:10])
    stream.flush()
    stream.write(secret[10:] + " done")
    stream.flush()
    stream.close_stream()
    assert inner.getvalue() == f"token: {MASK} done"
