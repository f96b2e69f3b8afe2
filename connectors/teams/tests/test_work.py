"""A key result with linked work (issue 15) on a Teams card and on a digest: the ``work:`` line
and the items done since the last push, linked in the markdown TextBlocks render; through the
Teams webhook fake."""

from __future__ import annotations

from connectors.teams import TeamsSink
from connectors.teams.tests.conftest import Teams
from connectors.teams.tests.test_sink import MIRROR, kr_update, objective
from connectors.teams.work_blocks import done_text, work_blocks
from okrsync.sdk.work_summary import WorkLink, WorkSummary

SUMMARY = WorkSummary(
    todo=3,
    in_progress=5,
    done=12,
    done_recently=(
        WorkLink(connection="jira", key="OKR-7", title="Ship [it]", url="https://j.test/OKR-7"),
        WorkLink(connection="github", key="acme/shop#4", title="Fix", url="javascript:x"),
    ),
    done_recently_total=3,
)


def test_the_line_and_the_items_done_since_the_last_push() -> None:
    assert work_blocks(None) == []
    line, done = work_blocks(SUMMARY)
    assert line["text"] == "work: 12 done · 5 in progress · 3 to do"
    assert done["text"] == (
        "Done since the last update: [OKR-7](https://j.test/OKR-7) Ship \\[it\\], "
        "acme/shop#4 Fix and 1 more"
    )
    nothing_done = SUMMARY.model_copy(update={"done_recently": (), "done_recently_total": 0})
    assert done_text(nothing_done) is None and len(work_blocks(nothing_done)) == 1


async def test_the_card_and_the_digest_show_the_work(teams: Teams, sink: TeamsSink) -> None:
    await sink.push(kr_update(work=SUMMARY), MIRROR, None)
    digest = objective()
    krs = (digest.key_results[0].model_copy(update={"work": SUMMARY}), digest.key_results[1])
    await sink.push_digest(digest.model_copy(update={"key_results": krs}), MIRROR, None)
    card, digest_card = teams.state.cards()
    (container,) = card["attachments"][0]["content"]["body"]
    texts = [i.get("text") for i in container["items"]]
    assert "work: 12 done · 5 in progress · 3 to do" in texts
    (container,) = digest_card["attachments"][0]["content"]["body"]
    facts = next(i for i in container["items"] if i["type"] == "FactSet")["facts"]
    assert facts[0]["value"].endswith(" · work: 12 done · 5 in progress · 3 to do")
    assert "work:" not in facts[1]["value"]
    assert any(
        (i.get("text") or "").startswith("Close $1000 in new bookings: Done since the last update")
        for i in container["items"]
    )
