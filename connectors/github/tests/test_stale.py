"""Stale key results on GitHub: a warning alert in the one comment, edited away when fresh.

Driven over loopback sockets against the sandbox GitHub.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.github import GitHubCommentMirror, GitHubConnector
from connectors.github.sink import ref_comment_id
from connectors.github.tests.conftest import API, Fake, update

MIRROR = GitHubCommentMirror(repo=API, issue=1)
CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)
CONFIRMED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
WARNING = "> [!WARNING]\n> **Stale** — last confirmed 2026-11-11 07:05 UTC\n"


async def test_stale_warning_then_fresh_edit_of_the_same_comment(
    fake: Fake, github: GitHubConnector
) -> None:
    first = await github.push(update().model_copy(update={"checked_at": CONFIRMED}), MIRROR, None)
    stale = update().model_copy(
        update={"stale": True, "checked_at": CHECKED, "idempotency_key": "s-1"}
    )
    second = await github.push(stale, MIRROR, first.ref)
    [comment] = fake.data.marked_comments("bugs-closed")
    assert second.ref == first.ref and second.detail["action"] == "edited"
    heading = "### 🎯 Close 100 bugs\n\n"
    assert f"{heading}{WARNING}\n**Objective:**" in comment.body
    assert "| Value | 42 bugs |" in comment.body  # the last confirmed number stays

    fresh = update().model_copy(update={"checked_at": CONFIRMED, "idempotency_key": "f-1"})
    third = await github.push(fresh, MIRROR, second.ref)
    [comment] = fake.data.marked_comments("bugs-closed")
    assert third.ref == first.ref and third.detail["action"] == "edited"
    assert "Stale" not in comment.body and "[!WARNING]" not in comment.body
    assert f"{heading}**Objective:**" in comment.body
    assert fake.data.created_per_issue[(API, 1)] == 1
    assert fake.data.edits[ref_comment_id(first.ref, MIRROR) or 0] == 2


async def test_stale_without_a_confirmation(fake: Fake, github: GitHubConnector) -> None:
    await github.push(update().model_copy(update={"stale": True}), MIRROR, None)
    [comment] = fake.data.marked_comments("bugs-closed")
    assert "> **Stale** — no source has confirmed this value\n" in comment.body
