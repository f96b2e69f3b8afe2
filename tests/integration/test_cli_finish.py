"""The CLI items of issue 17: --version, settings errors and the secrets folder, the store named
on the command line, `okrsync deliveries` and `init`. Through typer's runner: no subprocess."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner, Result

from okrsync.cli import app
from okrsync.domain.statuses import DeliveryStatus
from okrsync.examples import quarter
from okrsync.settings import load_settings
from okrsync.store.db import make_engine, upgrade
from okrsync.store.tables import CycleRow, DeliveryRow, KeyResultRow, ObjectiveRow

CANARY = "canary-5b1e-hook-secret"
WIDE = {"COLUMNS": "300"}  # one line per message, as in a log


def okrsync(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**WIDE, **env})


def test_version_prints_the_installed_version() -> None:
    done = okrsync("--version")
    assert done.exit_code == 0
    assert done.output == f"okrsync {version('okrsync')}\n"


def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    for command in (("status",), ("validate",), ("plan", "--no-fetch")):
        done = okrsync(*command, OKRSYNC_LOG_FORMAT="xml")
        assert done.exit_code == 2, done.output
        assert done.output == (
            "error bad setting OKRSYNC_LOG_FORMAT='xml': should be 'auto', 'json' or 'console'\n"
        )
    hidden = okrsync("status", OKRSYNC_API_TOKEN="", OKRSYNC_HTTP_PORT="http")
    assert hidden.exit_code == 2 and "OKRSYNC_HTTP_PORT='http'" in hidden.output


def test_settings_files_are_read_from_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "okrsync_log_level").write_text("debug")
    (tmp_path / "okrsync_database_url").write_text("sqlite:///from-a-secret.db")
    monkeypatch.delenv("OKRSYNC_LOG_LEVEL", raising=False)
    monkeypatch.delenv("OKRSYNC_DATABASE_URL", raising=False)
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.log_level == "debug"
    assert settings.database_url.get_secret_value() == "sqlite:///from-a-secret.db"
    assert settings.secrets_dir == tmp_path
    (tmp_path / "okrsync_database_url").write_text("")
    (tmp_path / "okrsync_http_port").write_text("eighty")
    done = okrsync("status", OKRSYNC_SECRETS_DIR=str(tmp_path))
    assert done.exit_code == 2
    assert "OKRSYNC_HTTP_PORT='eighty'" in done.output


def store_with_deliveries(url: str) -> dict[str, int]:
    engine = make_engine(url)
    upgrade(engine, "head")
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    ids: dict[str, int] = {}
    with Session(engine, expire_on_commit=False) as session:
        session.add(CycleRow(id="q4", start=date(2026, 10, 1), end=date(2026, 12, 31)))
        session.add(ObjectiveRow(id="o", title="Grow", cycle_id="q4"))
        session.add(
            KeyResultRow(id="bookings", objective_id="o", title="Bookings", kind="increase")
        )
        for name, status, attempts in (
            ("failed", DeliveryStatus.FAILED, 8),
            ("pending", DeliveryStatus.PENDING, 2),
            ("done", DeliveryStatus.DONE, 1),
        ):
            row = DeliveryRow(
                mirror_key="bookings/hook/abc",
                seq=len(ids) + 1,
                key_result_id="bookings",
                idempotency_key=f"k-{name}",
                status=status.value,
                attempts=attempts,
                created_at=now,
                next_attempt_at=now + timedelta(minutes=5),
                last_error=f"HTTP 500 from https://hooks.example/okr?token={CANARY}",
            )
            session.add(row)
            session.flush()
            assert row.id is not None
            ids[name] = row.id
        session.commit()
    engine.dispose()
    return ids


CONFIG = f"""\
version: 1
connections:
  db: {{type: sql, url: "sqlite://"}}
  hook: {{type: webhook, url: "https://hooks.example/okr", secret: "{CANARY}"}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won: {{connection: db, query: "SELECT 1"}}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: bookings, title: B, metric: won, kind: increase, start: 0, target: 9}}
"""


def test_deliveries_list_and_retry(database_url: str, tmp_path: Path) -> None:
    ids = store_with_deliveries(database_url)
    config = tmp_path / "okrsync.yaml"
    config.write_text(CONFIG)
    # the store from the command line wins over the environment's
    nowhere = {"OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'nowhere.db'}"}
    store = ("--database-url", database_url)

    def listed(*flags: str) -> list[dict[str, object]]:
        done = okrsync("deliveries", *flags, "--json", *store, "--config", str(config), **nowhere)
        assert done.exit_code == 0, done.output
        return list(json.loads(done.output)["deliveries"])

    both = listed()
    assert [(d["id"], d["status"]) for d in both] == [
        (ids["failed"], "failed"),
        (ids["pending"], "pending"),
    ]
    failed = both[0]
    assert failed["mirror"] == "bookings/hook/abc" and failed["key_result"] == "bookings"
    assert failed["attempts"] == 8
    assert failed["last_error"] == "HTTP 500 from https://hooks.example/okr?token=***"
    assert [d["id"] for d in listed("--status", "failed")] == [ids["failed"]]
    assert [d["id"] for d in listed("--status", "pending")] == [ids["pending"]]
    human = okrsync("deliveries", *store, "--config", str(config), **nowhere)
    assert "bookings/hook/abc" in human.output and CANARY not in human.output
    assert okrsync("deliveries", "--status", "done", *store).exit_code == 2

    before = datetime.now(UTC)
    retried = okrsync("deliveries", "retry", str(ids["failed"]), *store, **nowhere)
    assert retried.exit_code == 0, retried.output
    (again,) = [d for d in listed("--status", "pending") if d["id"] == ids["failed"]]
    assert again["attempts"] == 8  # kept: a sink must still know an earlier push may exist
    due = datetime.fromisoformat(str(again["next_attempt_at"]).replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= due <= datetime.now(UTC)
    assert listed("--status", "failed") == []

    for not_failed in (ids["pending"], ids["done"], 999_999):
        refused = okrsync("deliveries", "retry", str(not_failed), *store)
        assert refused.exit_code == 1
    pending_refused = okrsync("deliveries", "retry", str(ids["pending"]), *store)
    assert "is pending, not failed" in pending_refused.output


def test_read_commands_take_the_store_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    store_with_deliveries(database_url)
    nowhere = {"OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'nowhere.db'}"}
    empty = okrsync("status", "--json", **nowhere)
    assert empty.exit_code == 0
    assert "Bookings" not in empty.output  # the environment's store: none
    shown = {
        ("status",): "Bookings",
        ("history", "bookings"): "history of bookings",
        ("explain", "bookings"): "bookings: no value recorded yet",
    }
    for command, expected in shown.items():
        done = okrsync(*command, "--database-url", database_url, **nowhere)
        assert done.exit_code == 0, done.output
        assert expected in done.output
    assert not (tmp_path / "nowhere.db").exists()


def test_init_writes_this_quarter_and_the_schema_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = okrsync("init")
    assert done.exit_code == 0, done.output
    text = (tmp_path / "okrsync.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=okrsync.schema.json"
    schema = json.loads((tmp_path / "okrsync.schema.json").read_text())
    assert "connections" in schema["properties"]
    cycle_id, start, end = quarter(date.today())
    assert f"{{id: {cycle_id}, start: {start}, end: {end}}}" in text
    checked = okrsync("validate", "--config", "okrsync.yaml")
    assert checked.exit_code == 0, checked.output
    planned = okrsync("plan", "--config", "okrsync.yaml", "--database-url", "sqlite:///s.db")
    assert planned.exit_code == 1  # its warehouse is not there yet …
    assert "no SQLite database at warehouse.db" in planned.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["okrsync.schema.json", "okrsync.yaml"]


def test_every_example_config_names_the_committed_schema() -> None:
    examples = Path(__file__).resolve().parents[2] / "config" / "examples"
    for example in sorted(examples.glob("*.yaml")):
        first = example.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), example.name
        target = (example.parent / first.split("$schema=", 1)[1]).resolve()
        assert target == examples.parent / "okrsync.schema.json", example.name
