"""``okrsync demo`` runs on a fresh machine's defaults: no credentials, its own SQLite store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_demo_fills_key_results_and_delivers_mirrors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    done = subprocess.run(
        [sys.executable, "-m", "okrsync", "demo", "--seconds", "7", "--workdir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    store = tmp_path / "okrsync-demo.db"
    with sqlite3.connect(store) as db:
        krs = dict(db.execute("SELECT id, value FROM key_results").fetchall())
        measurements = db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        delivered = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'done'").fetchone()[
            0
        ]
        pending = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[
            0
        ]
    assert set(krs) == {
        "bookings",
        "win_rate",
        "crm_bookings",
        "open_pipeline",
        "sf_bookings",
        "sf_win_rate",
        "pipeline_coverage",
        "open_bugs",
        "launch_epic",
        "signups",
        "signup_rate",
        "checkout_p95",
        "availability",
    }
    assert all(value is not None for value in krs.values()), krs
    assert measurements > len(krs)  # values moved while the demo ran
    assert delivered >= 10
    with sqlite3.connect(store) as db:
        jira = db.execute(
            "SELECT COUNT(*) FROM deliveries d JOIN mirrors m ON m.key = d.mirror_key "
            "WHERE m.connection = 'jira' AND d.status = 'done'"
        ).fetchone()[0]
        per_connection = dict(
            db.execute(
                "SELECT m.connection, COUNT(*) FROM deliveries d JOIN mirrors m "
                "ON m.key = d.mirror_key WHERE d.status = 'done' GROUP BY m.connection"
            ).fetchall()
        )
    assert jira == 2  # the epic's field and its one comment
    assert per_connection["slack"] >= 3  # the marketing digest and two reliability results
    assert per_connection["teams"] == 1
    assert pending == 0
    assert "mirror pushes delivered" in done.stdout
    with sqlite3.connect(store) as db:  # the launch epic's child issues, linked back to it
        work = db.execute(
            "SELECT state, backlink_ref FROM work_items "
            "WHERE key_result_id = 'launch_epic' AND unlinked_at IS NULL"
        ).fetchall()
    assert len(work) >= 3
    assert any(state == "done" for state, _ in work)
    assert all(ref is not None for _, ref in work)
