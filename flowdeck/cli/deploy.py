"""`deploy`, `deployment`, `pull` and `run`."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from flowdeck.cli.output import (
    EXIT_OK,
    EXIT_USER,
    add_group,
    err,
    out,
    parse_params,
    stdout_to_stderr,
    store_resolver,
)
from flowdeck.errors import FlowdeckError, UsageError

if TYPE_CHECKING:
    from flowdeck.history import VersionRow


def _deploy_once(args: argparse.Namespace) -> int:
    from flowdeck.cli.registry import deploy_overrides
    from flowdeck.config import load_project
    from flowdeck.deploy import DeployOptions, deploy

    project = load_project(args.file)
    overrides, extra_params = deploy_overrides(args)
    options = DeployOptions(
        names=args.name, all=args.all, force=args.force, dry_run=args.dry_run, promote=not args.no_promote,
        version=args.version, params={**extra_params, **parse_params(args.param)}, tags=args.tag or None,
        pin_commit=args.pin_commit, strict=args.strict,
        install_requires=args.install_requires, resolver=store_resolver(), overrides=overrides,
        create_pool=args.create_pool, pull_steps=args.pull_steps, runner=args.runner)
    with stdout_to_stderr(args.json):
        results = deploy(project, options)
    if args.json:
        out(json.dumps([r.__dict__ for r in results], indent=2, default=str))
        return EXIT_OK
    for r in results:
        if r.status == "unchanged":
            out(f"{r.name}: unchanged (version {r.label}, revision {r.revision})")
        elif r.status.startswith("would"):
            out(f"{r.name}: {r.status} (version {r.label})")
            for line in r.diff:
                out(f"    {line}")
        else:
            live = "live" if r.live else "not live: promote it with `flowdeck deployment promote "
            live += "" if r.live else f"{r.name} --to {r.revision}`"
            out(f"{r.name}: {r.status} version {r.label} (revision {r.revision}, {live})")
    return EXIT_OK


def _cmd_deploy(args: argparse.Namespace) -> int:
    if not args.watch:
        return _deploy_once(args)
    from flowdeck.config import load_project
    from flowdeck.watch import snapshot, watch_changes

    root = load_project(args.file).root
    code = _deploy_or_report(args)
    # Take the first snapshot before announcing: a change made right after "watching" must be seen.
    before = snapshot(root)
    err(f"watching {root} for changes (Ctrl-C to stop)")
    for changed in watch_changes(root, before=before):
        err(f"changed: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
        code = _deploy_or_report(args)
    return code


def _deploy_or_report(args: argparse.Namespace) -> int:
    try:
        return _deploy_once(args)
    except FlowdeckError as exc:
        err(f"error: {exc}")
        return EXIT_USER


def _cmd_deployment_ls(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    rows = current().list_deployments()
    if args.json:
        out(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return EXIT_OK
    if not rows:
        out("no deployments yet (run `flowdeck deploy`)")
    for r in rows:
        out(f"{r.name}  live revision {r.live_revision if r.live_revision is not None else '-'} "
             f"of {r.latest_revision}  updated {r.updated_at}")
    return EXIT_OK


def _cmd_deployment_show(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    row = current().get_version(args.name, args.version)
    data = {"deployment": row.deployment, "revision": row.revision, "version": row.label, "live": row.live,
            "created_at": row.created_at, "version_info": row.version_info,
            "record": {k: v for k, v in row.record.items() if k != "source"}}
    if args.json:
        out(json.dumps(data, indent=2, default=str))
    else:
        import yaml

        out(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    return EXIT_OK


def _cmd_deployment_history(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    versions = current().list_versions(args.name)
    if args.json:
        out(json.dumps([{"revision": v.revision, "version": v.label, "live": v.live, "created_at": v.created_at,
                          "commit": v.version_info.get("commit_sha"), "message": v.version_info.get("message")}
                         for v in versions], indent=2))
        return EXIT_OK
    out(f"{'':2}{'REV':>4}  {'VERSION':<34} {'CREATED':<24} {'COMMIT':<10} MESSAGE")
    for v in versions:
        commit = (v.version_info.get("commit_sha") or "")[:8]
        message = v.version_info.get("message") or ""
        out(f"{'* ' if v.live else '  '}{v.revision:>4}  {v.label:<34} {v.created_at:<24} {commit:<10} {message}")
    return EXIT_OK


def _made_live(row: VersionRow) -> str:
    # On a server, a concurrent deploy can replace the version right after (a warning names the winner).
    state = "is live" if row.live else "was made live, then replaced by a concurrent deploy"
    return f"{row.deployment}: version {row.label} (revision {row.revision}) {state}"


def _cmd_deployment_rollback(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    row = current().set_live(args.name, args.to, previous=args.to is None)
    out(_made_live(row))
    return EXIT_OK


def _cmd_deployment_promote(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    row = current().set_live(args.name, args.to)
    out(_made_live(row))
    return EXIT_OK


def _cmd_deployment_rm(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    name = current().delete_deployment(args.name)
    out(f"removed {name} and its versions")
    return EXIT_OK


def _cmd_pull(args: argparse.Namespace) -> int:
    from flowdeck.worker import pull_deployment

    if args.no_cache:
        os.environ["FLOWDECK_NO_CACHE"] = "1"
    with stdout_to_stderr():
        result = pull_deployment(args.name, args.version, args.dir, resolver=store_resolver(), strict=args.strict,
                                 install_requires=args.install_requires)
    if args.json:
        out(json.dumps({"deployment": result.deployment, "revision": result.revision, "version": result.label,
                         "directory": str(result.directory), "outputs": result.outputs}, indent=2, default=str))
    else:
        out(str(result.directory))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if args.name == "ls":
        return _cmd_run_ls(args)
    if args.extra:
        raise UsageError(f"unexpected argument '{args.extra}'")
    from flowdeck.worker import run_deployment

    if args.no_cache:
        os.environ["FLOWDECK_NO_CACHE"] = "1"
    param_file = None
    if args.param_file:
        try:
            with open(args.param_file, encoding="utf-8") as fh:
                param_file = (json.load(fh) if args.param_file.endswith(".json")
                              else _yaml_mapping(fh.read(), args.param_file))
        except OSError as exc:
            raise FlowdeckError(f"cannot read {args.param_file}: {exc.strerror}") from None
        except (ValueError, RecursionError) as exc:
            raise FlowdeckError(f"{args.param_file} is not valid JSON: {exc}") from None
        if not isinstance(param_file, dict):
            raise FlowdeckError(f"{args.param_file} must hold a mapping of parameter names to values")
    with stdout_to_stderr():
        result = run_deployment(args.name, version=args.version, directory=args.dir,
                                parameters=parse_params(args.param), param_file=param_file,
                                run_name=args.run_name, idempotency_key=args.idempotency_key,
                                resolver=store_resolver(), strict=args.strict)
    run = result.run
    if not result.executed:
        err(f"run {run.id} already used idempotency key '{run.idempotency_key}' ({run.status}); not run again")
        out(json.dumps(run.result) if run.result is not None else "")
        return EXIT_OK if run.status == "completed" else EXIT_USER
    if run.status != "completed":
        hint = f" (hint: the full traceback is in {result.log_path})" if result.log_path else ""
        err(f"error: run {run.id} of {run.deployment} (revision {run.revision}) failed: {run.error}{hint}")
        return EXIT_USER
    err(f"run {run.id} of {run.deployment} (revision {run.revision}) completed")
    out(json.dumps(run.result, default=str))
    return EXIT_OK


def _yaml_mapping(text: str, name: str) -> Any:
    # The same bounded loader as prefect.yaml: an alias bomb or deep nesting is refused with a location.
    from flowdeck.source import parse_yaml_text

    data, _, _ = parse_yaml_text(text, name)
    return data


def _cmd_run_ls(args: argparse.Namespace) -> int:
    from flowdeck.registry import current

    runs = current().list_runs(args.extra)
    if args.json:
        out(json.dumps([r.__dict__ for r in runs], indent=2, default=str))
        return EXIT_OK
    if not runs:
        out("no runs yet")
    for r in runs:
        out(f"{r.id:>5}  {r.status:<10} {r.deployment} rev {r.revision}  {r.started_at}"
             f"{'  ' + r.run_name if r.run_name else ''}")
    return EXIT_OK


def add_deploy_commands(sub: Any) -> None:
    """`deploy`, `deployment`, `pull` and `run`."""
    p = sub.add_parser("deploy", help="build, push and record deployments as new versions",
                       description="Run build and push steps, template each selected deployment and record it as "
                                   "a new version, only when something changed.")
    p.add_argument("--name", "-n", action="append", default=[], metavar="PATTERN",
                   help="deployment name, flow/name, or a * pattern (repeatable)")
    p.add_argument("--all", action="store_true", help="every deployment in the file (atomic)")
    p.add_argument("--file", "--prefect-file", "-f", dest="file", default=None,
                   help="the prefect.yaml to use (--prefect-file as in Prefect)")
    p.add_argument("--force", action="store_true", help="record a version even when nothing changed")
    p.add_argument("--dry-run", action="store_true", help="run nothing; show create / update (diff) / unchanged")
    p.add_argument("--no-promote", action="store_true", help="record the version without making it live")
    p.add_argument("--version", default=None, help="the version label")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="override a parameter")
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="set the tags (repeatable)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--watch", action="store_true", help="deploy again when prefect.yaml or a project file changes")
    p.add_argument("--pin-commit", action="store_true",
                   help="pin git_clone steps that clone this project to the commit being deployed")
    p.add_argument("--strict", action="store_true", help="a missing environment variable is an error")
    p.add_argument("--install-requires", action="store_true", help="pip install custom steps' requirements")
    p.add_argument("--pull-steps", "--steps", dest="pull_steps", choices=("as-written", "flowdeck"), default=None,
                   help="`flowdeck`: publish built-in pull steps as flowdeck.steps.* so Prefect's own workers run "
                        "flowdeck's pulls (default: the file's `flowdeck: {pull_steps: ...}`, else as written)")
    p.add_argument("--runner", choices=("prefect", "flowdeck"), default=None,
                   help="`flowdeck`: the work pool runs `flowdeck flow-run execute` (job_variables.command) so "
                        "flowdeck runs the whole flow run (default: the file's `flowdeck: {runner: ...}`, else "
                        "prefect)")
    from flowdeck.cli.registry import add_prefect_deploy_flags

    add_prefect_deploy_flags(p)
    p.set_defaults(func=_cmd_deploy)

    dsub = add_group(sub, "deployment", "deployments and their version history")
    p = dsub.add_parser("ls", help="list deployments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_deployment_ls)
    p = dsub.add_parser("show", help="show the live (or a given) version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", default=None, metavar="V", help="revision number or version label")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_deployment_show)
    p = dsub.add_parser("history", help="every version, and which is live")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_deployment_history)
    p = dsub.add_parser("rollback", help="make the previous (or a given) version live")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--to", default=None, metavar="V", help="revision number or version label")
    p.set_defaults(func=_cmd_deployment_rollback)
    p = dsub.add_parser("promote", help="make a version live")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--to", required=True, metavar="V", help="revision number or version label")
    p.set_defaults(func=_cmd_deployment_promote)
    p = dsub.add_parser("rm", help="remove a deployment and its versions")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_deployment_rm)

    p = sub.add_parser("pull", help="run a deployment's pull steps (on a worker)",
                       description="Run the live (or given) version's pull steps in DIR and print the final "
                                   "working directory.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", default=None, metavar="V")
    p.add_argument("--dir", default=None, help="where to run the pull steps (default: a new directory)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--install-requires", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="do not use the worker cache")
    p.set_defaults(func=_cmd_pull)

    p = sub.add_parser("run", help="pull, then call the flow; `run ls` lists runs",
                       description="Pull the deployment, import its entrypoint from the final directory and "
                                   "call it with its parameters. `flowdeck run ls [NAME]` lists recorded runs.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("extra", nargs="?", default=None, help=argparse.SUPPRESS)
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="override a parameter (JSON values)")
    p.add_argument("--param-file", default=None, metavar="F", help="a JSON or YAML file of parameters")
    p.add_argument("--version", default=None, metavar="V")
    p.add_argument("--dir", default=None)
    p.add_argument("--run-name", default=None, metavar="N")
    p.add_argument("--idempotency-key", default=None, metavar="K", help="a key already used does not run again")
    p.add_argument("--json", action="store_true", help="with `run ls`: print JSON")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--no-cache", action="store_true")
    p.set_defaults(func=_cmd_run)

