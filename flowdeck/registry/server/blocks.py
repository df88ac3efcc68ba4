"""Blocks as block documents on a Prefect server; ``FLOWDECK_BLOCK__*`` variables win over them.

A block read with its secrets registers them for redaction, whether flowdeck knows its type or only the
server's schema does (its ``secret_fields``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flowdeck.block_store import BlockRecord, _env_blocks, _from_env
from flowdeck.blocks import BLOCK_TYPES, check_block_name, register_block_secrets, validate_block
from flowdeck.errors import RegistryError, StoreError
from flowdeck.redact import register_secret
from flowdeck.registry.server.client import PrefectClient

__all__ = ["delete_block", "find_block", "list_blocks", "save_block"]


def _register(type_slug: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The data of a block document, its secrets registered for redaction."""
    data = dict(doc.get("data") or {})
    register_block_secrets(BLOCK_TYPES.get(type_slug), data)
    fields = ((doc.get("block_schema") or {}).get("fields") or {})
    for path in fields.get("secret_fields") or []:
        value: Any = data
        for part in str(path).split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str | int | float):
            register_secret(value)
        elif isinstance(value, Mapping):
            register_block_secrets(None, value)
    return data


def find_block(client: PrefectClient, type_slug: str, name: str, *,
               environ: Mapping[str, str] | None = None) -> BlockRecord | None:
    """``FLOWDECK_BLOCK__*`` first, then the server's block document with its secrets."""
    env = os.environ if environ is None else environ
    record = _from_env(type_slug, name, env)
    if record is not None:
        return record
    doc = client.get_or_none(f"block_types/slug/{type_slug}/block_documents/name/{name}",
                             params={"include_secrets": "true"})
    if not isinstance(doc, dict):
        return None
    return BlockRecord(type_slug, name, _register(type_slug, doc), "server", doc.get("updated"))


def save_block(client: PrefectClient, description: str, type_slug: str, name: str, data: Mapping[str, Any], *,
               overwrite: bool = False) -> BlockRecord:
    """Create (or replace) a block document with the server's latest schema of its type."""
    register_block_secrets(BLOCK_TYPES.get(type_slug), data)
    check_block_name(name)
    known = BLOCK_TYPES.get(type_slug)
    clean = validate_block(known, data) if known is not None else dict(data)
    block_type = client.get(f"block_types/slug/{type_slug}", what=f"block type '{type_slug}'",
                            hint="`prefect block type ls` lists the types the server knows")
    schemas = client.post("block_schemas/filter", {
        "block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1})
    if not schemas:
        raise RegistryError(f"the server has no schema for block type '{type_slug}'",
                            hint="register the type with `prefect block register`")
    existing = client.get_or_none(f"block_types/slug/{type_slug}/block_documents/name/{name}")
    what = f"block {type_slug}/{name}"
    if isinstance(existing, dict):
        if not overwrite:
            raise StoreError(f"block {type_slug}/{name} already exists on {description}",
                             hint="add --overwrite to replace it")
        client.patch(f"block_documents/{existing['id']}",
                     {"data": clean, "merge_existing_data": False, "block_schema_id": schemas[0]["id"]},
                     what=what)
    else:
        client.post("block_documents/", {"name": name, "data": clean, "block_schema_id": schemas[0]["id"],
                                         "block_type_id": block_type["id"]}, what=what)
    return BlockRecord(type_slug, name, clean, "server")


def list_blocks(client: PrefectClient, type_slug: str | None = None, *,
                environ: Mapping[str, str] | None = None) -> list[BlockRecord]:
    """The server's named block documents (secrets masked by the server), and the environment's."""
    env = os.environ if environ is None else environ
    body: dict[str, Any] = {"block_documents": {"is_anonymous": {"eq_": False}}, "limit": 200}
    if type_slug:
        body["block_types"] = {"slug": {"any_": [type_slug]}}
    docs = client.post("block_documents/filter", body, what="block documents")
    records = {}
    for doc in docs:
        slug = (doc.get("block_type") or {}).get("slug", "?")
        records[(slug, doc["name"])] = BlockRecord(slug, doc["name"], dict(doc.get("data") or {}), "server",
                                                   doc.get("updated"))
    for slug, name in _env_blocks(env):
        if type_slug is None or slug == type_slug:
            record = _from_env(slug, name, env)
            if record is not None:
                records[(slug, name)] = record
    return sorted(records.values(), key=lambda r: (r.type_slug, r.name))


def delete_block(client: PrefectClient, description: str, type_slug: str, name: str) -> None:
    """Remove a block document from the server; StoreError if there is none."""
    doc = client.get_or_none(f"block_types/slug/{type_slug}/block_documents/name/{name}")
    if not isinstance(doc, dict):
        raise StoreError(f"no block {type_slug}/{name} on {description}",
                         hint="`flowdeck block ls` lists the blocks")
    client.delete(f"block_documents/{doc['id']}", what=f"block {type_slug}/{name}")
