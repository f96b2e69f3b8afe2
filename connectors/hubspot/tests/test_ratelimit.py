"""HubSpot's burst-window headers are read by the connection's own budget observer."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from connectors.hubspot.fake import PIPELINES
from connectors.hubspot.ratelimit import burst_window_hold
from connectors.hubspot.tests.conftest import Fake, make_source, query
from okrsync.errors import QuotaExhaustedError
from okrsync.sandbox import FaultKind


@pytest.mark.parametrize(
    ("headers", "hold"),
    [
        # no reset is given: hold for one whole window
        (
            {
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
            10.0,
        ),
        ({"X-HubSpot-RateLimit-Secondly-Remaining": "0"}, 1.0),
        ({"X-HubSpot-RateLimit-Remaining": "0"}, None),  # spent, window unknown: the 429 says
        (
            {
                "X-HubSpot-RateLimit-Remaining": "99",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "1",
            },
            None,
        ),
        ({}, None),
    ],
)
def test_burst_window_hold(headers: dict[str, str], hold: float | None) -> None:
    assert burst_window_hold(httpx.Headers(headers)) == hold


async def test_a_spent_burst_window_holds_the_connection(fake: Fake) -> None:
    """A window longer than the budget's ``max_wait`` makes the hold a pause: the search that
    would follow the pipelines call is never sent."""
    fake.fault(
        FaultKind.STATUS,
        status=200,
        body=json.dumps({"results": PIPELINES}),
        headers={
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "3600000",
        },
        path="/pipelines/",
    )
    source = make_source(fake)
    try:
        with pytest.raises(QuotaExhaustedError) as caught:
            await source.fetch_one(query(stage="closedwon"))
    finally:
        await source.aclose()
    assert caught.value.resume_at is not None
    assert caught.value.resume_at - time.time() > 3000
    assert fake.searches() == []
