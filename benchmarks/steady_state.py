"""``python -m benchmarks.steady_state``: the daemon in steady state, requests per tick vs bound.

The real ``okrsync run`` process runs the benchmark workload (``benchmarks.workload``) with
mixed schedules (by default ``every 1m``, ``every 15m``, ``every 1h`` and the cron
``*/5 * * * *``, one in four metrics each, so metrics sharing a query have different schedules)
against the sandbox fakes, served by another process (``--serve-fakes``) with the vendors'
latency. That process counts every request each fake receives, with its time.

Time is cut into windows of the shortest schedule's period (a minute by default), on the epoch
grid the schedules tick on. The first window holds the cold start (every metric runs at once,
tokens, catalogs) and is reported apart; every later window is compared, per vendor, with the
lower bound: the requests the metrics whose schedules tick in that window need, once each
(one per distinct JQL or HubSpot question, one per SOQL ``GROUP BY`` text, one GA4
``batchRunReports`` per five reports). ``--restart-after K`` stops the daemon (SIGTERM) in the
middle of window K and starts it again on the same store, to show that a restart keeps the
rhythm. Figures go to ``benchmarks/steady_state.json`` and a Markdown section generated from the
same numbers (``benchmarks/STEADY_STATE.md``). ``--okrsync-path DIR`` runs another tree's
okrsync (an older commit exported with ``git archive``) against the same workload and fakes.
``--store URL`` runs on that store (PostgreSQL: an empty database) and ``--replicas N`` starts N
``okrsync run`` processes on it (``OKRSYNC_INSTANCE_ID`` r1…rN): the bound is the same, since
the metric claims let one replica only ask each due request per tick. The load average at the
start and the end is recorded beside the figures (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.workload import Workload, generate

HERE = Path(__file__).parent
DEFAULT_SCHEDULES = ("every 1m", "every 15m", "every 1h", "*/5 * * * *")
SMOKE_SCHEDULES = ("every 5s", "every 10s", "every 20s", "every 1m")
VENDORS = ("jira", "salesforce", "hubspot", "ga4")  # sources (Slack only takes pushes)
GA4_REPORTS_PER_BATCH = 5


# --- the fakes' process ---------------------------------------------------------------------


class Counted:
    """ASGI wrapper: notes every vendor request (not the sandbox's admin routes) with its time."""

    def __init__(self, app: Any, vendor: str, sink: list[tuple[str, float, str]]) -> None:
        self.app = app
        self.vendor = vendor
        self.sink = sink
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox/"):
            self.sink.append((self.vendor, time.time(), f"{scope['method']} {scope['path']}"))
        await self.app(scope, receive, send)


def serve_fakes(latency: float, ready: Path, log: Path) -> None:
    """Serve every fake until SIGTERM; write their environment to ``ready`` and every request
    they receive, as JSON lines, to ``log`` (flushed twice a second, so nothing is capped)."""
    from benchmarks.fakes import VENDORS as ALL
    from benchmarks.fakes import VendorLatency, slack_state
    from connectors.slack.fake import slack_app
    from okrsync.plugins import load_registry
    from okrsync.sandbox import Sandbox

    registry = load_registry()
    seen: list[tuple[str, float, str]] = []
    apps: dict[str, Any] = {}
    environ: dict[str, str] = {}
    state = slack_state()
    for name in ALL:
        connector = registry.connectors[name]
        assert connector.fake is not None
        app = slack_app(state) if name == "slack" else connector.fake()
        apps[name] = Counted(VendorLatency(app, latency) if latency > 0 else app, name, seen)
        for key, value in dict(connector.sandbox()).items():
            environ[f"B_{name.upper()}_{key.upper()}"] = value
    sandbox = Sandbox(apps).start()
    for name, url in sandbox.urls.items():
        environ[f"B_{name.upper()}_URL"] = url
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready.write_text(json.dumps(environ))
    written = 0
    with log.open("w") as out:
        while True:
            stopping = stop.wait(0.5)
            batch = seen[written:]  # appended by the servers' threads; list.append is atomic
            written += len(batch)
            out.writelines(json.dumps(item) + "\n" for item in batch)
            out.flush()
            if stopping:
                break
    sandbox.stop()


# --- the workload and its bound -------------------------------------------------------------


def mixed_yaml(workload: Workload, schedules: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The workload's config with metric ``i`` on ``schedules[i % len]``."""
    chosen: dict[str, str] = {}
    lines = []
    for line in workload.yaml.splitlines():
        name, _, rest = line.strip().partition(": ")
        if line.startswith("  m") and name in workload.specs and rest.startswith("{"):
            schedule = schedules[int(name[1:]) % len(schedules)]
            chosen[name] = schedule
            line = f"  {name}: {json.dumps({**json.loads(rest), 'schedule': schedule})}"
        lines.append(line)
    return "\n".join(lines) + "\n", chosen


def request_of(spec: dict[str, Any]) -> tuple[str, str]:
    """(vendor, what one request answers): SOQL answers all its group values, GA4 a report all
    its metrics; Jira and HubSpot answer one question per request."""
    vendor = spec["connection"]
    if vendor == "salesforce":
        return vendor, spec["soql"]
    if vendor == "ga4":
        return vendor, json.dumps(spec.get("filters", []), sort_keys=True)
    return vendor, json.dumps({k: v for k, v in spec.items() if k != "connection"}, sort_keys=True)


def ticks_in(schedule_text: str, start: datetime, end: datetime) -> bool:
    """Whether the schedule has a tick (on its epoch grid, unshifted) in ``[start, end)``."""
    from okrsync.domain.schedule import Schedule, plan_next

    before = start - timedelta(microseconds=1)
    schedule = Schedule.parse(schedule_text)
    return plan_next(schedule, before, before, offset=timedelta(0)).at < end


def lower_bound(
    workload: Workload, chosen: dict[str, str], start: datetime, end: datetime
) -> dict[str, int]:
    """Per vendor, the requests the ticks in ``[start, end)`` need: each due request once."""
    due: dict[str, set[str]] = {vendor: set() for vendor in VENDORS}
    ticking = {text: ticks_in(text, start, end) for text in set(chosen.values())}
    for name, spec in workload.specs.items():
        if ticking[chosen[name]]:
            vendor, request = request_of(spec)
            due[vendor].add(request)
    bound = {vendor: len(requests) for vendor, requests in due.items()}
    bound["ga4"] = math.ceil(bound["ga4"] / GA4_REPORTS_PER_BATCH)
    return bound


# --- the run --------------------------------------------------------------------------------


def first_run_finished(lines: list[str]) -> datetime | None:
    """When the daemon's first run ended, from its JSON log."""
    for line in lines:
        if '"run_finished"' in line:
            stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
            return datetime.fromisoformat(stamp)
    return None


def cold_start_finished(logs: list[Path]) -> datetime | None:
    """When the cold start ended: the first run to finish (any replica's) and every run begun
    before it have finished (replicas share the first run of everything through the metric
    claims; one replica's is the daemon's first run)."""
    started: dict[str, datetime] = {}
    finished: dict[str, datetime] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            if '"run_started"' not in line and '"run_finished"' not in line:
                continue
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            into = started if entry.get("event") == "run_started" else finished
            into[str(entry.get("run_id"))] = at
    if not finished:
        return None
    first = min(finished.values())
    cold = [run for run, at in started.items() if at <= first]
    if any(run not in finished for run in cold):
        return None
    return max([first, *(finished[run] for run in cold)])


def runs_finished(log: Path) -> int:
    return sum('"run_finished"' in line for line in log.read_text().splitlines())


def last_error_line(text: str) -> str:
    """The exception a crashed process ended on (the last ``SomethingError: …`` line)."""
    lines = [line.strip() for line in text.splitlines() if "Error" in line and ":" in line]
    return lines[-1][:300] if lines else ""


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Window:
    start: datetime
    requests: dict[str, int]
    bound: dict[str, int]


def start_daemon(
    env: dict[str, str], log: Path, tree: Path, instance: str
) -> subprocess.Popen[str]:
    """``okrsync run`` from ``tree`` (``python -m`` imports from its working directory first)."""
    command = [sys.executable, "-m", "okrsync", "run", "--port", str(free_port())]
    return subprocess.Popen(
        command,
        cwd=tree,
        env={**env, "OKRSYNC_INSTANCE_ID": instance},
        stdout=subprocess.DEVNULL,
        stderr=log.open("a"),
        text=True,
    )


def stop_daemon(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    schedules = tuple(s.strip() for s in args.schedules.split(","))
    from okrsync.domain.schedule import Schedule

    parsed = [Schedule.parse(text) for text in schedules]
    period = min(
        (p.interval for p in parsed if p.interval is not None), default=timedelta(minutes=1)
    )
    if any(p.cron is not None for p in parsed):
        period = min(period, timedelta(minutes=1))
    workload = generate(args.size, date.today())
    yaml, chosen = mixed_yaml(workload, schedules)
    with tempfile.TemporaryDirectory(prefix="okrsync-steady-") as tmp_name:
        tmp = Path(tmp_name)
        ready, requests_log = tmp / "env.json", tmp / "requests.jsonl"
        names = [f"r{n}" for n in range(1, args.replicas + 1)]
        logs = {name: tmp / f"{name}.log" for name in names}
        load_start = load_average()
        fakes = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.steady_state",
                "--serve-fakes",
                "--latency",
                str(args.latency),
                "--ready",
                str(ready),
                "--requests-log",
                str(requests_log),
            ],
            cwd=HERE.parent,
        )
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if time.monotonic() > deadline or fakes.poll() is not None:
                    raise RuntimeError("the fakes did not start")
                time.sleep(0.1)
            time.sleep(0.2)  # the file is written in one call; let it be complete
            environ = json.loads(ready.read_text())
            config = tmp / "okrsync.yaml"
            config.write_text(yaml)
            store = args.store or f"sqlite:///{tmp}/store.db"
            env = {
                **os.environ,
                **environ,
                "OKRSYNC_CONFIG": str(config),
                "OKRSYNC_DATABASE_URL": store,
                "OKRSYNC_LOG_FORMAT": "json",
                "OKRSYNC_LOG_LEVEL": "info",
            }
            tree = Path(args.okrsync_path).resolve() if args.okrsync_path else HERE.parent
            env["PYTHONPATH"] = str(tree)
            began = datetime.now(UTC)
            daemons = {name: start_daemon(env, logs[name], tree, name) for name in names}
            restarts = 0
            crashes: list[dict[str, Any]] = []
            try:
                # windows: those holding the start (cold), then ``ticks`` whole ones
                first = datetime.fromtimestamp(
                    (began.timestamp() // period.total_seconds()) * period.total_seconds(), UTC
                )
                end = first + (args.ticks + 1) * period  # moved once the cold run ended
                restart_at: datetime | None = None  # set once the cold run ended
                cold_seen = False
                while datetime.now(UTC) < end + timedelta(seconds=2):
                    if not cold_seen:
                        ended = cold_start_finished(list(logs.values()))
                        if ended is not None:
                            cold_seen = True
                            skip = int((ended - first) // period) + 1
                            end = first + (skip + args.ticks) * period
                            if args.restart_after:
                                restart_at = first + (skip + args.restart_after - 1) * period
                                restart_at += period / 2
                        elif (datetime.now(UTC) - began).total_seconds() < args.cold_timeout:
                            end = max(end, datetime.now(UTC) + period)  # wait for the cold start
                    for name, daemon in list(daemons.items()):
                        if daemon.poll() is None:
                            continue
                        tail = logs[name].read_text()[-2000:]
                        # a daemon that dies is started again, as its supervisor would (the
                        # other replicas go on); the crash is counted and shown with the figures
                        crashes.append(
                            {
                                "replica": name,
                                "at": datetime.now(UTC).isoformat(),
                                "exit": daemon.returncode,
                                "error": last_error_line(tail),
                            }
                        )
                        daemons[name] = start_daemon(env, logs[name], tree, name)
                    if restart_at is not None and datetime.now(UTC) >= restart_at:
                        # the first replica restarts; the others (if any) keep the rhythm
                        stop_daemon(daemons[names[0]])
                        daemons[names[0]] = start_daemon(env, logs[names[0]], tree, names[0])
                        restarts += 1
                        restart_at = None
                    time.sleep(0.2)
            finally:
                exits = {name: stop_daemon(daemon) for name, daemon in daemons.items()}
        finally:
            fakes.send_signal(signal.SIGTERM)
            fakes.wait(timeout=60)
        load_end = load_average()
        seen = [json.loads(line) for line in requests_log.read_text().splitlines() if line]
        logged = [line for log in logs.values() for line in log.read_text().splitlines()]
        errors = sum('"level": "error"' in line for line in logged)
        runs = {name: runs_finished(log) for name, log in logs.items()}
        cold_end = cold_start_finished(list(logs.values()))
    if cold_end is None:
        raise RuntimeError(
            f"the cold start did not finish within {args.cold_timeout:.0f} s; runs finished "
            f"per replica: {runs}; last lines: {logged[-5:]}"
        )
    # the cold start (okrsync's start-up and its first run of everything) ends before the
    # first steady window, whichever window that falls in
    skip = int((cold_end - first) // period) + 1
    windows: list[Window] = []
    for index in [0, *range(skip, skip + args.ticks)]:
        start = first + index * period
        if index == 0:  # the cold start: everything before the first steady window
            stop = first + skip * period
            counted = Counter(v for v, at, _p in seen if at < stop.timestamp() and v in VENDORS)
            windows.append(Window(start, {v: counted.get(v, 0) for v in VENDORS}, {}))
            continue
        stop = start + period
        counted = Counter(
            vendor
            for vendor, at, _path in seen
            if start.timestamp() <= at < stop.timestamp() and vendor in VENDORS
        )
        windows.append(
            Window(
                start,
                {v: counted.get(v, 0) for v in VENDORS},
                lower_bound(workload, chosen, start, stop),
            )
        )
    steady = windows[1:]
    totals = {v: sum(w.requests[v] for w in steady) for v in VENDORS}
    bounds = {v: sum(w.bound[v] for w in steady) for v in VENDORS}
    return {
        "command": "python -m benchmarks.steady_state " + " ".join(args.argv),
        "size": args.size,
        "schedules": list(schedules),
        "window_seconds": period.total_seconds(),
        "ticks": args.ticks,
        "latency": args.latency,
        "store": "sqlite" if args.store is None else args.store.split(":")[0].split("+")[0],
        "replicas": args.replicas,
        "okrsync_path": args.okrsync_path,
        "restarts": restarts,
        "daemon_exit": max(exits.values()),
        "daemon_exits": exits,
        "daemon_errors_logged": errors,
        "runs_per_replica": runs,
        "replica_crashes": crashes,
        "load_average": {"start": load_start, "end": load_end},
        "cold": {
            "start": windows[0].start.isoformat(),
            "requests": windows[0].requests,
        },
        "windows": [
            {"start": w.start.isoformat(), "requests": w.requests, "bound": w.bound} for w in steady
        ],
        "steady": {
            "requests": totals,
            "bound": bounds,
            "ratio": {v: (totals[v] / bounds[v] if bounds[v] else None) for v in VENDORS},
            "all_requests": sum(totals.values()),
            "all_bound": sum(bounds.values()),
        },
    }


# --- the report -----------------------------------------------------------------------------


TARGET_RATIO = 1.05  # issue 13: requests per tick at most the lower bound + 5%


def schedules_seen(result: dict[str, Any]) -> str:
    """Which of the run's schedules had a tick in its steady windows (a short run may see only
    the shortest one)."""
    period = timedelta(seconds=result["window_seconds"])
    counts = []
    for text in result["schedules"]:
        ticked = 0
        for window in result["windows"]:
            start = datetime.fromisoformat(window["start"])
            ticked += ticks_in(text, start, start + period)
        counts.append(f"`{text}` {ticked}")
    return (
        f"Windows (of {len(result['windows'])}) in which each schedule ticked: "
        + ", ".join(counts)
        + "."
    )


def verdict(result: dict[str, Any]) -> str:
    """Whether the steady windows kept to the target, said from the figures alone."""
    steady = result["steady"]
    total, bound = steady["all_requests"], steady["all_bound"]
    if not bound:
        return "No steady window had a request due, so there is no bound to compare with."
    ratio = total / bound
    over = [
        f"{v} ({steady['requests'][v]} vs {steady['bound'][v]})"
        for v in VENDORS
        if steady["requests"][v] > steady["bound"][v]
    ]
    under = [v for v in VENDORS if steady["requests"][v] < steady["bound"][v]]
    worst = [
        (sum(w["requests"].values()) / sum(w["bound"].values()), w["start"][11:19])
        for w in result["windows"]
        if sum(w["bound"].values())
    ]
    high, at = max(worst) if worst else (ratio, "")
    if ratio > TARGET_RATIO:
        met = "not met"
    elif high > TARGET_RATIO:
        met = "met over the whole run, not in every window"
    else:
        met = "met, in every window"
    text = (
        f"Target (requests per tick ≤ the lower bound + {TARGET_RATIO - 1:.0%}): {met}; "
        f"{ratio:.2f}x over the steady windows"
    )
    if worst:
        text += f" (the highest window {high:.2f}x, at {at})"
    text += ". "
    if over:
        text += "Above the bound: " + ", ".join(over) + "."
    else:
        text += "Every vendor stayed at or below its bound."
    if under:
        text += (
            " Below the bound: "
            + ", ".join(under)
            + " (requests are counted in the window they were sent in, so a tick that runs "
            "late lands in the next window, or after the last one counted)."
        )
    replicas = result.get("replicas", 1)
    if replicas > 1:
        runs = result.get("runs_per_replica", {})
        text += (
            f" {replicas} replicas shared the store; runs finished per replica: "
            + ", ".join(f"{name} {n}" for name, n in runs.items())
            + "."
        )
    crashes = result.get("replica_crashes", [])
    if crashes:
        text += (
            f" okrsync run exited {len(crashes)} time(s) and was started again (as a supervisor "
            "would): "
            + "; ".join(
                f"{c['replica']} at {c['at'][11:19]}, exit {c['exit']}, {c['error']}"
                for c in crashes
            )
            + "."
        )
    return text


def markdown(result: dict[str, Any]) -> str:
    """The section, written from ``result`` alone: every number in it comes from the run."""
    steady = result["steady"]
    replicas = result.get("replicas", 1)
    load = result.get("load_average")
    lines = [
        "## Steady state: requests per tick vs the lower bound",
        "",
        f"`{result['command']}`: {result['size']:,} key results, schedules "
        + ", ".join(f"`{s}`" for s in result["schedules"])
        + f" (one metric in {len(result['schedules'])} each), {result['latency'] * 1000:.0f} ms"
        f" vendor latency, {result['store']} store, "
        + (
            f"{replicas} `okrsync run` processes (replicas)"
            if replicas > 1
            else "the real `okrsync run` process"
        )
        + (f" from `{result['okrsync_path']}`" if result["okrsync_path"] else "")
        + f"; {result['ticks']} windows of {result['window_seconds']:.0f} s after the cold start"
        + (f", restarted {result['restarts']} time(s) mid-run" if result["restarts"] else "")
        + "."
        + (
            f" Load average (1, 5, 15 min) at the start {', '.join(map(str, load['start']))}"
            f", at the end {', '.join(map(str, load['end']))}."
            if load
            else " The load average was not recorded by this run."
        ),
        "",
        "| window (UTC) | " + " | ".join(VENDORS) + " | all | bound | ratio |",
        "| --- | " + " | ".join("---:" for _ in VENDORS) + " | ---: | ---: | ---: |",
    ]
    for window in result["windows"]:
        asked = sum(window["requests"].values())
        bound = sum(window["bound"].values())
        cells = [f"{window['requests'][v]} / {window['bound'][v]}" for v in VENDORS]
        ratio = f"{asked / bound:.2f}" if bound else "-"
        lines.append(
            f"| {window['start'][11:19]} | "
            + " | ".join(cells)
            + f" | {asked} | {bound} | {ratio} |"
        )
    total, bound = steady["all_requests"], steady["all_bound"]
    lines += [
        "",
        "Each cell is requests sent / lower bound. Over the steady windows: "
        + ", ".join(f"{v} {steady['requests'][v]} / {steady['bound'][v]}" for v in VENDORS)
        + f"; all vendors {total} / {bound}"
        + (f" ({total / bound:.2f}x the bound)" if bound else "")
        + ". The cold window (every metric at start, tokens, catalogs) sent "
        + ", ".join(f"{v} {n}" for v, n in result["cold"]["requests"].items())
        + f". The daemon{'s' if replicas > 1 else ''} logged {result['daemon_errors_logged']} "
        f"errors and exited {result.get('daemon_exits', result['daemon_exit'])}.",
        "",
        verdict(result) + " " + schedules_seen(result),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=3, help="windows after the cold one")
    parser.add_argument("--schedules", default=",".join(DEFAULT_SCHEDULES))
    parser.add_argument("--smoke", action="store_true", help="tiny, seconds-long schedules")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--store", help="a store URL (default: a fresh SQLite file)")
    parser.add_argument("--replicas", type=int, default=1, help="okrsync run processes")
    parser.add_argument(
        "--cold-timeout", type=float, default=900.0, help="seconds to wait for the cold start"
    )
    parser.add_argument("--restart-after", type=int, default=0, help="restart in window K")
    parser.add_argument("--okrsync-path", help="run okrsync from this tree")
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument("--name", default="steady_state", help="output file stem")
    parser.add_argument(
        "--rebuild", type=Path, help="write the Markdown section of an earlier run's JSON again"
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--requests-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.serve_fakes:
        serve_fakes(args.latency, args.ready, args.requests_log)
        return {}
    if args.rebuild:
        earlier: dict[str, Any] = json.loads(args.rebuild.read_text())
        text = markdown(earlier)
        args.rebuild.with_name(args.rebuild.stem.upper() + ".md").write_text(text)
        print(text)
        return earlier
    if args.smoke:
        args.size, args.schedules = min(args.size, 40), ",".join(SMOKE_SCHEDULES)
    if args.replicas > 1 and not (args.store or "").startswith("postgresql"):
        parser.error("--replicas > 1 needs a PostgreSQL --store (SQLite is single-node)")
    result = run(args)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.output / f"{args.name.upper()}.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
