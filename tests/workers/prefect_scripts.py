"""Python run inside the worker-side environment (Prefect plus flowdeck) by the worker tests.

Secrets travel in the environment (``FD_TOKEN``, ``FD_AWS``), never in argv. Each script prints one
``FD_<NAME>=<json>`` line the tests read with :func:`result`.
"""

from __future__ import annotations

import json
from typing import Any

# The block types as prefect-github and prefect-aws register them (the packages need not be installed).
BLOCKS = r'''
import json, os
from typing import Optional
from pydantic import SecretStr
from prefect.blocks.core import Block

class GitHubCredentials(Block):
    _block_type_name = "GitHub Credentials"
    _block_type_slug = "github-credentials"
    token: Optional[SecretStr] = None

class AwsCredentials(Block):
    _block_type_name = "AWS Credentials"
    _block_type_slug = "aws-credentials"
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[SecretStr] = None
    region_name: Optional[str] = None

if os.environ.get("FD_TOKEN"):
    GitHubCredentials(token=os.environ["FD_TOKEN"]).save("repo-token", overwrite=True)
if os.environ.get("FD_AWS"):
    AwsCredentials(**json.loads(os.environ["FD_AWS"])).save("s3-code", overwrite=True)
'''

# Runs FD_STEPS with Prefect's own step runner.
RUN_STEPS = BLOCKS + r'''
import asyncio
from prefect.deployments.steps.core import run_steps
outputs = asyncio.run(run_steps(json.loads(os.environ["FD_STEPS"])))
print("FD_OUTPUT=" + json.dumps(outputs))
'''

# Creates a process work pool, a deployment (FD_DEPLOYMENT) and a flow run of it.
CREATE_RUN = BLOCKS + r'''
import asyncio
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

async def main():
    spec = json.loads(os.environ["FD_DEPLOYMENT"])
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(
                name=spec["pool"], type="process",
                base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            pass
        flow_id = await client.create_flow_from_name(spec["flow_name"])
        deployment_id = await client.create_deployment(
            flow_id=flow_id, name=spec["name"], entrypoint=spec["entrypoint"], work_pool_name=spec["pool"],
            pull_steps=spec["pull_steps"], job_variables=spec.get("job_variables") or {})
        run = await client.create_flow_run_from_deployment(deployment_id)
        print("FD_RUN=" + json.dumps(str(run.id)))

asyncio.run(main())
'''

# Reads a flow run's state and every log line the server holds for it.
READ_RUN = r'''
import asyncio, json, os
from uuid import UUID
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

async def main():
    run_id = UUID(os.environ["FD_RUN_ID"])
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    print("FD_RUN=" + json.dumps({"state": run.state.type.value if run.state else None,
                                  "message": run.state.message if run.state else None,
                                  "logs": [log.message for log in logs]}))

asyncio.run(main())
'''


def result(stdout: str, name: str) -> Any:
    """The value a script printed as ``FD_<name>=<json>``, or None."""
    prefix = f"FD_{name}="
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line.removeprefix(prefix))
    return None
