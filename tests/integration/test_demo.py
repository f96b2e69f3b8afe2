"""``okrsync demo`` runs on a fresh machine's defaults: no credentials, its own SQLite store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx


def test_demo_fills_key_results_and_delivers_mirrors(tmp_path: Path) -> None:
    """Run as README's first command leaves it (``.venv/bin/okrsync demo`` from the directory
    holding ``.venv``): it serves the dashboard while it runs, says where its config is, and
    its closing hints, pasted into a shell in that directory, work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env["PYTHONUNBUFFERED"] = "1"
    okrsync = Path(sys.executable).with_name("okrsync")
    home = okrsync.parents[2]  # the directory README's command ran in (it holds .venv)
    typed = os.path.relpath(okrsync, home)
    process = subprocess.Popen(
        [typed, "demo", "--seconds", "7", "--workdir", str(tmp_path)],
        cwd=home,
        env={**env, "PATH": "/usr/bin:/bin"},  # as after README's command: okrsync not on PATH
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    page = None
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Dashboard: "):
            address = line.split()[1]
            page = httpx.get(address, timeout=20)
            break
    rest, errors = process.communicate(timeout=90)
    stdout = "".join(lines) + rest
    assert process.returncode == 0, errors
    assert "Traceback" not in stdout + errors
    assert page is not None, stdout
    assert page.status_code == 200 and "okrsync" in page.text.lower()
    config_line = next(line for line in stdout.splitlines() if line.startswith("Config: "))
    config_file = Path(config_line.split()[1])
    assert config_file == tmp_path / "okrsync-demo.yaml"
    assert "objectives:" in config_file.read_text()
    hints = stdout.split("Look around with:\n", 1)[1].splitlines()
    assert len(hints) == 3 and all(h.startswith("  OKRSYNC_DATABASE_URL=") for h in hints)
    assert all(f" {typed} " in h for h in hints), hints  # not a bare `okrsync`: not on PATH
    for hint in hints:
        pasted = subprocess.run(
            ["bash", "-c", hint.strip()],
            cwd=home,
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pasted.returncode == 0, (hint, pasted.stdout, pasted.stderr)
        assert pasted.stdout.strip(), hint
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
    assert "mirror pushes delivered" in stdout
    with sqlite3.connect(store) as db:  # the launch epic's child issues, linked back to it
        work = db.execute(
            "SELECT state, backlink_ref FROM work_items "
            "WHERE key_result_id = 'launch_epic' AND unlinked_at IS NULL"
        ).fetchall()
    assert len(work) >= 3
    assert any(state == "done" for state, _ in work)
    assert all(ref is not None for _, ref in work)
