"""Vendor limits hold across replicas: a connection's call budget is one budget on one store.

Each "replica" here is what a daemon process has: its own engine on the PostgreSQL store, its
own :class:`PostgresLedger`, its own connector instance (made by ``Connector.create`` with that
ledger, as the core makes them) and so its own concurrency slots and HTTP client. They call one
vendor fake, which counts its limits per workspace or account, as the vendor does; the tests
count the calls the fake refused. Each sharing test has a control: the same replicas pacing in
memory, each for itself, which the fake does refuse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from structlog.testing import capture_logs

from connectors.github import connector as github_connector
from connectors.github.fake import GitHubFake, github_app
from connectors.github.tests.conftest import API as REPO_NAME
from connectors.github.tests.conftest import TOKEN as GITHUB_TOKEN
from connectors.github.tests.conftest import FastConnector as FastGitHub
from connectors.hubspot import connector as hubspot_connector
from connectors.hubspot.fake import HubSpotApi, hubspot_app
from connectors.hubspot.tests.conftest import TOKEN as HUBSPOT_TOKEN
from connectors.hubspot.tests.conftest import FastSource as FastHubSpot
from connectors.hubspot.tests.conftest import query as hubspot_query
from connectors.jira import connector as jira_connector
from connectors.jira.fake import DEFAULT_API_TOKEN as JIRA_TOKEN
from connectors.jira.fake import DEFAULT_EMAIL as JIRA_EMAIL
from connectors.jira.fake import JiraFake, jira_app
from connectors.jira.tests.helpers import FastJira
from connectors.salesforce import connector as salesforce_connector
from connectors.salesforce.tests.test_salesforce import CLIENT_ID as SALESFORCE_CLIENT
from connectors.salesforce.tests.test_salesforce import CLIENT_SECRET as SALESFORCE_SECRET
from connectors.salesforce.tests.test_salesforce import Fake as SalesforceFake
from connectors.salesforce.tests.test_salesforce import FastSource as FastSalesforce
from connectors.salesforce.tests.test_salesforce import one as salesforce_one
from connectors.salesforce.tests.test_salesforce import query as salesforce_query
from connectors.salesforce.tests.test_salesforce import start as start_salesforce
from connectors.slack import SlackMirror, SlackSink
from connectors.slack import connector as slack_connector
from connectors.slack.fake import BOT_TOKEN, SlackState, slack_app
from connectors.slack.tests.conftest import FastSlackSink, kr_update
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.errors import QuotaExhaustedError
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.sdk.connector import Connector, ConnectorBase, PushContext
from okrsync.sdk.ledger import LocalLedger
from okrsync.sdk.models import Reading
from okrsync.sdk.pace import TokenBucket
from okrsync.settings import Settings
from okrsync.store.budget_ledger import PostgresLedger, ledger_for
from okrsync.store.db import make_engine, upgrade

REPLICAS = 3
OKRS = "C0OKRS0001"
REPO = f"/repos/{REPO_NAME}"
SLACK_LIMIT = (5, 1.0)  # chat.update: five in any second, for the fake and for the sink alike


@dataclass
class Replica:
    engine: Engine
    ledger: PostgresLedger


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[Replica]]:
    """Three processes' worth of store access to one PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is single-node: budgets stay in memory (test_sqlite_keeps_budgets_…)")
    upgrade(make_engine(database_url))
    made = []
    for _ in range(REPLICAS):
        engine = make_engine(database_url)
        made.append(Replica(engine, PostgresLedger(engine)))
    yield made
    for replica in made:
        await replica.ledger.aclose()
        replica.engine.dispose()


def create(
    descriptor: Connector, cls: type[ConnectorBase[Any]], config: dict[str, Any], ledger: Any
) -> Any:
    """The connection as the core creates it, with a test subclass's quick retries."""
    fast = Connector(descriptor.type, descriptor.summary, descriptor.connection_model, cls)
    return fast.create("vendor", descriptor.connection_model.model_validate(config), ledger=ledger)


# --- Slack: a per-minute window per method and workspace --------------------------------------


class ScaledSlack(FastSlackSink):
    method_pace = {"chat.update": SLACK_LIMIT}


@dataclass
class Slack:
    server: SandboxServer
    state: SlackState


@pytest.fixture
def slack() -> Iterator[Slack]:
    app = slack_app()
    app.state.slack.limits["chat.update"] = SLACK_LIMIT
    with SandboxServer(app, name="slack") as server:
        yield Slack(server, app.state.slack)


async def update_from_every_replica(
    slack: Slack, ledgers: list[PostgresLedger | None], per_replica: int
) -> None:
    config = {"type": "slack", "token": BOT_TOKEN, "base_url": f"{slack.server.url}/api/"}
    sinks: list[SlackSink] = [
        create(slack_connector, ScaledSlack, config, ledger) for ledger in ledgers
    ]
    mirror = SlackMirror(channel=OKRS)
    try:
        first = await sinks[0].deliver(kr_update(), mirror, PushContext(first_attempt=True))
        await asyncio.gather(
            *(
                sink.push(kr_update(str(i), str(i / 1000), key=f"d-{n}-{i}"), mirror, first.ref)
                for n, sink in enumerate(sinks)
                for i in range(per_replica)
            ),
            return_exceptions=True,
        )
    finally:
        for sink in sinks:
            await sink.aclose()


async def test_three_replicas_stay_within_slacks_limit_together(
    replicas: list[Replica], slack: Slack
) -> None:
    await update_from_every_replica(slack, [r.ledger for r in replicas], per_replica=5)
    updates = [r for r in slack.server.requests if r.path.endswith("/chat.update")]
    assert slack.state.rate_limited["chat.update"] == 0
    assert len(updates) == REPLICAS * 5  # every update sent once: none refused and sent again


async def test_the_same_replicas_pacing_each_for_itself_are_refused_by_slack(
    slack: Slack,
) -> None:
    """The control: three budgets in memory send three times Slack's limit."""
    await update_from_every_replica(slack, [None] * REPLICAS, per_replica=5)
    assert slack.state.rate_limited["chat.update"] > 0


# --- HubSpot: a token bucket under the account's search limit ---------------------------------


@dataclass
class HubSpot:
    server: SandboxServer
    api: HubSpotApi


@pytest.fixture
def hubspot() -> Iterator[HubSpot]:
    app = hubspot_app(token=HUBSPOT_TOKEN, anchor=date(2026, 12, 31), search_per_second=5)
    with SandboxServer(app, name="hubspot") as server:
        yield HubSpot(server, app.state.api)


async def count_from_every_replica(
    hubspot: HubSpot, ledgers: list[PostgresLedger | None], per_replica: int
) -> None:
    config = {
        "type": "hubspot",
        "access_token": HUBSPOT_TOKEN,
        "base_url": hubspot.server.url,
        "search_requests_per_second": 4,  # what the connector paces to by default
        "max_retries": 0,
    }
    sources = [create(hubspot_connector, FastHubSpot, config, ledger) for ledger in ledgers]
    try:
        await asyncio.gather(
            *(
                source.fetch_one(hubspot_query(f"m{i}", object="contacts"))
                for source in sources
                for i in range(per_replica)
            ),
            return_exceptions=True,
        )
    finally:
        for source in sources:
            await source.aclose()


async def test_three_replicas_stay_within_hubspots_search_limit_together(
    replicas: list[Replica], hubspot: HubSpot
) -> None:
    await count_from_every_replica(hubspot, [r.ledger for r in replicas], per_replica=4)
    assert hubspot.api.rate_limited["SECONDLY"] == 0
    searches = [r for r in hubspot.server.requests if r.path.endswith("/search")]
    assert len(searches) == REPLICAS * 4


async def test_the_same_replicas_pacing_each_for_itself_are_refused_by_hubspot(
    hubspot: HubSpot,
) -> None:
    await count_from_every_replica(hubspot, [None] * REPLICAS, per_replica=4)
    assert hubspot.api.rate_limited["SECONDLY"] > 0


# --- Jira: a token bucket under the site's burst limit ----------------------------------------

JIRA_PACE = 10.0  # requests a second per connection; the bucket also lets 5 go back to back
JIRA_LIMIT = (18, 1.0)  # the site: one paced connection sends at most 5 + 10 in any second


@dataclass
class Jira:
    server: SandboxServer
    fake: JiraFake


@pytest.fixture
def jira() -> Iterator[Jira]:
    app = jira_app(burst_limit=JIRA_LIMIT)
    with SandboxServer(app, name="jira") as server:
        yield Jira(server, app.state.fake)


async def read_fields_from_every_replica(
    jira: Jira, ledgers: list[PostgresLedger | None], per_replica: int
) -> None:
    config = {
        "type": "jira",
        "url": jira.server.url,
        "email": JIRA_EMAIL,
        "api_token": JIRA_TOKEN,
        "requests_per_second": JIRA_PACE,
        "issue_write_interval": 0,
    }
    made = [create(jira_connector, FastJira, config, ledger) for ledger in ledgers]
    try:
        await asyncio.gather(
            *(
                connector._client.request("GET", "/rest/api/3/field")
                for connector in made
                for _ in range(per_replica)
            ),
            return_exceptions=True,
        )
    finally:
        for connector in made:
            await connector.aclose()


async def test_three_replicas_stay_within_jiras_burst_limit_together(
    replicas: list[Replica], jira: Jira
) -> None:
    await read_fields_from_every_replica(jira, [r.ledger for r in replicas], per_replica=8)
    assert jira.fake.rate_limited["jira-burst-based"] == 0
    assert len([r for r in jira.server.requests if r.path.endswith("/field")]) == REPLICAS * 8


async def test_the_same_replicas_pacing_each_for_itself_are_refused_by_jira(jira: Jira) -> None:
    await read_fields_from_every_replica(jira, [None] * REPLICAS, per_replica=8)
    assert jira.fake.rate_limited["jira-burst-based"] > 0


# --- Salesforce: our share of the org's daily allocation is the share of all replicas ---------


@pytest.fixture
def salesforce() -> Iterator[SalesforceFake]:
    yield from start_salesforce(api_limit=50)  # with a 10% share: five calls a day for okrsync


async def query_from_two_replicas(
    salesforce: SalesforceFake, ledgers: list[PostgresLedger | None]
) -> list[Reading]:
    config = {
        "type": "salesforce",
        "login_url": salesforce.url,
        "auth": {
            "flow": "client_credentials",
            "client_id": SALESFORCE_CLIENT,
            "client_secret": SALESFORCE_SECRET,
        },
        "max_share_of_daily_limit": 0.1,
        "org_reserve_share": 0.0,
    }
    made = [create(salesforce_connector, FastSalesforce, config, ledger) for ledger in ledgers]
    q = salesforce_query("n", soql="SELECT COUNT() FROM Opportunity")
    readings = []
    try:
        for source in made:
            for _ in range(3):
                readings.append(await salesforce_one(source, q))
    finally:
        for source in made:
            await source.aclose()
    return readings


async def test_two_replicas_stay_within_one_share_of_the_salesforce_allocation(
    replicas: list[Replica], salesforce: SalesforceFake
) -> None:
    readings = await query_from_two_replicas(salesforce, [r.ledger for r in replicas[:2]])
    assert [r.ok for r in readings] == [True] * 5 + [False]
    assert isinstance(readings[-1].error, QuotaExhaustedError)
    assert "5 of its 5" in str(readings[-1].error)
    assert len(salesforce.queries()) == 5  # the second replica counted the first one's calls


async def test_each_replica_counting_for_itself_takes_the_share_twice(
    salesforce: SalesforceFake,
) -> None:
    readings = await query_from_two_replicas(salesforce, [None, None])
    assert all(r.ok for r in readings)
    assert len(salesforce.queries()) == 6


# --- GitHub: a hold learnt by one replica holds the others ------------------------------------


@dataclass
class GitHub:
    server: SandboxServer
    fake: GitHubFake


@pytest.fixture
def github() -> Iterator[GitHub]:
    app = github_app(token=GITHUB_TOKEN, anchor=date(2026, 12, 31), core_limit=3)
    with SandboxServer(app, name="github") as server:
        yield GitHub(server, app.state.fake)


async def spend_then_call_from_the_others(
    github: GitHub, ledgers: list[PostgresLedger | None]
) -> list[BaseException | None]:
    """The first replica spends the token's hourly allowance; then each other one calls once."""
    config = {"type": "github", "token": GITHUB_TOKEN, "base_url": github.server.url}
    made = [create(github_connector, FastGitHub, config, ledger) for ledger in ledgers]
    outcomes: list[BaseException | None] = []
    try:
        for _ in range(3):
            await made[0].api.core.request("GET", REPO)
        for other in made[1:]:
            try:
                await other.api.core.request("GET", REPO)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
    finally:
        for connector in made:
            await connector.aclose()
    return outcomes


async def test_a_hold_learnt_by_one_replica_pauses_the_others_without_a_call(
    replicas: list[Replica], github: GitHub
) -> None:
    outcomes = await spend_then_call_from_the_others(github, [r.ledger for r in replicas])
    assert all(isinstance(o, QuotaExhaustedError) for o in outcomes), outcomes
    resume = [o.resume_at for o in outcomes if isinstance(o, QuotaExhaustedError)]
    assert all(r is not None and r > time.time() + 3_000 for r in resume)  # the hourly reset
    assert len(github.server.requests) == 3  # the others never called
    assert github.fake.refused["core"] == 0


async def test_without_sharing_the_others_run_into_githubs_limit(github: GitHub) -> None:
    await spend_then_call_from_the_others(github, [None] * REPLICAS)
    assert github.fake.refused["core"] >= REPLICAS - 1


# --- the ledger itself ------------------------------------------------------------------------


class FrozenClock:
    """One fixed "now" for every replica: turns must then be spaced by the booking alone."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_replicas_asking_at_once_never_book_the_same_turn(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL ledger")
    upgrade(make_engine(database_url))
    clock = FrozenClock()
    engines = [make_engine(database_url) for _ in range(REPLICAS)]
    ledgers = [PostgresLedger(engine, clock=clock) for engine in engines]
    pace = TokenBucket(10.0, burst=1)
    key = ("crm", "api")
    try:
        answers = await asyncio.gather(
            *(ledger.take(key, pace, count=2) for ledger in ledgers for _ in range(5))
        )
        held = [ledger.hold(key, 30.0) for ledger in ledgers[:1]]
        await asyncio.gather(*held)
        after = await ledgers[2].take(key, pace, max_wait=60.0)
    finally:
        for ledger in ledgers:
            await ledger.aclose()
        for engine in engines:
            engine.dispose()
    waits = sorted(w for taken in answers for w in taken.waits)
    assert waits == pytest.approx([i / 10 for i in range(30)])  # 30 distinct turns, 0.1 s apart
    assert after.hold_left == pytest.approx(30.0)
    assert after.waits == pytest.approx((30.0,))  # behind the hold; the bucket refilled meanwhile
    assert sum(ledger.transactions for ledger in ledgers) == 15 + 1 + 1  # one per question


async def test_a_store_that_does_not_answer_leaves_budgets_in_memory_for_a_while() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:9/none")  # nothing listens there
    ledger = PostgresLedger(engine, retry_after=60.0)
    pace = TokenBucket(1.0, burst=1)
    try:
        with capture_logs() as logs:
            first = await ledger.take(("crm", "api"), pace)
            second = await ledger.take(("crm", "api"), pace)
    finally:
        await ledger.aclose()
        engine.dispose()
    assert first.waits == (0.0,)
    assert second.waits[0] == pytest.approx(1.0, abs=0.05)  # paced in memory
    assert ledger.transactions == 0
    unavailable = [e for e in logs if e["event"] == "call_budget_store_unavailable"]
    assert len(unavailable) == 1  # logged once, not tried again for every request
    assert "postgres@" not in str(unavailable)


def test_sqlite_keeps_budgets_in_memory_and_postgresql_in_the_store(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        ledger = ledger_for(engine)
        if database_url.startswith("sqlite"):
            assert ledger is None  # one daemon per file: memory is exact
        else:
            assert isinstance(ledger, PostgresLedger)
            asyncio.run(ledger.aclose())
    finally:
        engine.dispose()


async def test_the_daemon_gives_every_connection_the_stores_ledger(database_url: str) -> None:
    """``App.open`` wires it: connections on PostgreSQL share their buckets, on SQLite not."""
    registry = load_registry()
    config = load_config_text(
        "version: 1\n"
        "connections:\n"
        f"  chat: {{type: slack, token: '{BOT_TOKEN}', base_url: 'http://127.0.0.1:9/api/'}}\n"
        "cycles:\n  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n",
        registry.connectors,
    )
    app = App.open(Settings(database_url=SecretStr(database_url)), config=config, registry=registry)
    try:
        ledger = app.connections.sink("chat").budgets.ledger
        if database_url.startswith("sqlite"):
            assert isinstance(ledger, LocalLedger)
        else:
            assert isinstance(ledger, PostgresLedger)
            assert ledger is app.connections.ledger
    finally:
        await app.aclose()
