"""Check-ins with confidence, manual key results, the manual-value precedence rule and scores,
through the API on a real socket, the recorder and the CLI, on SQLite and PostgreSQL.

The acceptance of issue 16: a manual key result passes ``okrsync validate``; a check-in of
``{"value": "2", "confidence": 7, "note": …}`` is a 201; ``okrsync status --json`` then shows
value 2 and confidence 7, and a key result with a ``stretch`` shows its ``score``.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select
from typer.testing import CliRunner, Result

from okrsync import cli
from okrsync.app import load
from okrsync.store.db import session_scope
from okrsync.store.definitions import sync_definitions
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow
from tests.integration.api_support import CONFIG, TOKEN, Service, add_deal, api_service

AUTH = {"Authorization": f"Bearer {TOKEN}"}

GRADED = CONFIG.replace(
    "        target: 10\n",
    "        target: 10\n        stretch: 20\n",
) + (
    """\
      - id: deals-ignored
        title: Ten deals, the source alone counts
        metric: deals
        kind: increase
        start: 0
        target: 10
        check_ins: {manual_value: ignore}
      - id: partners
        title: Sign 5 launch partners
        kind: increase
        start: 0
        target: 5
        stretch: 8
        check_ins: {every: "0 9 * * 1", remind: {connection: receiver, channel: "#sales-okrs"}}
"""
)


def okrsync(svc: Service, *args: str) -> Result:
    """The CLI in this process (a subprocess per command cost seconds of imports)."""
    settings = svc.app.settings
    env = {
        "OKRSYNC_CONFIG": str(settings.config),
        "OKRSYNC_DATABASE_URL": settings.database_url.get_secret_value(),
        "OKRSYNC_SECRETS_DIR": str(settings.secrets_dir),
    }
    return CliRunner().invoke(cli.app, list(args), env=env)


def check_in(svc: Service, kr: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{svc.url}/api/v1/key-results/{kr}/check-ins", json=body, headers=AUTH)


def state(svc: Service, kr: str) -> KeyResultRow:
    with session_scope(svc.app.engine) as session:
        row = session.get(KeyResultRow, kr)
        assert row is not None
        return row


def measurements(svc: Service, kr: str) -> list[MeasurementRow]:
    with session_scope(svc.app.engine) as session:
        return list(
            session.exec(
                select(MeasurementRow)
                .where(MeasurementRow.key_result_id == kr)
                .order_by(col(MeasurementRow.id))
            )
        )


def newest_delivery(svc: Service, kr: str) -> dict[str, Any]:
    with session_scope(svc.app.engine) as session:
        row = session.exec(
            select(DeliveryRow)
            .where(DeliveryRow.key_result_id == kr)
            .order_by(col(DeliveryRow.id).desc())
        ).first()
    assert row is not None
    return dict(row.payload)


def sync(svc: Service) -> None:
    asyncio.run(svc.app.sync.run_once(trigger="manual", dispatch=False))


def test_acceptance_manual_key_result_check_in_status_and_score(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url, config=GRADED) as svc:
        validated = okrsync(svc, "validate")
        assert validated.exit_code == 0, validated.output

        answer = check_in(svc, "partners", {"value": "2", "confidence": 7, "note": "two signed"})
        assert answer.status_code == 201, answer.text
        recorded = answer.json()["measurement"]
        assert (recorded["value"], recorded["confidence"]) == ("2", 7)
        assert (recorded["origin"], recorded["author"]) == ("manual", "api")

        done = okrsync(svc, "status", "--json")
        assert done.exit_code == 0, done.output
        (objective,) = json.loads(done.stdout)["objectives"]
        krs = {kr["id"]: kr for kr in objective["key_results"]}
        assert krs["partners"]["value"] == "2"
        assert krs["partners"]["confidence"] == 7
        assert Decimal(krs["partners"]["score"]) == Decimal("0.28")  # 0.7 * 2/5
        # a metric-fed key result with a stretch: 3 deals of 10 (stretch 20) scores 0.21
        assert Decimal(krs["deals"]["score"]) == Decimal("0.21")
        assert krs["deals"]["confidence"] is None
        assert Decimal(krs["deals-ignored"]["score"]) == Decimal("0.3")  # no stretch: progress
        assert (
            Decimal(objective["score"]) == (Decimal("0.21") + Decimal("0.3") + Decimal("0.28")) / 3
        )

        history = okrsync(svc, "history", "partners", "--json")
        assert history.exit_code == 0, history.output
        (only,) = json.loads(history.stdout)["measurements"]
        assert (only["origin"], only["author"], only["confidence"]) == ("manual", "api", 7)

        api = httpx.get(f"{svc.url}/api/v1/key-results/partners").json()
        assert (api["confidence"], Decimal(api["score"])) == (7, Decimal("0.28"))

        page = httpx.get(f"{svc.url}/objectives/o")
        assert page.status_code == 200
        assert "confidence <strong>7/10</strong> · score <strong>0.28</strong>" in page.text
        assert "<dt>Checked in by</dt><dd>api</dd>" in page.text
        assert "score 0.26" in page.text  # the objective's: (0.21 + 0.3 + 0.28) / 3


def test_a_manual_value_stands_until_the_source_reports_a_different_value(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url, config=GRADED) as svc:
        assert state(svc, "deals").value == Decimal(3)
        answer = check_in(svc, "deals", {"value": "6", "confidence": 4, "note": "two in legal"})
        assert answer.status_code == 201, answer.text

        pushed = newest_delivery(svc, "deals")  # the mirror hears of the confidence and score
        assert (pushed["value"], pushed["confidence"]) == ("6", 4)
        assert Decimal(pushed["score"]) == Decimal("0.42")  # 0.7 * 6/10

        sync(svc)  # the source still says 3, as it did at check-in time: the 6 stands
        row = state(svc, "deals")
        assert (row.value, row.confidence) == (Decimal(6), 4)
        assert [m.origin for m in measurements(svc, "deals")] == ["auto", "manual"]
        assert newest_delivery(svc, "deals") == pushed  # nothing new pushed

        add_deal(Path(str(svc.app.settings.config)))  # the source moves on: 4 takes over
        sync(svc)
        row = state(svc, "deals")
        assert row.value == Decimal(4)
        assert row.manual_since is None
        assert row.confidence == 4  # the confidence is the owner's, not the source's
        assert [m.origin for m in measurements(svc, "deals")] == ["auto", "manual", "auto"]

        sync(svc)  # and it stays the source's
        assert state(svc, "deals").value == Decimal(4)
        assert Decimal(newest_delivery(svc, "deals")["score"]) == Decimal("0.28")


def test_a_changed_stretch_rescores_at_the_definitions_sync(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url, config=GRADED) as svc:
        assert state(svc, "deals").score == Decimal("0.21")  # 3 of 10, stretch 20
        config = Path(str(svc.app.settings.config))
        config.write_text(config.read_text().replace("        stretch: 20\n", ""))
        changed = load(svc.app.settings, svc.app.registry)
        with session_scope(svc.app.engine) as session:
            sync_definitions(session, changed, svc.app.clock())
        assert state(svc, "deals").score == Decimal("0.3")  # no stretch: the progress


def test_with_manual_value_ignore_check_ins_carry_confidence_and_note_only(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url, config=GRADED) as svc:
        refused = check_in(svc, "deals-ignored", {"value": "6", "confidence": 4})
        assert refused.status_code == 422, refused.text
        assert "manual_value" in refused.json()["detail"]
        assert [m.origin for m in measurements(svc, "deals-ignored")] == ["auto"]

        # 8.0 is an integer to JSON Schema, so it is taken as 8
        answer = check_in(svc, "deals-ignored", {"confidence": 8.0, "note": "pipeline is full"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["measurement"]["value"] == "3"  # the source's value, unchanged
        row = state(svc, "deals-ignored")
        assert (row.value, row.confidence, row.manual_since) == (Decimal(3), 8, None)

        add_deal(Path(str(svc.app.settings.config)))
        sync(svc)
        assert state(svc, "deals-ignored").value == Decimal(4)


def test_a_confidence_only_check_in_needs_a_value_to_be_there(
    tmp_path: Path, database_url: str
) -> None:
    with api_service(tmp_path, database_url, config=GRADED) as svc:
        refused = check_in(svc, "partners", {"confidence": 5})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "no value yet"
        assert measurements(svc, "partners") == []
