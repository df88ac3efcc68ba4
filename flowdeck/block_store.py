"""Saving, reading, listing and removing block documents.

A block comes from one of two places, looked up in this order:

1. the environment, ``FLOWDECK_BLOCK__<TYPE>__<NAME>`` (type and name upper-cased, ``-`` written ``_``),
   so CI jobs without a persistent store can provide blocks from their secret variables. For ``secret``
   and ``string`` blocks the variable holds the plain value; for ``json`` blocks it holds the JSON value
   (or a ``{"value": ...}`` document); for every other type it holds the JSON object of the fields.
2. the local store (``flowdeck block create``).

The environment wins so that a CI job can override a block a developer's machine also has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flowdeck.blocks import (
    BLOCK_TYPES,
    BlockType,
    check_block_name,
    get_block_type,
    register_block_secrets,
    validate_block,
)
from flowdeck.errors import StoreError
from flowdeck.store import open_store, transaction

__all__ = [
    "ENV_PREFIX",
    "BlockRecord",
    "delete_block",
    "env_var_name",
    "find_block",
    "list_blocks",
    "parse_ref",
    "save_block",
]

ENV_PREFIX = "FLOWDECK_BLOCK__"


@dataclass(frozen=True)
class BlockRecord:
    """A block document and where it came from."""

    type_slug: str
    name: str
    data: dict[str, Any]
    source: Literal["store", "env", "server"]
    updated_at: str | None = None

    @property
    def reference(self) -> str:
        """The placeholder that reaches this block from a ``prefect.yaml``."""
        return f"{{{{ prefect.blocks.{self.type_slug}.{self.name} }}}}"


def env_var_name(type_slug: str, name: str) -> str:
    """``FLOWDECK_BLOCK__AWS_CREDENTIALS__MY_CREDS`` for ``aws-credentials/my-creds``."""
    def norm(text: str) -> str:
        return text.upper().replace("-", "_")

    return f"{ENV_PREFIX}{norm(type_slug)}__{norm(name)}"


def parse_ref(ref: str) -> tuple[str, str]:
    """Split ``TYPE/NAME`` (``TYPE.NAME`` is accepted too, as written in a placeholder)."""
    text = ref.strip()
    if text.startswith("prefect.blocks."):
        text = text[len("prefect.blocks."):]
    type_slug, sep, name = text.partition("/")
    if not sep:
        type_slug, sep, name = text.partition(".")
    if not sep or not type_slug or not name:
        raise StoreError(f"{ref!r} is not TYPE/NAME", hint="e.g. `aws-credentials/my-creds`")
    return type_slug, name


def _from_env(type_slug: str, name: str, environ: Mapping[str, str]) -> BlockRecord | None:
    var = env_var_name(type_slug, name)
    raw = environ.get(var)
    if raw is None:
        return None
    block_type = BLOCK_TYPES.get(type_slug)
    data: Any
    if type_slug in ("secret", "string"):
        data = {"value": raw}
    else:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            # Never quote the text: it may be a credential.
            register_block_secrets(None, {"raw": raw})
            raise StoreError(
                f"the environment variable {var} is not valid JSON (line {exc.lineno}, column {exc.colno})",
                hint=f"set {var} to a JSON object of the block's fields",
            ) from None
        if type_slug == "json":
            is_document = isinstance(parsed, dict) and list(parsed) == ["value"]
            data = parsed if is_document else {"value": parsed}
        else:
            data = parsed
    if not isinstance(data, dict):
        register_block_secrets(None, {"raw": raw})
        raise StoreError(
            f"the environment variable {var} must hold a JSON object of the block's fields",
            hint="e.g. " + var + "='{\"token\": \"...\"}'",
        )
    # Register before validating, so that even a validation message cannot leak a value.
    register_block_secrets(block_type, data)
    if block_type is not None:
        data = validate_block(block_type, data, source=f"from {var}")
    return BlockRecord(type_slug, name, data, "env")


def _env_blocks(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(type, name) pairs the environment provides for *known* types (names are lower-cased back)."""
    found: list[tuple[str, str]] = []
    by_env = {slug.upper().replace("-", "_"): slug for slug in BLOCK_TYPES}
    for var in environ:
        if not var.startswith(ENV_PREFIX):
            continue
        type_part, sep, name_part = var[len(ENV_PREFIX):].partition("__")
        if sep and type_part in by_env and name_part:
            found.append((by_env[type_part], name_part.lower().replace("_", "-")))
    return found


def find_block(type_slug: str, name: str, *, environ: Mapping[str, str] | None = None) -> BlockRecord | None:
    """The block ``type_slug/name`` (environment first, then the store), or ``None``.

    Secret values are registered for redaction before this returns.
    """
    env = os.environ if environ is None else environ
    record = _from_env(type_slug, name, env)
    if record is not None:
        return record
    with open_store(create=False) as conn:
        if conn is None:
            return None
        row = conn.execute(
            "SELECT data, updated_at FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name)
        ).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    register_block_secrets(BLOCK_TYPES.get(type_slug), data)
    return BlockRecord(type_slug, name, data, "store", row[1])


def save_block(type_slug: str, name: str, data: Mapping[str, Any], *, overwrite: bool = False) -> BlockRecord:
    """Validate and store a block. An existing block is kept unless ``overwrite``."""
    block_type: BlockType = get_block_type(type_slug)
    register_block_secrets(block_type, data)
    check_block_name(name)
    clean = validate_block(block_type, data)
    text = json.dumps(clean, sort_keys=True)
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            exists = conn.execute(
                "SELECT 1 FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name)
            ).fetchone()
            if exists and not overwrite:
                raise StoreError(
                    f"block {type_slug}/{name} already exists",
                    hint="add --overwrite to replace it",
                )
            conn.execute(
                "INSERT INTO blocks (type_slug, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT (type_slug, name) DO UPDATE SET data = excluded.data, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                (type_slug, name, text),
            )
    return BlockRecord(type_slug, name, clean, "store")


def list_blocks(
    type_slug: str | None = None, *, environ: Mapping[str, str] | None = None
) -> list[BlockRecord]:
    """Every block of the store and of the environment, sorted by type then name.

    A block that the environment overrides is listed once, as coming from the environment.
    """
    env = os.environ if environ is None else environ
    records: dict[tuple[str, str], BlockRecord] = {}
    with open_store(create=False) as conn:
        if conn is not None:
            rows = conn.execute("SELECT type_slug, name, data, updated_at FROM blocks").fetchall()
            for slug, name, data, updated in rows:
                parsed = json.loads(data)
                register_block_secrets(BLOCK_TYPES.get(slug), parsed)
                records[(slug, name)] = BlockRecord(slug, name, parsed, "store", updated)
    for slug, name in _env_blocks(env):
        record = _from_env(slug, name, env)
        if record is not None:
            records[(slug, name)] = record
    result = sorted(records.values(), key=lambda r: (r.type_slug, r.name))
    if type_slug is not None:
        result = [r for r in result if r.type_slug == type_slug]
    return result


def delete_block(type_slug: str, name: str) -> None:
    """Remove a stored block; a missing one is a :class:`StoreError`."""
    with open_store(create=False) as conn:
        deleted = 0
        if conn is not None:
            with transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name)
                ).rowcount
    if not deleted:
        raise StoreError(
            f"no block {type_slug}/{name} in the store",
            hint="`flowdeck block ls` lists the blocks",
        )
