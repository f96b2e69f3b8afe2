"""``okrsync work KR [--json]`` and ``okrsync work --objective O`` as a person runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from okrsync.cli import app
from okrsync.store.db import make_engine, upgrade
from tests.integration.test_cli import okrsync
from tests.integration.work_support import definitions, insert_items, item


def test_work_lists_a_key_results_items_and_an_objectives(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    definitions(engine)
    linked = datetime(2026, 10, 5, tzinfo=UTC)
    insert_items(
        engine,
        [
            item("OKR-13", "in_progress", linked_at=linked),
            item("OKR-14", "done", linked_at=linked, done_at=linked + timedelta(days=3)),
            item("acme/shop#42", "todo", connection="github", linked_at=linked),
            item("OKR-9", "done", linked_at=linked, unlinked_at=linked + timedelta(days=1)),
            item("OKR-1", "todo", key_result=None, objective="o", linked_at=linked),
        ],
    )
    engine.dispose()
    env = {"OKRSYNC_DATABASE_URL": database_url}
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        done = runner.invoke(app, list(args), env={**env, "COLUMNS": "200"})
        return done.exit_code, done.stdout, done.stderr

    done = okrsync("work", "deals", "--json", env=env)  # once as people run it: a process
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert list(answer) == ["key_result", "items", "summary"]
    assert answer["key_result"] == "deals"
    assert [(i["connection"], i["key"], i["state"]) for i in answer["items"]] == [
        ("github", "acme/shop#42", "todo"),
        ("jira", "OKR-13", "in_progress"),
        ("jira", "OKR-14", "done"),
    ]
    assert answer["items"][2]["url"] == "https://tracker.example/browse/OKR-14"
    assert {k: answer["summary"][k] for k in ("todo", "in_progress", "done")} == {
        "todo": 1,
        "in_progress": 1,
        "done": 1,
    }

    everything = json.loads(run("work", "deals", "--json", "--unlinked")[1])
    assert len(everything["items"]) == 4

    code, stdout, stderr = run("work", "--objective", "o", "--json")
    assert code == 0, stderr
    objective = json.loads(stdout)
    assert objective["objective"] == "o"
    assert {i["key"] for i in objective["items"]} == {"acme/shop#42", "OKR-13", "OKR-14", "OKR-1"}

    code, stdout, stderr = run("work", "deals")
    assert code == 0, stderr
    assert "OKR-13" in stdout and "in progress" in stdout
    assert "work: 1 done · 1 in progress · 1 to do" in stdout

    code, _, stderr = run("work", "nope")
    assert code == 1 and "no key result 'nope'" in stderr
    code, _, stderr = run("work")
    assert code == 1 and "one of them" in stderr
