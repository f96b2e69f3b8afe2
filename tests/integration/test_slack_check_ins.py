"""Check-ins from Slack on real sockets: okrsync's API and the Slack fake, requests signed as
Slack signs them, on SQLite and PostgreSQL.

The ``/okr`` command is acknowledged at once and opens the modal (``views.open``) with the key
results of the person's objectives; the submitted modal records a check-in by that person;
anything unsigned, old or altered is refused before it does anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from connectors.slack.fake import BOT_TOKEN, SIGNING_SECRET, SlackState, slack_app
from okrsync.sandbox.server import SandboxServer
from okrsync.store.db import session_scope
from okrsync.store.tables import MeasurementRow
from tests.integration.api_support import Service, api_service

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
  team_chat: {type: slack, token: "BOT", base_url: "SLACK", signing_secret: "SIGNING"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals", schedule: every 1h}
objectives:
  - id: sales
    title: Grow sales
    cycle: 2026-Q4
    owner: alice@example.com
    key_results:
      - {id: partners, title: Sign 5 launch partners, kind: increase, start: 0, target: 5}
      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0, target: 10}
  - id: platform
    title: Keep the platform up
    cycle: 2026-Q4
    owner: "@bob"
    key_results:
      - {id: uptime, title: Reach 99.9% uptime, kind: increase, start: 99, target: 99.9}
  - id: everyone
    title: Happy customers
    cycle: 2026-Q4
    key_results:
      - {id: nps, title: NPS above 40, kind: increase, start: 20, target: 40}
"""


@pytest.fixture
def slack() -> Iterator[tuple[SandboxServer, SlackState]]:
    app = slack_app()
    with SandboxServer(app, name="slack") as server:
        yield server, app.state.slack


@pytest.fixture
def svc(
    tmp_path: Path, database_url: str, slack: tuple[SandboxServer, SlackState]
) -> Iterator[Service]:
    text = (
        CONFIG.replace("BOT", BOT_TOKEN)
        .replace("SLACK", f"{slack[0].url}/api/")
        .replace("SIGNING", SIGNING_SECRET)
    )
    with api_service(tmp_path, database_url, config=text) as service:
        yield service


def post(svc: Service, path: str, signed: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = signed
    return httpx.post(f"{svc.url}/hooks/team_chat/{path}", content=body, headers=headers)


def wait_for_views(state: SlackState, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(state.views) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return state.views


def options(view: dict[str, Any]) -> list[str]:
    (picker,) = [b for b in view["blocks"] if b.get("block_id") == "key_result"]
    return [option["value"] for option in picker["element"]["options"]]


def selected(kr: str, **fields: str) -> dict[str, dict[str, dict[str, Any]]]:
    values: dict[str, dict[str, dict[str, Any]]] = {
        "key_result": {
            "key_result": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": kr}, "value": kr},
            }
        },
        "value": {"value": {"type": "number_input", "value": fields.get("value")}},
        "confidence": {"confidence": {"type": "number_input", "value": fields.get("confidence")}},
        "note": {"note": {"type": "plain_text_input", "value": fields.get("note")}},
    }
    return values


def manual_rows(svc: Service, kr: str) -> list[MeasurementRow]:
    with session_scope(svc.app.engine) as session:
        statement = (
            select(MeasurementRow)
            .where(MeasurementRow.key_result_id == kr, MeasurementRow.origin == "manual")
            .order_by(col(MeasurementRow.id))
        )
        return list(session.exec(statement))


def test_okr_opens_the_modal_and_its_submission_lands_with_its_author(
    svc: Service, slack: tuple[SandboxServer, SlackState]
) -> None:
    state = slack[1]
    answer = post(svc, "commands", state.slash_command("U0ALICE001"))
    assert answer.status_code == 200 and answer.content == b""  # the ack: nothing shown
    (view,) = wait_for_views(state, 1)
    # alice (matched by the e-mail users.info gives) owns "sales"; "everyone" has no owner
    assert options(view) == ["partners", "deals", "nps"]

    answer = post(
        svc,
        "interactions",
        state.view_submission(
            "U0ALICE001", selected("partners", value="2", confidence="7", note="two signed")
        ),
    )
    assert answer.status_code == 200 and answer.content == b""
    (row,) = manual_rows(svc, "partners")
    assert (row.value, row.confidence, row.note) == (2, 7, "two signed")
    assert row.author == "@alice (slack U0ALICE001)"
    assert row.provenance[0]["source"] == "slack"

    post(svc, "commands", state.slash_command("U0BOB00001"))  # bob, named "@bob" as owner
    assert options(wait_for_views(state, 2)[1]) == ["uptime", "nps"]
    post(svc, "commands", state.slash_command("U0ALICE001"))  # the picker shows the new value
    (partners, *_) = wait_for_views(state, 3)[2]["blocks"][0]["element"]["options"]
    assert partners["text"]["text"] == "Sign 5 launch partners (now 2)"


BAD_INPUT = [
    ({"value": "3", "confidence": "11"}, "partners", "confidence"),
    ({"value": "3", "confidence": "0"}, "partners", "confidence"),
    ({"value": "3", "confidence": "7.5"}, "partners", "confidence"),
    ({}, "partners", "confidence"),  # neither value nor confidence
    ({"value": "3"}, "uptime", "key_result"),  # bob's objective, not alice's
    ({"value": "3"}, "gone", "key_result"),  # no such key result
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_is_answered_on_the_modal(
    svc: Service, slack: tuple[SandboxServer, SlackState]
) -> None:
    state = slack[1]
    post(svc, "commands", state.slash_command("U0ALICE001"))
    wait_for_views(state, 1)
    for fields, kr, field in BAD_INPUT:
        values = selected(kr, **fields)
        answer = post(svc, "interactions", state.view_submission("U0ALICE001", values))
        assert answer.status_code == 200
        refused = answer.json()
        assert refused["response_action"] == "errors", (fields, kr)
        assert list(refused["errors"]) == [field], (fields, kr)
        assert manual_rows(svc, kr) == []


def tampered(signed: tuple[bytes, dict[str, str]], how: str) -> tuple[bytes, dict[str, str]]:
    body, headers = signed
    if how == "body":
        return body.replace(b"U0ALICE001", b"U0BOB00001"), headers
    if how == "signature":
        return body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
    if how == "unsigned":
        return body, {"Content-Type": headers["Content-Type"]}
    return body, headers  # "timestamp", "secret": signed too long ago, or by another app


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unsigned_old_or_altered_requests_are_refused_before_anything(
    svc: Service, slack: tuple[SandboxServer, SlackState]
) -> None:
    state = slack[1]
    view = {"callback_id": "okrsync_check_in", "blocks": []}
    values = selected("partners", value="4", confidence="5")
    for how in ("body", "signature", "unsigned", "timestamp", "secret"):
        old = int(time.time()) - 301 if how == "timestamp" else None
        secret = "not-the-app-secret" if how == "secret" else SIGNING_SECRET
        command = state.slash_command("U0ALICE001", timestamp=old, secret=secret)
        assert post(svc, "commands", tampered(command, how)).status_code == 401, how
        submission = state.view_submission(
            "U0ALICE001", values, view=view, timestamp=old, secret=secret
        )
        assert post(svc, "interactions", tampered(submission, how)).status_code == 401, how
    assert manual_rows(svc, "partners") == []
    # the one signed command opens the one form: none of the refused ones started a task
    assert post(svc, "commands", state.slash_command("U0ALICE001")).status_code == 200
    assert len(wait_for_views(state, 1)) == 1
    assert len(state.used) == 1  # its trigger opened the form
    assert len(state.triggers) == 5  # the refused commands' triggers never reached views.open


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_connection_without_signing_secret_takes_nothing(
    tmp_path: Path, database_url: str, slack: tuple[SandboxServer, SlackState]
) -> None:
    text = CONFIG.replace(', signing_secret: "SIGNING"', "").replace("BOT", BOT_TOKEN)
    with api_service(tmp_path, database_url, config=text.replace("SLACK", slack[0].url)) as svc:
        answer = post(svc, "commands", slack[1].slash_command("U0ALICE001"))
        assert answer.status_code == 404
        assert "signing_secret" in answer.json()["detail"]
