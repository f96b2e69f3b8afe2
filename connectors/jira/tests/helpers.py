"""Shared pieces of the Jira connector tests: a quick-retrying connector, fakes, updates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from starlette.applications import Starlette

from connectors.jira import JiraConnection, JiraConnector, JiraQuery
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, DEFAULT_PAT, jira_app
from connectors.jira.fake.data import JiraData
from okrsync.sandbox import SandboxServer
from okrsync.sdk.http import RetryPolicy
from okrsync.sdk.models import CycleWindow, KeyResultUpdate, Query, Status

CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
OBSERVED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)


class FastJira(JiraConnector):
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


@dataclass
class Site:
    server: SandboxServer
    app: Starlette

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data(self) -> JiraData:
        data: JiraData = self.app.state.jira
        return data


def serve(deployment: Literal["cloud", "datacenter"] = "cloud", **options: Any) -> Iterator[Site]:
    app = jira_app(deployment=deployment, **options)
    with SandboxServer(app, name=f"jira-{deployment}") as server:
        yield Site(server, app)


def connect(url: str, deployment: str = "cloud", **overrides: Any) -> FastJira:
    fields: dict[str, Any] = {
        "type": "jira",
        "url": url,
        "deployment": deployment,
        "requests_per_second": None,
        "issue_write_interval": 0,
    }
    if deployment == "cloud":
        fields.update(email=DEFAULT_EMAIL, api_token=DEFAULT_API_TOKEN)
    else:
        fields.update(personal_access_token=DEFAULT_PAT)
    fields.update(overrides)
    return FastJira("jira-test", JiraConnection.model_validate(fields))


def query(metric: str = "okr_metric", **spec: Any) -> Query[JiraQuery]:
    parsed = JiraQuery.model_validate(spec)
    return Query(
        key=Query.make_key("jira-test", parsed, CYCLE),
        connection="jira-test",
        metrics=(metric,),
        spec=parsed,
        cycle=CYCLE,
    )


def update(value: str = "30", progress: str = "0.3", **changes: Any) -> KeyResultUpdate:
    fields: dict[str, Any] = {
        "objective_id": "delivery",
        "objective_title": "Ship the Q4 roadmap",
        "key_result_id": "epic_done",
        "key_result_title": "Finish 40 stories",
        "cycle_id": "2026-Q4",
        "kind": "increase",
        "value": Decimal(value),
        "start": Decimal(0),
        "target": Decimal(100),
        "unit": "%",
        "progress": Decimal(progress),
        "progress_display": Decimal(progress),
        "status": Status.AT_RISK,
        "observed_at": OBSERVED,
        "idempotency_key": f"delivery-{value}",
        **changes,
    }
    return KeyResultUpdate(**fields)
