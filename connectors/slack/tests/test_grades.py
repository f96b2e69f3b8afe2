"""A key result's latest check-in confidence and its score, shown briefly in the Slack message
(pushed over loopback to the Slack fake and read back from its stored message)."""

from __future__ import annotations

from decimal import Decimal

from connectors.slack import SlackMirror, SlackSink
from connectors.slack.blocks import digest_blocks, grade_text
from connectors.slack.tests.conftest import Slack, kr_update, objective_update

OKRS = "C0OKRS0001"


async def test_confidence_and_score_are_shown_beside_the_number(
    slack: Slack, sink: SlackSink
) -> None:
    update = kr_update(confidence=7, score=Decimal("0.28"))
    await sink.push(update, SlackMirror(channel=OKRS), None)
    (message,) = [m for m in slack.state.channel_messages(OKRS) if m.bot_id]
    assert message.blocks is not None
    _header, section, _context = message.blocks
    assert section["text"]["text"].endswith("\nConfidence 7/10 · score 0.28")


def test_nothing_is_added_without_a_check_in_or_a_score() -> None:
    assert grade_text(kr_update()) == ""
    assert grade_text(kr_update(score=Decimal("0.7"))) == "score 0.70"


def test_a_digest_line_carries_them_too() -> None:
    digest = objective_update()
    graded = digest.model_copy(update={"key_results": (kr_update(confidence=3, score=Decimal(1)),)})
    (line,) = [b for b in digest_blocks(graded) if "Close $1000" in str(b)]
    assert "Confidence 3/10 · score 1.00" in line["text"]["text"]
    assert "Confidence" not in str(digest_blocks(digest))
