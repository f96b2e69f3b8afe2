"""The Salesforce source against the sandbox org on loopback sockets.

Expected numbers are computed from the fake org's own records (``OrgData``) with Decimal; what
the source sent is read back from the sandbox's request log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce import SalesforceConnection, SalesforceQuery, SalesforceSource, connector
from connectors.salesforce.fake import (
    CLIENT_ID,
    CLIENT_SECRET,
    USERNAME,
    WON_REPORT_ID,
    OrgData,
    dumps,
    salesforce_app,
)
from connectors.salesforce.quota import parse_limit_info
from connectors.salesforce.soql import render
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.models import CycleWindow, Query, Reading, as_decimal

TODAY = date(2026, 11, 15)
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE_KEY, PUBLIC_KEY = _keypair()


class FastSource(SalesforceSource):
    initial_backoff = 0.01
    max_backoff = 0.02
    rate_limit_backoff = 0.01


@dataclass
class Fake:
    server: SandboxServer
    org: OrgData

    @property
    def url(self) -> str:
        return self.server.url

    def queries(self) -> list[str]:
        return [r.path for r in self.server.requests if "/services/data/" in r.path]


def start(**options: Any) -> Iterator[Fake]:
    app = salesforce_app(today=TODAY, public_key=PUBLIC_KEY, **options)
    with SandboxServer(app, name="salesforce") as server:
        yield Fake(server, app.state.org)


@pytest.fixture
def fake() -> Iterator[Fake]:
    yield from start()


def make_source(fake: Fake, **fields: Any) -> SalesforceSource:
    auth = fields.pop(
        "auth",
        {"flow": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    config = SalesforceConnection.model_validate(
        {"type": "salesforce", "login_url": fake.url, "auth": auth, "max_retries": 2, **fields}
    )
    return FastSource("crm", config)


def query(metric: str, **spec: Any) -> Query[SalesforceQuery]:
    parsed = SalesforceQuery.model_validate(spec)
    return Query(Query.make_key("crm", parsed, CYCLE), "crm", (metric,), parsed, CYCLE)


def in_q4(o: dict[str, Any]) -> bool:
    return bool(CYCLE.start <= o["CloseDate"] <= CYCLE.end)


def won_q4(org: OrgData) -> list[dict[str, Any]]:
    return [o for o in org.opportunities if o["IsWon"] and in_q4(o)]


def amounts(rows: list[dict[str, Any]]) -> Decimal:
    return sum((o["Amount"] for o in rows if o["Amount"] is not None), Decimal(0))


async def one(source: SalesforceSource, q: Query[SalesforceQuery]) -> Reading:
    [reading] = await source.fetch([q])
    return reading


# --- numbers --------------------------------------------------------------------------------


async def test_sum_count_avg_are_exact(fake: Fake) -> None:
    source = make_source(fake)
    where = "IsWon = true AND CloseDate >= {cycle_start} AND CloseDate <= {cycle_end}"
    total, count, avg, plain = await source.fetch(
        [
            query("won_amount", soql=f"SELECT SUM(Amount) FROM Opportunity WHERE {where}"),
            query("won_count", soql=f"SELECT COUNT() FROM Opportunity WHERE {where}"),
            query(
                "avg_deal",
                soql=f"SELECT AVG(Amount) avg_amount FROM Opportunity WHERE {where}",
                value_field="avg_amount",
            ),
            query("won_ids", soql=f"SELECT COUNT(Id) FROM Opportunity WHERE {where}"),
        ]
    )
    won = won_q4(fake.org)
    with_amount = [o for o in won if o["Amount"] is not None]
    assert len(won) > 10
    assert total.value == amounts(won)
    assert count.value == len(won) == plain.value
    assert avg.value == as_decimal(float(amounts(won) / len(with_amount)))
    assert "CloseDate >= 2026-10-01 AND CloseDate <= 2026-12-31" in total.query_text
    sent = [parse_qs(r.query)["q"][0] for r in fake.server.requests if "/query" in r.path]
    assert any("CloseDate >= 2026-10-01" in q for q in sent)  # date literals, unquoted
    await source.aclose()


async def test_date_literals_and_datetime_placeholders(fake: Fake) -> None:
    source = make_source(fake)
    this_quarter, created = await source.fetch(
        [
            query("tq", soql="SELECT COUNT() FROM Opportunity WHERE CloseDate = THIS_QUARTER"),
            query(
                "created",
                soql="SELECT COUNT() FROM Opportunity WHERE CreatedDate >= {cycle_start_datetime}"
                " AND CreatedDate <= {cycle_end_datetime}",
            ),
        ]
    )
    assert this_quarter.value == sum(1 for o in fake.org.opportunities if in_q4(o))
    start = datetime(2026, 10, 1, tzinfo=UTC)
    end = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert created.value == sum(
        1 for o in fake.org.opportunities if start <= o["CreatedDate"] <= end
    )
    assert render("{cycle_start_datetime}", CYCLE) == "2026-10-01T00:00:00Z"


async def test_group_by_batches_several_metrics_into_one_request(fake: Fake) -> None:
    source = make_source(fake)
    soql = (
        "SELECT StageName, COUNT(Id) deals, SUM(Amount) FROM Opportunity "
        "WHERE CloseDate = THIS_YEAR GROUP BY StageName"
    )
    won = query("won", soql=soql, group_value="Closed Won", value_field="deals")
    lost = query("lost", soql=soql, group_value="Closed Lost", value_field="deals")
    won_sum = query("won_sum", soql=soql, group_value="Closed Won")
    fake.server.reset()
    readings = await source.fetch([won, lost, won_sum])
    assert len([p for p in fake.queries() if p.endswith("/query")]) == 1  # ONE request
    by_key = {r.key: r.value for r in readings}
    assert by_key[won.key] == len(fake.org.where(StageName="Closed Won"))
    assert by_key[lost.key] == len(fake.org.where(StageName="Closed Lost"))
    assert by_key[won_sum.key] == amounts(fake.org.where(StageName="Closed Won"))
    assert source.batch_key(won.spec) == source.batch_key(lost.spec)


async def test_next_records_url_paging_with_batch_size(fake: Fake) -> None:
    source = make_source(fake, query_batch_size=200)
    q = query(
        "all_amounts",
        soql="SELECT Id, Amount FROM Opportunity",
        aggregate="sum",
        value_field="Amount",
    )
    fake.server.reset()
    reading = await one(source, q)
    assert reading.value == amounts(fake.org.opportunities)
    paths = fake.queries()
    assert len(paths) == 2 and "/query/01g" in paths[1] and paths[1].endswith("-200")
    assert all(
        r.headers.get("sforce-query-options") == "batchSize=200"
        for r in fake.server.requests
        if "/services/data/" in r.path
    )
    assert reading.api_calls == 2


ALL_AMOUNTS = {"soql": "SELECT Id, Amount FROM Opportunity", "aggregate": "sum"}


async def test_more_pages_than_max_pages_is_an_error_not_a_short_sum(fake: Fake) -> None:
    source = make_source(fake, query_batch_size=200, max_pages=1)
    fake.server.reset()
    reading = await one(source, query("all", value_field="Amount", **ALL_AMOUNTS))
    assert isinstance(reading.error, VendorResponseError)
    assert "more than max_pages (1) pages of records" in str(reading.error)
    assert len(fake.queries()) == 1  # the second page is never asked for


def _more_follow(next_url: str | None) -> Fault:
    body: dict[str, Any] = {"totalSize": 400, "done": False, "records": []}
    if next_url is not None:
        body["nextRecordsUrl"] = next_url
    return Fault(kind=FaultKind.STATUS, status=200, body=dumps(body), times=-1, path="/query")


async def test_a_next_records_url_seen_before_is_a_pagination_loop(fake: Fake) -> None:
    source = make_source(fake)
    fake.server.reset()
    fake.server.faults.add(_more_follow("/services/data/v62.0/query/01gLOOP-200"))
    reading = await one(source, query("all", value_field="Amount", **ALL_AMOUNTS))
    assert isinstance(reading.error, VendorResponseError)
    assert "pagination loop" in str(reading.error) and "01gLOOP-200" in str(reading.error)
    assert len(fake.queries()) == 2


@pytest.mark.parametrize(
    ("next_url", "said"),
    [(None, "gives no nextRecordsUrl"), ("https://elsewhere.example/steal", "leaves the API")],
)
async def test_more_records_without_a_usable_link_is_an_error(
    fake: Fake, next_url: str | None, said: str
) -> None:
    source = make_source(fake)
    fake.server.faults.add(_more_follow(next_url))
    reading = await one(source, query("all", value_field="Amount", **ALL_AMOUNTS))
    assert isinstance(reading.error, VendorResponseError)
    assert said in str(reading.error) and "metric 'all'" in str(reading.error)


async def test_report_metric(fake: Fake) -> None:
    source = make_source(fake)
    total, count = await source.fetch(
        [
            query("won_report", report_id=WON_REPORT_ID),
            query("won_report_count", report_id=WON_REPORT_ID, aggregate_index=1),
        ]
    )
    won = fake.org.where(IsWon=True)
    assert total.value == amounts(won) and count.value == len(won)
    assert len([p for p in fake.queries() if "/analytics/reports/" in p]) == 1


# --- auth --------------------------------------------------------------------------------------


async def test_jwt_bearer_flow_signs_an_assertion_the_org_verifies(fake: Fake) -> None:
    auth = {
        "flow": "jwt_bearer",
        "client_id": CLIENT_ID,
        "username": USERNAME,
        "private_key": PRIVATE_KEY,
    }
    source = make_source(fake, auth=auth)
    reading = await one(source, query("n", soql="SELECT COUNT() FROM Opportunity"))
    assert reading.value == len(fake.org.opportunities)
    token_request = next(r for r in fake.server.requests if r.path == "/services/oauth2/token")
    assert "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in token_request.body

    other_key, _ = _keypair()
    bad = make_source(fake, auth={**auth, "private_key": other_key})
    failed = await one(bad, query("n", soql="SELECT COUNT() FROM Opportunity"))
    assert isinstance(failed.error, CredentialsError)
    assert "connection 'crm'" in str(failed.error) and "invalid_grant" in str(failed.error)
    assert other_key.splitlines()[1] not in str(failed.error)


async def test_token_error_names_the_connection(fake: Fake) -> None:
    auth = {"flow": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong-secret"}
    source = make_source(fake, auth=auth)
    reading = await one(source, query("won", soql="SELECT COUNT() FROM Opportunity"))
    assert isinstance(reading.error, CredentialsError)
    text = str(reading.error)
    assert "connection 'crm'" in text and "metric 'won'" in text
    assert "invalid_client: invalid client credentials" in text
    assert "wrong-secret" not in text


async def test_expired_session_refreshes_exactly_once(fake: Fake) -> None:
    source = make_source(fake)
    q = query("n", soql="SELECT COUNT() FROM Opportunity")
    assert (await one(source, q)).ok
    fake.org.expire_tokens()
    issued = fake.org.tokens_issued
    reading = await one(source, q)
    assert reading.value == len(fake.org.opportunities)
    assert fake.org.tokens_issued == issued + 1 and source.refreshes == 1


async def test_session_rejected_after_refresh_is_a_credentials_error(fake: Fake) -> None:
    source = make_source(fake)
    body = '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    fake.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=401, body=body, times=2, path="/query")
    )
    reading = await one(source, query("won", soql="SELECT COUNT() FROM Opportunity"))
    assert isinstance(reading.error, CredentialsError)
    assert "connection 'crm'" in str(reading.error) and "INVALID_SESSION_ID" in str(reading.error)
    assert source.refreshes == 1


# --- vendor misbehaviour ---------------------------------------------------------------------


async def test_429_with_retry_after_then_success(fake: Fake) -> None:
    source = make_source(fake)
    fake.server.faults.add(Fault(kind=FaultKind.STATUS, status=429, retry_after="1", path="/query"))
    began = time.monotonic()
    reading = await one(source, query("n", soql="SELECT COUNT() FROM Opportunity"))
    assert reading.value == len(fake.org.opportunities)
    assert time.monotonic() - began >= 0.9


async def test_503_then_success(fake: Fake) -> None:
    source = make_source(fake)
    fake.server.faults.add(Fault(kind=FaultKind.STATUS, status=503, times=2, path="/query"))
    reading = await one(source, query("n", soql="SELECT COUNT() FROM Opportunity"))
    assert reading.value == len(fake.org.opportunities)


async def test_malformed_body_is_a_vendor_error(fake: Fake) -> None:
    source = make_source(fake)
    fake.server.faults.add(Fault(kind=FaultKind.MALFORMED, path="/query"))
    reading = await one(source, query("n", soql="SELECT COUNT() FROM Opportunity"))
    assert isinstance(reading.error, VendorResponseError)
    assert "metric 'n'" in str(reading.error)


async def test_malformed_soql_names_the_metric(fake: Fake) -> None:
    source = make_source(fake)
    bad = query("bookings", soql="SELECT SUM(Amount FROM Opportunity")
    typo = query("typo", soql="SELECT SUM(Amont) FROM Opportunity")
    [malformed, invalid] = await source.fetch([bad, typo])
    assert isinstance(malformed.error, QueryError)
    assert "metric 'bookings'" in str(malformed.error)
    assert "MALFORMED_QUERY" in str(malformed.error)
    assert isinstance(invalid.error, QueryError) and "INVALID_FIELD" in str(invalid.error)


# --- quota -------------------------------------------------------------------------------------


def test_limit_info_header_is_parsed() -> None:
    usage = parse_limit_info("api-usage=25/15000; api-bursts=1/750")
    assert usage is not None and (usage.used, usage.limit) == (25, 15000)
    assert parse_limit_info("per-app-api-usage=1/2(appName=x)") is None


async def test_our_share_guard_pauses_and_sends_nothing_more() -> None:
    for fake in start(api_limit=50):
        source = make_source(fake, max_share_of_daily_limit=0.1, org_reserve_share=0.0)
        q = query("n", soql="SELECT COUNT() FROM Opportunity")
        for _ in range(5):  # 10% of 50 = 5 calls
            assert (await one(source, q)).ok
        sent = len(fake.server.requests)
        tripped = await one(source, q)
        assert isinstance(tripped.error, QuotaExhaustedError)
        assert "connection 'crm'" in str(tripped.error) and "5 of its 5" in str(tripped.error)
        assert tripped.error.resume_at is not None and tripped.error.resume_at > time.time()
        again = await one(source, q)
        assert isinstance(again.error, QuotaExhaustedError)
        assert len(fake.server.requests) == sent  # no request after the guard tripped
        assert source.quota.used_by_us == 5


async def test_org_headroom_guard_protects_other_users() -> None:
    for fake in start(api_limit=1000, api_used=880):
        source = make_source(fake, max_share_of_daily_limit=0.5, org_reserve_share=0.1)
        q = query("n", soql="SELECT COUNT() FROM Opportunity")
        assert (await one(source, q)).ok  # limit unknown until the first answer: 881/1000
        fake.org.api_used = 899  # others keep calling; our next answer reads it
        assert (await one(source, q)).ok  # now 900/1000 reported: 100 left = the reserve
        sent = len(fake.server.requests)
        paused = await one(source, q)
        assert isinstance(paused.error, QuotaExhaustedError)
        assert "other users" in str(paused.error)
        assert len(fake.server.requests) == sent


async def test_request_limit_exceeded_pauses_the_connection() -> None:
    for fake in start(api_limit=10, api_used=10):
        source = make_source(fake)
        reading = await one(source, query("n", soql="SELECT COUNT() FROM Opportunity"))
        assert isinstance(reading.error, QuotaExhaustedError)
        assert "REQUEST_LIMIT_EXCEEDED" in str(reading.error)


# --- config ------------------------------------------------------------------------------------


def test_config_is_checked_when_loaded() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        SalesforceQuery.model_validate({"soql": "SELECT COUNT() FROM Opportunity {cycle_strat}"})
    with pytest.raises(ValueError, match="exactly one"):
        SalesforceQuery.model_validate({})
    with pytest.raises(ValueError, match="GROUP BY"):
        SalesforceQuery.model_validate(
            {"soql": "SELECT SUM(Amount) FROM Opportunity", "group_value": "x"}
        )
    assert connector.type == "salesforce" and connector.query_model is SalesforceQuery


def test_an_unreadable_private_key_is_a_config_error_not_a_crash() -> None:
    from pydantic import ValidationError

    from connectors.salesforce.models import SalesforceConnection

    broken = "-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValidationError, match="cannot be read as an unencrypted PEM") as raised:
        SalesforceConnection.model_validate(
            {
                "type": "salesforce",
                "auth": {
                    "flow": "jwt_bearer",
                    "client_id": "app",
                    "username": "u@example.com",
                    "private_key": broken,
                },
            }
        )
    assert "not really a key" not in str(raised.value.errors(include_input=False))
