"""``flowdeck run`` against a server sends the flow's output as logs of the flow run, masked."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tests.conftest import CliRunner, write_tree
from tests.registry.test_server_deploy import api
from tests.servers.prefect import PrefectServer

FLOW = '''
import logging
import os
import sys


def chatty(n: int = 3):
    for i in range(n):
        print(f"line {i} of {n}")
    print("the token is " + os.environ["ETL_API_TOKEN"])
    print("to stderr", file=sys.stderr)
    logging.getLogger("etl.load").info("loaded %d rows", 42)
    logging.getLogger("etl.load").warning("using %s", os.environ["ETL_API_TOKEN"])
    return n
'''


def test_run_sends_the_flows_output_to_the_server_as_masked_logs(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    sentinel = "sentinel-" + secrets.token_hex(12)
    write_tree(project, {"flows/chatty.py": FLOW, "prefect.yaml": (
        "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: " + str(project) + "\n"
        f"deployments:\n- name: talk\n  flow_name: chatty-{uid}\n  entrypoint: flows/chatty.py:chatty\n"
        "  parameters: {n: 3}\n")})
    deployed = cli.run("deploy", "--all")
    assert deployed.code == 0, deployed.output
    ran = cli.run("run", f"chatty-{uid}/talk", env={"ETL_API_TOKEN": sentinel})
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout) == 3 and sentinel not in ran.output
    # The output still reaches the console (stderr: stdout is kept for the result).
    assert "line 2 of 3" in ran.stderr and "loaded 42 rows" not in ran.stdout
    runs = json.loads(cli.run("run", "ls", f"chatty-{uid}/talk", "--json").stdout)
    assert len(runs) == 1
    logs = api(server, "POST", "logs/filter", {"logs": {"flow_run_id": {"any_": [runs[0]["id"]]}},
                                               "sort": "TIMESTAMP_ASC", "limit": 200})
    entries = [(log["name"], log["level"], log["message"]) for log in logs]
    assert all(log["flow_run_id"] == runs[0]["id"] for log in logs)
    assert not any(sentinel in message for _, _, message in entries), entries
    assert [m for _, _, m in entries if m.startswith("line ")] == ["line 0 of 3", "line 1 of 3", "line 2 of 3"]
    assert ("flowdeck.flow_run", 20, "the token is ********") in entries
    assert ("flowdeck.flow_run", 20, "to stderr") in entries
    assert ("etl.load", 20, "loaded 42 rows") in entries
    assert ("etl.load", 30, "using ********") in entries
    # flowdeck's own lines frame the flow's: first the revision that ran, last how it ended.
    assert entries[0][2].startswith("flowdeck: running revision 1") and entries[-1][2] == "flowdeck: run completed"
