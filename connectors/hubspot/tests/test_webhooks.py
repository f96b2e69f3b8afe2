"""The connector's ``verify_webhook`` hook: HubSpot's v3 signature, over the URL, five minutes."""

from __future__ import annotations

import httpx

from connectors.hubspot import connector
from connectors.hubspot.webhooks import hubspot_signature
from okrsync.sdk.webhooks import WebhookRequest

SECRET = "hubspot-app-client-secret"
BODY = b'[{"subscriptionType":"deal.propertyChange"}]'
URL = "https://okr.example.com/hooks/crm?x=1"
NOW = 1_767_000_000.0
STAMP = str(int(NOW * 1000))  # milliseconds


def request(url: str = URL, now: float = NOW, stamp: str = STAMP) -> WebhookRequest:
    signature = hubspot_signature(SECRET, "POST", URL, BODY, STAMP)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    return WebhookRequest("POST", url, httpx.Headers(headers), BODY, now)


def test_the_hook_checks_the_v3_signature_over_the_url() -> None:
    assert connector.verify_webhook(request(), SECRET)
    assert not connector.verify_webhook(request(), "other")
    assert not connector.verify_webhook(request(url=URL + "&y"), SECRET)
    unsigned = WebhookRequest("POST", URL, httpx.Headers({}), BODY, NOW)
    assert not connector.verify_webhook(unsigned, SECRET)


def test_the_timestamp_is_five_minutes_wide() -> None:
    assert connector.verify_webhook(request(now=NOW + 300), SECRET)
    assert not connector.verify_webhook(request(now=NOW + 301), SECRET)
    assert not connector.verify_webhook(request(now=NOW - 301), SECRET)
    assert not connector.verify_webhook(request(stamp="soon"), SECRET)
