"""The Jira mirror against the fake: one comment per key result, a field, a property; no dupes."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from connectors.jira import JiraMirror
from connectors.jira.adf import marker, text_of
from connectors.jira.fake import jira_app
from connectors.jira.tests.helpers import FastJira, Site, connect, serve, update
from okrsync.errors import ConnectorError, CredentialsError, TargetNotFoundError
from okrsync.sandbox import SandboxServer
from okrsync.sdk.models import Status

MIRROR = JiraMirror(issue="OKR-12", field="OKR progress")
PROPERTY = "okrsync.epic_done"


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


@pytest.fixture
async def jira(site: Site) -> AsyncIterator[FastJira]:
    connector = connect(site.url)
    yield connector
    await connector.aclose()


def writes(site: Site) -> list[str]:
    return [f"{r.method} {r.path}" for r in site.server.requests if r.method != "GET"]


async def test_first_push_sets_field_comment_and_property(site: Site, jira: FastJira) -> None:
    result = await jira.push(update(), MIRROR, None)
    issue = site.data.issues["OKR-12"]
    assert issue.fields["customfield_10050"] == 30.0
    assert site.data.comments_created["OKR-12"] == 1
    (comment,) = site.data.comments_of(issue)
    assert result.ref == comment.id
    assert comment.body["type"] == "doc" and comment.body["version"] == 1
    text = text_of(comment.body)
    assert "OKR · Finish 40 stories" in text
    assert "▓▓▓▓▓▓░░░░░░░░░░░░░░ 30%" in text
    assert "30.0% of 100.0% · At risk" in text
    assert marker("epic_done") in text
    state = issue.properties[PROPERTY]
    assert state["comment_id"] == comment.id
    assert state["value"] == "30" and state["status"] == "at_risk"
    assert state["key_result"]["target"] == "100"
    assert writes(site) == [
        "PUT /rest/api/3/issue/OKR-12",
        "POST /rest/api/3/issue/OKR-12/comment",
        f"PUT /rest/api/3/issue/OKR-12/properties/{PROPERTY}",
    ]


async def test_same_state_twice_changes_nothing(site: Site, jira: FastJira) -> None:
    first = await jira.push(update(), MIRROR, None)
    site.server.reset()
    again = await jira.push(update(), MIRROR, first.ref)
    assert again.ref == first.ref and again.detail == {"unchanged": True}
    assert writes(site) == []
    assert site.data.comments_created["OKR-12"] == 1
    assert site.data.comments_updated["OKR-12"] == 0


async def test_a_new_value_edits_the_same_comment(site: Site, jira: FastJira) -> None:
    first = await jira.push(update(), MIRROR, None)
    second = await jira.push(update("55", "0.55", status=Status.ON_TRACK), MIRROR, first.ref)
    assert second.ref == first.ref
    assert site.data.comments_created["OKR-12"] == 1
    assert site.data.comments_updated["OKR-12"] == 1
    (comment,) = site.data.comments_of(site.data.issues["OKR-12"])
    assert "55.0% of 100.0% · On track" in text_of(comment.body)
    assert site.data.issues["OKR-12"].fields["customfield_10050"] == 55.0


async def test_lost_ref_finds_the_comment_through_the_property(site: Site, jira: FastJira) -> None:
    first = await jira.push(update(), MIRROR, None)
    second = await jira.push(update("60", "0.6"), MIRROR, None)  # the ref was never recorded
    assert second.ref == first.ref
    assert site.data.comments_created["OKR-12"] == 1


async def test_crash_before_the_property_finds_the_comment_by_its_marker(
    site: Site, jira: FastJira
) -> None:
    other = update(key_result_id="other_kr", key_result_title="Another")
    await jira.push(other, MIRROR, None)
    first = await jira.push(update(), MIRROR, None)
    site.data.issues["OKR-12"].properties.pop(PROPERTY)  # as if we died before writing it
    second = await jira.push(update("70", "0.7"), MIRROR, None)
    assert second.ref == first.ref
    assert site.data.comments_created["OKR-12"] == 2  # one per key result, never more
    assert any(r.path.endswith("/comment") and r.method == "GET" for r in site.server.requests)


async def test_a_deleted_comment_is_posted_again(site: Site, jira: FastJira) -> None:
    first = await jira.push(update(), MIRROR, None)
    assert first.ref is not None
    del site.data.comments[first.ref]
    second = await jira.push(update("80", "0.8"), MIRROR, first.ref)
    assert second.ref != first.ref
    assert site.data.issues["OKR-12"].properties[PROPERTY]["comment_id"] == second.ref


@pytest.mark.parametrize(
    ("field", "field_value", "field_id", "expected"),
    [
        ("customfield_10051", "status", "customfield_10051", "At risk"),
        ("OKR status", "progress_percent", "customfield_10051", "30%"),
        ("OKR status", "value", "customfield_10051", "30.0%"),
        ("OKR progress", "value", "customfield_10050", 30.0),
    ],
)
async def test_field_values(
    site: Site, jira: FastJira, field: str, field_value: str, field_id: str, expected: Any
) -> None:
    mirror = JiraMirror.model_validate(
        {"issue": "OKR-3", "field": field, "field_value": field_value, "comment": False}
    )
    result = await jira.push(update(), mirror, None)
    issue = site.data.issues["OKR-3"]
    assert issue.fields[field_id] == expected
    assert result.ref is None and site.data.comments_created["OKR-3"] == 0
    assert issue.properties[PROPERTY]["field"] == {field_id: expected}


@pytest.mark.parametrize(
    ("field", "decimals", "expected"),
    [
        ("OKR progress", None, 66.7),  # a number field: rounded as people read it ('%' → 1)
        ("OKR progress", 0, 67.0),
        ("OKR status", None, "66.7%"),
        ("OKR status", 2, "66.67%"),
    ],
)
async def test_field_value_uses_the_key_results_decimals(
    site: Site, jira: FastJira, field: str, decimals: int | None, expected: Any
) -> None:
    mirror = JiraMirror.model_validate(
        {"issue": "OKR-3", "field": field, "field_value": "value", "comment": False}
    )
    await jira.push(update("66.66666666666666666666666667", decimals=decimals), mirror, None)
    assert expected in site.data.issues["OKR-3"].fields.values()


async def test_status_into_a_number_field_is_a_config_error(jira: FastJira) -> None:
    mirror = JiraMirror(issue="OKR-3", field="OKR progress", field_value="status")
    with pytest.raises(ConnectorError, match="needs a text field") as caught:
        await jira.push(update(), mirror, None)
    assert "mirror on OKR-3" in str(caught.value)


async def test_unknown_field_names_the_mirror(jira: FastJira) -> None:
    mirror = JiraMirror(issue="OKR-12", field="Story Pointz")
    with pytest.raises(TargetNotFoundError) as caught:
        await jira.push(update(), mirror, None)
    message = str(caught.value)
    assert message.startswith("connection 'jira-test', mirror on OKR-12 (key result 'epic_done')")
    assert "no field with the id or name 'Story Pointz'" in message
    assert "Story point estimate" in message  # the hint


async def test_missing_issue_names_the_mirror(jira: FastJira) -> None:
    with pytest.raises(TargetNotFoundError) as caught:
        await jira.push(update(), JiraMirror(issue="OKR-9999"), None)
    message = str(caught.value)
    assert "mirror on OKR-9999" in message and "Issue does not exist" in message


async def test_401_on_push_names_the_connection(site: Site) -> None:
    jira = connect(site.url, email="someone@example.com")
    try:
        with pytest.raises(CredentialsError, match=r"connection 'jira-test'.*api_token"):
            await jira.push(update(), MIRROR, None)
    finally:
        await jira.aclose()


async def test_writes_to_one_issue_are_spaced() -> None:
    for site in serve(write_interval=0.05):
        jira = connect(site.url, issue_write_interval=0.06)
        try:
            await jira.push(update(), MIRROR, None)
            await jira.push(update("40", "0.4"), MIRROR, None)
        finally:
            await jira.aclose()
        assert site.app.state.fake.per_issue_limited == 0
        moments = [r.at for r in site.server.requests if r.method != "GET"]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
        assert len(moments) == 6 and min(gaps) >= 0.05


async def test_per_issue_429_is_retried_after_retry_after() -> None:
    for site in serve(write_interval=0.5):
        jira = connect(site.url)  # no spacing of our own: the fake's per-issue limit answers
        try:
            mirror = JiraMirror(issue="OKR-5", comment=False)
            await jira.push(update(), mirror, None)
            await jira.push(update("31", "0.31"), mirror, None)
        finally:
            await jira.aclose()
        assert site.app.state.fake.per_issue_limited >= 1
        assert site.data.issues["OKR-5"].properties[PROPERTY]["value"] == "31"


async def test_datacenter_comment_is_wiki_text() -> None:
    for site in serve("datacenter"):
        jira = connect(site.url, "datacenter")
        try:
            first = await jira.push(update(), MIRROR, None)
            again = await jira.push(update("45", "0.45"), MIRROR, None)
        finally:
            await jira.aclose()
        (comment,) = site.data.comments_of(site.data.issues["OKR-12"])
        assert isinstance(comment.body, str) and comment.body.startswith("h3. OKR · ")
        assert "45.0% of 100.0%" in comment.body and marker("epic_done") in comment.body
        assert again.ref == first.ref
        assert all("/rest/api/2/" in r.path for r in site.server.requests)


def test_describe_and_value_formatting(site: Site) -> None:
    jira = connect(site.url)
    assert jira.describe(MIRROR) == (
        "jira-test: Jira issue OKR-12, field 'OKR progress' = progress_percent, one comment, "
        "property okrsync.<key result>"
    )
    assert update(value="12.50").value == Decimal("12.50")


class LoseFirstCommentAnswer:
    """Lets Jira create the comment, then answers 502 as a proxy that lost the answer would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lost = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            self.lost == 0
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/comment")
        ):
            self.lost += 1

            async def swallow(message: Any) -> None:
                return None

            await self.app(scope, receive, swallow)
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"Bad Gateway"})
            return
        await self.app(scope, receive, send)


async def test_a_comment_created_but_not_confirmed_is_not_posted_twice() -> None:
    app = jira_app()
    proxy = LoseFirstCommentAnswer(app)
    with SandboxServer(proxy, name="jira-lossy") as server:
        jira = connect(server.url)
        try:
            result = await jira.push(update(), MIRROR, None)
        finally:
            await jira.aclose()
    data = app.state.jira
    assert proxy.lost == 1
    assert data.comments_created["OKR-12"] == 1
    (comment,) = data.comments_of(data.issues["OKR-12"])
    assert result.ref == comment.id
    assert data.issues["OKR-12"].properties[PROPERTY]["comment_id"] == comment.id
