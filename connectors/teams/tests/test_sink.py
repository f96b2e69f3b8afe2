"""The Teams sink against the Teams webhook fake over loopback sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.teams import TeamsConnection, TeamsMirror, TeamsSink, connector
from connectors.teams.cards import key_result_card
from connectors.teams.fake import SIGNATURE, legacy_url, workflow_url
from connectors.teams.tests.conftest import Teams, make_sink
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status

OBSERVED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
MIRROR = TeamsMirror()


def kr_update(value: str = "375.5", progress: str = "0.3755", **changes: Any) -> KeyResultUpdate:
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
        "status": Status.AT_RISK,
        "observed_at": OBSERVED,
        "idempotency_key": "d-1",
        **changes,
    }
    return KeyResultUpdate(**fields)


async def test_card_shape_is_exact(teams: Teams) -> None:
    sink = make_sink(workflow_url(teams.server.url))
    try:
        result = await sink.push(kr_update(), TeamsMirror(link="https://okr.example/b"), None)
    finally:
        await sink.aclose()
    assert result.ref is None and result.detail == {"status": 202}
    (card,) = teams.state.cards()
    assert card == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": [
                        {
                            "type": "Container",
                            "id": "okrsync-key_result-bookings",
                            "items": [
                                {
                                    "type": "TextBlock",
                                    "text": "Grow new-business revenue",
                                    "isSubtle": True,
                                    "size": "Small",
                                    "wrap": True,
                                },
                                {
                                    "type": "TextBlock",
                                    "text": "Close $1000 in new bookings",
                                    "size": "Large",
                                    "weight": "Bolder",
                                    "wrap": True,
                                    "spacing": "None",
                                },
                                {
                                    "type": "TextBlock",
                                    "text": "▓▓▓▓░░░░░░ 38%",
                                    "fontType": "Monospace",
                                    "size": "Medium",
                                },
                                {
                                    "type": "TextBlock",
                                    "text": "At risk",
                                    "color": "Warning",
                                    "weight": "Bolder",
                                    "spacing": "None",
                                },
                                {
                                    "type": "FactSet",
                                    "facts": [
                                        {"title": "Value", "value": "376 / 1,000 USD"},
                                        {"title": "Cycle", "value": "2026-Q4"},
                                        {"title": "Observed", "value": "2026-11-12 09:30 UTC"},
                                    ],
                                },
                            ],
                        }
                    ],
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Open", "url": "https://okr.example/b"}
                    ],
                },
            }
        ],
    }
    (request,) = teams.server.requests
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # the URL's sig is the credential
    assert f"sig={SIGNATURE}" in request.query
    assert teams.state.posts_for("key_result", "bookings") == 1 and not teams.state.failed_runs


async def test_every_push_is_a_new_card(teams: Teams, sink: TeamsSink) -> None:
    first = await sink.push(kr_update(), MIRROR, None)
    second = await sink.push(kr_update("500", "0.5"), MIRROR, "ignored: webhooks cannot edit")
    assert first.ref is None and second.ref is None
    assert teams.state.posts_for("key_result", "bookings") == 2


async def test_legacy_connector_answers_one(teams: Teams) -> None:
    sink = make_sink(legacy_url(teams.server.url))
    try:
        result = await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    assert result.detail == {"status": 200}
    assert teams.state.posts[0].channel == "legacy"


async def test_429_then_success_honours_retry_after(teams: Teams, sink: TeamsSink) -> None:
    teams.server.faults.add(Fault(kind=FaultKind.STATUS, status=429, retry_after="1"))
    await sink.push(kr_update(), MIRROR, None)
    first, second = teams.server.requests
    assert (second.at - first.at).total_seconds() >= 0.9
    assert teams.state.posts_for("key_result", "bookings") == 1


async def test_fakes_own_rate_limit(teams: Teams, sink: TeamsSink) -> None:
    teams.state.rate = (1, 1.0)
    await sink.push(kr_update(), MIRROR, None)
    await sink.push(kr_update("400", "0.4"), MIRROR, None)  # 429 Retry-After: 1, then posted
    assert teams.state.posts_for("key_result", "bookings") == 2
    assert sink.api_calls == 3


async def test_legacy_429_inside_a_200_is_retried(teams: Teams) -> None:
    body = (
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 429 with ContextId tcid=0,server=x,cv=y"
    )
    teams.server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body=body))
    sink = make_sink(legacy_url(teams.server.url))
    try:
        await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    assert len(teams.server.requests) == 2 and len(teams.state.posts) == 1


async def test_server_error_then_success(teams: Teams, sink: TeamsSink) -> None:
    teams.server.faults.add(Fault(kind=FaultKind.STATUS, status=502))
    await sink.push(kr_update(), MIRROR, None)
    assert sink.api_calls == 2 and len(teams.state.posts) == 1


async def test_removed_webhook_410_is_clear(teams: Teams) -> None:
    teams.state.remove_legacy()
    url = legacy_url(teams.server.url)
    sink = make_sink(url)
    try:
        with pytest.raises(TargetNotFoundError) as caught:
            await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    text = str(caught.value)
    assert "connection 'team_channel'" in text and "key result 'bookings'" in text
    assert "no longer exists" in text and "HTTP 410" in text and "webhook_url" in text
    assert url not in text and "1a2b3c4d" not in text
    assert sink.api_calls == 1


async def test_deleted_workflow_404_is_clear(teams: Teams, sink: TeamsSink) -> None:
    teams.state.delete_workflow()
    with pytest.raises(TargetNotFoundError) as caught:
        await sink.push_digest(objective(), MIRROR, None)
    text = str(caught.value)
    assert "digest mirror of objective 'revenue'" in text and "WorkflowNotFound" in text


async def test_wrong_signature_is_a_credentials_error(teams: Teams) -> None:
    sink = make_sink(workflow_url(teams.server.url, sig="forged-signature-123"))
    try:
        with pytest.raises(CredentialsError) as caught:
            await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    text = str(caught.value)
    assert "connection 'team_channel'" in text and "signature" in text
    assert "forged-signature-123" not in text


async def test_400_text_body_is_shown(teams: Teams, sink: TeamsSink) -> None:
    teams.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=400, body="Summary or Text is required.")
    )
    with pytest.raises(ConnectorError) as caught:
        await sink.push(kr_update(), MIRROR, None)
    assert "Teams refused the card" in str(caught.value)
    assert "Summary or Text is required." in str(caught.value)


async def test_html_page_is_not_a_success(teams: Teams, sink: TeamsSink) -> None:
    teams.server.faults.add(Fault(kind=FaultKind.HTML, status=200))
    with pytest.raises(VendorResponseError, match="HTML page"):
        await sink.push(kr_update(), MIRROR, None)


def objective() -> ObjectiveUpdate:
    return ObjectiveUpdate(
        objective_id="revenue",
        objective_title="Grow new-business revenue",
        cycle_id="2026-Q4",
        owner="sales",
        progress=Decimal("0.49"),
        status=Status.AT_RISK,
        observed_at=OBSERVED,
        idempotency_key="o-1",
        key_results=(
            kr_update(),
            kr_update(
                "42",
                "0.6",
                key_result_id="win_rate",
                key_result_title="Win rate above 70%",
                unit="%",
                target=Decimal(70),
                status=Status.ON_TRACK,
            ),
        ),
    )


async def test_digest_card(teams: Teams, sink: TeamsSink) -> None:
    assert connector.supports_digest
    result = await sink.push_digest(objective(), MIRROR, None)
    assert result.ref is None
    (card,) = teams.state.cards()
    (container,) = card["attachments"][0]["content"]["body"]
    assert container["id"] == "okrsync-objective-revenue"
    title, bar, status, facts, footer = container["items"]
    assert (title["text"], bar["text"], status["text"]) == (
        "Grow new-business revenue",
        "▓▓▓▓▓░░░░░ 49%",
        "At risk",
    )
    assert facts["facts"] == [
        {"title": "Close $1000 in new bookings", "value": "38% · at risk · 376 / 1,000 USD"},
        {"title": "Win rate above 70%", "value": "60% · on track · 42.0 / 70.0 %"},
    ]
    assert footer["text"] == "Cycle 2026-Q4 · owner sales · observed 2026-11-12 09:30 UTC"
    assert teams.state.posts_for("objective", "revenue") == 1


async def test_workflow_refuses_cards_above_1_4_later(teams: Teams) -> None:
    sink = make_sink(workflow_url(teams.server.url), card_version="1.5")
    try:
        result = await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    assert result.detail == {"status": 202}  # accepted: Workflows post asynchronously...
    assert teams.state.posts == []  # ...and the flow run fails, which is why 1.4 is the default
    assert "version '1.5' is not supported" in teams.state.failed_runs[0]


async def test_fake_validates_cards(teams: Teams) -> None:
    url = workflow_url(teams.server.url)
    good = key_result_card(kr_update())
    wrong_type = json.loads(json.dumps(good))
    wrong_type["attachments"][0]["content"]["type"] = "MessageCard"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, json={"text": "hi"})).status_code == 202
        assert (await client.post(url, json=wrong_type)).status_code == 202
        bad_json = await client.post(
            url, content=b"{nope", headers={"content-type": "application/json"}
        )
        legacy = await client.post(legacy_url(teams.server.url), json=wrong_type)
    assert (
        bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "InvalidRequestContent"
    )
    assert legacy.status_code == 200 and "HTTP error 400" in legacy.text
    assert "attachments" in teams.state.failed_runs[0]
    assert "must be 'AdaptiveCard'" in teams.state.failed_runs[1]
    assert teams.state.posts == []


def test_models() -> None:
    assert connector.type == "teams" and connector.mirror_model is TeamsMirror
    with pytest.raises(ValidationError):
        TeamsConnection.model_validate({"type": "teams", "webhook_url": "not a url"})
    with pytest.raises(ValidationError):
        TeamsConnection.model_validate(
            {"type": "teams", "webhook_url": "https://x.example/h", "card_version": "2.0"}
        )
    with pytest.raises(ValidationError):
        TeamsMirror.model_validate({"channel": "x"})
    config = TeamsConnection.model_validate(
        {"type": "teams", "webhook_url": "https://x.example/w?api-version=1&sig=s3cr3t"}
    )
    assert "s3cr3t" in config.url_secrets()


def test_the_card_shows_confidence_and_score_when_there_are_any() -> None:
    def facts(update: Any) -> list[Any]:
        (container,) = key_result_card(update)["attachments"][0]["content"]["body"]
        (fact_set,) = [i for i in container["items"] if i["type"] == "FactSet"]
        return [f["title"] for f in fact_set["facts"]]

    graded = kr_update().model_copy(update={"confidence": 7, "score": Decimal("0.28")})
    assert facts(graded) == ["Value", "Confidence", "Score", "Cycle", "Observed"]
    assert facts(kr_update()) == ["Value", "Cycle", "Observed"]
