"""The source through okrsync's real engine, and simple-salesforce against the fake over HTTPS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import trustme
from simple_salesforce.api import Salesforce

from connectors.salesforce import connector
from connectors.salesforce.fake import CLIENT_ID, CLIENT_SECRET, OrgData, salesforce_app
from okrsync.config import load_config_text
from okrsync.domain.planner import plan_queries
from okrsync.engine.runtime import Connections
from okrsync.engine.sync import evaluate_plan, fetch_all
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import SandboxServer

TODAY = date(2026, 11, 15)
CONFIG = """\
version: 1
connections:
  crm:
    type: salesforce
    login_url: "{url}"
    auth: {{flow: client_credentials, client_id: "{client_id}", client_secret: "{secret}"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won:
    connection: crm
    soql: >-
      SELECT IsWon, COUNT(Id) FROM Opportunity WHERE IsClosed = true
      AND CloseDate >= {{cycle_start}} AND CloseDate <= {{cycle_end}} GROUP BY IsWon
    group_value: true
  lost:
    connection: crm
    soql: >-
      SELECT IsWon, COUNT(Id) FROM Opportunity WHERE IsClosed = true
      AND CloseDate >= {{cycle_start}} AND CloseDate <= {{cycle_end}} GROUP BY IsWon
    group_value: false
objectives:
  - id: sales
    title: Sales
    cycle: q4
    key_results:
      - {{id: win_rate, title: Win rate, value: "won / (won + lost) * 100",
         kind: stay_above, target: 30}}
"""


async def test_win_rate_from_two_counts_through_the_engine() -> None:
    app = salesforce_app(today=TODAY)
    org = app.state.org
    with SandboxServer(app, name="salesforce") as server:
        registry = {**load_registry().connectors, "salesforce": connector}
        text = CONFIG.format(url=server.url, client_id=CLIENT_ID, secret=CLIENT_SECRET)
        config = load_config_text(text, registry)
        plan = plan_queries(config)
        connections = Connections(config, registry)
        try:
            fetched = await fetch_all(plan, connections, Redactor([CLIENT_SECRET]))
        finally:
            await connections.aclose()
        q4 = [
            o
            for o in org.opportunities
            if date(2026, 10, 1) <= o["CloseDate"] <= date(2026, 12, 31)
        ]
        won = sum(1 for o in q4 if o["IsWon"])
        lost = sum(1 for o in q4 if o["IsClosed"] and not o["IsWon"])
        [(evaluation, item)] = evaluate_plan(
            config, plan, fetched.readings, "run-1", datetime(2026, 11, 15, tzinfo=UTC)
        )
        assert item.key_result.id == "win_rate"
        assert evaluation.value == Decimal(won) / Decimal(won + lost) * 100
        queries = [r for r in server.requests if "/query" in r.path]
        assert len(queries) == 1  # won and lost came from one GROUP BY request


@pytest.fixture
def https_fake(tmp_path: Path) -> Iterator[tuple[SandboxServer, str, OrgData]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    app = salesforce_app(today=TODAY)
    server = SandboxServer(
        app, name="salesforce-tls", ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)
    )
    with server:
        yield server, str(ca_file), app.state.org


def test_simple_salesforce_works_against_the_fake(
    https_fake: tuple[SandboxServer, str, OrgData], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file, org = https_fake
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    assert server.url.startswith("https://")
    sf = Salesforce(instance_url=server.url, session_id=org.issue_token(), version="60.0")
    result = sf.query("SELECT SUM(Amount) FROM Opportunity WHERE IsWon = true")
    total = sum((o["Amount"] for o in org.where(IsWon=True) if o["Amount"] is not None), Decimal(0))
    assert Decimal(repr(result["records"][0]["expr0"])) == total
    everything = sf.query_all(
        "SELECT Id, Amount FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert everything["totalSize"] == len(org.opportunities)
    assert len({r["Id"] for r in everything["records"]}) == len(org.opportunities)
    assert sf.api_usage["api-usage"].total == org.api_limit
    assert os.environ["REQUESTS_CA_BUNDLE"] == ca_file
