"""Which names look secret: the rule for environment variables (and JSON keys) whose values are never stored.

A name is split into words at ``_``, ``-``, ``.``, spaces and camelCase humps (``githubToken`` is
``GITHUB TOKEN``), and is secret when

* a word is one of :data:`SECRET_WORDS` (``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASS``, ``PAT``, ``KEY``,
  ``PRIVATE``, ``CREDENTIALS``, ``AUTH``, ``CERT``, ``PEM``, ``SAS``, ``DSN``, ...), or
* a word ends with one of :data:`SECRET_SUFFIXES` (``GHTOKEN``, ``DBPASSWORD``, ``APIKEY``), or
* two words in a row are ``CONN STR`` / ``CONNECTION STRING``.

Words are compared whole, so ``MONKEY``, ``KEYBOARD_LAYOUT``, ``AUTHOR``, ``BYPASS`` and ``COMPASS``
are not secret, while ``DEPLOY_KEY``, ``SIGNING_KEY``, ``GH_PAT``, ``DB_PASS`` and ``API_KEY`` are.
"""

from __future__ import annotations

import functools
import re

__all__ = ["SECRET_SUFFIXES", "SECRET_WORDS", "is_secret_name", "name_words"]

SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS", "PWD", "PASSPHRASE",
    "PAT", "KEY", "KEYS", "PRIVATE", "PRIVKEY", "CREDENTIAL", "CREDENTIALS", "CRED", "CREDS", "AUTH",
    "AUTHORIZATION", "CERT", "CERTS", "CERTIFICATE", "PEM", "P12", "PFX", "SAS", "DSN", "COOKIE", "JWT",
    "BEARER", "CONNSTR", "SIGNATURE", "OTP", "TOTP", "APIKEY", "ACCESSKEY", "SECRETKEY", "KUBECONFIG",
})
SECRET_SUFFIXES = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "ACCESSKEY", "PRIVATEKEY", "SSHKEY",
                   "DEPLOYKEY", "SIGNINGKEY", "SECRETKEY", "MASTERKEY", "CREDENTIALS", "CONNSTR",
                   "CONNECTIONSTRING")
_PAIRS = frozenset({("CONN", "STR"), ("CONN", "STRING"), ("CONNECTION", "STRING")})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def name_words(name: str) -> list[str]:
    """``githubToken`` -> ``["GITHUB", "TOKEN"]``; ``DB-PASS`` -> ``["DB", "PASS"]``."""
    return [word.upper() for part in _SEPARATORS.split(name) for word in _CAMEL.split(part) if word]


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a variable or key called ``name`` probably holds a secret (see the module docs)."""
    words = name_words(name)
    for i, word in enumerate(words):
        if word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES):
            return True
        if i and (words[i - 1], word) in _PAIRS:
            return True
    return False
