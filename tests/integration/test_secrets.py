"""A canary secret never shows in logs, errors or the store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import structlog
from sqlalchemy import create_engine, inspect, text

from okrsync.logging import configure_logging
from okrsync.redaction import Redactor

CANARY = "canary-7f3a9b2c-secret"


def test_logs_redact_secrets_everywhere_in_the_event() -> None:
    stream = io.StringIO()
    configure_logging(Redactor([CANARY]), fmt="json", level="debug", stream=stream)
    log = structlog.get_logger()
    log.debug("debug_event", url=f"postgresql://u:{CANARY}@db/x")
    log.error("nested", detail={"headers": [f"Bearer {CANARY}"]}, error=ValueError(CANARY))
    try:
        raise RuntimeError(f"failed with {CANARY}")
    except RuntimeError:
        log.exception("crashed")
    output = stream.getvalue()
    assert CANARY not in output
    assert output.count("***") >= 4
    assert [json.loads(line)["event"] for line in output.splitlines()] == [
        "debug_event",
        "nested",
        "crashed",
    ]


def test_sync_failure_keeps_the_secret_out_of_output_and_store(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "okrsync.yaml"
    config.write_text(
        "version: 1\n"
        "connections:\n"
        "  db: {type: sql, url: '${DB_URL}'}\n"
        "cycles:\n"
        "  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n"
        "metrics:\n"
        "  won: {connection: db, query: 'SELECT 1'}\n"
        "objectives:\n"
        "  - id: o\n"
        "    title: O\n"
        "    cycle: q4\n"
        "    key_results:\n"
        "      - {id: k, title: K, metric: won, kind: increase, start: 0, target: 10}\n"
    )
    env = {
        **os.environ,
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_LOG_LEVEL": "debug",
        "DB_URL": f"postgresql://okr:{CANARY}@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", "sync", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "connection 'db'" in done.stderr
    assert CANARY not in done.stdout + done.stderr
    engine = create_engine(database_url)
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            assert CANARY not in repr(rows), f"secret stored in {table}"
    engine.dispose()
