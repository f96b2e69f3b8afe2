"""A derived key result through okrsync's real engine: pipeline coverage.

Coverage = open pipeline amount in HubSpot (the fake portal) / the quarter's quota in a SQL table
(the ``sql`` connector on a SQLite file). The config is loaded with the real registry plus this
connector, planned, fetched and evaluated exactly as a sync pass does.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path

from connectors.hubspot import connector
from connectors.hubspot.fake import PIPELINES
from connectors.hubspot.tests.conftest import TOKEN, Fake
from okrsync.config import load_config_text
from okrsync.domain.planner import plan_queries
from okrsync.domain.progress import ENGINE_CONTEXT
from okrsync.engine.runtime import Connections
from okrsync.engine.sync import evaluate_plan, fetch_all
from okrsync.errors import QuotaExhaustedError
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import FaultKind

QUOTA = Decimal("1250000.00")
CONFIG = """\
version: 1
connections:
  crm:
    type: hubspot
    access_token: "${HUBSPOT_TOKEN}"
    base_url: "${HUBSPOT_URL}"
    search_requests_per_second: 50
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  open_pipeline:
    connection: crm
    object: deals
    aggregate: sum
    property: amount
    pipeline: Sales Pipeline
    stage_state: open
  won_deals:
    connection: crm
    stage: Closed Won
    date_property: closedate
  quota:
    connection: warehouse
    query: "SELECT amount FROM quotas WHERE cycle = :cycle_id"
objectives:
  - id: revenue
    title: Build enough pipeline
    cycle: 2026-Q4
    key_results:
      - id: coverage
        title: Keep pipeline coverage above 3x quota
        value: "open_pipeline / quota"
        kind: stay_above
        target: 3
      - id: wins
        title: Win 40 deals
        metric: won_deals
        kind: increase
        start: 0
        target: 40
"""


def environ(fake: Fake, tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "quota.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE quotas (cycle TEXT PRIMARY KEY, amount NUMERIC)")
        conn.execute(
            "INSERT INTO quotas VALUES ('2026-Q3', '900000'), ('2026-Q4', ?)", (str(QUOTA),)
        )
    return {"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_URL": fake.url, "WAREHOUSE_URL": f"sqlite:///{db}"}


async def test_pipeline_coverage_through_the_engine(fake: Fake, tmp_path: Path) -> None:
    registry = {**load_registry().connectors, "hubspot": connector}
    config = load_config_text(CONFIG, registry, environ=environ(fake, tmp_path))
    plan = plan_queries(config)
    assert sorted(plan.by_connection) == ["crm", "warehouse"]
    connections = Connections(config, registry)
    try:
        fetched = await fetch_all(plan, connections, Redactor([TOKEN]))
    finally:
        await connections.aclose()
    now = datetime(2026, 11, 15, tzinfo=UTC)
    results = {
        item.key_result.id: ev
        for ev, item in evaluate_plan(config, plan, fetched.readings, "run-1", now)
    }

    open_ids = {s["id"] for s in PIPELINES[0]["stages"] if s["metadata"]["isClosed"] == "false"}
    open_amount = sum(
        (
            Decimal(d.properties["amount"] or 0)
            for d in fake.portal.all("deals")
            if d.properties["pipeline"] == "default" and d.properties["dealstage"] in open_ids
        ),
        Decimal(0),
    )
    with localcontext(ENGINE_CONTEXT):
        expected = open_amount / QUOTA
    coverage = results["coverage"]
    assert coverage.ok, coverage.error
    assert coverage.value == expected
    assert [p["metric"] for p in coverage.provenance] == ["open_pipeline", "quota"]
    assert results["wins"].ok and results["wins"].value is not None and results["wins"].value > 0
    # one pipelines look-up shared by both HubSpot metrics, then their searches
    paths = [r.path for r in fake.server.requests]
    assert paths.count("/crm/v3/pipelines/deals") == 1
    assert fetched.api_calls == len(paths) + 1  # + the SQL query


async def test_a_spent_daily_limit_fails_only_hubspot(fake: Fake, tmp_path: Path) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=429,
        body='{"status":"error","message":"You have reached your daily limit.",'
        '"errorType":"RATE_LIMIT","correlationId":"x","policyName":"DAILY"}',
        path="/pipelines/",
    )
    registry = {**load_registry().connectors, "hubspot": connector}
    config = load_config_text(CONFIG, registry, environ=environ(fake, tmp_path))
    plan = plan_queries(config)
    connections = Connections(config, registry)
    try:
        fetched = await fetch_all(plan, connections, Redactor([TOKEN]))
    finally:
        await connections.aclose()
    crm = fetched.by_connection["crm"]
    assert crm and all(isinstance(r.error, QuotaExhaustedError) for r in crm)
    assert all(r.ok for r in fetched.by_connection["warehouse"])
