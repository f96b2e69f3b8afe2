"""Three daemons on one PostgreSQL store share the schedule: no query is fetched twice in a
tick, and when one replica is killed the others take over its metrics once its leases expire.

Which tick a fetch was for is not told by when it reached the vendor (a run started late and the
next one started on time can reach it a few milliseconds apart, quite correctly), so the store
tells it: a trigger logs every claim a replica makes on a metric's ``metric_states`` row (the
lease it takes runs ``OKRSYNC_LEASE_SECONDS`` from the moment of the claim), and every claim is
placed on the metric's tick grid.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlalchemy import Engine, text

from connectors.http_json import HttpJsonSource
from connectors.http_json import connector as http_json
from okrsync.config import load_config_text
from okrsync.domain.planner import request_keys, schedule_offsets
from okrsync.domain.schedule import Schedule
from okrsync.plugins import load_registry
from okrsync.sandbox import SandboxServer
from okrsync.store.db import make_engine, upgrade

METRICS = 8
SCHEDULE = Schedule.parse("every 1s")
LEASE = timedelta(seconds=3)  # OKRSYNC_LEASE_SECONDS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A claim sets a metric row's lease_owner and a new lease_until (a run's end clears both).
CLAIM_LOG = [
    "CREATE TABLE claim_log (metric text NOT NULL, owner text NOT NULL,"
    " until timestamptz NOT NULL)",
    """CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$ BEGIN
        INSERT INTO claim_log VALUES (NEW.name, NEW.lease_owner, NEW.lease_until);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER log_claim AFTER UPDATE ON metric_states FOR EACH ROW
    WHEN (NEW.lease_owner IS NOT NULL AND NEW.lease_until IS DISTINCT FROM OLD.lease_until)
    EXECUTE FUNCTION log_claim()""",
]


def config(api: str, token: str) -> str:
    metrics = "\n".join(
        f"  m{i}:\n    connection: api\n    request_path: /v1/deals/summary\n"
        f"    params: {{status: won, closed_after: '2026-0{i + 1}-01'}}\n"
        f"    json_path: $.count\n    schedule: every 1s"
        for i in range(METRICS)
    )
    key_results = "\n".join(
        f"      - {{id: k{i}, title: K{i}, metric: m{i}, kind: increase, start: 0, target: 500}}"
        for i in range(METRICS)
    )
    return (
        "version: 1\n"
        f"connections:\n  api: {{type: http_json, url: '{api}', "
        f"auth: {{type: bearer, token: '{token}'}}}}\n"
        "cycles:\n  - {id: q4, start: 2026-10-01, end: 2026-12-31}\n"
        f"metrics:\n{metrics}\n"
        "objectives:\n  - id: o\n    title: O\n    cycle: q4\n    key_results:\n"
        f"{key_results}\n"
    )


def metric_of(query: str) -> str:
    """The metric whose query this is (``m{i}`` asks for deals closed after month ``i + 1``)."""
    [closed_after] = parse_qs(query)["closed_after"]
    return f"m{int(closed_after[5:7]) - 1}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api() -> Iterator[SandboxServer]:
    assert http_json.fake is not None
    with SandboxServer(http_json.fake(), name="api") as server:
        yield server


def runs_logged(log: Path) -> int:
    """How many runs a replica has started, from its JSON log."""
    return sum('"event": "run_started"' in line for line in log.read_text().splitlines())


def fetch_times(api: SandboxServer) -> dict[str, list[float]]:
    """When each metric's query reached the vendor."""
    seen: dict[str, list[float]] = defaultdict(list)
    for record in api.requests:
        if record.path == "/v1/deals/summary":
            seen[metric_of(record.query)].append(record.at.timestamp())
    return seen


def log_claims(engine: Engine) -> None:
    """Create the schema as a daemon would, and a trigger that logs every claim of a metric."""
    upgrade(engine)
    with engine.begin() as conn:
        for statement in CLAIM_LOG:
            conn.execute(text(statement))


def claims(engine: Engine) -> dict[str, list[tuple[datetime, str]]]:
    """Each metric's claims in order: when it was claimed, and by which replica."""
    by_metric: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT metric, owner, until FROM claim_log ORDER BY until"))
        for metric, owner, until in rows:
            by_metric[metric].append((until - LEASE, owner))
    return by_metric


def offsets(text: str) -> dict[str, timedelta]:
    """Each metric's jitter as the daemon computes it: shared by the metrics of one request."""
    config = load_config_text(text, load_registry().connectors)
    source = HttpJsonSource("api", config.connections["api"])  # type: ignore[arg-type]
    try:
        keys = request_keys(config, lambda _connection, spec: source.request_key(spec))
    finally:
        asyncio.run(source.aclose())
    return schedule_offsets({name: m.schedule for name, m in config.metrics.items()}, keys)


def tick(offset: timedelta, claimed_at: datetime) -> int:
    """The tick of a metric's schedule a claim made at ``claimed_at`` is for: the ticks of an
    interval lie on a grid anchored at the Unix epoch and shifted by the metric's jitter."""
    assert SCHEDULE.interval is not None
    return (claimed_at - EPOCH - offset) // SCHEDULE.interval


def test_three_replicas_share_the_work_and_survive_one_killed(
    tmp_path: Path, database_url: str, api: SandboxServer
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is single-node: a second daemon refuses to start (test_daemon)")
    engine = make_engine(database_url)
    log_claims(engine)
    path = tmp_path / "okrsync.yaml"
    path.write_text(config(api.url, http_json.sandbox()["token"]))
    jitters = offsets(path.read_text())
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(path),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_LEASE_SECONDS": "3",
        "OKRSYNC_LOG_FORMAT": "json",
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("r1", "r2", "r3")}
    replicas = {
        name: subprocess.Popen(
            [sys.executable, "-m", "okrsync", "run", "--port", str(free_port())],
            env={**env, "OKRSYNC_INSTANCE_ID": name},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            text=True,
        )
        for name, log in logs.items()
    }
    try:
        # Start-up takes seconds on a loaded machine: wait until every replica has run a share
        # of the schedule (a replica that never gets one fails here), then let them go on a while.
        deadline = time.monotonic() + 60
        while not all(runs_logged(log) for log in logs.values()):
            assert time.monotonic() < deadline, {n: runs_logged(p) for n, p in logs.items()}
            assert all(p.poll() is None for p in replicas.values()), "a replica exited"
            time.sleep(0.1)
        time.sleep(4)
        replicas["r1"].send_signal(signal.SIGKILL)
        replicas["r1"].wait(timeout=10)
        killed_at = time.time()
        time.sleep(8)
    finally:
        for _name, process in replicas.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        exits = {name: process.wait(timeout=30) for name, process in replicas.items()}
    tails = {name: log.read_text()[-2000:] for name, log in logs.items()}
    assert exits["r2"] == 0 and exits["r3"] == 0, {n: tails[n] for n in ("r2", "r3")}

    times = fetch_times(api)
    claimed = claims(engine)
    with engine.connect() as conn:
        runs: dict[str, int] = dict(
            conn.execute(text("SELECT instance_id, COUNT(*) FROM runs GROUP BY instance_id")).all()
        )
    engine.dispose()
    fetches = sum(len(stamps) for stamps in times.values())
    print(f"\n{fetches} fetches of {METRICS} queries by 3 replicas, one killed")
    print(f"claims per replica: {Counter(owner for c in claimed.values() for _, owner in c)}")
    print(f"runs per replica: {runs}")
    assert sorted(times) == sorted(claimed) == [f"m{i}" for i in range(METRICS)]

    # No tick of a metric was claimed twice, by two replicas or by one.
    for metric, made in claimed.items():
        ticks = [(tick(jitters[metric], at), owner) for at, owner in made]
        twice = [(a, b) for a, b in itertools.pairwise(ticks) if b[0] <= a[0]]
        assert not twice, f"{metric}: a tick claimed twice (tick, replica): {twice}"
    # Every fetch was made under a claim of its own: a metric's query reached the vendor once
    # per claim, but for a claim the killed replica may not have got to send.
    for metric, stamps in times.items():
        count = len(claimed[metric])
        assert count - 1 <= len(stamps) <= count, f"{metric}: {len(stamps)} fetches, {count} claims"

    # The killed replica's metrics were taken over: the others claimed every metric after the
    # kill, and every query was fetched after the killed replica's leases had run out.
    killed = datetime.fromtimestamp(killed_at, UTC)
    assert "r1" in {owner for made in claimed.values() for _, owner in made}
    for metric, made in claimed.items():
        assert any(at > killed and owner != "r1" for at, owner in made), metric
    assert all(stamps[-1] > killed_at + LEASE.total_seconds() for stamps in times.values())
    assert set(runs) == {"r1", "r2", "r3"}  # all three took a share of the schedule
