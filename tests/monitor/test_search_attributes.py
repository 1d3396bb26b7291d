"""The worker registers the monitor's search attributes where it may (a dev server), so a fresh
namespace works without a manual step; elsewhere it names the command an operator must run."""

from __future__ import annotations

import uuid

from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from tests.helpers.support import eventually
from workers.search_attributes import create_command, ensure_search_attributes
from workflows.common import search_attributes as sa


async def test_a_fresh_namespace_gets_the_search_attributes(client):
    namespace = f"fresh-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    fresh = await Client.connect(client.service_client.config.target_host, namespace=namespace)

    async def listed() -> dict[str, int]:
        resp = await fresh.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        return dict(resp.custom_attributes)

    async def namespace_ready() -> None:
        try:
            await listed()
        except Exception as exc:  # the namespace is eventually visible to every service
            raise AssertionError(exc) from None

    await eventually(namespace_ready, timeout=20)
    assert not {k.name for k in sa.ALL} & set(await listed())
    await ensure_search_attributes(fresh)
    have = await listed()
    assert {k.name: have.get(k.name) for k in sa.ALL} == {k.name: int(k.indexed_value_type) for k in sa.ALL}
    await ensure_search_attributes(fresh)  # a second worker: nothing to do, no error


def test_the_command_an_operator_must_run_names_every_attribute_and_type():
    command = create_command("prod")
    assert command.startswith("temporal operator search-attribute create --namespace prod ")
    for key, _kind in zip(sa.ALL, ["Keyword", "Keyword", "Keyword", "Keyword", "Int", "Keyword"], strict=True):
        assert f"--name {key.name}" in command
    assert command.endswith("--type Keyword --type Keyword --type Keyword --type Keyword --type Int --type Keyword")
