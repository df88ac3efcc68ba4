"""The shapes and pieces of one secret value that :mod:`flowdeck.redact` masks, besides the value itself.

A program prints a secret escaped or quoted (JSON, ``repr``, shell, URL encodings), line by line (a PEM key,
a service-account JSON), or in pieces: each is derived here from the secret string alone, with no state.
Which of them are masked everywhere and which only as whole words is :mod:`flowdeck.redact`'s business.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from flowdeck.jsontypes import loads_bounded
from flowdeck.secret_names import is_secret_name

__all__ = ["MIN_LEN", "encodings", "fragments", "key_material", "looks_secret", "nested_secrets", "secret_lines"]

# Very short values would mask ordinary words everywhere; they are still registered, but only masked
# when they stand alone as a whole word.
MIN_LEN = 4
# A run of secret characters that counts as key material: long, with letters and digits.
_MATERIAL = re.compile(r"[A-Za-z0-9+/=_\-]{16,}")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[A-Za-z]")
# Environment values shorter than this are not taken for secrets (``AUTH_ENABLED=true``).
_MIN_ENV_LEN = 8


def encodings(text: str) -> set[str]:
    """The shapes one secret string takes when a program prints it escaped or quoted."""
    forms = {text, quote(text, safe=""), quote_plus(text, safe=""), quote(text), shlex.quote(text)}
    escaped = json.dumps(text)[1:-1]
    forms |= {escaped, json.dumps(text, ensure_ascii=False)[1:-1], repr(text)[1:-1], json.dumps(escaped)[1:-1]}
    return {form for form in forms if form.strip()}


def secret_lines(text: str) -> set[str]:
    """The lines of a multi-line secret (also split at JSON ``\\n`` escapes), stripped."""
    pieces: set[str] = set()
    for chunk in text.replace("\\n", "\n").replace("\\r", "\n").splitlines():
        piece = chunk.strip().strip(",").strip()
        if len(piece) >= MIN_LEN and piece != text:
            pieces.add(piece)
    return pieces


# What encodings escape: a piece of a one-line secret between two of these survives any of them.
_ESCAPED = re.compile(r"""[\s"'\\]|[^\x00-\x7f]""")
_MIN_FRAGMENT = 8


def fragments(text: str) -> set[str]:
    """The pieces of a one-line secret between characters that encodings escape (quotes, backslashes, spaces,
    non-ASCII), so a secret quoted and then escaped again (``json.dumps(shlex.quote(s))``) shows no long piece.

    Multi-line and JSON secrets are covered by their lines and key material instead: their pieces
    (``service_account``, a token URL) are not secret on their own.
    """
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return set()
    return {piece for piece in _ESCAPED.split(text) if len(piece) >= _MIN_FRAGMENT and piece != text}


def nested_secrets(text: str) -> list[str]:
    """Secret-named string values inside a JSON secret (``private_key`` of a service-account JSON)."""
    if not text.lstrip().startswith(("{", "[")):
        return []
    try:
        data = loads_bounded(text)
    except ValueError:  # not JSON, or nested too deep to be a credential: masked whole only
        return []
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((key, v) for v in value)
        elif isinstance(value, str) and is_secret_name(key) and looks_secret(value.strip()):
            found.append(value)
    return found


def key_material(text: str) -> Iterable[str]:
    """The runs of a secret that count as key material: long runs of base64/hex characters with letters and digits."""
    for match in _MATERIAL.finditer(text):
        run = match.group()
        if _DIGIT.search(run) and _LETTER.search(run):
            yield run


def looks_secret(value: str) -> bool:
    """Whether a value found under a secret-looking name is taken for a secret."""
    # Not a flag, a number, a plain word (AUTH_MODE=password) or a path (GOOGLE_APPLICATION_CREDENTIALS).
    return (len(value) >= _MIN_ENV_LEN and not value.isalpha() and not value.isdigit()
            and not value.startswith(("/", "~", "./", "../")) and not re.match(r"[A-Za-z]:[\\/]", value))
