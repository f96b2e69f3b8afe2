"""The work behind key results (issue 15): requests to read it, against a bound and a naive re-read.

``python -m benchmarks.work_bench`` builds ``--size`` key results (1,000) with ``--items`` linked
items (10,000) in all: one ``work`` entry per key result, taken in turn from Jira, GitHub and
Linear. Most entries link a handful of items; one in fifty links 150 or 250 (several pages). The
three sandbox fakes serve on loopback sockets in this process and count every request they
receive; the real :class:`~okrsync.engine.work_sync.WorkSync` reads them into a SQLite store, on
a clock of the benchmark's own (the schedules are crossed without waiting). Phases:

1. **first read**: every entry read in full;
2. **warm refresh**: 10 minutes later (the default ``every 10m``), nothing changed;
3. **1 % changed**: 10 minutes later again, one item in a hundred changed in the tracker;
4. **reconciliation**: past the hourly reconciliation, one full read of each entry where that
   is no more requests, else an incremental read plus the ids-only read that finds items which
   left their query;
5. **naive**: every entry read in full again (``since=None``), as a script that re-reads
   everything on each refresh would, through the same connectors and concurrency.

The lower bound per entry of ``n`` items (``c`` of them changed), from the largest page each
tracker answers (``PAGES``): a full read needs ``ceil(n / page)`` requests, at least 1; an
incremental read ``ceil(max(c, 1) / page)`` (one request to learn that nothing changed); a
reconciliation ``min(ceil(n / page), 1 + ceil(n / id_page))`` (a full read, or one incremental
read plus the ids-only pages). Anything else a tracker needs once (Jira's ``GET /myself`` for the
user's time zone) is counted as okrsync's overhead, not in the bound.

The fakes' rate limits are lifted and GitHub's search pace is the client's highest (600 a
minute, not GitHub's documented 30): the requests are the figure, the wall time only says how
long okrsync's side took. Writes ``work_bench.json`` and ``work_bench.md`` to ``--output``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from connectors.github.fake import DEFAULT_TOKEN as GITHUB_TOKEN
from connectors.github.fake import GitHubData, Item, github_app
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.fake import FIELDS_PAGE_LIMIT as JIRA_FIELDS_PAGE
from connectors.jira.fake import ID_PAGE_LIMIT as JIRA_ID_PAGE
from connectors.jira.fake.data import Issue, JiraData
from connectors.linear.fake import API_KEY as LINEAR_KEY
from connectors.linear.fake import MAX_FIRST as LINEAR_PAGE
from connectors.linear.fake import LinearData, linear_app
from okrsync.config import Config, load_config_text
from okrsync.config.work import WorkDef
from okrsync.engine.runtime import Connections
from okrsync.engine.work_sync import ENTRY_CONCURRENCY, WorkSync
from okrsync.logging import configure_logging
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox.server import SandboxServer
from okrsync.sdk.work import WorkTracker
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.definitions import sync_definitions

HERE = Path(__file__).resolve().parent
TRACKERS = ("jira", "github", "linear")
GITHUB_PAGE = 100  # per_page at most 100 on GitHub's search
GITHUB_DOCUMENTED_SEARCHES_PER_MINUTE = 30
# The largest page each tracker answers: (with the fields a work item needs, ids only).
PAGES: dict[str, tuple[int, int]] = {
    "jira": (JIRA_FIELDS_PAGE, JIRA_ID_PAGE),
    "github": (GITHUB_PAGE, GITHUB_PAGE),  # search has no ids-only form
    "linear": (LINEAR_PAGE, LINEAR_PAGE),
}
GITHUB_REPO = "bench/work"
OLD = timedelta(days=3)  # how long before the run the items were last updated
PHASES = ("first_read", "warm_refresh", "changed_1pct", "reconciliation", "naive_full_reread")


def entry_sizes(size: int, items: int) -> list[int]:
    """Items per key result: one in fifty an epic of 150 or 250, the rest share what is left
    (2 to 10 each, in turn, then one more each from the first until ``items`` is reached)."""
    big = {i: (250 if (i // 50) % 2 == 0 else 150) for i in range(size) if i % 50 == 0}
    big_total = sum(big.values())
    if big_total > items // 2:  # tiny sizes (the smoke test): no epics
        big, big_total = {}, 0
    small = [i for i in range(size) if i not in big]
    sizes = [0] * size
    for i, n in big.items():
        sizes[i] = n
    left = items - big_total
    pattern = (2, 4, 6, 8, 10)
    base = [pattern[k % len(pattern)] for k in range(len(small))]
    while sum(base) > left and any(base):  # fewer items than the pattern: shrink evenly
        base = [max(1, b - 1) for b in base]
        if all(b == 1 for b in base):
            break
    extra = left - sum(base)
    for k, i in enumerate(small):
        sizes[i] = base[k] + (extra // len(small)) + (1 if k < extra % len(small) else 0)
    return sizes


@dataclass
class Workload:
    size: int
    sizes: list[int]  # items per key result
    trackers: list[str]  # the tracker of each key result's entry
    keys: list[list[str]] = field(default_factory=list)  # item keys per key result

    def entries(self, tracker: str) -> list[int]:
        return [i for i in range(self.size) if self.trackers[i] == tracker]


def kr_id(i: int) -> str:
    return f"kr{i:05d}"


def label(i: int) -> str:
    return f"kr-{i:05d}"


def epic(i: int) -> str:
    return f"OKR-{900000 + i}"


def config_yaml(load: Workload, urls: dict[str, str], today: date) -> str:
    start, end = today - timedelta(days=45), today + timedelta(days=45)
    lines = [
        "version: 1",
        "connections:",
        f'  jira: {{type: jira, url: "{urls["jira"]}", email: "{DEFAULT_EMAIL}", '
        f'api_token: "{DEFAULT_API_TOKEN}", requests_per_second: null, issue_write_interval: 0}}',
        f'  github: {{type: github, base_url: "{urls["github"]}", token: "${{B_GITHUB_TOKEN}}", '
        "search_requests_per_minute: 600, search_burst: 100}",
        f'  linear: {{type: linear, base_url: "{urls["linear"]}", api_key: "${{B_LINEAR_KEY}}"}}',
        f'cycles:\n  - {{id: bench, start: "{start}", end: "{end}"}}',
        "metrics:",
        '  m: {connection: jira, jql: "project = OKR"}',
        "objectives:",
    ]
    per_objective = 5
    for i in range(load.size):
        if i % per_objective == 0:
            o = i // per_objective
            lines.append(f"  - {{id: o{o:04d}, title: Objective {o}, cycle: bench, key_results: [")
        tracker = load.trackers[i]
        if tracker == "jira":
            work: dict[str, Any] = {"connection": "jira", "jql": f"parent = {epic(i)}"}
        elif tracker == "github":
            search = f"repo:{GITHUB_REPO} is:issue label:{label(i)}"
            work = {"connection": "github", "search": search}
        else:
            work = {"connection": "linear", "filter": {"team": "ENG", "labels": [label(i)]}}
        kr: dict[str, Any] = {"id": kr_id(i), "title": f"Key result {i}", "metric": "m"}
        kr["kind"] = "increase"
        kr |= {"start": 0, "target": 100, "work": [work]}
        last = i % per_objective == per_objective - 1 or i == load.size - 1
        lines.append(f"      {json.dumps(kr)}" + ("]}" if last else ","))
    return "\n".join(lines) + "\n"


# --- the trackers' data ---------------------------------------------------------------------------


class Trackers:
    """The three fakes' records, with the benchmark's items in them."""

    def __init__(
        self,
        load: Workload,
        updated: datetime,
        *,
        jira: JiraData,
        github: GitHubData,
        linear: LinearData,
    ) -> None:
        self.jira, self.github, self.linear = jira, github, linear
        self.updated = updated
        self._github_items: list[Item] = []
        load.keys = [[] for _ in range(load.size)]
        for i in range(load.size):
            for n in range(load.sizes[i]):
                load.keys[i].append(self._add(load.trackers[i], i, n))
        with self.github.lock:
            self.github.repos[GITHUB_REPO] = 999_999
            self.github.items[GITHUB_REPO] = self._github_items
            self.github.milestones[GITHUB_REPO] = []
            self.github.repo_labels[GITHUB_REPO] = {}

    def _add(self, tracker: str, i: int, n: int) -> str:
        done, started = n % 3 == 2, n % 3 == 1
        if tracker == "jira":
            number = len(self.jira.issues) + 100_000
            key = f"OKR-{number}"
            status = "Done" if done else "In Progress" if started else "To Do"
            self.jira.issues[key] = Issue(
                id=str(number),
                key=key,
                project="OKR",
                issuetype="Story",
                status=status,
                summary=f"Work {n} of {kr_id(i)}",
                created=(self.updated - timedelta(days=30)).date(),
                resolved=self.updated.date() if done else None,
                parent=epic(i),
                updated=self.updated,
                labels=[label(i)],
            )
            return key
        if tracker == "github":
            number = len(self._github_items) + 1
            self._github_items.append(
                Item(
                    repo=GITHUB_REPO,
                    number=number,
                    id=5_000_000 + number,
                    title=f"Work {n} of {kr_id(i)}",
                    is_pr=False,
                    state="closed" if done else "open",
                    labels=(label(i),),
                    user="octocat",
                    created_at=self.updated - timedelta(days=30),
                    closed_at=self.updated if done else None,
                    milestone=None,
                    updated_at=self.updated,
                    assignees=("octocat",) if started else (),
                )
            )
            return f"{GITHUB_REPO}#{number}"
        data = self.linear
        name = label(i)
        wanted = next((x for x in data.labels if x["name"] == name), None)
        if wanted is None:
            wanted = {"id": f"label-{name}", "name": name}
            data.labels.append(wanted)
        team = data.team("ENG")
        kind = "completed" if done else "started" if started else "unstarted"
        state = next(s for s in data.states if s["team"] is team and s["type"] == kind)
        identifier = f"ENG-{100_000 + len(data.issues)}"
        stamp = self.updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        data.issues.append(
            {
                "id": f"issue-{identifier.lower()}",
                "identifier": identifier,
                "title": f"Work {n} of {kr_id(i)}",
                "estimate": None,
                "createdAt": stamp,
                "completedAt": stamp if done else None,
                "canceledAt": None,
                "updatedAt": stamp,
                "archivedAt": None,
                "url": f"https://linear.app/bench/issue/{identifier.lower()}",
                "assignee": None,
                "team": team,
                "state": state,
                "project": None,
                "labels": [wanted],
            }
        )
        return identifier

    def change(self, tracker: str, key: str, at: datetime) -> None:
        """Move an item one state on (to do → in progress → done), as a person would."""
        if tracker == "jira":
            issue = self.jira.issues[key]
            following = {"To Do": "In Progress", "In Progress": "Done", "Done": "To Do"}
            self.jira.change(key, status=following[issue.status], at=at)
        elif tracker == "github":
            number = int(key.split("#")[1])
            item = self.github.item(GITHUB_REPO, number)
            assert item is not None
            if item.state == "closed":
                self.github.change(GITHUB_REPO, number, state="open", closed_at=None, at=at)
            else:
                self.github.change(GITHUB_REPO, number, state="closed", closed_at=at, at=at)
        else:
            node = self.linear.issue(key)
            assert node is not None
            kind = node["state"]["type"]
            self.linear.change(key, state="Done" if kind != "completed" else "Todo", at=at)


class Counting:
    """An ASGI app that counts the requests reaching ``app`` (method and path)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.bytes = 0  # of the answers' bodies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counts[f"{scope['method']} {scope['path']}"] += 1

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.statuses[int(message["status"])] += 1
            elif message["type"] == "http.response.body":
                self.bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counted)

    def take(self) -> tuple[dict[str, int], dict[str, int], int]:
        """What was counted since the last call (requests, statuses, bytes), then start again."""
        counts, statuses = dict(self.counts), {str(k): v for k, v in self.statuses.items()}
        answered, self.bytes = self.bytes, 0
        self.counts.clear()
        self.statuses.clear()
        return counts, statuses, answered


# --- the bounds -----------------------------------------------------------------------------------


def pages(n: int, page: int) -> int:
    return max(1, math.ceil(n / page))


def bound(phase: str, tracker: str, sizes: list[int], changed: list[int]) -> int:
    """The least requests ``phase`` needs for entries of ``sizes`` items (``changed`` of them
    changed since the previous read) on ``tracker`` (see the module's docstring)."""
    page, id_page = PAGES[tracker]
    if phase in ("first_read", "naive_full_reread"):
        return sum(pages(n, page) for n in sizes)
    if phase == "reconciliation":
        return sum(min(pages(n, page), 1 + pages(n, id_page)) for n in sizes)
    return sum(pages(max(c, 1), page) for c in changed)


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


class Statements:
    """SQL statements an engine executes."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


async def naive_reread(config: Config, connections: Connections, work: WorkSync) -> int:
    """Every entry read in full (``since=None``), ``ENTRY_CONCURRENCY`` at a time per tracker
    as okrsync reads them; returns the items read."""

    async def one_tracker(name: str) -> list[int]:
        live = connections.get(name)
        assert isinstance(live, WorkTracker)
        limit = asyncio.Semaphore(ENTRY_CONCURRENCY)

        async def one(entry: WorkDef) -> int:
            cycle = config.cycles[config.objective(entry.objective_id).cycle].window()
            async with limit:
                return len(await live.list_work(entry.spec, cycle, None))

        return await asyncio.gather(*(one(e) for e in work.entries if e.connection == name))

    counts = await asyncio.gather(*(one_tracker(name) for name in TRACKERS))
    return sum(sum(per_tracker) for per_tracker in counts)


def start_fakes(load: Workload, updated: datetime) -> tuple[Trackers, dict[str, Counting]]:
    """The three fakes with the benchmark's items, limits lifted, each behind a counter."""
    jira = jira_app(data=JiraData(), documented_limits=False)
    github = github_app(search_limit=10**9, core_limit=10**9)
    linear_data = LinearData.seeded()
    linear = linear_app(data=linear_data, requests_per_hour=10**9, complexity_per_hour=10**12)
    data = Trackers(
        load, updated, jira=jira.state.jira, github=github.state.data, linear=linear_data
    )
    counters = {"jira": Counting(jira), "github": Counting(github), "linear": Counting(linear)}
    return data, counters


def measure(size: int, items: int, changed_share: float = 0.01) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    load = Workload(size, entry_sizes(size, items), [TRACKERS[i % 3] for i in range(size)])
    data, counters = start_fakes(load, now - OLD)
    servers = {name: SandboxServer(app, name=name) for name, app in counters.items()}
    load_start = os.getloadavg()
    for server in servers.values():
        server.start()
    try:
        environ = {"B_GITHUB_TOKEN": GITHUB_TOKEN, "B_LINEAR_KEY": LINEAR_KEY}
        registry = load_registry()
        configure_logging(Redactor(), fmt="json", level="error")
        text = config_yaml(load, {k: s.url for k, s in servers.items()}, now.date())
        config = load_config_text(text, registry.connectors, filename="w.yaml", environ=environ)
        with tempfile.TemporaryDirectory(prefix="okrsync-work-bench-") as tmp:
            engine = make_engine(f"sqlite:///{tmp}/store.db")
            upgrade(engine)
            with session_scope(engine) as session:
                sync_definitions(session, config, now)
            run = Run(load, data, counters, config, Connections(config, dict(registry.connectors)))
            phases = asyncio.run(run.phases(engine, now, changed_share))
            engine.dispose()
    finally:
        for server in servers.values():
            server.stop()
    load_end = os.getloadavg()
    return {
        "size": size,
        "items": sum(load.sizes),
        "entries": {t: len(load.entries(t)) for t in TRACKERS},
        "items_per_tracker": {t: sum(load.sizes[i] for i in load.entries(t)) for t in TRACKERS},
        "largest_entry": max(load.sizes),
        "entries_over_one_page": {
            t: sum(1 for i in load.entries(t) if load.sizes[i] > PAGES[t][0]) for t in TRACKERS
        },
        "page_sizes": {t: {"fields": PAGES[t][0], "ids": PAGES[t][1]} for t in TRACKERS},
        "changed_share": changed_share,
        "phases": phases,
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class Run:
    load: Workload
    data: Trackers
    counters: dict[str, Counting]
    config: Config
    connections: Connections
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def phases(
        self, engine: Engine, start: datetime, changed_share: float
    ) -> dict[str, dict[str, Any]]:
        clock = Clock(start)
        work = WorkSync(
            engine, self.config, self.connections, clock=clock, redactor=Redactor(), instance_id="b"
        )
        statements = Statements(engine)
        unchanged = [0] * self.load.size

        async def refresh() -> dict[str, Any]:
            report = await work.refresh()
            if report.errors:
                raise RuntimeError(f"the work refresh failed: {report.errors[:3]}")
            return {
                "reads": report.reads,
                "full_reads": report.full_reads,
                "reconciliations": report.reconciliations,
                "added": report.added,
                "changed": report.changed,
                "unlinked": report.unlinked,
            }

        async def naive() -> dict[str, Any]:
            return {"items_read": await naive_reread(self.config, self.connections, work)}

        try:
            for counter in self.counters.values():
                counter.take()
            statements.take()
            await self.phase("first_read", unchanged, refresh, statements)
            clock.now = start + timedelta(minutes=10)  # the default schedule: every 10m
            await self.phase("warm_refresh", unchanged, refresh, statements)
            changed = self.change(clock.now + timedelta(minutes=1), changed_share)
            clock.now = start + timedelta(minutes=20)
            await self.phase("changed_1pct", changed, refresh, statements)
            self.results["changed_1pct"]["items_changed"] = sum(changed)
            clock.now = start + timedelta(minutes=61)  # the hourly reconciliation is due
            await self.phase("reconciliation", unchanged, refresh, statements)
            await self.phase("naive_full_reread", unchanged, naive, statements)
        finally:
            await self.connections.aclose()
        return self.results

    def change(self, at: datetime, share: float) -> list[int]:
        """Change one item in ``1 / share`` across every entry; the count per entry."""
        changed = [0] * self.load.size
        every = max(1, round(1 / share))
        n = 0
        for i in range(self.load.size):
            for key in self.load.keys[i]:
                if n % every == every // 2:
                    self.data.change(self.load.trackers[i], key, at)
                    changed[i] += 1
                n += 1
        return changed

    async def phase(self, name: str, changed: list[int], run: Any, statements: Statements) -> None:
        began, cpu = time.perf_counter(), time.process_time()
        report = await run()
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        requests: dict[str, int] = {}
        by_path: dict[str, dict[str, int]] = {}
        statuses: dict[str, dict[str, int]] = {}
        answered: dict[str, int] = {}
        for tracker in TRACKERS:
            by_path[tracker], statuses[tracker], answered[tracker] = self.counters[tracker].take()
            requests[tracker] = sum(by_path[tracker].values())
        requests["total"] = sum(requests.values())
        answered["total"] = sum(answered.values())
        entries = {t: self.load.entries(t) for t in TRACKERS}
        bounds = {
            t: bound(name, t, [self.load.sizes[i] for i in e], [changed[i] for i in e])
            for t, e in entries.items()
        }
        bounds["total"] = sum(bounds.values())
        self.results[name] = {
            "requests": requests,
            "bound": bounds,
            "by_path": by_path,
            "statuses": statuses,
            "answer_bytes": answered,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "store_statements": statements.take(),
            "report": report,
        }


# --- the report -----------------------------------------------------------------------------------

TITLES = {
    "first_read": "first read (full)",
    "warm_refresh": "warm refresh, nothing changed",
    "changed_1pct": "warm refresh, 1 % of items changed",
    "reconciliation": "reconciliation pass (full, or incremental + ids only)",
    "naive_full_reread": "naive: every entry read in full again",
}


def markdown(result: dict[str, Any]) -> str:
    phases = result["phases"]
    load = result["load_average"]
    naive = phases["naive_full_reread"]["requests"]
    rows = [
        "| phase | " + " | ".join(TRACKERS) + " | total | lower bound | x bound | x naive "
        "| answers (KiB) | seconds | store statements |",
        "| --- | " + " | ".join("---:" for _ in TRACKERS) + " | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for name in PHASES:
        p = phases[name]
        req, low = p["requests"], p["bound"]
        cells = [f"{req[t]:,} ({low[t]:,})" for t in TRACKERS]
        rows.append(
            f"| {TITLES[name]} | "
            + " | ".join(cells)
            + f" | {req['total']:,} | {low['total']:,} | {req['total'] / low['total']:.2f} "
            f"| {req['total'] / naive['total']:.2f} | {p['answer_bytes']['total'] / 1024:,.0f} "
            f"| {p['seconds']:.1f} "
            f"| {p['store_statements']:,} |"
        )
    first, warm = phases["first_read"], phases["warm_refresh"]
    changed, recon = phases["changed_1pct"], phases["reconciliation"]
    overhead = {t: warm["requests"][t] - warm["bound"][t] for t in TRACKERS}
    naive_bytes = phases["naive_full_reread"]["answer_bytes"]["total"]
    over_one_page = sum(result["entries_over_one_page"].values())
    recon_extra = recon["requests"]["total"] - recon["bound"]["total"]
    searches_min = GITHUB_DOCUMENTED_SEARCHES_PER_MINUTE
    sizes = result["page_sizes"]
    lines = [
        "# Work items: requests to read them",
        "",
        f"{result['size']:,} key results with {result['items']:,} linked items, one `work` entry "
        "each, over the sandbox Jira, GitHub and Linear on loopback sockets ("
        + ", ".join(
            f"{t}: {result['entries'][t]:,} entries, {result['items_per_tracker'][t]:,} items"
            for t in TRACKERS
        )
        + f"; the largest entry links {result['largest_entry']} items, and "
        + ", ".join(f"{result['entries_over_one_page'][t]} on {t}" for t in TRACKERS)
        + " need more than one page), read by the real `WorkSync` into a SQLite store. "
        f"Generated by `python -m benchmarks.work_bench` at {result['measured_at']} on "
        f"{result['cpus']} CPUs, load average {load['start'][0]:.2f} at the start and "
        f"{load['end'][0]:.2f} at the end.",
        "",
        "Requests counted at the fakes per tracker, the lower bound in brackets:",
        "",
        *rows,
        "",
        "The lower bound per entry of n items, c of them changed, with the largest page each "
        "tracker answers ("
        + ", ".join(
            f"{t} {sizes[t]['fields']} with fields, {sizes[t]['ids']} ids only" for t in TRACKERS
        )
        + "): a full read ceil(n / page) requests (at least 1); an incremental read "
        "ceil(max(c, 1) / page), since one request is needed to learn that nothing changed; a "
        "reconciliation min(ceil(n / page), 1 + ceil(n / ids page)). The naive row reads every "
        "entry with `since=None` through the same connectors, as a script that re-reads "
        "everything on each refresh would.",
        "",
        f"The first read took {first['requests']['total']:,} requests against a bound of "
        f"{first['bound']['total']:,}. A warm refresh with nothing changed took "
        f"{warm['requests']['total']:,} ({warm['requests']['total'] / naive['total']:.0%} of "
        f"the naive re-read's {naive['total']:,}); beyond the bound of one request per entry "
        "it asked "
        + ", ".join(f"{overhead[t]} more of {t}" for t in TRACKERS)
        + " (Jira's `GET /myself`, once per connection, gives the user's time zone for the "
        "`updated >=` clause). With "
        f"{changed['items_changed']:,} items changed, the refresh took "
        f"{changed['requests']['total']:,} requests and recorded "
        f"{changed['report']['changed']:,} changed items. The reconciliation pass took "
        f"{recon['requests']['total']:,} requests, {recon_extra:,} over its bound: "
        f"{recon['report']['full_reads']:,} of its {recon['report']['reconciliations']:,} "
        "entries were read once in full, which answers both what changed and which items left "
        "the query in no more requests than the changes plus the ids, and the other "
        f"{recon['report']['reconciliations'] - recon['report']['full_reads']:,} read their "
        "changes and then their ids (Jira's ids-only read asks for `key` at up to "
        f"{PAGES['jira'][1]:,} a page, the most Jira documents for ids-only searches; GitHub's "
        "search has no ids-only form, so its entries are always read in full). Its answers "
        f"came to {recon['answer_bytes']['total'] / 1024:,.0f} KiB: a full read sends every "
        "item's fields where the ids-only pass sends keys, so the trade is fewer requests for "
        "more bytes.",
        "",
        f"Requests: an incremental read saves requests only on entries over one page "
        f"({over_one_page} of {result['size']:,} here); every other entry needs its one "
        "request whatever changed, so a warm refresh asks about as often as the naive re-read "
        f"({warm['requests']['total'] / naive['total']:.2f}x). What it saves is what is sent: "
        f"its answers came to {warm['answer_bytes']['total'] / 1024:,.0f} KiB, "
        f"{warm['answer_bytes']['total'] / naive_bytes:.0%} of the naive re-read's "
        f"{naive_bytes / 1024:,.0f} KiB ({changed['answer_bytes']['total'] / 1024:,.0f} KiB "
        "with 1 % changed).",
        "",
        f"At GitHub's documented {searches_min} searches a minute (lifted in the fake here), "
        f"the first read's {first['requests']['github']:,} GitHub searches take at least "
        f"{first['requests']['github'] / searches_min:.1f} min and each warm refresh's "
        f"{warm['requests']['github']:,} at least "
        f"{warm['requests']['github'] / searches_min:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000, help="key results")
    parser.add_argument("--items", type=int, default=10000, help="linked items in all")
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument(
        "--report", type=Path, help="only rebuild work_bench.md in --output from this JSON"
    )
    args = parser.parse_args(argv)
    if args.report is not None:
        result = json.loads(args.report.read_text())
        text = markdown(result)
        (args.output / "work_bench.md").write_text(text)
        print(text)
        return dict(result)
    result = measure(args.size, args.items)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "work_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.output / "work_bench.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
