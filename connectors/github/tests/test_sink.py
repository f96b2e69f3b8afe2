"""The GitHub mirror against the sandbox GitHub: one comment per key result, edited in place.

The tracking issue (``okrsync-demo/api#1``) already has 130 comments from people, so finding our
own comment by its marker needs two pages of 100 (``Link: rel="next"``).
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from connectors.github import GitHubCommentMirror, GitHubConnector
from connectors.github.fake import TRACKING_COMMENTS
from connectors.github.sink import marker, ref_comment_id, render_comment
from connectors.github.tests.conftest import API, TOKEN, Fake, make_connector, update
from okrsync.errors import CredentialsError, TargetNotFoundError, VendorResponseError
from okrsync.sandbox import FaultKind
from okrsync.sdk.models import Status

MIRROR = GitHubCommentMirror(repo=API, issue=1)
ISSUE = (API, 1)


def methods(fake: Fake) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.server.requests]


async def test_first_push_creates_one_comment(fake: Fake, github: GitHubConnector) -> None:
    result = await github.push(update(), MIRROR, None)
    assert fake.data.created_per_issue[ISSUE] == 1
    [comment] = fake.data.marked_comments("bugs-closed")
    assert result.ref == f"{API}#1:{comment.id}"
    assert result.detail["action"] == "created"
    assert result.detail["html_url"].endswith(f"#issuecomment-{comment.id}")
    assert comment.body == render_comment(update())
    # looked for an earlier comment of ours first (two pages), then created one
    assert methods(fake) == [
        f"GET /repos/{API}/issues/1/comments",
        f"GET /repos/{API}/issues/1/comments",
        f"POST /repos/{API}/issues/1/comments",
    ]
    first, second, post = fake.server.requests
    assert parse_qs(first.query) == {"per_page": ["100"]}
    assert parse_qs(second.query) == {"per_page": ["100"], "page": ["2"]}
    assert post.json_body() == {"body": render_comment(update())}
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert len(fake.data.comments_on(API, 1)) == TRACKING_COMMENTS + 1


async def test_later_pushes_edit_the_same_comment(fake: Fake, github: GitHubConnector) -> None:
    first = await github.push(update("42"), MIRROR, None)
    fake.server.reset()
    second = await github.push(update("57", progress="0.57"), MIRROR, first.ref)
    assert second.ref == first.ref and second.detail["action"] == "edited"
    assert methods(fake) == [
        f"PATCH /repos/{API}/issues/comments/{ref_comment_id(first.ref, MIRROR)}"
    ]
    [comment] = fake.data.marked_comments("bugs-closed")
    assert "| Value | 57 bugs |" in comment.body
    assert fake.data.created_per_issue[ISSUE] == 1


async def test_same_state_twice_changes_nothing(fake: Fake, github: GitHubConnector) -> None:
    first = await github.push(update(), MIRROR, None)
    [before] = fake.data.marked_comments("bugs-closed")
    body = before.body
    again = await github.push(update(), MIRROR, first.ref)
    [after] = fake.data.marked_comments("bugs-closed")
    assert again.ref == first.ref
    assert after.body == body and fake.data.edits[after.id] == 0
    assert fake.data.created_per_issue[ISSUE] == 1


async def test_crash_between_push_and_record_does_not_duplicate(
    fake: Fake, github: GitHubConnector
) -> None:
    first = await github.push(update("42"), MIRROR, None)
    # the ref was lost: the next push starts from nothing, with the same or a newer state
    same = await github.push(update("42"), MIRROR, None)
    assert same.ref == first.ref and same.detail["action"] == "unchanged"
    newer = await github.push(update("60", progress="0.6"), MIRROR, None)
    assert newer.ref == first.ref and newer.detail["action"] == "recovered"
    assert fake.data.created_per_issue[ISSUE] == 1
    [comment] = fake.data.marked_comments("bugs-closed")
    assert "| Value | 60 bugs |" in comment.body


async def test_each_key_result_has_its_own_comment(fake: Fake, github: GitHubConnector) -> None:
    a = await github.push(update(key_result_id="kr-a"), MIRROR, None)
    b = await github.push(update(key_result_id="kr-b"), MIRROR, None)
    assert a.ref != b.ref
    assert fake.data.created_per_issue[ISSUE] == 2
    await github.push(update("43", key_result_id="kr-a"), MIRROR, None)
    assert fake.data.created_per_issue[ISSUE] == 2


async def test_deleted_comment_is_recreated(fake: Fake, github: GitHubConnector) -> None:
    first = await github.push(update(), MIRROR, None)
    comment_id = ref_comment_id(first.ref, MIRROR)
    assert comment_id is not None
    fake.data.delete_comment(comment_id)
    again = await github.push(update(), MIRROR, first.ref)
    assert again.ref != first.ref and again.detail["action"] == "created"
    assert len(fake.data.marked_comments("bugs-closed")) == 1


async def test_ref_for_another_issue_is_not_edited(fake: Fake, github: GitHubConnector) -> None:
    first = await github.push(update(), MIRROR, None)
    moved = GitHubCommentMirror(repo=API, issue=2)
    second = await github.push(update(), moved, first.ref)
    assert second.ref is not None and second.ref.startswith(f"{API}#2:")
    assert fake.data.created_per_issue[(API, 2)] == 1
    assert len(fake.data.marked_comments("bugs-closed")) == 2  # one per issue


async def test_missing_repository_names_the_mirror(github: GitHubConnector) -> None:
    gone = GitHubCommentMirror(repo="okrsync-demo/ghost", issue=7)
    with pytest.raises(TargetNotFoundError) as caught:
        await github.push(update(), gone, None)
    text = str(caught.value)
    assert text.startswith("connection 'gh', mirror okrsync-demo/ghost#7 of key result")
    assert "HTTP 404" in text and "Not Found" in text


async def test_bad_credentials_on_push(fake: Fake) -> None:
    wrong = make_connector(fake.url, token="ghp_nopeNopeNope000111")
    try:
        with pytest.raises(CredentialsError, match="Bad credentials") as caught:
            await wrong.push(update(), MIRROR, None)
    finally:
        await wrong.aclose()
    assert "connection 'gh'" in str(caught.value) and "ghp_nope" not in str(caught.value)


async def test_secondary_limit_on_create_then_exactly_one_comment(
    fake: Fake, github: GitHubConnector
) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=403,
        retry_after="1",
        body='{"message": "You have exceeded a secondary rate limit and have been temporarily '
        'blocked from content creation. Please retry your request again later.", '
        '"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-'
        'api#about-secondary-rate-limits", "status": "403"}',
        headers={"content-type": "application/json"},
        path="/issues/1/comments",
        method="POST",
    )
    result = await github.push(update(), MIRROR, None)
    assert result.detail["action"] == "created"
    assert fake.data.created_per_issue[ISSUE] == 1


async def test_lost_answer_to_create_does_not_duplicate(
    fake: Fake, github: GitHubConnector
) -> None:
    fake.data.lose_write_answers = 1  # GitHub creates the comment, the 502 hides it from us
    result = await github.push(update(), MIRROR, None)
    assert result.detail["action"] == "created"
    assert fake.data.created_per_issue[ISSUE] == 1
    [comment] = fake.data.marked_comments("bugs-closed")
    assert result.ref == f"{API}#1:{comment.id}"
    posts = [r for r in fake.server.requests if r.method == "POST"]
    assert len(posts) == 1  # found by its marker instead of posted again


async def test_5xx_before_create_posts_again(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.STATUS, status=503, path="/issues/1/comments", method="POST")
    result = await github.push(update(), MIRROR, None)
    assert result.detail["action"] == "created"
    assert fake.data.created_per_issue[ISSUE] == 1
    assert len([r for r in fake.server.requests if r.method == "POST"]) == 2


async def test_5xx_on_edit_then_success(fake: Fake, github: GitHubConnector) -> None:
    first = await github.push(update(), MIRROR, None)
    fake.fault(FaultKind.STATUS, status=500, path="/issues/comments/", method="PATCH")
    second = await github.push(update("50", progress="0.5"), MIRROR, first.ref)
    assert second.ref == first.ref
    assert fake.data.created_per_issue[ISSUE] == 1


async def test_malformed_answer_to_create(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.MALFORMED, status=201, path="/issues/2/comments", method="POST")
    with pytest.raises(VendorResponseError, match="not valid JSON") as caught:
        await github.push(update(), GitHubCommentMirror(repo=API, issue=2), None)
    assert "mirror okrsync-demo/api#2" in str(caught.value)


def test_comment_body() -> None:
    assert render_comment(update("120", progress="1.2", status=Status.ON_TRACK)) == (
        "<!-- okrsync:kr=bugs-closed -->\n"
        "### 🎯 Close 100 bugs\n"
        "\n"
        "**Objective:** Ship a calmer product · **Cycle:** 2026-Q4\n"
        "\n"
        "`████████████████████`  **120 %**\n"
        "\n"
        "| | |\n"
        "| --- | --- |\n"
        "| Value | 120 bugs |\n"
        "| Target | 100 bugs (from 0 bugs) |\n"
        "| Status | 🟢 On track |\n"
        "\n"
        "<sub>Updated by okrsync · observed 2026-11-12T09:30:00+00:00</sub>\n"
    )
    empty = render_comment(update(None, progress=None, status=Status.NO_DATA))
    assert "`░░░░░░░░░░░░░░░░░░░░`  —" in empty and "| Value | — |" in empty
    assert "⚪ No data" in empty


def test_marker_cannot_be_broken_out_of() -> None:
    assert marker("kr one-->x") == "<!-- okrsync:kr=kr%20one--%3Ex -->"
    assert marker("revenue.q4/new-arr") == "<!-- okrsync:kr=revenue.q4/new-arr -->"


def test_ref_parsing() -> None:
    assert ref_comment_id(f"{API}#1:99", MIRROR) == 99
    assert ref_comment_id("99", MIRROR) == 99
    assert ref_comment_id(f"{API}#2:99", MIRROR) is None
    assert ref_comment_id("garbage", MIRROR) is None
    assert ref_comment_id(None, MIRROR) is None


def test_describe(github: GitHubConnector) -> None:
    assert github.describe(MIRROR) == f"gh: comment on {API}#1 (edited in place)"
