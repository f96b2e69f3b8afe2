"""Shared fixtures: the Slack fake on a loopback socket and a sink with quick retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.slack import SlackConnection, SlackSink
from connectors.slack.fake import BOT_TOKEN, SlackState, slack_app
from okrsync.sandbox import SandboxServer
from okrsync.sdk.http import RetryPolicy
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status

OBSERVED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)


class FastSlackSink(SlackSink):
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


class PagingSlackSink(FastSlackSink):
    """Small pages, so that the crash-safety search and name lookup must page."""

    history_page = 3
    channel_page = 4


@dataclass
class Slack:
    server: SandboxServer
    state: SlackState

    @property
    def api(self) -> str:
        return f"{self.server.url}/api/"


@pytest.fixture
def slack() -> Iterator[Slack]:
    app = slack_app()
    with SandboxServer(app, name="slack") as server:
        yield Slack(server, app.state.slack)


def make_sink(
    slack: Slack, token: str = BOT_TOKEN, cls: type[SlackSink] = FastSlackSink, **fields: Any
) -> SlackSink:
    config = SlackConnection.model_validate(
        {"type": "slack", "token": token, "base_url": slack.api, **fields}
    )
    return cls("team_chat", config)


@pytest.fixture
async def sink(slack: Slack) -> AsyncIterator[SlackSink]:
    made = make_sink(slack)
    yield made
    await made.aclose()


def kr_update(
    value: str = "375.5",
    progress: str = "0.3755",
    status: Status = Status.ON_TRACK,
    key: str = "d-1",
    **changes: Any,
) -> KeyResultUpdate:
    fields: dict[str, Any] = {
        "objective_id": "revenue",
        "objective_title": "Grow new-business revenue",
        "key_result_id": "bookings",
        "key_result_title": "Close $1000 in new bookings",
        "cycle_id": "2026-Q4",
        "kind": "increase",
        "value": Decimal(value),
        "start": Decimal(0),
        "target": Decimal(1000),
        "unit": "USD",
        "progress": Decimal(progress),
        "progress_display": Decimal(progress),
        "status": status,
        "observed_at": OBSERVED,
        "idempotency_key": key,
        **changes,
    }
    return KeyResultUpdate(**fields)


def objective_update(progress: str = "0.5", key: str = "o-1") -> ObjectiveUpdate:
    return ObjectiveUpdate(
        objective_id="revenue",
        objective_title="Grow new-business revenue",
        cycle_id="2026-Q4",
        owner="sales",
        progress=Decimal(progress),
        status=Status.AT_RISK,
        observed_at=OBSERVED,
        idempotency_key=key,
        key_results=(
            kr_update(),
            kr_update(
                "42",
                "0.6",
                Status.AT_RISK,
                key_result_id="win_rate",
                key_result_title="Win rate above 70%",
                unit="%",
                target=Decimal(70),
            ),
        ),
    )
