"""Query-aligned scheduling: metrics one request answers share their jitter and their ticks.

Pure: the daemon's due computation is replayed with explicit times (each metric's last run, the
offsets of :func:`schedule_offsets`), and requests are counted as distinct alignment keys per
moment at which something fell due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from okrsync.config import load_config_text
from okrsync.domain.planner import request_keys, schedule_offsets
from okrsync.domain.schedule import Schedule, jitter, plan_next, shared_jitter
from okrsync.plugins import load_registry

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)

# metric -> (alignment key, schedule): three requests, several schedules on each
MIX: dict[str, tuple[str, str]] = {
    "a": ("stats", "every 1m"),
    "b": ("stats", "every 1m"),
    "c": ("stats", "every 15m"),
    "d": ("stats", "every 1h"),
    "e": ("stats", "*/5 * * * *"),
    "f": ("deals", "every 1m"),
    "g": ("deals", "every 1h"),
    "h": ("deals", "0 * * * *"),
    "i": ("tickets", "every 15m"),
    "j": ("tickets", "every 15m"),
    "k": ("tickets", "*/30 * * * *"),
}


def schedules() -> dict[str, Schedule]:
    return {name: Schedule.parse(text) for name, (_key, text) in MIX.items()}


def keys() -> dict[str, str]:
    return {name: key for name, (key, _text) in MIX.items()}


def replay(
    offsets: dict[str, timedelta], until: datetime, start: datetime = T0
) -> list[tuple[datetime, frozenset[str]]]:
    """The daemon's loop without I/O: wake at the earliest due time, run everything due then
    (its last run becomes that moment), repeat. Returns each pass: when, and which metrics."""
    plans = schedules()
    last: dict[str, datetime | None] = dict.fromkeys(plans, start - timedelta(microseconds=1))
    passes: list[tuple[datetime, frozenset[str]]] = []
    now = start
    while now < until:
        due = {n for n in plans if plan_next(plans[n], last[n], now, offset=offsets[n]).at <= now}
        if due:
            passes.append((now, frozenset(due)))
            for name in due:
                last[name] = now
        now = min(plan_next(plans[n], last[n], now, offset=offsets[n]).at for n in plans)
    return passes


def requests(passes: list[tuple[datetime, frozenset[str]]]) -> int:
    """Distinct requests over the passes: a pass asks each alignment key of its metrics once."""
    of = keys()
    return sum(len({of[name] for name in metrics}) for _at, metrics in passes)


def lower_bound(until: datetime, start: datetime = T0) -> int:
    """Distinct (request, minute) pairs in which some metric of the request has a tick."""
    plans, of = schedules(), keys()
    wanted: set[tuple[str, datetime]] = set()
    for name, schedule in plans.items():
        tick = start - timedelta(microseconds=1)
        while (tick := plan_next(schedule, tick, tick, offset=timedelta(0)).at) < until:
            wanted.add((of[name], tick))  # the epoch grid (intervals) and cron ticks, unshifted
    return len(wanted)


def test_metrics_sharing_a_request_share_one_offset_whatever_their_schedules() -> None:
    offsets = schedule_offsets(schedules(), keys())
    for key in {"stats", "deals", "tickets"}:
        assert len({offsets[n] for n, (k, _t) in MIX.items() if k == key}) == 1
    # the tightest schedule on the key bounds it: every 1m and cron allow 6 s at most
    assert offsets["d"] == shared_jitter("stats", [Schedule.parse("every 1m")]) <= 6 * S
    assert offsets["i"] == jitter("tickets", Schedule.parse("*/30 * * * *")) <= 6 * S


def test_shared_jitter_is_the_keys_jitter_under_the_tightest_schedule() -> None:
    hourly, minutely = Schedule.parse("every 1h"), Schedule.parse("every 1m")
    assert shared_jitter("q", [hourly]) == jitter("q", hourly)
    assert shared_jitter("q", [hourly, minutely]) == jitter("q", minutely)
    with pytest.raises(ValueError, match="at least one"):
        shared_jitter("q", [])


def test_different_requests_are_spread() -> None:
    plans = {f"m{i}": Schedule.parse("every 15m") for i in range(60)}
    offsets = schedule_offsets(plans, {name: f"request {name}" for name in plans})
    assert len(set(offsets.values())) > 50
    assert max(offsets.values()) - min(offsets.values()) > 20 * S


def test_a_run_asks_each_request_once_at_the_bound() -> None:
    """Two hours of mixed schedules: requests == the lower bound, every pass on one instant."""
    until = T0 + 2 * H
    passes = replay(schedule_offsets(schedules(), keys()), until)
    assert requests(passes) == lower_bound(until)
    of = keys()
    for _at, metrics in passes:  # no request is split over two passes of one tick
        assert all(
            name in metrics
            for name in MIX
            if of[name] in {of[m] for m in metrics} and MIX[name][1] == "every 1m"
        )


def test_per_metric_jitter_asked_each_request_again() -> None:
    """What it replaces: each metric's own jitter splits a request's metrics over passes."""
    until = T0 + 2 * H
    own = {name: jitter(name, plan) for name, plan in schedules().items()}
    assert requests(replay(own, until)) > 1.5 * lower_bound(until)


def test_the_rhythm_survives_a_restart() -> None:
    """A daemon stopped for 17 minutes and started again (its store keeps the last runs) asks
    once for the missed ticks, then is back on the same instants as one that never stopped."""
    offsets = schedule_offsets(schedules(), keys())
    steady = replay(offsets, T0 + 2 * H)
    plans = schedules()
    restart = T0 + 40 * M + 17 * S
    last = {
        n: max((at for at, ms in steady if n in ms and at < T0 + 23 * M), default=None)
        for n in plans
    }
    due = {
        n for n in plans if plan_next(plans[n], last[n], restart, offset=offsets[n]).at <= restart
    }
    assert due == set(plans) - {"d", "g", "h"}  # the hourly ones are not due: they ran at 9:00
    after = {n: plan_next(plans[n], restart, restart, offset=offsets[n]).at for n in plans}
    on_grid = {at for at, _ms in steady}
    assert all(moment in on_grid for moment in after.values())


def test_a_metric_run_alone_keeps_its_siblings_on_their_grid() -> None:
    """``a`` is run off its grid (a webhook asked for it): its next tick is back on the grid,
    and its sibling ``d``, not run, still falls due with the hourly tick of the request."""
    offsets = schedule_offsets(schedules(), keys())
    every_minute, hourly = Schedule.parse("every 1m"), Schedule.parse("every 1h")
    off = offsets["a"]
    requested = T0 + 7 * M + 31.4 * S
    assert plan_next(every_minute, requested, requested, offset=off).at == T0 + 8 * M + off
    assert plan_next(hourly, T0 + off, requested, offset=off).at == T0 + H + off
    # and at the hour both fall due on the same instant: one request for both
    assert plan_next(every_minute, T0 + 59 * M + off, T0 + 59 * M + off, offset=off).at == (
        plan_next(hourly, T0 + off, T0 + 59 * M + off, offset=off).at
    )


CONFIG = """\
version: 1
connections:
  api: {type: http_json, url: "http://127.0.0.1:9"}
  other: {type: http_json, url: "http://127.0.0.1:9"}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  total: {connection: api, request_path: /stats, json_path: $.total}
  count: {connection: api, request_path: /stats, json_path: $.count, schedule: every 1m}
  other_total: {connection: other, request_path: /stats, json_path: $.total}
  won: {connection: api, request_path: /stats, params: {status: won}, json_path: $.total}
objectives: []
"""


def test_request_keys_follow_the_source_hook_and_the_connection() -> None:
    config = load_config_text(CONFIG, load_registry().connectors)

    def path_only(connection: str, spec: object) -> str:
        return str(getattr(spec, "request_path", ""))

    by_path = request_keys(config, path_only)
    assert by_path["total"] == by_path["count"] == by_path["won"] != by_path["other_total"]
    exact = request_keys(config)  # the default: only identical specs align
    assert len(set(exact.values())) == 4
