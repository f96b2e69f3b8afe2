"""What the sink sends and what the fake answers, checked against Slack's published API description.

``connectors/slack/contracts/slack-web-api.swagger2.json`` is Slack's Swagger 2.0 description
(2021; its source and licence are in ``contracts/SOURCE.md`` beside it).
Checked, with ``jsonschema``:

* requests (from the sandbox's request log) to ``chat.postMessage`` and ``chat.update``: every
  required parameter is present (``token`` as ``Authorization: Bearer``, which Slack requires for
  JSON bodies), every parameter sent is one the spec declares, with the declared type; ``blocks``
  (a JSON string in form bodies, an array in JSON bodies) against the spec's ``blocks`` definition;
* requests to ``conversations.history``: query parameters declared, of the declared type;
* the fake's answers to the same requests, replayed, against each method's 200 schema (``ok:
  true``) or ``default`` schema (``ok: false``, the error code in the method's enum).

Where the spec is older than the API, the differences are listed in ``NEWER_THAN_SPEC`` and
removed before validating, rather than loosening the whole check: message ``metadata`` (2022),
the ``include_all_metadata`` argument, ``edited`` on messages and history's
``response_metadata`` (the spec's own example carries it, its schema forbids it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator, ValidationError  # type: ignore[import-untyped]

from connectors.slack import SlackMirror, SlackSink
from connectors.slack.fake import BOT_TOKEN
from connectors.slack.tests.conftest import Slack, kr_update, make_sink, objective_update
from okrsync.sandbox import RequestRecord
from okrsync.sdk.models import Status

SPEC_FILE = Path(__file__).resolve().parents[1] / "contracts" / "slack-web-api.swagger2.json"

NEWER_THAN_SPEC_ARGS = {"metadata", "include_all_metadata"}
NEWER_THAN_SPEC_MESSAGE_FIELDS = ("metadata", "edited")


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return loaded


def operation(method: str) -> dict[str, Any]:
    path = spec()["paths"][f"/{method}"]
    op: dict[str, Any] = path.get("post") or path["get"]
    return op


def validator(schema: dict[str, Any]) -> Draft4Validator:
    return Draft4Validator({**schema, "definitions": spec()["definitions"]})


def check_param(method: str, name: str, value: Any, declared: dict[str, Any]) -> None:
    kind = declared.get("type")
    if name in ("blocks", "attachments") and isinstance(value, list):  # JSON-body form
        if name == "blocks":
            validator(spec()["definitions"]["blocks"]).validate(value)
        return
    if name == "blocks" and isinstance(value, str):
        validator(spec()["definitions"]["blocks"]).validate(json.loads(value))
        return
    if kind == "string":
        assert isinstance(value, str), f"{method}: {name} must be a string, got {value!r}"
    elif kind == "boolean":
        assert isinstance(value, bool) or str(value) in ("true", "false", "1", "0"), (
            f"{method}: {name} must be a boolean, got {value!r}"
        )
    elif kind == "integer":
        assert str(int(str(value))) == str(value), f"{method}: {name} must be an integer"
    elif kind == "number":
        float(str(value))


def validate_request(record: RequestRecord) -> None:
    method = record.path.removeprefix("/api/")
    declared = {p["name"]: p for p in operation(method)["parameters"]}
    if record.method == "POST":
        args: dict[str, Any] = json.loads(record.body)
    else:
        args = dict(httpx.QueryParams(record.query))
    token = declared.get("token")
    if token is not None and token.get("required"):
        assert record.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    for name, param in declared.items():
        if param.get("required") and name != "token":
            assert name in args, f"{method}: required parameter {name} is missing"
    for name, value in args.items():
        if name in NEWER_THAN_SPEC_ARGS:
            continue
        assert name in declared, f"{method}: {name} is not a parameter the spec declares"
        check_param(method, name, value, declared[name])


def strip_newer(method: str, body: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    messages = body.get("messages", [])
    if isinstance(body.get("message"), dict):
        messages = [*messages, body["message"]]
    for message in messages:
        for name in NEWER_THAN_SPEC_MESSAGE_FIELDS:
            message.pop(name, None)
    if method == "conversations.history":
        body.pop("response_metadata", None)
    return body


def validate_answer(method: str, body: dict[str, Any]) -> None:
    responses = operation(method)["responses"]
    schema = responses["200"]["schema"] if body.get("ok") else responses["default"]["schema"]
    validator(schema).validate(strip_newer(method, body))


async def replay(slack: Slack, record: RequestRecord) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=slack.server.url) as client:
        response = await client.request(
            record.method,
            record.path,
            params=httpx.QueryParams(record.query),
            content=record.body.encode() if record.method == "POST" else None,
            headers={
                "Authorization": record.headers.get("authorization", ""),
                "Content-Type": record.headers.get("content-type", "application/json"),
            },
        )
    answer: dict[str, Any] = response.json()
    return answer


async def run_sink_traffic(slack: Slack) -> SlackSink:
    sink = make_sink(slack)
    alerts = SlackMirror(channel="C0OKRS0001", thread_alerts=True)
    first = await sink.push(kr_update("200", "0.2"), alerts, None)
    await sink.push(kr_update("600", "0.6", Status.AT_RISK), alerts, first.ref)
    await sink.push(kr_update("700", "0.7"), alerts, None)  # lost reference
    digest = await sink.push_digest(objective_update(), SlackMirror(channel="#okrs"), None)
    await sink.push_digest(objective_update("0.9"), SlackMirror(channel="#okrs"), digest.ref)
    return sink


async def test_requests_match_the_spec(slack: Slack) -> None:
    sink = await run_sink_traffic(slack)
    await sink.aclose()
    methods = set()
    for record in slack.server.requests:
        validate_request(record)
        methods.add(record.path.removeprefix("/api/"))
    assert {"chat.postMessage", "chat.update", "conversations.history"} <= methods


async def test_fake_answers_match_the_spec(slack: Slack) -> None:
    sink = await run_sink_traffic(slack)
    await sink.aclose()
    records = [
        r
        for r in slack.server.requests
        if r.path.removeprefix("/api/")
        in ("chat.postMessage", "chat.update", "conversations.history")
    ]
    slack.state.limits.clear()  # replaying doubles the traffic; rate limits are tested elsewhere
    for record in records:
        answer = await replay(slack, record)
        assert answer["ok"] is True, answer
        validate_answer(record.path.removeprefix("/api/"), answer)


@pytest.mark.parametrize(
    ("method", "payload", "error"),
    [
        ("chat.postMessage", {"channel": "C0NOPE0001", "text": "x"}, "channel_not_found"),
        ("chat.postMessage", {"channel": "C0RANDOM01", "text": "x"}, "not_in_channel"),
        ("chat.postMessage", {"channel": "C0OLDQ3001", "text": "x"}, "is_archived"),
        ("chat.postMessage", {"channel": "C0OKRS0001"}, "no_text"),
        (
            "chat.update",
            {"channel": "C0OKRS0001", "ts": "1.000001", "text": "x"},
            "message_not_found",
        ),
        (
            "chat.update",
            {"channel": "C0NOPE0001", "ts": "1.000001", "text": "x"},
            "channel_not_found",
        ),
    ],
)
async def test_fake_errors_match_the_spec(
    slack: Slack, method: str, payload: dict[str, Any], error: str
) -> None:
    async with httpx.AsyncClient(
        base_url=slack.api, headers={"Authorization": f"Bearer {BOT_TOKEN}"}
    ) as client:
        answer = (await client.post(method, json=payload)).json()
        assert answer == {"ok": False, "error": error}
        validate_answer(method, answer)
        history = (
            await client.get("conversations.history", params={"channel": "C0NOPE0001"})
        ).json()
        validate_answer("conversations.history", history)
    async with httpx.AsyncClient(base_url=slack.api) as client:
        bad = (await client.post(method, data={"token": "xoxb-wrong", **payload})).json()
        assert bad == {"ok": False, "error": "invalid_auth"}
        validate_answer(method, bad)


def test_a_request_off_the_spec_is_caught() -> None:
    record = RequestRecord(
        method="POST",
        path="/api/chat.update",
        query="",
        headers={"authorization": f"Bearer {BOT_TOKEN}"},
        body=json.dumps({"channel": "C0OKRS0001", "text": "x", "colour": "red"}),
        at=datetime(2026, 11, 12, 9, 30, tzinfo=UTC),
    )
    with pytest.raises(AssertionError, match="required parameter ts"):
        validate_request(record)
    with pytest.raises(ValidationError, match="is a required property"):
        validate_answer("chat.postMessage", {"ok": True, "channel": "C0OKRS0001"})
