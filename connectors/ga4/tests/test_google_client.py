"""Google's own GA4 client (``google-analytics-data``, REST transport) against the fake, unchanged.

For a service account it sends a self-signed JWT as the bearer token (audience = the API
endpoint); with explicit scopes it does the OAuth token exchange with Google's standard
audience. The fake verifies both with the service account's registered public key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import product
from typing import Any

import google.auth.transport.requests
import google.oauth2.credentials
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    Filter,
    FilterExpression,
    Metric,
    MetricAggregation,
    RunReportRequest,
)
from google.api_core.client_options import ClientOptions
from google.oauth2 import service_account

from connectors.ga4.fake import CHANNELS, COUNTRIES, GA4Data, daily, ga4_app
from connectors.ga4.fake_auth import API_AUDIENCE, GOOGLE_TOKEN_URI
from okrsync.sandbox import SandboxServer

PROPERTY = "123456789"
EMAIL = "reporting@okr-project.iam.gserviceaccount.com"
TODAY = date(2026, 11, 15)
START, END = date(2026, 11, 1), date(2026, 11, 10)
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def key_info(token_uri: str = GOOGLE_TOKEN_URI) -> dict[str, str]:
    """A service-account key file as Google issues it."""
    return {
        "type": "service_account",
        "project_id": "okr-project",
        "private_key_id": "0f3c5d2a9b",
        "private_key": PEM,
        "client_email": EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


def service_credentials(
    info: dict[str, str], scopes: list[str] | None = None
) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call,no-any-return]
        info, scopes=scopes
    )


@pytest.fixture
def fake() -> Iterator[tuple[SandboxServer, GA4Data]]:
    data = GA4Data()
    data.register(EMAIL, _KEY.public_key(), {PROPERTY})
    with SandboxServer(ga4_app(data=data, today=TODAY), name="ga4") as server:
        yield server, data


def client_for(server: SandboxServer, credentials: Any) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(
        credentials=credentials,
        transport="rest",
        client_options=ClientOptions(api_endpoint=server.url),
    )


def expected_sessions(country: str | None = None) -> Decimal:
    total = Decimal(0)
    day = START
    while day <= END:
        for c, channel in product(COUNTRIES, CHANNELS):
            if country is None or c == country:
                total += daily(PROPERTY, day, c, channel)["sessions"]
        day = date.fromordinal(day.toordinal() + 1)
    return total


def report_request() -> RunReportRequest:
    return RunReportRequest(
        property=f"properties/{PROPERTY}",
        dimensions=[Dimension(name="country")],
        metrics=[Metric(name="sessions")],
        date_ranges=[DateRange(start_date=START.isoformat(), end_date=END.isoformat())],
        metric_aggregations=[MetricAggregation.TOTAL],
    )


def test_the_client_with_a_self_signed_jwt(fake: tuple[SandboxServer, GA4Data]) -> None:
    server, data = fake
    credentials = service_credentials(key_info())
    answer = client_for(server, credentials).run_report(report_request())

    by_country = {r.dimension_values[0].value: r.metric_values[0].value for r in answer.rows}
    assert by_country == {c: str(expected_sessions(c)) for c in COUNTRIES}
    assert answer.row_count == len(COUNTRIES)
    assert Decimal(answer.totals[0].metric_values[0].value) == expected_sessions()
    assert data.counts["token"] == 0  # no token exchange: the JWT itself is the credential
    assert data.counts["self_signed"] == 1
    sent = [r for r in server.requests if ":runReport" in r.path]
    assert len(sent) == 1


def test_the_client_with_a_string_filter_sent_as_enum_numbers(
    fake: tuple[SandboxServer, GA4Data],
) -> None:
    server, _ = fake
    credentials = service_credentials(key_info())
    request = report_request()
    request.dimension_filter = FilterExpression(
        filter=Filter(
            field_name="country",
            string_filter=Filter.StringFilter(
                value="fra", match_type=Filter.StringFilter.MatchType.BEGINS_WITH
            ),
        )
    )
    answer = client_for(server, credentials).run_report(request)
    assert [r.dimension_values[0].value for r in answer.rows] == ["France"]
    assert Decimal(answer.rows[0].metric_values[0].value) == expected_sessions("France")


def test_the_client_with_explicit_scopes_sends_a_scoped_self_signed_jwt(
    fake: tuple[SandboxServer, GA4Data],
) -> None:
    server, data = fake
    credentials = service_credentials(
        key_info(), scopes=["https://www.googleapis.com/auth/analytics.readonly"]
    )
    answer = client_for(server, credentials).run_report(report_request())
    assert Decimal(answer.totals[0].metric_values[0].value) == expected_sessions()
    assert (data.counts["token"], data.counts["self_signed"]) == (0, 1)


def test_google_auths_token_exchange_then_the_client(
    fake: tuple[SandboxServer, GA4Data],
) -> None:
    """google-auth's OAuth exchange signs the assertion for Google's token URL whatever the key
    file's token_uri; pointed at the fake, the fake takes that audience and issues a token,
    which the client then sends unchanged."""
    server, data = fake
    credentials = service_credentials(
        key_info(token_uri=f"{server.url}/token"),
        scopes=["https://www.googleapis.com/auth/analytics.readonly"],
    )
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    assert data.counts["token"] == 1
    access = google.oauth2.credentials.Credentials(token=credentials.token)  # type: ignore[no-untyped-call]
    answer = client_for(server, access).run_report(report_request())
    assert Decimal(answer.totals[0].metric_values[0].value) == expected_sessions()
    assert data.counts["self_signed"] == 0


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey = _KEY) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "0f3c5d2a9b"})


def run_report_with(server: SandboxServer, bearer: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1beta/properties/{PROPERTY}:runReport",
        json={
            "metrics": [{"name": "sessions"}],
            "dateRanges": [{"startDate": START.isoformat(), "endDate": END.isoformat()}],
        },
        headers={"Authorization": f"Bearer {bearer}"},
    )


def test_self_signed_tokens_are_verified(fake: tuple[SandboxServer, GA4Data]) -> None:
    server, _ = fake
    now = int(time.time())
    good = {"iss": EMAIL, "sub": EMAIL, "aud": API_AUDIENCE, "iat": now, "exp": now + 3600}
    assert run_report_with(server, sign(good)).status_code == 200
    scoped = {**good, "scope": "https://www.googleapis.com/auth/analytics.readonly"}
    del scoped["aud"]
    assert run_report_with(server, sign(scoped)).status_code == 200
    refused = {
        "signed by another key": sign(good, _OTHER_KEY),
        "another audience": sign({**good, "aud": "https://www.googleapis.com/"}),
        "both aud and scope": sign({**good, "scope": scoped["scope"]}),
        "a scope that is not Analytics": sign(
            {**scoped, "scope": "https://www.googleapis.com/auth/drive"}
        ),
        "sub not the account": sign({**good, "sub": "someone@example.com"}),
        "expired": sign({**good, "iat": now - 7200, "exp": now - 3600}),
        "longer than an hour": sign({**good, "exp": now + 7200}),
    }
    for why, token in refused.items():
        answer = run_report_with(server, token)
        assert answer.status_code == 401, why
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED", why


def test_the_token_exchange_accepts_googles_audience_only_when_signed(
    fake: tuple[SandboxServer, GA4Data],
) -> None:
    server, _ = fake
    now = int(time.time())
    claims = {
        "iss": EMAIL,
        "scope": "https://www.googleapis.com/auth/analytics.readonly",
        "aud": GOOGLE_TOKEN_URI,
        "iat": now,
        "exp": now + 3600,
    }

    def exchange(assertion: str) -> httpx.Response:
        return httpx.post(
            f"{server.url}/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )

    issued = exchange(sign(claims))
    assert issued.status_code == 200, issued.text
    assert run_report_with(server, issued.json()["access_token"]).status_code == 200
    forged = exchange(sign(claims, _OTHER_KEY))
    assert forged.status_code == 400
    assert forged.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }
    elsewhere = exchange(sign({**claims, "aud": "https://example.com/token"}))
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_grant"
