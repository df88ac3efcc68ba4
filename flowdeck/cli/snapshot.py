"""`snapshot ls / show / gc`: the code snapshots of one storage location, and the versions (in flowdeck's
store and on the configured Prefect server) that use them."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from flowdeck.cli.output import EXIT_OK, add_group, out, print_json, print_table
from flowdeck.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 1h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _location(args: argparse.Namespace) -> Any:
    from flowdeck.snapshot.admin import open_location

    credentials = None
    if args.credentials:
        from flowdeck.block_store import parse_ref
        from flowdeck.registry import current

        type_slug, name = parse_ref(args.credentials)
        # Where `flowdeck block` keeps blocks: the configured server's, else flowdeck's store.
        block = current().find_block(type_slug, name)
        if block is None:
            raise UsageError(f"no block {args.credentials!r}", hint="`flowdeck block ls` lists the blocks")
        credentials = block.data
    return open_location(args.location, credentials, args.endpoint_url)


def _size(n: int) -> str:
    from flowdeck.steps.storage.transfer import human_bytes

    return human_bytes(n)


def _cmd_ls(args: argparse.Namespace) -> int:
    from flowdeck.snapshot.admin import list_snapshots

    infos = list_snapshots(_location(args))
    if args.json:
        print_json([info.__dict__ for info in infos])
        return EXIT_OK
    rows = [
        [
            i.id[:12],
            i.created,
            str(i.files),
            _size(i.size),
            ("HEAD " if i.head else "") + (", ".join(i.versions) or "-"),
        ]
        for i in infos
    ]
    print_table(["snapshot", "created", "files", "size", "used by"], rows)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from flowdeck.snapshot.admin import show_snapshot

    manifest, versions = show_snapshot(_location(args), args.id)
    if args.json:
        files = {p: f.to_json() for p, f in sorted(manifest.files.items())}
        print_json(
            {
                "id": manifest.id,
                "created": manifest.created,
                "versions": versions,
                "files": files,
                "packs": {k: v.size for k, v in manifest.packs.items()},
            }
        )
        return EXIT_OK
    out(f"snapshot {manifest.id}")
    out(f"created  {manifest.created}")
    out(f"used by  {', '.join(versions) or '(no version)'}")
    out(f"packs    {len(manifest.packs)} ({_size(sum(p.size for p in manifest.packs.values()))} compressed)")
    out(f"files    {len(manifest.files)} ({_size(sum(f.size for f in manifest.files.values()))})")
    for path, entry in sorted(manifest.files.items()):
        out(f"  {entry.mode:o}  {entry.size:>10}  {entry.sha256[:12]}  {path}")
    return EXIT_OK


def _cmd_gc(args: argparse.Namespace) -> int:
    from flowdeck.snapshot.admin import collect_garbage

    started = time.monotonic()
    result = collect_garbage(_location(args), grace=args.grace, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for sid in result.snapshots:
        out(f"{verb} snapshot {sid}")
    for pack in result.packs:
        out(f"{verb} pack {pack}")
    out(
        f"{verb} {len(result.snapshots)} snapshots and {len(result.packs)} packs ({_size(result.bytes)}); "
        f"kept {result.kept_snapshots} snapshots and {result.kept_packs} packs, in {time.monotonic() - started:.2f}s"
    )
    out(f"versions read from {' and '.join(result.consulted)}")
    return EXIT_OK


def add_snapshot_commands(sub: Any) -> None:
    """`snapshot ls`, `snapshot show`, `snapshot gc`."""
    ssub = add_group(sub, "snapshot", "list, show and garbage-collect the code snapshots of a storage location")

    def location(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "location", metavar="URL", help="s3://bucket/folder, az://container/folder or gs://bucket/folder"
        )
        p.add_argument(
            "--credentials",
            metavar="TYPE/NAME",
            help="a credentials block, e.g. aws-credentials/prod (default: the SDK's own chain; "
            "Azure: AZURE_STORAGE_CONNECTION_STRING)",
        )
        p.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint (MinIO, SeaweedFS)")

    p = ssub.add_parser("ls", help="list the snapshots with the versions that use them")
    location(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_ls)
    p = ssub.add_parser("show", help="show one snapshot's files")
    location(p)
    p.add_argument("id", metavar="ID", help="a snapshot id or a unique prefix of one")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_show)
    p = ssub.add_parser(
        "gc",
        help="delete snapshots no version uses, and packs no snapshot needs",
        description="Deletes what no version references and is older than the grace period; safe while "
        "another deploy runs. The versions are read from flowdeck's store and, when one is configured "
        "(--api, FLOWDECK_API_URL, PREFECT_API_URL), from the Prefect server too; if either cannot be read, "
        "gc deletes nothing.",
    )
    location(p)
    p.add_argument(
        "--grace",
        type=_duration,
        default=3600.0,
        metavar="DURATION",
        help="keep anything younger than this (default 1h; a deploy must finish within it)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    p.set_defaults(func=_cmd_gc)
