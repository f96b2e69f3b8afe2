"""Check-ins: a corpus of bad bodies, each a 4xx with a message and nothing recorded; and
repeats (an ``Idempotency-Key`` sent again, or the same check-in within the window) that record
nothing new and are answered as the first one was, on SQLite and on PostgreSQL.

A check-in goes through the whole API on a real socket; "recorded nothing" is read from the
store: no measurement and no outbox row more than before. The window is tested on the API's own
clock, never the wall clock; the replica race is made certain, not hoped for: both requests are
held after their look-up until the other has made its own, so both go on to record.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, text
from sqlmodel import select

from okrsync.api import check_ins
from okrsync.api.check_ins import REPEAT_WINDOW
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MeasurementRow
from tests.conftest import PG_URL
from tests.integration.api_support import TOKEN, Service, api_service

PATH = "/api/v1/key-results/deals/check-ins"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
VALUE, NOTE, CONFIDENCE = ["value"], ["note"], ["confidence"]

# body → (status, the field a 422 names, or None)
CORPUS: dict[str, tuple[bytes, int, list[str] | None]] = {
    # numbers JSON has not, or that no store column holds
    "NaN literal": (b'{"value": NaN}', 400, None),
    "Infinity literal": (b'{"value": Infinity}', 400, None),
    "-Infinity literal": (b'{"value": -Infinity}', 400, None),
    "NaN in the note": (b'{"value": 1, "note": NaN}', 400, None),
    "NaN string": (b'{"value": "NaN"}', 422, VALUE),
    "nan string": (b'{"value": "nan"}', 422, VALUE),
    "Infinity string": (b'{"value": "Infinity"}', 422, VALUE),
    "-Infinity string": (b'{"value": "-Infinity"}', 422, VALUE),
    "inf string": (b'{"value": "inf"}', 422, VALUE),
    "huge exponent": (b'{"value": 1e999999}', 422, VALUE),
    "huge exponent string": (b'{"value": "1e999999"}', 422, VALUE),
    "exponent past Decimal": (b'{"value": 1e99999999999999999999}', 400, None),
    "1e18": (b'{"value": 1e18}', 422, VALUE),
    "-1e18": (b'{"value": -1e18}', 422, VALUE),
    "19 digits": (b'{"value": 1234567890123456789}', 422, VALUE),
    "19 digits string": (b'{"value": "1234567890123456789"}', 422, VALUE),
    "19 decimals string": (b'{"value": "0.1234567890123456789"}', 422, VALUE),
    "60,000 decimals string": (b'{"value": "0.' + b"1" * 60_000 + b'"}', 422, VALUE),
    "60,000 digits": (b'{"value": ' + b"9" * 60_000 + b"}", 422, VALUE),
    # strings that are almost a number
    "trailing newline": (b'{"value": "5\\n"}', 422, VALUE),
    "trailing CRLF": (b'{"value": "5\\r\\n"}', 422, VALUE),
    "leading space": (b'{"value": " 5"}', 422, VALUE),
    "trailing space": (b'{"value": "5 "}', 422, VALUE),
    "leading tab": (b'{"value": "\\t5"}', 422, VALUE),
    "empty string": (b'{"value": ""}', 422, VALUE),
    "blank string": (b'{"value": "   "}', 422, VALUE),
    "plus sign": (b'{"value": "+5"}', 422, VALUE),
    "decimal comma": (b'{"value": "5,5"}', 422, VALUE),
    "thousands separator": (b'{"value": "1_000"}', 422, VALUE),
    "hex": (b'{"value": "0x10"}', 422, VALUE),
    "exponent string": (b'{"value": "1e5"}', 422, VALUE),
    "bare point": (b'{"value": "5."}', 422, VALUE),
    "Arabic-Indic digit": ('{"value": "\u0665"}'.encode(), 422, VALUE),
    "fullwidth digit": ('{"value": "\uff15"}'.encode(), 422, VALUE),
    "NUL in the value": (b'{"value": "5\\u0000"}', 422, VALUE),
    # not numbers at all
    "true": (b'{"value": true}', 422, VALUE),
    "false": (b'{"value": false}', 422, VALUE),
    "null": (b'{"value": null}', 422, VALUE),
    "object": (b'{"value": {"amount": 5}}', 422, VALUE),
    "empty object": (b'{"value": {}}', 422, VALUE),
    "array": (b'{"value": [5]}', 422, VALUE),
    "neither value nor confidence": (b'{"note": "no value"}', 422, None),
    # confidence: an integer from 1 to 10
    "confidence 0": (b'{"value": 5, "confidence": 0}', 422, CONFIDENCE),
    "confidence 11": (b'{"value": 5, "confidence": 11}', 422, CONFIDENCE),
    "confidence 7.5": (b'{"value": 5, "confidence": 7.5}', 422, CONFIDENCE),
    "confidence 1e3": (b'{"value": 5, "confidence": 1e3}', 422, CONFIDENCE),
    "confidence 1e999999": (b'{"confidence": 1e999999}', 422, CONFIDENCE),
    "confidence as a string": (b'{"value": 5, "confidence": "7"}', 422, CONFIDENCE),
    "confidence true": (b'{"value": 5, "confidence": true}', 422, CONFIDENCE),
    "confidence null": (b'{"value": 5, "confidence": null}', 422, CONFIDENCE),
    "confidence -3": (b'{"confidence": -3}', 422, CONFIDENCE),
    # notes
    "NUL in the note": (b'{"value": 5, "note": "a\\u0000b"}', 422, NOTE),
    "bell in the note": (b'{"value": 5, "note": "ding\\u0007"}', 422, NOTE),
    "escape sequence in the note": (b'{"value": 5, "note": "\\u001b[31mred"}', 422, NOTE),
    "DEL in the note": (b'{"value": 5, "note": "a\\u007f"}', 422, NOTE),
    "C1 control in the note": (b'{"value": 5, "note": "a\\u0085"}', 422, NOTE),
    "raw C1 control in the note": ('{"value": 5, "note": "a\u009b"}'.encode(), 422, NOTE),
    "empty note": (b'{"value": 5, "note": ""}', 422, NOTE),
    "note too long": (b'{"value": 5, "note": "' + b"x" * 2001 + b'"}', 422, NOTE),
    "note as a number": (b'{"value": 5, "note": 5}', 422, NOTE),
    "note as an array": (b'{"value": 5, "note": ["a"]}', 422, NOTE),
    "note as an object": (b'{"value": 5, "note": {"text": "a"}}', 422, NOTE),
    "lone surrogate in the note": (b'{"value": 5, "note": "\\ud800"}', 400, None),
    "lone low surrogate": (b'{"value": 5, "note": "a\\udc00b"}', 400, None),
    # the shape of the document
    "unknown field": (b'{"value": 5, "extra": true}', 422, ["extra"]),
    "duplicate value": (b'{"value": 5, "value": 6}', 400, None),
    "duplicate note": (b'{"value": 5, "note": "a", "note": "b"}', 400, None),
    "array document": (b'[{"value": 5}]', 422, None),
    "string document": (b'"5"', 422, None),
    "number document": (b"5", 422, None),
    "null document": (b"null", 422, None),
    "deeply nested": (b'{"value": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400, None),
    # not JSON
    "empty body": (b"", 400, None),
    "blank body": (b" \r\n\t ", 400, None),
    "form encoded": (b"value=5", 400, None),
    "unquoted name": (b"{value: 5}", 400, None),
    "single quotes": (b"{'value': 5}", 400, None),
    "truncated": (b'{"value": 5', 400, None),
    "trailing comma": (b'{"value": 5,}', 400, None),
    "comment": (b'{"value": 5 /* five */}', 400, None),
    "two documents": (b'{"value": 5}{"value": 6}', 400, None),
    "trailing garbage": (b'{"value": 5} x', 400, None),
    "byte order mark": (b'\xef\xbb\xbf{"value": 5}', 400, None),
    "UTF-16": ('{"value": 5}'.encode("utf-16"), 400, None),
    "invalid UTF-8": (b'{"value": 5, "note": "\xff"}', 400, None),
    "overlong UTF-8": (b'{"value": 5, "note": "\xc0\xae"}', 400, None),
    "encoded surrogate": (b'{"value": 5, "note": "\xed\xa0\x80"}', 400, None),
}

BAD_KEYS: dict[str, list[tuple[bytes, bytes]]] = {
    "empty": [(b"Idempotency-Key", b"")],
    "space inside": [(b"Idempotency-Key", b"two words")],
    "101 characters": [(b"Idempotency-Key", b"k" * 101)],
    "not ASCII": [(b"Idempotency-Key", "cl\u00e9".encode("latin-1"))],
    "given twice": [(b"Idempotency-Key", b"one"), (b"Idempotency-Key", b"two")],
}


@contextmanager
def _store(kind: str, root: Path) -> Iterator[str]:
    """A fresh store for one module: a SQLite file, or a schema of its own on the test server."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'okrsync.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One API for the whole corpus (a bad body changes nothing, so they can share it)."""
    root = tmp_path_factory.mktemp(f"corpus-{request.param}")
    with _store(request.param, root) as url, api_service(root, url) as svc:
        yield svc


def _counts(svc: Service) -> tuple[int, int]:
    with session_scope(svc.app.engine) as session:
        measurements = session.exec(select(func.count()).select_from(MeasurementRow)).one()
        deliveries = session.exec(select(func.count()).select_from(DeliveryRow)).one()
    return int(measurements), int(deliveries)


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_bad_check_in_is_a_4xx_with_a_message_and_records_nothing(
    corpus_service: Service, name: str
) -> None:
    body, status, field = CORPUS[name]
    before = _counts(corpus_service)
    with httpx.Client(base_url=corpus_service.url) as http:
        response = http.post(PATH, content=body, headers=AUTH)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"error", "detail"}
    assert isinstance(answer["error"], str) and answer["error"]
    if status == 422:
        assert answer["error"] == "invalid request body"
        assert all(problem["msg"] for problem in answer["detail"])
        if field is not None:
            assert field in [problem["loc"] for problem in answer["detail"]], answer
    else:
        assert answer["error"] in ("malformed JSON", "request body required")
        assert answer["detail"]
    assert _counts(corpus_service) == before


@pytest.mark.parametrize("name", list(BAD_KEYS))
def test_a_bad_idempotency_key_is_a_422_and_records_nothing(
    corpus_service: Service, name: str
) -> None:
    before = _counts(corpus_service)
    headers = [(b"Authorization", f"Bearer {TOKEN}".encode()), *BAD_KEYS[name]]
    with httpx.Client(base_url=corpus_service.url) as http:
        response = http.post(PATH, content=b'{"value": 5}', headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid Idempotency-Key header"
    assert _counts(corpus_service) == before


def test_good_check_ins_at_the_edges_are_recorded(corpus_service: Service) -> None:
    """The corpus refuses what it should, not more: the nearest good bodies go through."""
    good = {
        b'{"value": "-999999999999999999.999999999999999999"}': f"-{'9' * 18}.{'9' * 18}",
        b'{"value": -999999999999999999}': "-999999999999999999",
        b'{"value": 0.123456789012345678}': "0.123456789012345678",
        b'{"value": 1E+2}': "100",
        # a number is a float's rendering: its decimals past the 18th are rounded away
        b'{"value": 0.1234567890123456789}': "0.123456789012345679",
        b'{"value": 0.' + b"1" * 60_000 + b"}": "0.111111111111111111",
        b'{"value": -1e-999999}': "0",
        b'{"value": 0.1}': "0.1",
        b'{"value": "-0"}': "0",
        b'{"value": 5, "note": "line one\\nline two\\r\\n\\tindented"}': "5",
        '{"value": 6, "note": "caf\u00e9 \U0001f680"}'.encode(): "6",
    }
    with httpx.Client(base_url=corpus_service.url) as http:
        for body, value in good.items():
            response = http.post(PATH, content=body, headers=AUTH)
            assert response.status_code == 201, (body, response.text)
            assert response.json()["measurement"]["value"] == value
    with session_scope(corpus_service.app.engine) as session:
        notes = session.exec(select(MeasurementRow.note).where(MeasurementRow.origin == "manual"))
        assert "caf\u00e9 \U0001f680" in notes.all()


# --- repeats -------------------------------------------------------------------------------------


def _manual(svc: Service) -> list[MeasurementRow]:
    with session_scope(svc.app.engine) as session:
        rows = session.exec(select(MeasurementRow).where(MeasurementRow.origin == "manual"))
        return list(rows.all())


def _deliveries(svc: Service) -> int:
    return _counts(svc)[1]


def test_a_check_in_sent_again_with_its_idempotency_key_records_nothing_new(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        keyed = {**AUTH, "Idempotency-Key": "retry-3f2a"}
        first = http.post(PATH, json={"value": "7", "note": "by hand"}, headers=keyed)
        assert first.status_code == 201, first.text
        assert first.json()["deliveries_queued"] == 1
        assert "idempotent-replayed" not in first.headers
        deliveries = _deliveries(svc)
        again = http.post(PATH, json={"value": "7", "note": "by hand"}, headers=keyed)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["idempotent-replayed"] == "true"
        assert len(_manual(svc)) == 1 and _deliveries(svc) == deliveries
        # the same key for another check-in is a mistake, not a repeat
        other = http.post(PATH, json={"value": "8", "note": "by hand"}, headers=keyed)
        assert other.status_code == 422, other.text
        assert other.json()["error"] == "Idempotency-Key already used"
        renoted = http.post(PATH, json={"value": "7", "note": "changed"}, headers=keyed)
        assert renoted.status_code == 422
        # another key is another check-in, even with the same value, within the window
        fresh = http.post(
            PATH,
            json={"value": "7", "note": "by hand"},
            headers={**keyed, "Idempotency-Key": "retry-3f2b"},
        )
        assert fresh.status_code == 201
        assert fresh.json()["measurement"]["id"] != first.json()["measurement"]["id"]
        assert "idempotent-replayed" not in fresh.headers
        assert len(_manual(svc)) == 2


def test_without_a_key_the_same_check_in_within_the_window_is_a_repeat(
    tmp_path: Path, database_url: str
) -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    now = [start]
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        svc.ctx.clock = lambda: now[0]
        body = {"value": "6", "note": "weekly count"}
        first = http.post(PATH, json=body, headers=AUTH)
        assert first.status_code == 201, first.text
        deliveries = _deliveries(svc)
        now[0] = start + REPEAT_WINDOW - timedelta(microseconds=1)
        for same in (body, {"value": 6, "note": "weekly count"}, {**body, "value": "6.00"}):
            again = http.post(PATH, json=same, headers=AUTH)
            assert (again.status_code, again.json()) == (201, first.json()), same
            assert again.headers["idempotent-replayed"] == "true"
        assert len(_manual(svc)) == 1 and _deliveries(svc) == deliveries
        # another note, another value, or no note: each a check-in of its own
        for other in ({**body, "note": "recounted"}, {"value": "6"}, {**body, "value": "6.5"}):
            response = http.post(PATH, json=other, headers=AUTH)
            assert response.status_code == 201
            assert "idempotent-replayed" not in response.headers
        assert len(_manual(svc)) == 4
        # the latest check-in is 6.5 now: 6 with its note again is news, not a repeat
        assert "idempotent-replayed" not in http.post(PATH, json=body, headers=AUTH).headers
        assert len(_manual(svc)) == 5
        latest = max(_manual(svc), key=lambda row: row.id or 0)
        # at the window's end the same check-in is a new one
        now[0] = latest.observed_at + REPEAT_WINDOW
        late = http.post(PATH, json=body, headers=AUTH)
        assert late.status_code == 201 and "idempotent-replayed" not in late.headers
        assert late.json()["measurement"]["id"] != latest.id
        assert len(_manual(svc)) == 6
        assert _deliveries(svc) > deliveries


@pytest.mark.parametrize("keyed", [True, False], ids=["idempotency-key", "window"])
def test_two_replicas_given_the_same_check_in_at_once_record_it_once(
    tmp_path: Path, database_url: str, keyed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL store; SQLite is single-node")
    # each request, after looking for an earlier one and finding none, waits for the other to
    # have looked too: both go on to record, and the store must make one of them the repeat
    barrier = threading.Barrier(2, timeout=30)
    looked_up = check_ins.first_of

    def together(*args: Any) -> Any:
        found = looked_up(*args)
        barrier.wait()
        return found

    monkeypatch.setattr(check_ins, "first_of", together)
    headers = {**AUTH, "Idempotency-Key": "raced-1"} if keyed else AUTH
    body = {"value": "9", "note": "raced"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        api_service(tmp_path / "a", database_url) as one,
        api_service(tmp_path / "b", database_url) as two,
    ):
        deliveries = _deliveries(one)

        def send(svc: Service) -> httpx.Response:
            return httpx.post(f"{svc.url}{PATH}", json=body, headers=headers, timeout=60)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(send, (one, two)))
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert answers[0].json() == answers[1].json()
        assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
        assert len(_manual(one)) == 1
        assert _deliveries(one) == deliveries + 1
