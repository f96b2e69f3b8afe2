"""Linear as a work tracker, over a socket to the fake: reads, attachments, signed webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connectors.linear import LinearConnection, LinearConnector
from connectors.linear.fake import API_KEY, webhook_delivery
from connectors.linear.tests.conftest import CYCLE, Fake
from connectors.linear.webhooks import SIGNATURE_HEADER, linear_signature, verify_webhook
from connectors.linear.work import LinearWork, LinearWorkFilter
from okrsync.api.hooks import hook_secrets
from okrsync.errors import QueryError
from okrsync.sdk.models import Status
from okrsync.sdk.webhooks import WebhookRequest
from okrsync.sdk.work import Backlink, WorkState

AFTER_SEED = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)  # the fake's data ends in December 2026
ENG_BUGS = LinearWork(filter=LinearWorkFilter(team="ENG", labels=("Bug",)))
SECRET = "lin_wh_sandboxSigningSecret"


def expected_keys(fake: Fake, team: str = "ENG", label: str = "Bug") -> set[str]:
    return {
        i["identifier"]
        for i in fake.data.issues
        if i["team"]["key"] == team
        and i["archivedAt"] is None
        and label in {x["name"] for x in i["labels"]}
    }


def link(url: str | None = "http://okrsync.example/key-results/launch") -> Backlink:
    return Backlink("launch", "Launch checkout v2", Decimal(40), Status.AT_RISK, url)


def test_a_filter_must_narrow_and_know_its_fields() -> None:
    with pytest.raises(ValueError, match="narrow"):
        LinearWork.model_validate({"filter": {}})
    with pytest.raises(ValueError, match="Extra inputs"):
        LinearWork.model_validate({"filter": {"team": "ENG", "colour": "red"}})
    with pytest.raises(ValueError, match="placeholder"):
        LinearWork.model_validate({"filter": {"team": "ENG", "created_after": "{cycle_begin}"}})
    work = LinearWork.model_validate(
        {"filter": {"team": "ENG", "labels": "Bug", "created_after": "{cycle_start}"}}
    )
    assert work.issue_filter(CYCLE) == {
        "team": {"key": {"eq": "ENG"}},
        "labels": {"name": {"in": ["Bug"]}},
        "createdAt": {"gte": "2026-10-01T00:00:00.000Z"},
    }


async def test_a_full_read_maps_state_types(fake: Fake, linear: LinearConnector) -> None:
    items = await linear.list_work(ENG_BUGS, CYCLE, None)
    assert {i.key for i in items} == expected_keys(fake) and len(items) > 5
    by_key = {i["identifier"]: i for i in fake.data.issues}
    kinds = set()
    for item in items:
        kind = by_key[item.key]["state"]["type"]
        kinds.add(kind)
        expected = {"started": WorkState.IN_PROGRESS, "completed": WorkState.DONE}.get(
            kind, WorkState.DONE if kind == "canceled" else WorkState.TODO
        )
        assert item.state is expected, (item.key, kind)
        assert (item.done_at is not None) is (expected is WorkState.DONE)
        assert "Bug" in item.labels and item.url == by_key[item.key]["url"]
    assert {"completed", "started"} <= kinds
    (body,) = fake.bodies()  # one page; the team and label checks rode along
    assert body["variables"]["checkTeam"] is True and body["variables"]["checkLabels"] is True


async def test_a_typo_in_the_filter_is_an_error_not_no_work(linear: LinearConnector) -> None:
    with pytest.raises(QueryError, match="no team with key 'ENGG'"):
        await linear.list_work(LinearWork(filter=LinearWorkFilter(team="ENGG")), CYCLE, None)


async def test_an_incremental_read_asks_only_for_what_changed(
    fake: Fake, linear: LinearConnector
) -> None:
    todo = sorted(expected_keys(fake))[0]
    fake.data.change(todo, state="Canceled", at=datetime(2027, 1, 5, 10, tzinfo=UTC))
    changed = await linear.list_work(ENG_BUGS, CYCLE, AFTER_SEED)
    assert [(i.key, i.state, i.done_at) for i in changed] == [
        (todo, WorkState.DONE, datetime(2027, 1, 5, 10, tzinfo=UTC))
    ]
    (body,) = fake.bodies()
    assert body["variables"]["filter"]["updatedAt"] == {"gte": "2027-01-05T09:00:00.000Z"}
    assert body["variables"]["checkTeam"] is False


async def test_keys_only_read_sees_an_item_leave(fake: Fake, linear: LinearConnector) -> None:
    before = await linear.list_work_keys(ENG_BUGS, CYCLE)
    leaving = before[0]
    fake.data.change(leaving, labels=["Feature"])
    after = await linear.list_work_keys(ENG_BUGS, CYCLE)
    assert set(before) - set(after) == {leaving}
    assert all("identifier" in b["query"] and "title" not in b["query"] for b in fake.bodies())


async def test_attachments_are_created_once_updated_in_place_and_removed(
    fake: Fake, linear: LinearConnector
) -> None:
    key = next(i["identifier"] for i in fake.data.issues if i["team"]["key"] == "ENG")
    first = await linear.put_backlink(key, link(), None)
    again = await linear.put_backlink(key, link(), first)
    lost = await linear.put_backlink(key, link(), None)  # as after a crash
    assert first is not None and first == again == lost
    assert fake.data.attachments_created[key] == 1
    assert fake.data.attachments_updated[key] == 2
    (attachment,) = fake.data.attachments_on(key)
    assert attachment["title"] == "OKR: Launch checkout v2 (40%, at risk)"
    # The dashboard's address became known: the attachment moves, no second one stays.
    moved = await linear.put_backlink(key, link("http://dash.example/kr/launch"), first)
    assert [a["id"] for a in fake.data.attachments_on(key)] == [moved] != [first]
    await linear.remove_backlink(key, link("http://dash.example/kr/launch"), None)  # by url
    assert fake.data.attachments_on(key) == []
    await linear.remove_backlink(key, link(), moved)  # gone already: fine


def signed(body: bytes, *, at: float, signature: str | None = None) -> WebhookRequest:
    headers = httpx.Headers({SIGNATURE_HEADER: signature or linear_signature(SECRET, body)})
    return WebhookRequest("POST", "http://okrsync/hooks/linear", headers, body, at)


def test_linear_signatures_are_checked_with_the_timestamp(fake: Fake) -> None:
    sent = datetime(2027, 1, 5, 10, 0, tzinfo=UTC)
    body, headers = webhook_delivery(SECRET, fake.data.issues[0], sent_at=sent)
    now = sent.timestamp() + 5
    request = WebhookRequest(
        "POST", "http://okrsync/hooks/linear", httpx.Headers(headers), body, now
    )
    assert verify_webhook(request, SECRET)
    assert not verify_webhook(request, "another secret")
    assert not verify_webhook(signed(body, at=now, signature="0" * 64), SECRET)
    stale = sent.timestamp() + 61
    assert not verify_webhook(signed(body, at=stale), SECRET)  # re-signed, but a minute old
    payload = json.loads(body)
    payload["data"]["title"] = "altered"
    altered = json.dumps(payload).encode()
    assert not verify_webhook(signed(altered, at=now, signature=headers[SIGNATURE_HEADER]), SECRET)
    no_stamp = json.dumps({k: v for k, v in payload.items() if k != "webhookTimestamp"}).encode()
    assert not verify_webhook(signed(no_stamp, at=now), SECRET)


def test_the_connection_can_carry_the_webhook_secret(tmp_path: Path) -> None:
    config = LinearConnection(api_key=API_KEY, webhook_secret=SECRET)
    plain = LinearConnection(api_key=API_KEY)
    found = hook_secrets({"linear": config, "other": plain}, tmp_path, environ={})
    assert found == {"linear": SECRET}
    env = hook_secrets({"linear": config}, tmp_path, environ={"OKRSYNC_HOOK_SECRET_LINEAR": "x"})
    assert env == {"linear": "x"}
    assert SECRET not in repr(config)
