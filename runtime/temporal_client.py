"""One way to reach Temporal for every process: the Temporal CLI's own environment configuration
(`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS settings, `TEMPORAL_PROFILE`
and the TOML config file), so a worker started beside `temporal` reaches the same cluster."""

from __future__ import annotations

import os

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig, ClientConnectConfig
from temporalio.runtime import Runtime

from runtime.config import check_secret


def connect_config() -> ClientConnectConfig:
    config = ClientConfig.load_client_connect_config(profile=os.environ.get("TEMPORAL_PROFILE")).copy()
    config.setdefault("target_host", "localhost:7233")
    config.setdefault("namespace", "default")
    # The API key may come from the CLI's TOML profile as well as the environment.
    check_secret("the Temporal API key (TEMPORAL_API_KEY or profile api_key)", config.get("api_key"))
    return config


def describe_target() -> str:
    """Where we connect, for logs: never the API key."""
    config = connect_config()
    return f"{config['target_host']} namespace={config['namespace']}"


class TemporalUnreachable(ConnectionError):
    """Raised instead of the SDK's bare RuntimeError, naming where we tried (never the API key)."""


async def connect_client(runtime: Runtime | None = None) -> Client:
    try:
        return await Client.connect(
            **connect_config(),
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
    except RuntimeError as exc:
        raise TemporalUnreachable(f"cannot connect to Temporal at {describe_target()}: {exc}") from None
