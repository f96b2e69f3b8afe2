"""Shared fixtures: the Teams webhook fake on a loopback socket, and a sink with short waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.teams import TeamsConnection, TeamsSink
from connectors.teams.fake import TeamsState, teams_app, workflow_url
from okrsync.sandbox import SandboxServer
from okrsync.sdk.http import RetryPolicy


class FastTeamsSink(TeamsSink):
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


@dataclass
class Teams:
    server: SandboxServer
    state: TeamsState


@pytest.fixture
def teams() -> Iterator[Teams]:
    app = teams_app()
    with SandboxServer(app, name="teams") as server:
        yield Teams(server, app.state.teams)


def make_sink(url: str, **fields: Any) -> TeamsSink:
    config = TeamsConnection.model_validate({"type": "teams", "webhook_url": url, **fields})
    return FastTeamsSink("team_channel", config)


@pytest.fixture
async def sink(teams: Teams) -> AsyncIterator[TeamsSink]:
    made = make_sink(workflow_url(teams.server.url))
    yield made
    await made.aclose()
