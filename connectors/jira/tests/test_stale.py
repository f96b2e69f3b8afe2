"""Stale key results on Jira: a warning in the one comment and the flag in the issue property.

Driven over loopback sockets against the Jira fake (Cloud: ADF; Data Center: wiki text).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from connectors.jira import JiraMirror
from connectors.jira.adf import text_of
from connectors.jira.tests.helpers import OBSERVED, FastJira, Site, connect, serve, update

MIRROR = JiraMirror(issue="OKR-12", field="OKR progress")
PROPERTY = "okrsync.epic_done"
CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)
PANEL = {
    "type": "panel",
    "attrs": {"panelType": "warning"},
    "content": [
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Stale", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " — last confirmed 2026-11-11 07:05 UTC"},
            ],
        }
    ],
}


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


@pytest.fixture
async def jira(site: Site) -> AsyncIterator[FastJira]:
    connector = connect(site.url)
    yield connector
    await connector.aclose()


async def test_stale_warning_then_fresh_edit_in_the_same_comment(
    site: Site, jira: FastJira
) -> None:
    first = await jira.push(update(checked_at=OBSERVED), MIRROR, None)
    stale = update(idempotency_key="stale-1", stale=True, checked_at=CHECKED)
    second = await jira.push(stale, MIRROR, first.ref)
    issue = site.data.issues["OKR-12"]
    (comment,) = site.data.comments_of(issue)
    assert second.ref == first.ref == comment.id
    heading, panel, bar, *_rest = comment.body["content"]
    assert heading["type"] == "heading" and bar["content"][0]["marks"] == [{"type": "code"}]
    assert panel == PANEL
    state = issue.properties[PROPERTY]
    assert state["stale"] is True and state["checked_at"] == "2026-11-11T07:05:00+00:00"
    assert state["value"] == "30"  # the number stays: it is the last one a source confirmed
    assert issue.fields["customfield_10050"] == 30.0

    fresh = update(idempotency_key="fresh-1", checked_at=OBSERVED)
    third = await jira.push(fresh, MIRROR, second.ref)
    (comment,) = site.data.comments_of(issue)
    assert third.ref == first.ref
    assert all(node["type"] != "panel" for node in comment.body["content"])
    assert "Stale" not in text_of(comment.body)
    assert issue.properties[PROPERTY]["stale"] is False
    assert issue.properties[PROPERTY]["checked_at"] == OBSERVED.isoformat()
    assert site.data.comments_created["OKR-12"] == 1
    assert site.data.comments_updated["OKR-12"] == 2


async def test_same_stale_state_twice_writes_nothing(site: Site, jira: FastJira) -> None:
    stale = update(stale=True, checked_at=CHECKED)
    first = await jira.push(stale, MIRROR, None)
    again = await jira.push(stale, MIRROR, first.ref)
    assert again.detail == {"unchanged": True}
    assert site.data.comments_updated["OKR-12"] == 0


async def test_datacenter_wiki_comment_warns() -> None:
    for site in serve("datacenter"):
        jira = connect(site.url, "datacenter")
        try:
            first = await jira.push(update(stale=True), MIRROR, None)
            stale_body = site.data.comments[str(first.ref)].body
            await jira.push(update(idempotency_key="f", checked_at=OBSERVED), MIRROR, first.ref)
        finally:
            await jira.aclose()
        assert isinstance(stale_body, str)
        assert stale_body.splitlines()[1] == "(!) *Stale* — no source has confirmed this value"
        (comment,) = site.data.comments_of(site.data.issues["OKR-12"])
        assert "(!)" not in comment.body and "Stale" not in comment.body
        assert site.data.comments_created["OKR-12"] == 1
