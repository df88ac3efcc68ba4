"""`block`, `variable` and `init`."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from flowdeck.cli.output import (
    EXIT_OK,
    add_group,
    err,
    out,
    print_json,
    print_table,
)
from flowdeck.errors import FlowdeckWarning, UsageError


def _read_stdin_secret() -> str:
    """All of stdin, minus one trailing newline (what `echo secret |` adds)."""
    text = sys.stdin.read()
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _cmd_block_types(args: argparse.Namespace) -> int:
    from flowdeck.blocks import BLOCK_TYPES

    if args.json:
        print_json({
            slug: {
                "summary": t.summary,
                "fields": {
                    f.name: {"types": list(f.types), "secret": f.secret, "required": f.required, "doc": f.doc}
                    for f in t.fields
                },
            }
            for slug, t in BLOCK_TYPES.items()
        })
        return EXIT_OK
    for slug, block_type in BLOCK_TYPES.items():
        out(f"{slug}: {block_type.summary}")
        for f in block_type.fields:
            flags = ", ".join(x for x in ("required" * f.required, "secret" * f.secret) if x)
            out(f"    {f.name} ({' | '.join(f.types)}{', ' + flags if flags else ''}): {f.doc}")
    return EXIT_OK


def _server_only_type(type_slug: str) -> bool:
    """A block type flowdeck does not know, while a Prefect server (which may know it) is the registry."""
    from flowdeck.blocks import BLOCK_TYPES
    from flowdeck.registry import current
    from flowdeck.registry.embedded import EmbeddedRegistry

    return type_slug not in BLOCK_TYPES and not isinstance(current(), EmbeddedRegistry)


def _create_server_block(args: argparse.Namespace) -> int:
    """A block of a type only the server knows: fields as given (JSON values), every value masked."""
    from flowdeck.blocks import register_block_secrets
    from flowdeck.errors import StoreError
    from flowdeck.registry import current

    if args.value is not None:
        raw = _read_stdin_secret() if args.value == "-" else args.value
        register_block_secrets(None, {"raw": raw})
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StoreError(f"--value is not valid JSON (line {exc.lineno}, column {exc.colno})",
                             hint="a JSON object of the block's fields") from None
        if not isinstance(data, dict):
            raise StoreError(f"--value for {args.type} must be a JSON object of its fields")
    else:
        data = {}
        for pair in args.field:
            key, sep, raw = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--field expects KEY=VALUE, got '{key}'")
            raw = _read_stdin_secret() if raw == "-" else raw
            try:
                data[key] = json.loads(raw)
            except ValueError:
                data[key] = raw
    # The server's schema says which fields are secret; until it has, treat them all as secret.
    register_block_secrets(None, data)
    record = current().save_block(args.type, args.name, data, overwrite=args.overwrite)
    out(f"Saved block {record.type_slug}/{record.name}; reference it as {record.reference}")
    return EXIT_OK


def _cmd_block_create(args: argparse.Namespace) -> int:
    from flowdeck.blocks import get_block_type, parse_field_args
    from flowdeck.errors import StoreError
    from flowdeck.redact import register_secret
    from flowdeck.registry import current

    if _server_only_type(args.type):
        return _create_server_block(args)
    block_type = get_block_type(args.type)
    if args.value is not None and args.field:
        raise UsageError("give either --value or --field, not both")
    if args.value is None and not args.field:
        how = "--value VALUE (or --value - for stdin)" if block_type.is_value_block else "--field KEY=VALUE"
        raise UsageError(f"nothing to store: give {how}",
                         hint=f"`flowdeck block types` shows {args.type}'s fields")
    data: dict[str, Any]
    on_argv_secret = False
    if args.value is not None:
        from_stdin = args.value == "-"
        raw = _read_stdin_secret() if from_stdin else args.value
        register_secret(raw)
        on_argv_secret = not from_stdin and (args.type == "secret" or not block_type.is_value_block)
        if block_type.is_value_block and args.type != "json":
            data = {"value": raw}
        else:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise StoreError(
                    f"--value is not valid JSON (line {exc.lineno}, column {exc.colno})",
                    hint="a JSON value for json blocks, a JSON object of the fields for other types",
                ) from None
            data = {"value": parsed} if block_type.is_value_block else parsed
            if not isinstance(data, dict):
                raise StoreError(f"--value for {args.type} must be a JSON object of its fields")
    else:
        pairs: list[str] = []
        stdin_used = False
        for pair in args.field:
            key, sep, raw = pair.partition("=")
            spec = block_type.field(key.split(".", 1)[0])
            if sep and raw == "-" and spec is not None and spec.secret:
                if stdin_used:
                    raise UsageError("only one --field can read stdin (`KEY=-`)")
                stdin_used = True
                pair = f"{key}={_read_stdin_secret()}"
            elif spec is not None and spec.secret and sep:
                on_argv_secret = True
            pairs.append(pair)
        data = parse_field_args(block_type, pairs)
    if on_argv_secret:
        warnings.warn(FlowdeckWarning(
            "a secret given on the command line is visible to other users (`ps`) and in shell history",
            hint="read it from stdin instead: `--value -` or `--field KEY=-`",
        ), stacklevel=1)
    record = current().save_block(args.type, args.name, data, overwrite=args.overwrite)
    out(f"Saved block {record.type_slug}/{record.name}; reference it as {record.reference}")
    return EXIT_OK


def _cmd_block_ls(args: argparse.Namespace) -> int:
    from flowdeck.blocks import get_block_type
    from flowdeck.registry import current

    if args.type and not _server_only_type(args.type):
        get_block_type(args.type)
    records = current().list_blocks(args.type)
    if args.json:
        print_json([
            {"type": r.type_slug, "name": r.name, "source": r.source, "reference": r.reference,
             "updated_at": r.updated_at}
            for r in records
        ])
        return EXIT_OK
    if not records:
        out("No blocks. Create one with `flowdeck block create TYPE NAME --field KEY=VALUE`.")
        return EXIT_OK
    print_table(["type", "name", "source", "reference"],
                 [[r.type_slug, r.name, r.source, r.reference] for r in records])
    return EXIT_OK


def _cmd_block_show(args: argparse.Namespace) -> int:
    from flowdeck.block_store import parse_ref
    from flowdeck.blocks import BLOCK_TYPES, mask_block
    from flowdeck.errors import StoreError
    from flowdeck.registry import current

    type_slug, name = parse_ref(args.ref)
    record = current().find_block(type_slug, name)
    if record is None:
        raise StoreError(
            f"block {type_slug}/{name} not found",
            hint=f"create it with `flowdeck block create {type_slug} {name} ...`; "
            "`flowdeck block ls` lists blocks",
        )
    data = record.data if args.reveal else mask_block(BLOCK_TYPES.get(type_slug), record.data)
    doc = {"type": type_slug, "name": name, "source": record.source, "reference": record.reference,
           "data": data}
    lines = [json.dumps(doc, indent=2, sort_keys=True)] if args.json else [
        f"{type_slug}/{name} (from the {'environment' if record.source == 'env' else record.source})",
        f"reference: {record.reference}",
        *(f"{key}: {value if isinstance(value, str) else json.dumps(value)}" for key, value in data.items()),
    ]
    if args.reveal:
        # The user asked for the secrets: bypass the redacting stream, and only here.
        sys.stdout.flush()
        real = sys.__stdout__ or sys.stdout
        real.write("\n".join(lines) + "\n")
        real.flush()
    else:
        for line in lines:
            out(line)
    return EXIT_OK


def _cmd_block_rm(args: argparse.Namespace) -> int:
    from flowdeck.block_store import parse_ref
    from flowdeck.registry import current

    type_slug, name = parse_ref(args.ref)
    current().delete_block(type_slug, name)
    out(f"Removed block {type_slug}/{name}")
    return EXIT_OK


def _cmd_variable_set(args: argparse.Namespace) -> int:
    from flowdeck.errors import StoreError
    from flowdeck.registry import current

    raw = _read_stdin_secret() if args.value == "-" else args.value
    value: Any = raw
    if args.json:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"variable {args.name!r}: --json value is not valid JSON ({exc.msg}, column {exc.colno})",
                hint="quote text as a JSON string, or drop --json to store it as text",
            ) from None
    variable = current().set_variable(args.name, value)
    out(f"Set variable {variable.name}; reference it as {variable.reference}")
    return EXIT_OK


def _cmd_variable_get(args: argparse.Namespace) -> int:
    from flowdeck.errors import StoreError
    from flowdeck.registry import current

    variable = current().get_variable(args.name)
    if variable is None:
        raise StoreError(
            f"no variable {args.name!r}",
            hint=f"set it with `flowdeck variable set {args.name} VALUE`",
        )
    if isinstance(variable.value, str) and not args.json:
        out(variable.value)
    else:
        out(json.dumps(variable.value, indent=2 if args.json else None, sort_keys=True))
    return EXIT_OK


def _cmd_variable_ls(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    variables = current().list_variables()
    if args.json:
        print_json({v.name: v.value for v in variables})
        return EXIT_OK
    if not variables:
        out("No variables. Set one with `flowdeck variable set NAME VALUE`.")
        return EXIT_OK
    print_table(["name", "value", "reference"],
                 [[v.name, json.dumps(v.value), v.reference] for v in variables])
    return EXIT_OK


def _cmd_variable_rm(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    current().delete_variable(args.name)
    out(f"Removed variable {args.name}")
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:

    from flowdeck.init import initialize_project
    from flowdeck.recipes import list_recipes

    if args.list:
        for recipe in list_recipes():
            out(f"{recipe.name}: {recipe.description}")
            for key, doc in recipe.required_inputs.items():
                out(f"    --field {key}=...  (required) {doc}")
            for key, doc in recipe.optional_inputs.items():
                out(f"    --field {key}=...  (optional) {doc}")
        return EXIT_OK

    def ask(key: str, description: str) -> str:
        answer = ""
        while not answer.strip():
            answer = input(f"{key} ({description}): ")
        return answer.strip()

    interactive = sys.stdin.isatty() and not args.no_prompt
    result = initialize_project(
        Path.cwd(), recipe=args.recipe, fields=args.field, name=args.name, force=args.force,
        ask=ask if interactive else None,
    )
    err(f"Using the {result.recipe} recipe" + (" (inferred)" if result.inferred else ""))
    for path in result.kept:
        err(f"{path.name} already exists; kept it (use --force to overwrite)")
    if result.created:
        out(f"Created project in {result.directory} with the following new files:")
        for path in result.created:
            out(f"  {path.name}")
    else:
        out(f"Created project in {result.directory}; no new files created.")
    return EXIT_OK


def add_store_commands(sub: Any) -> None:
    """`block`, `variable` and `init`."""
    bsub = add_group(sub, "block", "manage blocks (credentials, secrets, JSON values)")
    p = bsub.add_parser("types", help="list block types and their fields")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_block_types)
    p = bsub.add_parser("create", help="create a block", description=(
        "Create a block. Secrets: read them from stdin with `--value -` or `--field KEY=-` so they stay out "
        "of `ps` and shell history."))
    p.add_argument("type", metavar="TYPE", help="block type (see `flowdeck block types`)")
    p.add_argument("name", metavar="NAME", help="block name: lowercase letters, digits, dashes")
    p.add_argument("--field", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="a field (repeatable); KEY.SUB=VALUE sets a key of an object field")
    p.add_argument("--value", metavar="VALUE",
                   help="the value of a secret/string/json block, or a JSON object of the fields; "
                   "- reads stdin")
    p.add_argument("--overwrite", action="store_true", help="replace an existing block")
    p.set_defaults(func=_cmd_block_create)
    p = bsub.add_parser("ls", help="list blocks with the placeholder that references each")
    p.add_argument("--type", metavar="TYPE", help="only blocks of this type")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_block_ls)
    p = bsub.add_parser("show", help="show a block (secret fields masked)")
    p.add_argument("ref", metavar="TYPE/NAME")
    p.add_argument("--reveal", action="store_true", help="show secret fields in clear")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_block_show)
    p = bsub.add_parser("rm", help="remove a block from the store")
    p.add_argument("ref", metavar="TYPE/NAME")
    p.set_defaults(func=_cmd_block_rm)

    vsub = add_group(sub, "variable", "manage variables ({{ prefect.variables.NAME }})")
    p = vsub.add_parser("set", help="create or replace a variable")
    p.add_argument("name", metavar="NAME")
    p.add_argument("value", metavar="VALUE", help="the value (text; JSON with --json; - reads stdin)")
    p.add_argument("--json", action="store_true", help="parse VALUE as JSON (numbers, lists, objects)")
    p.set_defaults(func=_cmd_variable_set)
    p = vsub.add_parser("get", help="print a variable's value")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON even for text values")
    p.set_defaults(func=_cmd_variable_get)
    p = vsub.add_parser("ls", help="list variables")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_variable_ls)
    p = vsub.add_parser("rm", help="remove a variable")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_variable_rm)

    p = sub.add_parser("init", help="create prefect.yaml and .prefectignore from a recipe")
    p.add_argument("--recipe", metavar="NAME",
                   help="recipe (default: inferred from the git remote and a Dockerfile)")
    p.add_argument("--field", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe input (repeatable; split on the first =)")
    p.add_argument("--name", metavar="NAME", help="the project name (default: the directory name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing prefect.yaml/.prefectignore")
    p.add_argument("--list", action="store_true", help="list the recipes and their inputs")
    p.add_argument("--no-prompt", action="store_true", help="never ask for missing inputs, fail instead")
    p.set_defaults(func=_cmd_init)


