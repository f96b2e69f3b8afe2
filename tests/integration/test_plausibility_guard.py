"""Implausible answers over real sockets: the fakes answer numbers no metric can have, and
``okrsync sync`` refuses them as the metric's error (a subprocess each, as a user runs it).

* an ``http_json`` metric with ``min: 0`` answered ``-5`` keeps its key result's value, and
  ``okrsync status --json`` and the API show the metric's error on the key result and the
  connection;
* Jira's issue count and HubSpot's record count answered negative (the counts issue 18 saw
  stored) are refused without any ``min``: a count is never negative.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.http_json.fake import DEFAULT_TOKEN, analytics_app
from connectors.hubspot.fake import DEFAULT_TOKEN as HUBSPOT_TOKEN
from connectors.hubspot.fake import hubspot_app
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.app import App
from okrsync.sandbox import SandboxServer
from okrsync.sandbox.faults import Fault, FaultKind
from okrsync.settings import Settings

HTTP_JSON_CONFIG = """\
version: 1
connections:
  api: {type: http_json, url: "API_URL", auth: {type: bearer, token: "API_TOKEN"}}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won_total:
    connection: api
    request_path: /v1/deals/summary
    params: {status: won}
    json_path: $.total
    min: 0
objectives:
  - id: sales
    title: Sell
    cycle: q4
    key_results:
      - {id: won, title: Won, metric: won_total, kind: increase, start: 0, target: 1000000}
"""

COUNTS_CONFIG = """\
version: 1
connections:
  jira: {type: jira, url: "JIRA_URL", email: "JIRA_EMAIL", api_token: "JIRA_TOKEN"}
  crm: {type: hubspot, base_url: "CRM_URL", access_token: "CRM_TOKEN"}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  bugs: {connection: jira, jql: issuetype = Bug, count: approximate}
  deals: {connection: crm, object: deals}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {id: bugs, title: Bugs, metric: bugs, kind: decrease, start: 100, target: 0}
      - {id: deals, title: Deals, metric: deals, kind: increase, start: 0, target: 100}
"""


class Cli:
    def __init__(self, config: Path, database_url: str) -> None:
        self.env = {
            **os.environ,
            "OKRSYNC_CONFIG": str(config),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_LOG_FORMAT": "json",
        }

    def __call__(self, *args: str, expect: int = 0) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "okrsync", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        shown = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert done.returncode == expect, shown
        assert done.stdout.strip(), shown
        return json.loads(done.stdout)


def key_results(status: Any) -> dict[str, Any]:
    return {kr["id"]: kr for o in status["objectives"] for kr in o["key_results"]}


def connections(status: Any) -> dict[str, Any]:
    return {c["name"]: c for c in status["connections"]}


@pytest.fixture
def api() -> Iterator[SandboxServer]:
    with SandboxServer(analytics_app(), name="api") as server:
        yield server


def test_an_answer_below_min_is_the_metric_error_and_the_value_stays(
    api: SandboxServer, tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "okrsync.yaml"
    text = HTTP_JSON_CONFIG.replace("API_URL", api.url).replace("API_TOKEN", DEFAULT_TOKEN)
    config.write_text(text)
    cli = Cli(config, database_url)
    cli("sync")
    before = key_results(cli("status"))["won"]
    assert before["value"] is not None and before["last_error"] is None

    api.faults.add(
        Fault(
            kind=FaultKind.STATUS,
            status=200,
            body='{"total": -5, "count": 3}',
            path="/v1/deals/summary",
            times=-1,
        )
    )
    report = cli("sync", expect=1)
    assert any("-5 is below the metric's min 0" in e for e in report["errors"])
    assert any("/v1/deals/summary" in r.path for r in api.log.snapshot()[-1:])

    status = cli("status")
    after = key_results(status)["won"]
    assert after["value"] == before["value"]  # the -5 was never recorded
    assert "metric 'won_total'" in after["last_error"]
    assert "refused the answer: -5 is below the metric's min 0" in after["last_error"]
    health = connections(status)["api"]
    assert health["status"] == "failing"
    assert "refused the answer: -5 is below the metric's min 0" in health["last_error"]

    # the API shows the same: the key result's value and error, the connection's health
    token = "plausibility-api-token"
    settings = Settings(
        config=config, database_url=SecretStr(database_url), api_token=SecretStr(token)
    )
    app = App.open(settings)
    try:
        with (
            SandboxServer(build_app(ApiContext.from_app(app)), name="okrsync-api") as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            shown = http.get("/api/v1/key-results/won").json()
            listed = http.get("/api/v1/connections").json()["connections"]
    finally:
        asyncio.run(app.aclose())
    assert shown["value"] == before["value"]
    assert "refused the answer: -5 is below the metric's min 0" in shown["last_error"]
    (api_health,) = [c for c in listed if c["name"] == "api"]
    assert "refused the answer: -5 is below the metric's min 0" in api_health["last_error"]


def test_negative_vendor_counts_are_refused_without_any_min(
    tmp_path: Path, database_url: str
) -> None:
    with (
        SandboxServer(jira_app(), name="jira") as jira,
        SandboxServer(hubspot_app(), name="crm") as crm,
    ):
        config = tmp_path / "okrsync.yaml"
        text = (
            COUNTS_CONFIG.replace("JIRA_URL", jira.url)
            .replace("JIRA_EMAIL", DEFAULT_EMAIL)
            .replace("JIRA_TOKEN", DEFAULT_API_TOKEN)
            .replace("CRM_URL", crm.url)
            .replace("CRM_TOKEN", HUBSPOT_TOKEN)
        )
        config.write_text(text)
        jira.faults.add(
            Fault(
                kind=FaultKind.STATUS,
                status=200,
                body='{"count": -548777266265175}',
                path="/search/approximate-count$",
                times=-1,
            )
        )
        crm.faults.add(
            Fault(
                kind=FaultKind.STATUS,
                status=200,
                body='{"total": -1218552026, "results": []}',
                path="/crm/v3/objects/deals/search$",
                times=-1,
            )
        )
        cli = Cli(config, database_url)
        cli("sync", expect=1)
        status = cli("status")
        jira_asked = [r.path for r in jira.log.snapshot()]
        crm_asked = [r.path for r in crm.log.snapshot()]
    assert any(p.endswith("/search/approximate-count") for p in jira_asked)
    assert any(p.endswith("/crm/v3/objects/deals/search") for p in crm_asked)
    krs = key_results(status)
    assert krs["bugs"]["value"] is None
    assert "-548777266265175 is a negative count" in krs["bugs"]["last_error"]
    assert krs["deals"]["value"] is None
    assert "-1218552026 is a negative count" in krs["deals"]["last_error"]
    health = connections(status)
    assert "negative count" in health["jira"]["last_error"]
    assert "negative count" in health["crm"]["last_error"]
