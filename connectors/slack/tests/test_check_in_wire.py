"""Slack's side of check-ins, pure: request signatures (Slack's published example), the slash
command and ``view_submission`` bodies as the fake sends them, the modal, reminders."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from connectors.slack import check_ins as wire
from connectors.slack.fake import SIGNING_SECRET, SlackState
from okrsync.sdk.chat import ChatUser, KeyResultChoice, Reminder, ReminderLine

# Slack's own example ("Verifying requests from Slack"): secret, timestamp, body, signature.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmi"
    b"bIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def doc_headers(**changes: str) -> dict[str, str]:
    headers = {
        "x-slack-request-timestamp": str(DOC_TIMESTAMP),
        "x-slack-signature": DOC_SIGNATURE,
    }
    return {**headers, **changes}


def test_slacks_published_example_verifies() -> None:
    assert wire.signature(DOC_SECRET, str(DOC_TIMESTAMP), DOC_BODY) == DOC_SIGNATURE
    assert wire.verify(DOC_SECRET, doc_headers(), DOC_BODY, DOC_TIMESTAMP + 10)


@pytest.mark.parametrize(
    ("headers", "body", "secret"),
    [
        (doc_headers(), DOC_BODY + b"&x=1", DOC_SECRET),  # body changed
        (doc_headers(), DOC_BODY, "another-secret"),  # signed with another app's secret
        (doc_headers(**{"x-slack-signature": DOC_SIGNATURE[:-1] + "0"}), DOC_BODY, DOC_SECRET),
        (doc_headers(**{"x-slack-signature": DOC_SIGNATURE[3:]}), DOC_BODY, DOC_SECRET),  # no v0=
        (doc_headers(**{"x-slack-request-timestamp": "1531420619"}), DOC_BODY, DOC_SECRET),
        (doc_headers(**{"x-slack-request-timestamp": "\uff11\uff15"}), DOC_BODY, DOC_SECRET),
        ({"x-slack-signature": DOC_SIGNATURE}, DOC_BODY, DOC_SECRET),  # no timestamp
    ],
)
def test_anything_changed_is_refused(headers: dict[str, str], body: bytes, secret: str) -> None:
    assert not wire.verify(secret, headers, body, DOC_TIMESTAMP)


@pytest.mark.parametrize(
    ("skew", "accepted"), [(300, True), (301, False), (-300, True), (-301, False)]
)
def test_five_minute_window_either_way(skew: int, accepted: bool) -> None:
    assert wire.verify(DOC_SECRET, doc_headers(), DOC_BODY, DOC_TIMESTAMP + skew) is accepted


def test_the_fakes_slash_command_is_signed_and_read() -> None:
    state = SlackState()
    body, headers = state.slash_command("U0ALICE001", text="partners", timestamp=1_800_000_000)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert wire.verify(SIGNING_SECRET, lowered, body, 1_800_000_000)
    fields = parse_qs(body.decode())
    for name in ("token", "team_id", "user_id", "user_name", "command", "text", "response_url"):
        assert name in fields
    command = wire.read_command(body)
    assert command is not None
    assert (command.user.id, command.user.name, command.text) == ("U0ALICE001", "alice", "partners")
    assert command.trigger_id == fields["trigger_id"][0]
    assert wire.read_command(b"user_id=U1&text=x") is None  # no trigger_id, no command


def choices() -> list[KeyResultChoice]:
    return [
        KeyResultChoice("partners", "Sign 5 launch partners", "Grow sales", "2"),
        KeyResultChoice("nps", "N" * 200, "Customers", None),
    ]


def test_modal_as_slack_takes_it() -> None:
    view = wire.check_in_view(choices())
    assert view["type"] == "modal" and view["callback_id"] == wire.CALLBACK_ID
    assert len(view["title"]["text"]) <= 24
    blocks = {block["block_id"]: block for block in view["blocks"]}
    assert list(blocks) == ["key_result", "value", "confidence", "note"]
    options = blocks["key_result"]["element"]["options"]
    assert [o["value"] for o in options] == ["partners", "nps"]
    assert options[0]["text"]["text"] == "Sign 5 launch partners (now 2)"
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    confidence = blocks["confidence"]["element"]
    assert (confidence["min_value"], confidence["max_value"]) == ("1", "10")
    assert all(b["element"]["action_id"] == b["block_id"] for b in view["blocks"])


def submitted(state: SlackState, values: dict[str, object]) -> bytes:
    view = wire.check_in_view(choices())
    body, _ = state.view_submission("U0BOB00001", values, view=view)  # type: ignore[arg-type]
    return body


def test_submission_read_from_slacks_state_values() -> None:
    state = SlackState()
    values = {
        "key_result": {
            "key_result": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": "nps"},
            }
        },
        "value": {"value": {"type": "number_input", "value": "42.5"}},
        "confidence": {"confidence": {"type": "number_input", "value": "7"}},
        "note": {"note": {"type": "plain_text_input", "value": None}},
    }
    body = submitted(state, values)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "view_submission" and payload["view"]["state"]["values"] == values
    read = wire.read_submission(body)
    assert read is not None
    assert (read.user.id, read.user.name) == ("U0BOB00001", "bob")
    assert (read.key_result_id, read.value, read.confidence, read.note) == (
        "nps",
        "42.5",
        "7",
        None,
    )


def test_other_interactions_are_not_submissions() -> None:
    state = SlackState()
    other = wire.no_key_results_view(ChatUser("U1"))
    body, _ = state.view_submission("U0BOB00001", {}, view=other)
    assert wire.read_submission(body) is None
    assert wire.read_submission(b"payload=not-json") is None
    assert wire.read_submission(b"payload=%7B%22type%22%3A%22block_actions%22%7D") is None


def test_refusal_names_blocks() -> None:
    assert wire.refusal({"confidence": "1 to 10"}) == {
        "response_action": "errors",
        "errors": {"confidence": "1 to 10"},
    }


def test_reminder_has_a_button_or_the_command_hint() -> None:
    reminder = Reminder(
        "#okrs", "alice", (ReminderLine("partners", "Partners", "no check-in yet"),)
    )
    with_link = wire.reminder_message(reminder, "https://okr.example.com/")
    assert "alice" in with_link["text"] and "Partners" in with_link["blocks"][0]["text"]["text"]
    assert with_link["blocks"][1]["elements"][0]["url"] == "https://okr.example.com/"
    hint = wire.reminder_message(reminder, None)
    assert "/okr" in hint["blocks"][1]["elements"][0]["text"]
