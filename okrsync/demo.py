"""``okrsync demo``: the whole flow on the local sandbox, with no credentials.

It creates a small SQL warehouse (deals and a quota table), starts a sandbox for every connection
of the demo config whose connector ships one (the connector's ``demo_fake`` hook, by default its
``fake`` with the made-up credentials it accepts; see :meth:`Connector.fake_for
<okrsync.sdk.connector.Connector.fake_for>`), runs the daemon on the demo config with an embedded
SQLite store, and keeps closing deals while you watch key results fill in and the webhook
receiver get its deliveries. It ends by itself after ``seconds``, or on Ctrl-C.

The config reaches each sandbox through ``${DEMO_<CONNECTION>_URL}`` and its credentials through
``${DEMO_<CONNECTION>_<KEY>}`` (the connection's name and the credential's key, upper-cased).
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.server import HttpServer, bind
from okrsync.app import App
from okrsync.cli_progress import activity
from okrsync.config import load_config_text, read_yaml
from okrsync.domain.numbers import display_number
from okrsync.domain.progress import display_progress
from okrsync.engine.daemon import Daemon
from okrsync.examples import example
from okrsync.logging import configure_logging
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import Sandbox
from okrsync.sdk.connector import Connector, SandboxFake
from okrsync.settings import Settings
from okrsync.store import views
from okrsync.store.db import session_scope

DEMO_CONFIG = "okrsync/examples/demo.yaml"
# Connections of the demo config that the tour itself drives: it adds deals to the JSON API's
# sandbox and reads what the webhook receiver got.
DEAL_API = "crm_api"
RECEIVER = "team_hook"
SALES_QUOTA = 1_500_000
BAR = 14
STATUS_COLOURS = {"on_track": "green", "at_risk": "yellow", "off_track": "red", "no_data": "dim"}


def seed_warehouse(path: Path, today: date, rng: random.Random) -> None:
    cycle_start = today - timedelta(days=45)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS deals (id INTEGER PRIMARY KEY, amount NUMERIC, "
            "won INTEGER, closed_on DATE)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS quotas (team TEXT, cycle TEXT, amount NUMERIC)")
        db.execute("DELETE FROM deals")
        db.execute("DELETE FROM quotas")
        db.execute("INSERT INTO quotas VALUES ('sales', ?, ?)", (cycle_id(today), SALES_QUOTA))
        for day in range(12):
            add_deal(db, cycle_start + timedelta(days=day * 3), rng)


def add_deal(db: sqlite3.Connection, closed_on: date, rng: random.Random) -> None:
    amount = rng.choice([500, 750, 1200, 1800, 2500])
    db.execute(
        "INSERT INTO deals (amount, won, closed_on) VALUES (?, ?, ?)",
        (amount, int(rng.random() < 0.55), closed_on.isoformat()),
    )


def demo_sandboxes(
    connections: Mapping[str, Any], connectors: Mapping[str, Connector]
) -> dict[str, SandboxFake]:
    """The sandbox of each connection (its config entry as written) whose connector has one."""
    found: dict[str, SandboxFake] = {}
    for name, entry in connections.items():
        kind = entry.get("type") if isinstance(entry, Mapping) else None
        connector = connectors.get(kind) if isinstance(kind, str) else None
        if connector is None:
            raise SystemExit(f"the demo's connection {name!r} needs the {kind!r} connector")
        sandbox = connector.fake_for(entry)
        if sandbox is not None:
            found[name] = sandbox
    return found


def demo_environ(
    urls: Mapping[str, str],
    credentials: Mapping[str, Mapping[str, str]],
    warehouse: Path,
    today: date,
) -> dict[str, str]:
    """The demo config's ${DEMO_*} references: each sandbox's URL and the credentials it accepts,
    under the connection's name."""
    start = today - timedelta(days=45)
    environ = {
        "DEMO_WAREHOUSE_URL": f"sqlite:///{warehouse}",
        "DEMO_CYCLE_ID": cycle_id(today),
        "DEMO_CYCLE_START": start.isoformat(),
        "DEMO_CYCLE_END": (start + timedelta(days=90)).isoformat(),
    }
    for name, url in urls.items():
        environ[f"DEMO_{name.upper()}_URL"] = url
        for key, value in credentials.get(name, {}).items():
            environ[f"DEMO_{name.upper()}_{key.upper()}"] = value
    return environ


def cycle_id(today: date) -> str:
    return f"demo-{today:%Y%m%d}"


def render(
    objectives: list[views.ObjectiveView],
    delivered: dict[str, int],
    received: dict[str, Any],
    clock: str,
) -> Group:
    tables: list[Any] = []
    for objective in objectives:
        table = Table(title=f"{objective.title}", title_justify="left", expand=True)
        table.add_column("key result", ratio=3)
        table.add_column("value", justify="right", ratio=2)
        table.add_column("progress", ratio=2)
        table.add_column("status", ratio=1)
        for kr in objective.key_results:
            colour = STATUS_COLOURS.get(kr.status, "")
            shown = display_progress(kr.progress) if kr.progress is not None else Decimal(0)
            filled = int(shown * BAR)
            pct = "—" if kr.progress is None else f"{kr.progress * 100:.1f}%"
            value = display_number(kr.value, kr.unit, kr.decimals) or "—"
            table.add_row(
                kr.title,
                f"{value} {kr.unit or ''}",
                f"[{colour}]{'█' * filled}{'░' * (BAR - filled)}[/{colour}] {pct}",
                f"[{colour}]{kr.status.replace('_', ' ')}[/{colour}]",
            )
        tables.append(table)
    per_mirror = ", ".join(f"{name} {count}" for name, count in delivered.items()) or "none yet"
    tables.append(
        f"[dim]{clock}[/dim]  mirror pushes delivered: [bold]{sum(delivered.values())}[/bold] "
        f"({per_mirror}); the webhook receiver refused {received.get('duplicates', 0)} duplicates"
    )
    return Group(*tables)


def program() -> str:
    """How to type the okrsync that is running, from the current directory: ``okrsync`` when
    that is on PATH, else its path (``.venv/bin/okrsync`` after README's first command), else
    ``python -m okrsync`` with this interpreter."""
    ran = Path(sys.argv[0])
    if ran.name == "okrsync" and ran.is_file():
        on_path = shutil.which("okrsync")
        if on_path is not None and Path(on_path).resolve() == ran.resolve():
            return "okrsync"
        relative = os.path.relpath(ran.absolute())
        shown = relative if not relative.startswith("..") else str(ran.absolute())
        return shlex.quote(shown if "/" in shown else f"./{shown}")
    return f"{shlex.quote(sys.executable)} -m okrsync"


def closing_hints(store: Path, command: str) -> list[str]:
    """Commands to look around the demo's store once it ended, ready to paste."""
    url = shlex.quote(f"sqlite:///{store}")
    return [
        f"OKRSYNC_DATABASE_URL={url} {command} {args}"
        for args in ("status", "explain win_rate", "history bookings")
    ]


async def tour(
    app: App, urls: dict[str, str], token: str, warehouse: Path, seconds: float, console: Console
) -> None:
    app.apply_definitions()
    stop = asyncio.Event()
    daemon = Daemon(app.engine, app.config, app.sync, app.dispatcher, clock=app.clock)
    task = asyncio.create_task(daemon.run(stop))
    # the dashboard on a free loopback port while the tour runs
    http = HttpServer(build_app(ApiContext.from_app(app, daemon)), bind("127.0.0.1", 0))
    await http.start()
    host, port = http.address
    console.print(
        f"Dashboard: http://{host}:{port}/ (open it while the tour runs)",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    rng = random.Random(7)  # noqa: S311 - demo data, not security
    deadline = asyncio.get_running_loop().time() + seconds
    next_deal = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        with Live(console=console, refresh_per_second=4) as live:
            try:
                while asyncio.get_running_loop().time() < deadline and not task.done():
                    now = asyncio.get_running_loop().time()
                    if now >= next_deal:
                        next_deal = now + 2.5
                        with sqlite3.connect(warehouse) as db:
                            add_deal(db, date.today(), rng)
                        added = await client.post(
                            f"{urls[DEAL_API]}/v1/deals",
                            json={"amount": rng.choice([900, 1500, 3000]), "status": "won"},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        added.raise_for_status()
                    received = (await client.get(f"{urls[RECEIVER]}/_received")).json()
                    with session_scope(app.engine) as session:
                        objectives = views.status_view(session, app.clock())
                        delivered = views.deliveries_done(session)
                    clock = datetime.now(UTC).strftime("%H:%M:%S UTC")
                    live.update(render(objectives, delivered, received, clock))
                    await asyncio.sleep(0.5)
            finally:
                await http.stop()
                stop.set()
                await task


def run_demo(*, seconds: float, workdir: Path | None, console: Console) -> None:
    registry = load_registry()
    text = example("demo")
    connections = read_yaml(text, filename=DEMO_CONFIG).data.get("connections") or {}
    sandboxes = demo_sandboxes(connections, registry.connectors)
    for needed in (DEAL_API, RECEIVER):
        if needed not in sandboxes:
            raise SystemExit(f"the demo needs a sandbox for its connection {needed!r}")
    credentials = {name: dict(sandbox.credentials) for name, sandbox in sandboxes.items()}
    workdir = workdir or Path(tempfile.mkdtemp(prefix="okrsync-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse = workdir / "warehouse.db"
    today = datetime.now(UTC).date()
    seed_warehouse(warehouse, today, random.Random(1))  # noqa: S311
    store = workdir / "okrsync-demo.db"
    store.unlink(missing_ok=True)
    redactor = Redactor()
    configure_logging(redactor, fmt="console", level="warning")
    shown = ", ".join(f"{name} ({connections[name]['type']})" for name in sandboxes)
    config_file = workdir / "okrsync-demo.yaml"
    config_file.write_text(text, encoding="utf-8")
    console.print(
        f"[bold]okrsync demo[/bold]: a SQL warehouse and local sandboxes for {shown}. "
        f"Files in {escape(str(workdir))}. Watching for {seconds:g}s (Ctrl-C to stop).",
        soft_wrap=True,
    )
    console.print(
        f"Config: {config_file} (its ${{DEMO_*}} references are the sandboxes' addresses and "
        "credentials, set by the demo)",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    with Sandbox({name: sandbox.app for name, sandbox in sandboxes.items()}) as sandbox:
        urls = sandbox.urls
        config = load_config_text(
            text,
            registry.connectors,
            filename=DEMO_CONFIG,
            environ=demo_environ(urls, credentials, warehouse, today),
        )
        # its dashboard listens on 127.0.0.1 only and shows sandbox data: readable without sign-in
        settings = Settings(database_url=SecretStr(f"sqlite:///{store}"), public_read=True)
        with activity("opening the demo's store", enabled=console.is_terminal, console=console):
            app = App.open(settings, config=config, registry=registry, redactor=redactor)
        token = credentials[DEAL_API].get("token", "")

        async def main() -> None:
            try:
                await tour(app, urls, token, warehouse, seconds, console)
            finally:
                await app.aclose()

        asyncio.run(main())
    console.print("\nThe store keeps every value with its provenance. Look around with:")
    for hint in closing_hints(store, program()):
        console.print(f"  {hint}", soft_wrap=True, highlight=False, markup=False)
