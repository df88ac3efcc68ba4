"""`ls-files` and `check-ignore`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowdeck.cli.output import (
    EXIT_OK,
    EXIT_USER,
    err,
    out,
)


def _storage_ignore_file(args: argparse.Namespace) -> str | None:
    from flowdeck.ignore_cli import push_ignore_file

    if args.ignore_file is not None:
        return str(args.ignore_file) or None
    if args.deployment is not None:
        return push_ignore_file(Path(args.file), args.deployment)
    return ".prefectignore"


def _cmd_ls_files(args: argparse.Namespace) -> int:
    from flowdeck.ignore_cli import list_files
    from flowdeck.steps.storage.transfer import human_bytes

    files = list_files(Path.cwd(), _storage_ignore_file(args))
    for item in files:
        out(item.path)
    total = sum(f.size for f in files)
    err(f"{len(files)} file{'s' if len(files) != 1 else ''}, {human_bytes(total)}")
    return EXIT_OK


def _cmd_check_ignore(args: argparse.Namespace) -> int:
    from flowdeck.ignore_cli import check_ignore

    any_excluded = False
    for result in check_ignore(Path.cwd(), args.paths, _storage_ignore_file(args)):
        any_excluded = any_excluded or result.excluded
        if args.verbose_rules:
            decided = result.others[0][1] if result.others and result.git_excluded else result.rule
            out(f"{decided if decided is not None else '::'}\t{result.path}")
            continue
        git = (f"excluded by {result.rule}" if result.git_excluded else
               f"included by {result.rule}" if result.rule is not None else "included (no rule)")
        if not result.others:
            out(f"{result.path}: {git}")
            continue
        # git's rule and Prefect's differ: the file is uploaded (the union), and both readings are shown.
        prefect = "; ".join(
            f"{label}: {'excluded' if rule is not None and not rule.negated else 'included'}"
            f"{f' by {rule}' if rule is not None else ''}" for label, rule in result.others)
        out(f"{result.path}: included (uploaded because one rule keeps it) - git: {git}; {prefect}")
    return EXIT_OK if any_excluded else EXIT_USER


def add_storage_commands(sub: Any) -> None:
    def ignore_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--deployment", metavar="NAME", help="use this deployment's push step's ignore_file")
        p.add_argument("--file", "--prefect-file", dest="file", default="prefect.yaml",
                       help="the prefect.yaml to read")
        p.add_argument("--ignore-file", metavar="F", help="ignore file (default .prefectignore)")

    ls = sub.add_parser("ls-files", help="list the files a storage push would upload, with the total size")
    ignore_options(ls)
    ls.set_defaults(func=_cmd_ls_files)
    ci = sub.add_parser("check-ignore", help="say which rule (file:line:pattern) excludes a path",
                        description="Exit 0 when at least one path is excluded, 1 otherwise (like git).")
    ci.add_argument("paths", nargs="+", metavar="PATH")
    ignore_options(ci)
    ci.add_argument("--porcelain", dest="verbose_rules", action="store_true",
                    help="print `source:line:pattern<TAB>path` like `git check-ignore -v -n`")
    ci.set_defaults(func=_cmd_check_ignore)


