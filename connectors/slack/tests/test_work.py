"""A key result with linked work (issue 15): its Slack message and its digest line gain the
``work:`` line and link the items done since the last push; through the Slack fake, which
validates the blocks as Slack does."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.slack import SlackMirror, SlackSink
from connectors.slack.tests.conftest import Slack, kr_update, objective_update
from connectors.slack.work_text import work_lines
from okrsync.sdk.work_summary import WorkLink, WorkSummary

OKRS = "C0OKRS0001"
DONE_AT = datetime(2026, 11, 12, 8, tzinfo=UTC)


def work(*links: WorkLink, total: int | None = None) -> WorkSummary:
    return WorkSummary(
        todo=3,
        in_progress=5,
        done=12,
        done_recently=links,
        done_recently_total=len(links) if total is None else total,
    )


def link(key: str, url: str | None = "https://acme.atlassian.net/browse/OKR-7") -> WorkLink:
    return WorkLink(connection="jira", key=key, title="Ship <it> & more", url=url, done_at=DONE_AT)


def test_the_line_and_the_items_done_since_the_last_push() -> None:
    assert work_lines(work()) == ":hammer_and_wrench: work: 12 done · 5 in progress · 3 to do"
    text = work_lines(
        work(link("OKR-7"), link("OKR-8", "javascript:alert(1)"), link("OKR-9", None), total=5)
    )
    assert text.splitlines()[1] == (
        "Done since the last update: <https://acme.atlassian.net/browse/OKR-7|OKR-7>"
        " Ship &lt;it&gt; &amp; more, OKR-8 Ship &lt;it&gt; &amp; more,"
        " OKR-9 Ship &lt;it&gt; &amp; more and 2 more"
    )


async def test_the_message_and_the_digest_show_the_work(slack: Slack, sink: SlackSink) -> None:
    summary = work(link("OKR-7"))
    await sink.push(kr_update(work=summary), SlackMirror(channel=OKRS), None)
    (message,) = [m for m in slack.state.channel_messages(OKRS) if m.bot_id]
    assert message.blocks is not None
    section = message.blocks[1]["text"]["text"]
    assert ":hammer_and_wrench: work: 12 done · 5 in progress · 3 to do" in section
    assert "<https://acme.atlassian.net/browse/OKR-7|OKR-7>" in section

    digest = objective_update()
    krs = (digest.key_results[0].model_copy(update={"work": summary}), digest.key_results[1])
    await sink.push_digest(
        digest.model_copy(update={"key_results": krs}), SlackMirror(channel=OKRS), None
    )
    _, posted = [m for m in slack.state.channel_messages(OKRS) if m.bot_id]
    assert posted.blocks is not None
    lines = [b["text"]["text"] for b in posted.blocks if b["type"] == "section"]
    assert "work: 12 done" in lines[1] and "work:" not in lines[2]  # only the one with work
