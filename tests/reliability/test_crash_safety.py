"""Crash safety: the real daemon, SIGKILLed more than a hundred times, loses and repeats nothing.

The fakes run in this process on real sockets: the JSON API the key results read (its values
changed by the harness at random moments), and three mirrors — the webhook receiver (it refuses
a repeated ``Idempotency-Key`` and counts the refusals), Slack (one living message per key
result) and Jira (one living comment per key result). Every sink answers slowly (an injected
LATENCY fault), so kills land mid-delivery too.

Each round starts a daemon (``okrsync run``, forked warm by ``fork_daemon.py``) and kills it with
SIGKILL: at a random moment 0.05 to 1.5 s in, just after the source answered (the evaluate,
record and outbox commit), or while a sink is answering. At the end the values stop changing,
one more daemon runs until the store has nothing left to deliver and every mirror shows the
final values, and is stopped with SIGTERM (exit 0). Then:

* every key result's stored value is the source's final value;
* its measurements are each a value the source really served, strictly increasing (the source
  only grows), so one measurement per change and no stale value recorded over a newer one;
* the webhook receiver's newest value per key result is the final one, and no two distinct
  deliveries carried the same value (re-sends of one delivery are refused by Idempotency-Key
  and counted, which is the at-least-once half of the bargain);
* Slack holds exactly one message per key result, posted once, showing the final value;
* Jira holds exactly one okrsync comment per key result, created once, showing the final value.

The figures are printed (run with ``-s`` to see them). ``OKRSYNC_CRASH_KILLS`` and
``OKRSYNC_CRASH_SEED`` change the number of kills and replay a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlmodel import col, func, select

from connectors.http_json.fake import DEFAULT_TOKEN, AnalyticsData, analytics_app
from connectors.jira.adf import marker, text_of
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, JiraData, jira_app
from connectors.slack.fake import BOT_TOKEN, SlackState, default_state, slack_app
from connectors.webhook.receiver import ReceiverState, receiver_app
from okrsync.domain.numbers import display_number
from okrsync.sandbox import Sandbox
from okrsync.store.db import make_engine, session_scope
from okrsync.store.tables import DeliveryRow, KeyResultRow, MeasurementRow
from tests.reliability.harness import Launcher, Watch, log_events, pid_alive, wait_for_event

KEY_RESULTS = [f"kr{i}" for i in range(1, 7)]
DAYS = {kr: date(2001, 1, i) for i, kr in enumerate(KEY_RESULTS, start=1)}  # one per key result
ISSUES = {kr: f"OKR-{30 + i}" for i, kr in enumerate(KEY_RESULTS, start=1)}
CHANNEL = "C0OKRS0001"
TARGET = 100_000
KILLS = int(os.environ.get("OKRSYNC_CRASH_KILLS", "105"))
BUDGET = 300.0  # seconds for one whole run of the harness, fakes to final checks
SETTLE_TIMEOUT = 90.0
SINKS = ("hook", "chat", "tracker")
LATENCY = {"crm": 0.1, "hook": 0.3, "chat": 0.2, "tracker": 0.1}  # seconds per request


@dataclass
class Source:
    """What the harness made the source say, and what the source actually served."""

    data: AnalyticsData
    history: dict[str, list[Decimal]] = field(
        default_factory=lambda: {kr: [Decimal(0)] for kr in KEY_RESULTS}
    )
    served: dict[str, set[Decimal]] = field(default_factory=lambda: defaultdict(set))
    answers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def change(self, rng: random.Random) -> None:
        kr = rng.choice(KEY_RESULTS)
        amount = rng.randint(1, 500)
        with self.lock:
            self.data.add_deal(amount, status="won", closed_on=DAYS[kr])
            self.history[kr].append(self.history[kr][-1] + amount)

    def capture(self, path: str, query: str, body: bytes) -> None:
        if path != "/v1/deals/summary":
            return
        day = parse_qs(query).get("closed_after", [""])[0]
        kr = next((k for k, d in DAYS.items() if d.isoformat() == day), None)
        if kr is None:
            return
        total = json.loads(body, parse_float=Decimal, parse_int=Decimal)["total"]
        with self.lock:
            self.answers += 1
            self.served[kr].add(total)

    def final(self, kr: str) -> Decimal:
        with self.lock:
            return self.history[kr][-1]

    @property
    def changes(self) -> int:
        with self.lock:
            return sum(len(values) - 1 for values in self.history.values())


@dataclass
class World:
    source: Source
    receiver: ReceiverState
    slack: SlackState
    jira: JiraData
    watches: dict[str, Watch]
    sandbox: Sandbox


@pytest.fixture
def world() -> Iterator[World]:
    analytics = analytics_app()
    source = Source(analytics.state.data)
    receiver = receiver_app()
    slack = default_state()
    slack.limits.clear()  # this test is about crashes, not about Slack's rate limits
    jira = jira_app()
    apps = {"crm": analytics, "hook": receiver, "chat": slack_app(slack), "tracker": jira}
    watches: dict[str, Watch] = {}
    for name, app in apps.items():
        capture = source.capture if name == "crm" else None
        watches[name] = Watch(app, delay=LATENCY[name], capture=capture)
    with Sandbox(watches) as sandbox:
        yield World(source, receiver.state.receiver, slack, jira.state.jira, watches, sandbox)


def config_text(urls: dict[str, str]) -> str:
    """The config, as JSON (which is YAML): six key results, each mirrored three ways."""
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
            "mirrors": [
                {"connection": "hook"},
                {"connection": "chat", "channel": CHANNEL},
                {"connection": "tracker", "issue": ISSUES[kr]},
            ],
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
            "hook": {"type": "webhook", "url": f"{urls['hook']}/okr"},
            "chat": {"type": "slack", "token": BOT_TOKEN, "base_url": f"{urls['chat']}/api/"},
            "tracker": {
                "type": "jira",
                "url": urls["tracker"],
                "email": DEFAULT_EMAIL,
                "api_token": DEFAULT_API_TOKEN,
            },
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
            {"id": "o", "title": "Survive crashes", "cycle": "now", "key_results": key_results}
        ],
    }
    return json.dumps(config, indent=2)


@dataclass
class StoreView:
    values: dict[str, Decimal | None]
    measurements: dict[str, list[Decimal]]
    deliveries: Counter[str]


def read_store(url: str) -> StoreView:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            values = {row.id: row.value for row in session.exec(select(KeyResultRow))}
            measurements: dict[str, list[Decimal]] = defaultdict(list)
            for m in session.exec(select(MeasurementRow).order_by(col(MeasurementRow.id))):
                assert m.value is not None, f"a measurement without a value: {m}"
                measurements[m.key_result_id].append(m.value)
            deliveries: Counter[str] = Counter()
            for status, count in session.exec(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ):
                deliveries[status] = count
    finally:
        engine.dispose()
    return StoreView(values, dict(measurements), deliveries)


def slack_messages(world: World, kr: str) -> list[Any]:
    return [
        m
        for m in world.slack.channel_messages(CHANNEL)
        if m.bot_id and ((m.metadata or {}).get("event_payload") or {}).get("id") == kr
    ]


def jira_comments(world: World, kr: str) -> list[Any]:
    with world.jira.lock:
        every = list(world.jira.comments.values())
    return [c for c in every if c.issue == ISSUES[kr] and marker(kr) in text_of(c.body)]


def mirrors_lag(world: World) -> list[str]:
    """Which mirrors do not (yet) show the source's final value."""
    behind: list[str] = []
    latest = world.receiver.latest_by_key_result
    for kr in KEY_RESULTS:
        final = world.source.final(kr)
        body = latest.get(kr)
        if body is None or Decimal(body["value"]) != final:
            behind.append(f"webhook {kr}")
        value, target = (display_number(v, None, None) for v in (final, Decimal(TARGET)))
        if not any(f"{value} / {target}" in m.text for m in slack_messages(world, kr)):
            behind.append(f"slack {kr}")
        shown = f"{value} of {target}"
        if not any(shown in text_of(c.body) for c in jira_comments(world, kr)):
            behind.append(f"jira {kr}")
    return behind


def where(world: World, log: Path) -> str:
    """Roughly which stage a daemon is in right now, from the fakes and its own log."""
    watches = world.watches
    if any(watches[s].in_flight for s in SINKS):
        return "delivery (sink answering)"
    if watches["crm"].in_flight:
        return "fetch (source answering)"
    events = log_events(log)
    names = [e.get("event") for e in events]
    if "daemon_started" not in names:
        return "startup"
    now = time.monotonic()
    if now - max(watches[s].last_ended for s in SINKS) < 0.05:
        return "delivery (marking done)"
    if names[-1] == "run_started" and watches["crm"].last_ended > max(
        watches[s].last_began for s in SINKS
    ):
        return "record (after the fetch, before delivery)"
    return "between requests (scheduling, claiming, sleeping)"


@pytest.mark.timeout(600)  # 105 daemon starts and kills: ~100 s alone, more on a loaded machine
def test_sigkill_at_random_points_loses_and_repeats_nothing(
    world: World, tmp_path: Path, database_url: str
) -> None:
    began = time.monotonic()
    seed = int(os.environ.get("OKRSYNC_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    config = tmp_path / "okrsync.yaml"
    config.write_text(config_text(world.sandbox.urls))
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_LOG_FORMAT": "json",
        # a killed daemon's claimed deliveries are taken over when their lease expires
        "OKRSYNC_LEASE_SECONDS": "2",
    }
    launcher = Launcher(["run", "--host", "127.0.0.1", "--port", "0"], env)
    stop_changes = threading.Event()

    def change_values() -> None:
        changer_rng = random.Random(seed + 1)
        while not stop_changes.wait(changer_rng.uniform(0.05, 0.8)):
            world.source.change(changer_rng)

    changer = threading.Thread(target=change_values, name="value-changer", daemon=True)
    phases: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    live: int | None = None
    restarts = 0
    try:
        changer.start()
        for n in range(KILLS):
            log = logs / f"daemon-{n:03d}.log"
            live = pid = launcher.start(log)
            restarts += 1
            if n == 0:  # the first one creates the store: let it get that far
                wait_for_event(log, "daemon_started", pid, 30, alive=partial(pid_alive, pid))
            mode = rng.choices(("anytime", "after_fetch", "mid_delivery"), (5, 2, 3))[0]
            modes[mode] += 1
            if mode == "anytime":
                time.sleep(rng.uniform(0.05, 1.5))
            elif mode == "after_fetch":
                crm = world.watches["crm"]
                crm.ended.clear()
                if crm.ended.wait(3.0):  # a fetch is answered; wait for its last query
                    idle_by = time.monotonic() + 1.0
                    while crm.in_flight and time.monotonic() < idle_by:
                        time.sleep(0.002)
                    time.sleep(rng.uniform(0.0, 0.015))
            else:
                for sink in SINKS:
                    world.watches[sink].began.clear()
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline and not any(
                    world.watches[s].began.is_set() for s in SINKS
                ):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.25))
            phases[where(world, log)] += 1
            os.kill(live, signal.SIGKILL)
            code = launcher.reap(live)
            live = None
            assert code == -signal.SIGKILL, (
                f"daemon {n} ended by itself (exit {code}) before it was killed:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        stop_changes.set()
        changer.join()

        log = logs / "daemon-final.log"
        live = launcher.start(log)
        restarts += 1
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            store = read_store(database_url)
            behind = [kr for kr in KEY_RESULTS if store.values.get(kr) != world.source.final(kr)]
            lagging = mirrors_lag(world)
            if not behind and not store.deliveries["pending"] and not lagging:
                break
            if time.monotonic() > deadline or not pid_alive(live):
                pytest.fail(
                    f"not settled: store behind on {behind}, {store.deliveries['pending']} "
                    f"pending deliveries, mirrors behind: {lagging}\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.25)
        os.kill(live, signal.SIGTERM)
        code = launcher.reap(live)
        live = None
        assert code == 0, log.read_text(errors="replace")[-3000:]
    finally:
        stop_changes.set()
        if live is not None:
            os.kill(live, signal.SIGKILL)
            launcher.reap(live)
        launcher.close()

    store = read_store(database_url)
    received = world.receiver.received
    delivered_values: dict[str, list[Decimal]] = defaultdict(list)
    for delivery in received:
        body = delivery.body
        delivered_values[body["key_result"]["id"]].append(Decimal(body["value"]))
    slack_updates = sum(m.updates for kr in KEY_RESULTS for m in slack_messages(world, kr))
    figures = {
        "seed": seed,
        "kills": sum(phases.values()),
        "restarts": restarts,
        "kill modes": dict(modes),
        "kills by stage": dict(phases),
        "value changes at the source": world.source.changes,
        "source answers (values served)": world.source.answers,
        "distinct values served": sum(len(v) for v in world.source.served.values()),
        "measurements": sum(len(v) for v in store.measurements.values()),
        "deliveries by status": dict(store.deliveries),
        "webhook deliveries received": len(received),
        "webhook re-sends refused (duplicates)": world.receiver.duplicates,
        "slack messages posted": sum(world.slack.posts_for("key_result", kr) for kr in KEY_RESULTS),
        "slack message edits": slack_updates,
        "jira comments created": sum(world.jira.comments_created[ISSUES[kr]] for kr in KEY_RESULTS),
        "jira comment edits": sum(world.jira.comments_updated[ISSUES[kr]] for kr in KEY_RESULTS),
        "seconds": round(time.monotonic() - began, 1),
    }
    print("\ncrash-safety figures (" + database_url.split(":")[0] + "):")
    for name, value in figures.items():
        print(f"  {name}: {value}")

    assert figures["kills"] >= min(KILLS, 100)  # OKRSYNC_CRASH_KILLS may lower it for a quick look
    for kr in KEY_RESULTS:
        final = world.source.final(kr)
        assert store.values[kr] == final, kr
        recorded = store.measurements[kr]
        assert recorded and recorded[-1] == final, (kr, recorded[-5:], final)
        repeats = [(a, b) for a, b in pairwise(recorded) if a == b]
        assert not repeats, f"{kr}: the same value recorded twice in a row: {repeats}"
        assert all(a < b for a, b in pairwise(recorded)), (
            f"{kr}: measurements out of order (a stale value recorded after a newer one): "
            f"{recorded}"
        )
        invented = set(recorded) - world.source.served[kr]
        assert not invented, f"{kr}: recorded values the source never served: {invented}"

        latest = world.receiver.latest_by_key_result[kr]
        assert Decimal(latest["value"]) == final, kr
        values = delivered_values[kr]
        assert len(values) == len(set(values)), (
            f"{kr}: the webhook received distinct deliveries for the same value: {values}"
        )

        posts = slack_messages(world, kr)
        assert len(posts) == 1, f"{kr}: {len(posts)} Slack messages"
        assert world.slack.posts_for("key_result", kr) == 1, kr
        value, target = (display_number(v, None, None) for v in (final, Decimal(TARGET)))
        assert f"{value} / {target}" in posts[0].text, (kr, posts[0].text)

        comments = jira_comments(world, kr)
        assert len(comments) == 1, f"{kr}: {len(comments)} okrsync comments on {ISSUES[kr]}"
        assert world.jira.comments_created[ISSUES[kr]] == 1, kr
        assert f"{value} of {target}" in text_of(comments[0].body), kr
    assert not store.deliveries["pending"]
    assert not store.deliveries["failed"], dict(store.deliveries)
    assert figures["seconds"] < BUDGET, f"the harness took {figures['seconds']} s"
