"""The CLI's ``--json`` and the JSON API answer the same things with the same models.

One store, read both ways: ``okrsync status/history/explain --json`` in a fresh process, the API
over a loopback socket. Every item validates against :mod:`okrsync.read_models.models` (which
forbids fields it does not declare) and the two agree field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from okrsync.api import models as api_models
from okrsync.read_models import models
from tests.integration.api_support import TOKEN, api_service
from tests.integration.test_startup_imports import modules_after

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cli_json(database_url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", *args, "--json"],
        env={**os.environ, "OKRSYNC_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_api_answers_with_the_shared_models() -> None:
    for name in ("Objective", "KeyResult", "Measurement", "Run", "Connection", "Cycle"):
        assert getattr(api_models, name) is getattr(models, name)


def test_cli_json_and_api_agree_field_by_field(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url) as svc, httpx.Client(base_url=svc.url) as http:
        synced = cli_json(database_url, "explain", "deals")  # the value the sync recorded
        api_runs = http.get("/api/v1/runs", params={"limit": 100}).json()
        checked = http.post(
            "/api/v1/key-results/deals/check-ins",
            json={"value": "7.25", "note": "weekly review"},
            headers=AUTH,
        )
        assert checked.status_code == 201, checked.text
        api_objectives = http.get("/api/v1/objectives", params={"limit": 100}).json()
        api_connections = http.get("/api/v1/connections", params={"limit": 100}).json()
        api_history = http.get(
            "/api/v1/key-results/deals/measurements", params={"limit": 100}
        ).json()

        status = cli_json(database_url, "status")
        history = cli_json(database_url, "history", "deals")
        explained = cli_json(database_url, "explain", "deals")

    assert [o["id"] for o in status["objectives"]] == [
        o["id"] for o in api_objectives["objectives"]
    ]
    for shown, answered in zip(status["objectives"], api_objectives["objectives"], strict=True):
        models.Objective.model_validate(shown)
        models.Objective.model_validate(answered)
        assert Decimal(shown.pop("elapsed")) >= Decimal(answered.pop("elapsed"))  # time goes on
        assert shown == answered
    (deals,) = status["objectives"][0]["key_results"]
    assert deals["value"] == "7.25" and deals["observed_at"].endswith("Z")

    by_name = {c["name"]: c for c in api_connections["connections"]}
    assert status["connections"]
    for shown in status["connections"]:
        models.Connection.model_validate(shown)
        assert shown == by_name[shown["name"]]

    models.KeyResultHistory.model_validate(history)
    assert history["key_result"] == "deals"
    answered_history = sorted(api_history["measurements"], key=lambda m: m["id"])
    assert sorted(history["measurements"], key=lambda m: m["id"]) == answered_history
    assert history["measurements"][-1]["note"] == "weekly review"

    for shown in (synced, explained):
        models.Explanation.model_validate(shown)
    assert synced["measurement"] == answered_history[0]
    (run,) = [r for r in api_runs["runs"] if r["id"] == synced["measurement"]["run_id"]]
    assert synced["run"] == run
    assert explained["measurement"] == answered_history[-1]
    assert explained["value"] == "7.25" and explained["run"] is None  # a check-in: no run


def test_cli_json_reads_the_models_without_the_api(tmp_path: Path) -> None:
    """The shared models live outside :mod:`okrsync.api`: ``--json`` loads no web server."""
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with api_service(tmp_path, url):
        pass  # a store with one sync recorded
    for args in (
        ("status", "--json"),
        ("history", "deals", "--json"),
        ("explain", "deals", "--json"),
    ):
        modules = modules_after(tmp_path, *args, env={"OKRSYNC_DATABASE_URL": url})
        assert "okrsync.read_models.models" in modules
        server = ("okrsync.api", "fastapi", "starlette", "uvicorn")
        assert [m for m in modules if m.split(".")[0] in server or m.startswith(server)] == []
