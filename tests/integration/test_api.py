"""The JSON API, health, metrics and webhooks on a real socket, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import select

from okrsync.api.hooks import hook_secrets, secret_variable
from okrsync.api.openapi import render
from okrsync.engine.daemon import Daemon
from okrsync.sdk.webhooks import sign
from okrsync.store.db import session_scope
from okrsync.store.tables import DeliveryRow, MeasurementRow, RunRow
from tests.integration.api_support import HOOK_SECRET, TOKEN, add_deal, api_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPENAPI = Path(__file__).parents[2] / "okrsync" / "api" / "openapi.json"


def _no_secrets(response: httpx.Response) -> None:
    assert TOKEN not in response.text
    assert HOOK_SECRET not in response.text


def test_reads_answer_the_store(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        objectives = http.get("/api/v1/objectives").json()["objectives"]
        assert objectives[0]["id"] == "o"
        kr = objectives[0]["key_results"][0]
        assert (kr["id"], kr["value"], kr["progress"]) == ("deals", "3", "0.3")
        assert http.get("/api/v1/objectives/o").json()["id"] == "o"
        assert http.get("/api/v1/key-results/deals").json()["value"] == "3"
        assert http.get("/api/v1/key-results").json()["key_results"][0]["objective"] == "o"
        cycles = http.get("/api/v1/cycles").json()["cycles"]
        assert cycles[0]["id"] == "2026-Q4"
        history = http.get("/api/v1/key-results/deals/measurements").json()
        assert [m["origin"] for m in history["measurements"]] == ["auto"]
        runs = http.get("/api/v1/runs").json()["runs"]
        assert runs[0]["trigger"] == "manual"
        assert http.get(f"/api/v1/runs/{runs[0]['id']}").json()["id"] == runs[0]["id"]
        deliveries = http.get("/api/v1/deliveries", params={"status": "pending"}).json()
        assert deliveries["deliveries"][0]["key_result"] == "deals"
        connections = {c["name"]: c for c in http.get("/api/v1/connections").json()["connections"]}
        assert connections["warehouse"]["status"] == "ok"
        assert connections["receiver"]["status"] == "unknown"
        for path in ("/api/v1/objectives/nope", "/api/v1/key-results/nope", "/api/v1/runs/nope"):
            missing = http.get(path)
            assert missing.status_code == 404
            assert missing.json()["error"].endswith("not found")
        bad = http.get("/api/v1/runs", params={"limit": "lots"})
        assert bad.status_code == 400
        assert set(bad.json()) == {"error", "detail"}
        assert http.get("/nowhere").json() == {"error": "Not Found", "detail": None}
        assert http.delete("/api/v1/objectives").status_code == 405


def test_check_in_is_a_manual_measurement_that_queues_mirrors(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        path = "/api/v1/key-results/deals/check-ins"
        body = {"value": "7.5", "note": "counted by hand"}
        assert http.post(path, json=body).status_code == 401
        wrong = http.post(path, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        done = http.post(path, json=body, headers=AUTH)
        assert done.status_code == 201, done.text
        answer = done.json()
        assert answer["measurement"]["origin"] == "manual"
        assert answer["measurement"]["value"] == "7.5"
        assert answer["measurement"]["progress"] == "0.75"
        assert answer["measurement"]["note"] == "counted by hand"
        assert answer["deliveries_queued"] == 1
        _no_secrets(done)
        history = http.get("/api/v1/key-results/deals/measurements").json()["measurements"]
        assert [m["origin"] for m in history] == ["auto", "manual"]
        assert http.get("/api/v1/key-results/deals").json()["value"] == "7.5"
        # the same value again is still a check-in of its own
        assert http.post(path, json={"value": 7.5}, headers=AUTH).status_code == 201
        for bad, status in (
            ({"value": "lots"}, 422),
            ({"value": "NaN"}, 422),
            ({"value": 1e300}, 422),
            ({"note": "no value"}, 422),
            ({"value": 1, "extra": True}, 422),
        ):
            response = http.post(path, json=bad, headers=AUTH)
            assert response.status_code == status, (bad, response.text)
            assert response.json()["error"] == "invalid request body"
        malformed = http.post(path, content=b"{not json", headers=AUTH)
        assert malformed.status_code == 400
        unknown = http.post("/api/v1/key-results/nope/check-ins", json=body, headers=AUTH)
        assert unknown.status_code == 404
    with session_scope(svc.app.engine) as session:
        manual = session.exec(select(MeasurementRow).where(MeasurementRow.origin == "manual"))
        assert len(manual.all()) == 2
        assert len(session.exec(select(DeliveryRow)).all()) >= 2


def test_writes_are_refused_without_a_configured_token(tmp_path: Path, database_url: str) -> None:
    with (
        api_service(tmp_path, database_url, token=None) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        response = http.post("/api/v1/key-results/deals/check-ins", json={"value": 1}, headers=AUTH)
        assert response.status_code == 403
        assert "OKRSYNC_API_TOKEN" in response.json()["detail"]
        assert http.post("/api/v1/sync", headers=AUTH).status_code == 403


def test_sync_now_runs_and_answers_with_the_run(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        add_deal(svc.app.settings.config)
        assert http.post("/api/v1/sync").status_code == 401
        response = http.post("/api/v1/sync", json={"key_results": ["deals"]}, headers=AUTH)
        assert response.status_code == 202, response.text
        report = response.json()
        assert report["status"] == "finished"
        assert report["changed"] == 1
        assert http.get(f"/api/v1/runs/{report['run_id']}").json()["trigger"] == "api"
        assert http.get("/api/v1/key-results/deals").json()["value"] == "4"
        unknown = http.post("/api/v1/sync", json={"key_results": ["nope"]}, headers=AUTH)
        assert unknown.status_code == 404


def test_metrics_expose_progress_runs_outbox_and_lag(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        response = http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert 'okrsync_key_result_progress{key_result="deals",objective="o"} 0.3' in text
        assert 'okrsync_runs_total{status="ok",trigger="manual"} 1.0' in text
        assert 'okrsync_outbox_deliveries{status="pending"} 1.0' in text
        assert 'okrsync_api_calls_total{connection="warehouse"}' in text
        assert "okrsync_delivery_lag_seconds_bucket" in text
        assert 'okrsync_connection_status{connection="warehouse",status="ok"} 1.0' in text
        assert "okrsync_store_up 1.0" in text


def test_readiness_follows_the_store_and_the_scheduler_heartbeat(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        no_scheduler = http.get("/readyz")
        assert no_scheduler.status_code == 503
        assert no_scheduler.json()["checks"]["store"]["ok"] is True
        daemon = Daemon(
            svc.app.engine, svc.app.config, svc.app.sync, svc.app.dispatcher, clock=svc.app.clock
        )
        svc.ctx.daemon = daemon
        assert http.get("/readyz").status_code == 503  # not started yet
        daemon.last_loop_at = svc.app.clock()
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert {c["name"]: c["status"] for c in body["connections"]}["warehouse"] == "ok"
        daemon.last_loop_at = svc.app.clock() - timedelta(hours=1)
        stale = http.get("/readyz")
        assert stale.status_code == 503
        assert "heartbeat" in stale.json()["checks"]["scheduler"]["error"]


def _signed(body: bytes, secret: str = HOOK_SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "X-Okrsync-Timestamp": stamp,
        "X-Okrsync-Signature": sign(secret, stamp, body),
        "Content-Type": "application/json",
    }


def _runs(svc: Any, trigger: str) -> list[RunRow]:
    with session_scope(svc.app.engine) as session:
        return list(session.exec(select(RunRow).where(RunRow.trigger == trigger)).all())


def test_signed_webhooks_are_throttled_into_two_runs(tmp_path: Path, database_url: str) -> None:
    window = 1.0
    with (
        api_service(tmp_path, database_url, debounce=window) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        add_deal(svc.app.settings.config)
        body = b'{"event": "deal.created"}'
        for _ in range(4):
            accepted = http.post("/hooks/warehouse", content=body, headers=_signed(body))
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["metrics"] == ["deals"]
        # the first event runs at once; the other three together when its window ends
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_runs(svc, "webhook")) < 2:
            time.sleep(0.05)
        time.sleep(0.5)
        runs = sorted(_runs(svc, "webhook"), key=lambda r: r.started_at)
        assert len(runs) == 2
        assert (runs[1].started_at - runs[0].started_at).total_seconds() >= window - 0.05
        assert http.get("/api/v1/key-results/deals").json()["value"] == "4"
        forged = http.post("/hooks/warehouse", content=body, headers=_signed(body, "wrong"))
        assert forged.status_code == 401
        old = http.post(
            "/hooks/warehouse", content=body, headers=_signed(body, ts=int(time.time()) - 3600)
        )
        assert old.status_code == 401
        assert http.post("/hooks/warehouse", content=body).status_code == 401
        assert http.post("/hooks/nope", content=body, headers=_signed(body)).status_code == 404
        no_secret = http.post("/hooks/receiver", content=body, headers=_signed(body))
        assert no_secret.status_code == 404
        assert "OKRSYNC_HOOK_SECRET_RECEIVER" in no_secret.json()["detail"]
        _no_secrets(no_secret)


def test_hook_secrets_come_from_the_environment_or_the_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / secret_variable("crm-eu.2")).write_text("from-file\n")
    assert secret_variable("crm-eu.2") == "OKRSYNC_HOOK_SECRET_CRM_EU_2"
    found = hook_secrets(
        {"crm-eu.2": None, "jira": None, "none": None},
        tmp_path,
        {"OKRSYNC_HOOK_SECRET_JIRA": "from-env"},
    )
    assert found == {"crm-eu.2": "from-file", "jira": "from-env"}


def test_committed_openapi_is_current(tmp_path: Path, database_url: str) -> None:
    assert OPENAPI.read_text() == render(), (
        "okrsync/api/openapi.json is stale: "
        "python -m okrsync.api.openapi > okrsync/api/openapi.json"
    )
    with api_service(tmp_path, database_url) as svc:
        served = httpx.get(f"{svc.url}/api/v1/openapi.json").json()
    assert served == json.loads(OPENAPI.read_text())
    assert served["openapi"].startswith("3.1")


def test_the_dashboard_is_mounted(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
