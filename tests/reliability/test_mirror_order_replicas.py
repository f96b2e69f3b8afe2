"""Three replicas, one PostgreSQL store, a slow Slack, random SIGKILLs: no mirror goes backwards.

Issue 12: with two replicas, a source changing every 0.25 s and one replica killed and restarted,
a Slack message ended showing an older value than the store, with nothing pending to fix it.
This is the invariant test the issue asked for, run over many seeds.

Each seed: the JSON API fake serves four key results whose values only grow (a deal is added to
one of them every 0.25 s); each key result is mirrored to one living Slack message; the Slack
fake answers every write late (a LATENCY fault of its own per request, 0.1 to 1.5 s, and now and
then longer than a push may take under the 3 s lease). Three ``okrsync run`` replicas share the
store (``OKRSYNC_LEASE_SECONDS=3``, so dead replicas' leases run out within the run). During
about nine seconds of changes, 2 to 4 times a replica is SIGKILLed — any one, or one holding a
mirror's lease (mid-push) — and started again after a pause, under its own instance id (which
frees its predecessor's leases at start), or under none (the default id: the host plus a
digest, or that and a pid when another live process holds it). Then the values stop changing,
every replica runs until the outbox is drained (the store holds every source value, nothing is
pending, and each mirror's newest delivery carries its key result's value and is done), and all
are stopped with SIGTERM (exit 0). Then, at the fake:

* each key result has exactly one message, showing the value its key result has in the store;
* no message ever showed a smaller value than it showed before (the fake's history of what each
  message showed, snapshotted after every write it applied; the sources only grow);
* Slack's limits refused no call (the fake's ``rate_limited`` count, per workspace whichever
  replica called) and no method went over its limit by the arrival times the fake logged
  (chat.update 50 in any minute; chat.postMessage five in five seconds per channel). The
  demand stays under them (some 20-30 writes a run): this catches replicas doubling or
  storming their calls, not pacing under pressure (``tests/integration/test_shared_budgets.py``).

Per-seed figures are printed (``-s``), and a summary at the end of the module.
``OKRSYNC_MIRROR_SEEDS`` replays given seeds (``7,19``) or sets how many (``5``).

The Slack fake finishes every write it received, after its delay, even when the client hung up
meanwhile (a killed replica, a push cut at its lease's end), as a real server does. A first
version of the fix guarded only the client's side (a push never outlives its lease, leases given
back at once after a cut or at restart) and this vendor broke it in 4 seeds of 20: a first post
whose answer never came landed after the next attempt had searched the channel for it (an
orphan message showing the first state), and now and then a living message went back for a
moment. The dispatcher now lets a mirror settle after any lease not given back as finished.
``OKRSYNC_MIRROR_VENDOR=drops`` makes the fake drop such writes instead (the sandbox's plain
LATENCY fault), a kinder vendor.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.http_json.fake import DEFAULT_TOKEN, AnalyticsData, analytics_app
from connectors.slack.fake import BOT_TOKEN, DEFAULT_LIMITS, default_state, slack_app
from okrsync.sandbox import Fault, FaultKind, Sandbox
from okrsync.store.identity import stable_instance_id
from tests.reliability.mirror_replicas_support import (
    Completing,
    ReplicaLauncher,
    SlackWatch,
    StoreView,
    busiest_window,
    lease_holders,
    log_events,
    pid_alive,
    read_store,
    shown_value,
)

KEY_RESULTS = [f"kr{i}" for i in range(1, 5)]
DAYS = {kr: date(2001, 1, i) for i, kr in enumerate(KEY_RESULTS, start=1)}  # one per key result
CHANNEL = "C0OKRS0001"
TARGET = 100_000
LEASE_SECONDS = 3
CHURN = 9.0  # seconds during which values change and replicas are killed
CHANGE_EVERY = 0.25
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
WRITE_PATH = r"/api/chat\.(postMessage|update)$"
EVENTS = (
    "delivery_done",
    "delivery_failed",
    "delivery_lease_lost",
    "leases_released",
    "mirror_order_repaired",
)


def _seeds() -> list[int]:
    wanted = os.environ.get("OKRSYNC_MIRROR_SEEDS", "20").strip()
    if "," in wanted or not wanted.isdigit() or int(wanted) > 1000:
        return [int(s) for s in wanted.split(",") if s.strip()]
    return list(range(1, int(wanted) + 1))


SEEDS = _seeds()
VENDOR = os.environ.get("OKRSYNC_MIRROR_VENDOR", "completes")  # or "drops", see the docstring


@dataclass
class Source:
    """The values the JSON API serves: one deal added at a time, so every value only grows."""

    data: AnalyticsData
    values: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(KEY_RESULTS, Decimal(0))
    )
    changes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def change(self, rng: random.Random) -> None:
        kr = rng.choice(KEY_RESULTS)
        amount = rng.randint(1, 500)
        with self.lock:
            self.data.add_deal(amount, status="won", closed_on=DAYS[kr])
            self.values[kr] += amount
            self.changes += 1

    def final(self) -> dict[str, Decimal]:
        with self.lock:
            return dict(self.values)


def config_text(urls: dict[str, str]) -> str:
    today = datetime.now(UTC).date()
    metrics = {
        f"m_{kr}": {
            "connection": "crm",
            "request_path": "/v1/deals/summary",
            "params": {
                "status": "won",
                "closed_after": day.isoformat(),
                "closed_before": day.isoformat(),
            },
            "json_path": "$.total",
            "schedule": "every 1s",
        }
        for kr, day in DAYS.items()
    }
    key_results = [
        {
            "id": kr,
            "title": f"Key result {kr}",
            "metric": f"m_{kr}",
            "kind": "increase",
            "start": 0,
            "target": TARGET,
            "mirrors": [{"connection": "chat", "channel": CHANNEL}],
        }
        for kr in KEY_RESULTS
    ]
    config: dict[str, Any] = {
        "version": 1,
        "connections": {
            "crm": {
                "type": "http_json",
                "url": urls["crm"],
                "auth": {"type": "bearer", "token": DEFAULT_TOKEN},
            },
            "chat": {"type": "slack", "token": BOT_TOKEN, "base_url": f"{urls['chat']}/api/"},
        },
        "cycles": [
            {
                "id": "now",
                "start": (today - timedelta(days=45)).isoformat(),
                "end": (today + timedelta(days=45)).isoformat(),
            }
        ],
        "metrics": metrics,
        "objectives": [
            {"id": "o", "title": "Never go backwards", "cycle": "now", "key_results": key_results}
        ],
    }
    return json.dumps(config, indent=2)


@dataclass
class Replica:
    """One slot of the three; each start is a new process in it."""

    name: str
    explicit: bool = True  # run under OKRSYNC_INSTANCE_ID=<name>, else under the default id
    pid: int | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def ids(self, default_id: str) -> set[str]:
        """The instance ids the live process may run under."""
        if self.explicit:
            return {self.name}
        return {default_id, f"{default_id}:{self.pid}"}


@dataclass
class Run:
    """One seed: the world the replicas run in and what the test did to them."""

    seed: int
    launcher: ReplicaLauncher
    env: dict[str, str | None]
    logs: Path
    replicas: dict[str, Replica]
    kills: Counter[str] = field(default_factory=Counter)
    default_starts: int = 0

    def start(self, replica: Replica) -> None:
        log = self.logs / f"{replica.name}-{replica.starts}.log"
        env = {**self.env, "OKRSYNC_INSTANCE_ID": replica.name if replica.explicit else None}
        replica.pid = self.launcher.start(log, env)
        replica.starts += 1
        replica.logs.append(log)
        self.default_starts += not replica.explicit

    def kill(self, replica: Replica, why: str) -> None:
        assert replica.pid is not None
        pid, replica.pid = replica.pid, None
        if not pid_alive(pid):
            tail = replica.logs[-1].read_text(errors="replace")[-3000:]
            raise AssertionError(f"replica {replica.name} ended by itself:\n{tail}")
        os.kill(pid, signal.SIGKILL)
        assert self.launcher.reap(pid) == -signal.SIGKILL
        self.kills[why] += 1

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every live replica; their exit codes."""
        live = {name: r.pid for name, r in self.replicas.items() if r.pid is not None}
        for pid in live.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(pid_alive(pid) for pid in live.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        codes = {}
        for name, pid in live.items():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            codes[name] = self.launcher.reap(pid)
            self.replicas[name].pid = None
        return codes

    def kill_leftovers(self) -> None:
        for replica in self.replicas.values():
            if replica.pid is not None:
                os.kill(replica.pid, signal.SIGKILL)
                self.launcher.reap(replica.pid)
                replica.pid = None

    def events(self) -> list[dict[str, Any]]:
        """The interesting events of every process of every slot, in time order."""
        found: list[dict[str, Any]] = []
        for replica in self.replicas.values():
            for number, log in enumerate(replica.logs):
                for event in log_events(log):
                    if event.get("event") in EVENTS:
                        found.append({"process": f"{replica.name}#{number}", **event})
        return sorted(found, key=lambda e: str(e.get("timestamp")))


@pytest.fixture(scope="module")
def launcher() -> Iterator[ReplicaLauncher]:
    warm = ReplicaLauncher(["run", "--host", "127.0.0.1", "--port", "0"])
    try:
        yield warm
    finally:
        warm.close()


@pytest.fixture(scope="module")
def summary() -> Iterator[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    yield rows
    if rows:
        print("\nmirror order with replicas, per seed:")
        for row in rows:
            print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
        print(
            f"  seeds {len(rows)}, kills {sum(r['kills'] for r in rows)}, superseded "
            f"{sum(r['superseded'] for r in rows)}, max drain {max(r['drain_s'] for r in rows)} s, "
            f"invariant held in {sum(r['held'] for r in rows)} of {len(rows)}"
        )


def write_delays(rng: random.Random) -> tuple[list[float], str]:
    """How late Slack answers each write: ``low``..``high`` seconds, one in 20 longer than a
    push may take under the lease (so it is cut at the lease's end)."""
    low, high = rng.uniform(0.1, 0.3), rng.uniform(0.8, 1.5)
    delays = [
        rng.uniform(2.0, 3.5) if rng.random() < 0.05 else rng.uniform(low, high)
        for _ in range(3000)
    ]
    return delays, f"{low:.2f}-{high:.2f}s"


def arm_slow_slack(sandbox: Sandbox, delays: list[float]) -> None:
    """The sandbox's LATENCY faults: a write whose client hangs up while it waits (a push cut at
    its lease's end, a killed replica's) is dropped, never applied."""
    for delay in delays:
        fault = Fault(kind=FaultKind.LATENCY, delay=delay, times=1, path=WRITE_PATH)
        sandbox["chat"].faults.add(fault)


def wait_started(run: Run) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for replica in run.replicas.values():
        while not any(e.get("event") == "daemon_started" for e in log_events(replica.logs[-1])):
            assert replica.pid is not None and pid_alive(replica.pid), replica.logs[-1].read_text(
                errors="replace"
            )[-3000:]
            assert time.monotonic() < deadline, f"replica {replica.name} never started"
            time.sleep(0.05)


def behind(store: StoreView, final: dict[str, Decimal]) -> list[str]:
    """What keeps the outbox from counting as drained (empty: drained)."""
    why = [
        f"store has {kr} = {store.values.get(kr)}, the source {value}"
        for kr, value in final.items()
        if store.values.get(kr) != value
    ]
    if store.deliveries["pending"]:
        why.append(f"{store.deliveries['pending']} pending")
    for m in store.mirrors:
        value = store.values.get(m.key_result)
        if m.newest_status != "done" or m.newest_value != value or m.delivered_seq != m.newest_seq:
            why.append(
                f"mirror {m.key}: newest #{m.newest_seq} {m.newest_status} {m.newest_value}, "
                f"shows #{m.delivered_seq}, key result {value}"
            )
    return why


def churn(run: Run, rng: random.Random, source: Source, database_url: str, default_id: str) -> None:
    """Values change every 0.25 s for CHURN seconds; replicas are killed and started again."""
    stop = threading.Event()

    def change_values() -> None:
        changer = random.Random(run.seed * 7919 + 1)
        while not stop.wait(CHANGE_EVERY):
            source.change(changer)

    thread = threading.Thread(target=change_values, name="value-changer", daemon=True)
    began = time.monotonic()
    kills = sorted(rng.uniform(0.5, CHURN - 0.5) for _ in range(rng.randint(2, 4)))
    restarts: list[tuple[float, Replica]] = []
    thread.start()
    try:
        while kills or restarts:
            now = time.monotonic() - began
            if restarts and (not kills or restarts[0][0] <= kills[0]):
                at, replica = restarts[0]
                if now < at:
                    time.sleep(min(at - now, 0.05))
                    continue
                restarts.pop(0)
                replica.explicit = rng.random() < 0.5
                run.start(replica)
                continue
            if now < kills[0]:
                time.sleep(min(kills[0] - now, 0.05))
                continue
            kills.pop(0)
            live = [r for r in run.replicas.values() if r.pid is not None]
            if not live:
                continue
            holders = lease_holders(database_url)
            pushing = [r for r in live if r.ids(default_id) & holders]
            if pushing and rng.random() < 0.6:
                replica, why = rng.choice(pushing), "holding a mirror lease"
            else:
                replica, why = rng.choice(live), "any"
            run.kill(replica, why)
            restarts.append((now + rng.uniform(0.2, 2.5), replica))
            restarts.sort(key=lambda item: item[0])
        rest = CHURN - (time.monotonic() - began)
        if rest > 0:
            time.sleep(rest)
    finally:
        stop.set()
        thread.join()


def diagnose(run: Run, watch: SlackWatch, store: StoreView, kr: str) -> str:
    """What to read when a mirror ended wrong: the store's view, the fake's, the replicas'."""
    lines = [f"seed {run.seed}, key result {kr}, store value {store.values.get(kr)}"]
    lines += [f"  mirror {m}" for m in store.mirrors if m.key_result == kr]
    for ts, seen in watch.history.items():
        if watch.subjects.get(ts) == kr:
            shown = ", ".join(f"{s.value}@{s.at:.2f}" for s in seen)
            lines.append(f"  message {ts} showed, in order: {shown}")
    for event in run.events():
        if event.get("mirror") in (None, *(m.key for m in store.mirrors if m.key_result == kr)):
            keep = {k: v for k, v in event.items() if k not in ("level",)}
            lines.append(f"  {keep}")
    return "\n".join(lines)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", SEEDS)
def test_no_mirror_goes_backwards_with_replicas_killed(
    seed: int,
    database_url: str,
    tmp_path: Path,
    launcher: ReplicaLauncher,
    summary: list[dict[str, Any]],
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is single-node: replicas need PostgreSQL")
    began = time.monotonic()
    rng = random.Random(seed)
    analytics = analytics_app()
    source = Source(analytics.state.data)
    slack = default_state()
    delays, latency = write_delays(rng)
    completing = VENDOR == "completes"
    app = Completing(slack_app(slack), delays) if completing else slack_app(slack)
    watch = SlackWatch(app, slack, CHANNEL)
    with Sandbox({"crm": analytics, "chat": watch}) as sandbox:
        if not completing:
            arm_slow_slack(sandbox, delays)
        config = tmp_path / "okrsync.yaml"
        config.write_text(config_text(sandbox.urls))
        logs = tmp_path / "logs"
        logs.mkdir()
        env: dict[str, str | None] = {
            "OKRSYNC_CONFIG": str(config),
            "OKRSYNC_DATABASE_URL": database_url,
            "OKRSYNC_LOG_FORMAT": "json",
            "OKRSYNC_LEASE_SECONDS": str(LEASE_SECONDS),
            "OKRSYNC_SHUTDOWN_GRACE_SECONDS": "5",
        }
        default_id = stable_instance_id(database_url, config)
        replicas = {name: Replica(name) for name in ("r1", "r2", "r3")}
        replicas["r3"].explicit = rng.random() < 0.5
        run = Run(seed, launcher, env, logs, replicas)
        try:
            for replica in replicas.values():
                run.start(replica)
            wait_started(run)
            churn(run, rng, source, database_url, default_id)
            final = source.final()
            wait_started(run)  # one started at the very end must not die of SIGTERM in start-up
            drain_began = time.monotonic()
            while True:
                store = read_store(database_url)
                waiting = behind(store, final)
                if not waiting:
                    break
                if time.monotonic() - drain_began > DRAIN_TIMEOUT:
                    pytest.fail(f"seed {seed}: the outbox never drained: {waiting}")
                time.sleep(0.2)
            drain = time.monotonic() - drain_began
            codes = run.stop_all()
        finally:
            run.kill_leftovers()
        requests = sandbox["chat"].requests

    # --- figures -------------------------------------------------------------------------------
    store = read_store(database_url)
    events = run.events()
    named = Counter(str(e.get("event")) for e in events)
    arrivals: dict[str, list[float]] = {"chat.update": [], "chat.postMessage": []}
    for record in requests:
        method = record.path.rsplit("/", 1)[-1]
        if method in arrivals:
            arrivals[method].append(record.at.timestamp())
    busiest = {m: busiest_window(sorted(t), DEFAULT_LIMITS[m][1]) for m, t in arrivals.items()}
    messages = {
        kr: [
            m
            for m in slack.channel_messages(CHANNEL)
            if m.bot_id and ((m.metadata or {}).get("event_payload") or {}).get("id") == kr
        ]
        for kr in KEY_RESULTS
    }
    wrong = {
        kr: [shown_value(m.text) for m in found]
        for kr, found in messages.items()
        if [shown_value(m.text) for m in found] != [store.values[kr]]
    }
    regressions = watch.regressions()
    figures: dict[str, Any] = {
        "seed": seed,
        "latency": latency,
        "changes": source.changes,
        "kills": sum(run.kills.values()),
        "kills_mid_push": run.kills["holding a mirror lease"],
        "default_id_starts": run.default_starts,
        "done": store.deliveries["done"],
        "superseded": store.deliveries["superseded"],
        "failed": store.deliveries["failed"],
        "pushes_at_fake": sum(len(t) for t in arrivals.values()),
        "applied": sum(watch.applied.values()),
        "delivery_failed": named["delivery_failed"],
        "lease_lost": named["delivery_lease_lost"],
        "order_repaired": named["mirror_order_repaired"],
        "refused_by_limits": sum(slack.rate_limited.values()),
        "busiest_update_min": busiest["chat.update"],
        "drain_s": round(drain, 1),
        "seed_s": round(time.monotonic() - began, 1),
        "held": not wrong and not regressions,
    }
    summary.append(figures)
    print("\n" + ", ".join(f"{k}={v}" for k, v in figures.items()))

    # --- the invariant ---------------------------------------------------------------------------
    assert all(code == 0 for code in codes.values()), codes
    assert not wrong, "\n\n".join(
        f"{kr}: the fake shows {shown}, the store has {store.values[kr]}\n"
        + diagnose(run, watch, store, kr)
        for kr, shown in wrong.items()
    )
    assert all(store.values[kr] == final[kr] for kr in KEY_RESULTS)
    assert not regressions, "\n\n".join(
        f"{kr}: message {ts} went from {before} to {after}\n" + diagnose(run, watch, store, kr)
        for kr, ts, before, after, _at in regressions
    )
    assert not store.deliveries["failed"], dict(store.deliveries)
    # Slack's per-workspace limits, counted at the fake whichever replica called: none refused a
    # call (the fake's own count, and no 429 seen going out), and none was over its count
    assert not slack.rate_limited, dict(slack.rate_limited)
    assert watch.rate_limited() == 0, dict(watch.answers)
    assert busiest["chat.update"] <= DEFAULT_LIMITS["chat.update"][0], busiest
    per_channel_posts = busiest["chat.postMessage"]  # one channel: the workspace count is its
    assert per_channel_posts <= DEFAULT_LIMITS["chat.postMessage"][0], busiest
