"""Which sandbox each connection of a demo config gets: its connector's ``demo_fake`` hook, else
the connector's ``fake`` with the credentials it accepts, else none."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from okrsync.config import read_yaml
from okrsync.demo import demo_environ, demo_sandboxes
from okrsync.examples import example
from okrsync.plugins import load_registry
from okrsync.sdk.connector import ConnectionConfig, Connector, SandboxFake, Sink
from okrsync.sdk.models import KeyResultUpdate, PushResult


class BoardConnection(ConnectionConfig):
    pass


class BoardSink(Sink[BoardConnection, Any]):
    async def push(
        self, update: KeyResultUpdate, mirror: Any, previous_ref: str | None
    ) -> PushResult:
        raise NotImplementedError  # never created here


def region_fake(connection: Mapping[str, Any]) -> SandboxFake:
    """A third-party hook: the fake follows the connection's config."""
    region = str(connection.get("region", "eu"))
    return SandboxFake(app=("board app", region), credentials={"token": f"tok-{region}"})


without_fake = Connector(
    type="nofake",
    summary="a connector that ships no fake",
    connection_model=BoardConnection,
    implementation=BoardSink,
)
with_fake = dataclasses.replace(
    without_fake,
    type="withfake",
    fake=lambda: ("plain app",),
    sandbox_credentials={"key": "made-up"},
)
with_hook = dataclasses.replace(with_fake, type="hooked", demo_fake=region_fake)
CONNECTORS = {c.type: c for c in (without_fake, with_fake, with_hook)}


def test_the_hook_derives_the_sandbox_from_the_connection() -> None:
    connections = {
        "board_us": {"type": "hooked", "region": "us", "url": "${DEMO_BOARD_US_URL}"},
        "board_eu": {"type": "hooked"},
        "plain": {"type": "withfake"},
        "offline": {"type": "nofake"},
    }
    sandboxes = demo_sandboxes(connections, CONNECTORS)
    assert sandboxes == {
        "board_us": SandboxFake(("board app", "us"), {"token": "tok-us"}),
        "board_eu": SandboxFake(("board app", "eu"), {"token": "tok-eu"}),
        "plain": SandboxFake(("plain app",), {"key": "made-up"}),  # the default: fake + sandbox()
    }
    environ = demo_environ(
        {name: f"http://127.0.0.1:{port}" for port, name in enumerate(sandboxes, 9001)},
        {name: sandbox.credentials for name, sandbox in sandboxes.items()},
        Path("/tmp/w.db"),
        date(2026, 12, 7),
    )
    assert environ["DEMO_BOARD_US_URL"] == "http://127.0.0.1:9001"
    assert environ["DEMO_BOARD_US_TOKEN"] == "tok-us"
    assert environ["DEMO_PLAIN_KEY"] == "made-up"
    assert not any(key.startswith("DEMO_OFFLINE_") for key in environ)


def test_a_connection_of_an_uninstalled_type_stops_the_demo() -> None:
    with pytest.raises(SystemExit, match="'elsewhere'"):
        demo_sandboxes({"x": {"type": "elsewhere"}}, CONNECTORS)


def test_the_shipped_demo_config_gets_a_sandbox_for_every_connection_but_the_warehouse() -> None:
    connections = read_yaml(example("demo")).data["connections"]
    sandboxes = demo_sandboxes(connections, load_registry().connectors)
    assert set(sandboxes) == set(connections) - {"warehouse"}
    assert all(sandbox.app is not None for sandbox in sandboxes.values())
