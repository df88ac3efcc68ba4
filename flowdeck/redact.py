"""Secret redaction: every secret value flowdeck learns is masked in everything it prints, raises or stores.

Steps and resolvers call :func:`register_secret` as soon as they hold a secret (a token, a key, a block
field marked secret). The CLI passes all of its output through :func:`redact` (whole texts) or a
:class:`StreamRedactor` (streamed output), and errors built from third-party messages (git, boto3, ...)
are redacted before they are raised.

A secret is masked in every shape it is likely to be printed in, not only verbatim (:mod:`flowdeck.secret_forms`
derives them from the secret):

* its common encodings: JSON-escaped (with and without ``ensure_ascii``, and escaped twice, as in the
  ``--json`` output of a step's output), Python ``repr``, shell-quoted, URL-encoded (``quote``,
  ``quote_plus``);
* each line of a multi-line secret (a PEM key, a service-account JSON, a kubeconfig), so a step that
  prints it line by line, or only some lines, shows none of them; lines shorter than
  :data:`~flowdeck.secret_forms.MIN_LEN` characters (``{``, ``}``) carry no key material and are not masked;
* the secret string values of a JSON secret (``private_key`` of a service-account JSON);
* each piece of 8 or more characters of a one-line secret between quotes, backslashes, spaces and
  non-ASCII characters, so a secret encoded twice (quoted, then JSON-escaped) shows no long piece;
* any run of :data:`KGRAM` or more characters taken from the key material of a secret (its runs of
  base64/hex characters with letters and digits), so ``head -c 100`` or ``cut -c1-20`` of a key
  shows no key material either.

Everything here is linear in the size of the text: the secrets are matched with one trie-shaped
regular expression, key-material runs with a set of fixed-length pieces, URLs with a plain scan.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from flowdeck.secret_forms import (
    MIN_LEN,
    encodings,
    fragments,
    key_material,
    looks_secret,
    nested_secrets,
    secret_lines,
)
from flowdeck.secret_names import is_secret_name

__all__ = [
    "KGRAM",
    "MASK",
    "StreamRedactor",
    "clear_secrets",
    "contains_secret",
    "redact",
    "redact_url",
    "redact_value",
    "register_secret",
    "register_secret_env",
    "secrets_snapshot",
    "strip_url_credentials",
]

MASK = "********"
# A line of a multi-line secret this short (``users:``, ``-----END``) is masked only as a whole word.
_GUARDED_LINE_LEN = 8
#: Key material is masked wherever this many of its consecutive characters appear.
KGRAM = 12
# A run is first probed with shorter pieces at every _STRIDE-th position (any 12-character match contains
# one), so output without key material costs a quarter of a lookup per character.
_PROBE = 8
_STRIDE = KGRAM - _PROBE
_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_\-]{" + str(KGRAM) + ",}")

_lock = threading.Lock()
_secrets: set[str] = set()
_guarded: set[str] = set()  # masked only as whole words
_kgrams: set[str] = set()
_probes: set[str] = set()
_pattern: re.Pattern[str] | None = None
_max_len = 0


def register_secret(value: object) -> None:
    """Remember a secret value (and every shape and piece of it) so it is masked from now on."""
    if value is None:
        return
    text = str(value)
    if not text.strip():
        return
    global _pattern
    with _lock:
        before = (len(_secrets), len(_guarded), len(_kgrams))
        for whole in [text, *nested_secrets(text)]:
            for form in encodings(whole):
                (_secrets if len(form.strip()) >= MIN_LEN else _guarded).add(form)
            for piece in secret_lines(whole):
                # Each line in each encoding: a line printed by `jq` or `repr` is escaped too.
                for form in encodings(piece):
                    (_secrets if len(form) >= _GUARDED_LINE_LEN else _guarded).add(form)
            for piece in fragments(whole):
                _secrets.add(piece)
            for run in key_material(whole):
                _kgrams.update(run[i:i + KGRAM] for i in range(len(run) - KGRAM + 1))
                _probes.update(run[i:i + _PROBE] for i in range(len(run) - _PROBE + 1))
        if (len(_secrets), len(_guarded), len(_kgrams)) != before:
            _pattern = None


def register_secret_env(environ: Iterable[tuple[str, str]]) -> None:
    """Register the values of environment variables whose names look secret (see :mod:`flowdeck.secret_names`).

    Short values (``AUTH_ENABLED=true``), plain words, numbers and file paths are not taken for secrets.
    """
    for name, value in environ:
        if is_secret_name(name) and looks_secret(value.strip()):
            register_secret(value)


def clear_secrets() -> None:
    """Forget every registered secret (tests use this between cases)."""
    global _pattern, _max_len
    with _lock:
        _secrets.clear()
        _guarded.clear()
        _kgrams.clear()
        _probes.clear()
        _pattern = None
        _max_len = 0


def secrets_snapshot() -> frozenset[str]:
    """The registered secrets (every form), for diagnostics in tests."""
    with _lock:
        return frozenset(_secrets | _guarded)


def _trie_regex(words: Iterable[str]) -> str:
    """One regex matching any of ``words``, longest first at each position, shaped as a trie.

    A plain alternation of hundreds of literals is tried literal by literal at every position; a trie
    costs one step per character of the longest common prefix, so redaction stays linear.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        # Iterative along single-child chains, so a 5 KB key does not recurse 5000 levels deep.
        parts: list[str] = []
        while True:
            ends = "" in node
            children = sorted(c for c in node if c)
            if not children:
                return "".join(parts)
            if len(children) == 1 and not ends:
                parts.append(re.escape(children[0]))
                node = node[children[0]]
                continue
            branches = "|".join(re.escape(c) + emit(node[c]) for c in children)
            parts.append("(?:" + branches + ")" + ("?" if ends else ""))
            return "".join(parts)

    return emit(root)


def _compiled() -> re.Pattern[str] | None:
    global _pattern, _max_len
    with _lock:
        if _pattern is None and (_secrets or _guarded):
            alternatives = []
            if _secrets:
                alternatives.append(_trie_regex(_secrets))
            if _guarded:
                alternatives.append(r"(?<!\w)(?:" + _trie_regex(_guarded) + r")(?!\w)")
            _pattern = re.compile("|".join(alternatives))
            _max_len = max(len(s) for s in _secrets | _guarded)
        return _pattern


def _spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` shows a secret: sorted, merged ``(start, end)`` ranges."""
    found: list[tuple[int, int]] = []
    pattern = _compiled()
    if pattern is not None:
        found.extend(m.span() for m in pattern.finditer(text) if m.end() > m.start())
    if _kgrams:
        for match in _CANDIDATE.finditer(text):
            run, offset = match.group(), match.start()
            if not any(run[i:i + _PROBE] in _probes for i in range(0, len(run) - _PROBE + 1, _STRIDE)):
                continue
            start = end = -1
            for i in range(len(run) - KGRAM + 1):
                if run[i:i + KGRAM] in _kgrams:
                    if i > end:
                        if end >= 0:
                            found.append((offset + start, offset + end))
                        start = i
                    end = i + KGRAM
            if end >= 0:
                found.append((offset + start, offset + end))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: list[tuple[int, int]], by: str) -> str:
    """``text`` with each of the sorted, disjoint ``spans`` replaced by ``by``."""
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(by)
        position = end
    parts.append(text[position:])
    return "".join(parts)


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USERINFO_END = frozenset("/@?#") | frozenset(" \t\n\r\f\v")
# A URL scheme longer than this is not one (``aaaa...aaa://`` in a 200 KB line).
_MAX_SCHEME = 32


def _userinfo_spans(text: str) -> list[tuple[int, int, int, bool]]:
    """``(scheme_start, start, end, complete)`` of each ``user:password@`` after a ``scheme://``, by a linear scan.

    ``complete`` is False when the text ends before the userinfo does (a stream must wait for more).
    """
    spans: list[tuple[int, int, int, bool]] = []
    position = text.find("://")
    while position != -1:
        scheme_start = position
        while scheme_start > 0 and position - scheme_start < _MAX_SCHEME and text[scheme_start - 1] in _SCHEME_CHARS:
            scheme_start -= 1
        start = position + 3
        if scheme_start < position and text[scheme_start].isalpha():
            end = start
            while end < len(text) and text[end] not in _USERINFO_END:
                end += 1
            if end == len(text):
                spans.append((scheme_start, start, end, False))
            elif text[end] == "@" and end > start:
                spans.append((scheme_start, start, end + 1, True))
            position = text.find("://", max(end, start))
        else:
            position = text.find("://", start)
    return spans


def redact_url(text: str) -> str:
    """Remove the credentials from every URL in ``text``, keeping what a URL needs to work; linear time.

    ``https://user:token@host`` and ``https://token@host`` lose the userinfo (HTTP tokens are often
    written as the user name); other schemes lose it only when it has a password, so
    ``ssh://git@host/repo`` keeps its user.
    """
    spans = []
    for scheme_start, start, end, complete in _userinfo_spans(text):
        scheme = text[scheme_start:start - 3].lower()
        if complete and (scheme.rsplit("+", 1)[-1] in ("http", "https") or ":" in text[start:end]):
            spans.append((start, end))
    return _replace(text, spans, "")


def redact(text: str) -> str:
    """Mask every registered secret (in all its shapes) and every URL userinfo in ``text``."""
    if not text:
        return text
    return redact_url(_replace(text, _spans(text), MASK))


#: What deploy calls it: the same rule keeps credentials out of stored records.
strip_url_credentials = redact_url


def contains_secret(text: str) -> bool:
    """Whether ``text`` shows a registered secret (in any of its shapes) or key material of one."""
    return bool(text) and bool(_spans(text))


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value with every string redacted (for records that are stored)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


# Userinfo that has not ended yet is held back this far at most; a longer one is not waited for.
_MAX_PENDING_USERINFO = 4096


class StreamRedactor:
    """Redacts a stream of text chunks: a secret split across two chunks is still masked.

    :meth:`feed` returns what is safe to show now. Text after the last newline is held back as far as a
    secret (or a URL's userinfo) could still be running on into the next chunk; a newline always ends
    what can be held, because every line of a multi-line secret is masked on its own.
    :meth:`finish` returns the rest at the end of the stream.
    """

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> str:
        """Take a chunk; return the redacted text that no later chunk can change."""
        self._buffer += text
        buffer = self._buffer
        _compiled()  # brings _max_len up to date
        hold = max(_max_len - 1, KGRAM - 1, 8)
        cut = max(buffer.rfind("\n") + 1, len(buffer) - hold)
        # Never cut inside a secret or a URL's userinfo (nor before the end of one still arriving).
        blocked = _spans(buffer)
        for scheme_start, start, end, complete in _userinfo_spans(buffer):
            if complete:
                blocked.append((scheme_start, end))
            elif len(buffer) - start <= _MAX_PENDING_USERINFO:
                blocked.append((scheme_start, len(buffer) + 1))
        moved = True
        while moved:
            moved = False
            for start, end in blocked:
                if start < cut < end:
                    cut, moved = start, True
        self._buffer = buffer[cut:]
        return redact(buffer[:cut])

    def finish(self) -> str:
        """The rest of the stream, redacted."""
        rest, self._buffer = self._buffer, ""
        return redact(rest)
