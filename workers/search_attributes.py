"""Make sure the namespace knows the monitor's search attributes before any workflow runs:
create them where we may (a dev server), else exit naming the command an operator must run."""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.common import search_attributes as sa

log = logging.getLogger(__name__)

_CLI_TYPE = {IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword", IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int"}


class MissingSearchAttributes(RuntimeError):
    pass


def create_command(namespace: str) -> str:
    names = " ".join(f"--name {k.name}" for k in sa.ALL)
    types = " ".join(f"--type {_CLI_TYPE[IndexedValueType.ValueType(k.indexed_value_type)]}" for k in sa.ALL)
    return f"temporal operator search-attribute create --namespace {namespace} {names} {types}"


async def _existing(client: Client) -> dict[str, int]:
    resp = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
    return dict(resp.custom_attributes)


async def ensure_search_attributes(client: Client) -> None:
    try:
        existing = await _existing(client)
    except RPCError as exc:
        if exc.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
            # Temporal Cloud: registered through its own tooling; we cannot check from here.
            log.warning("cannot list search attributes (%s); assuming they exist", exc.status.name)
            return
        raise
    missing = [k for k in sa.ALL if k.name not in existing]
    wrong = [k.name for k in sa.ALL if k.name in existing and existing[k.name] != int(k.indexed_value_type)]
    if wrong:
        raise MissingSearchAttributes(f"search attributes {wrong} exist with another type in {client.namespace}")
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in missing},
            )
        )
    except RPCError as exc:
        raise MissingSearchAttributes(
            f"search attributes {[k.name for k in missing]} are missing in namespace {client.namespace} and "
            f"could not be created ({exc.status.name}). Create them with:\n  {create_command(client.namespace)}"
        ) from None
    # Registration is eventually visible: wait until the server lists them all.
    for _ in range(50):
        existing = await _existing(client)
        if all(k.name in existing for k in sa.ALL):
            break
        await asyncio.sleep(0.2)
    log.info("created search attributes %s in namespace %s", [k.name for k in missing], client.namespace)
