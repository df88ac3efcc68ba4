"""Sentinel secrets made at test time: a real PEM private key and a GCP service-account JSON around it."""

from __future__ import annotations

import functools
import json
import subprocess


@functools.lru_cache(maxsize=1)
def make_pem() -> str:
    """A fresh 4096-bit RSA key in PEM form (about 3 KB), made with ``openssl genrsa``."""
    return subprocess.run(["openssl", "genrsa", "4096"], capture_output=True, text=True, check=True).stdout


def service_account_json(pem: str) -> str:
    """A GCP service-account JSON whose ``private_key`` is ``pem`` (with ``\\n`` escapes, as Google ships it)."""
    return json.dumps({
        "type": "service_account",
        "project_id": "flowdeck-test",
        "private_key_id": "3f9a1c0d7e6b5a4938271605f4e3d2c1b0a99887",
        "private_key": pem,
        "client_email": "deployer@flowdeck-test.iam.gserviceaccount.com",
        "client_id": "109876543210987654321",
        "token_uri": "https://oauth2.googleapis.com/token",
    }, indent=2)
