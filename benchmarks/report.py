"""Turning the measured figures into results.json and RESULTS.md."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

TARGETS = {
    "requests": "= lower bound",
    "refresh": "≤ 1.5x floor",
    "cpu": "< 1 ms per key result",
    "idle": "< 1% of a core",
    "freshness": "p95 < 2 s",
    "store": "< 100 ms",
}


def machine() -> dict[str, Any]:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def summarise(size: dict[str, Any]) -> dict[str, Any]:
    n = size["size"]
    cold, warm, naive = size["cold"], size["warm"], size["naive"]
    lower = size["lower_bound"]
    return {
        "size": n,
        "requests_cold": sum(cold["requests"].values()),
        "requests_cold_sources": sum(v for k, v in cold["requests"].items() if k != "slack"),
        "requests_warm": sum(warm["requests"].values()),
        "lower_bound_cold": sum(lower.values()),
        "lower_bound_sources": sum(v for k, v in lower.items() if k != "slack"),
        "naive_requests": sum(naive["requests"].values()),
        "naive_seconds": naive["seconds"],
        "cold_seconds": cold["seconds"],
        "warm_seconds": warm["seconds"],
        "floor_cold": size["floor"]["cold"],
        "floor_warm": size["floor"]["warm"],
        "ratio_cold": cold["seconds"] / size["floor"]["cold"],
        "ratio_warm": warm["seconds"] / size["floor"]["warm"],
        "cpu_ms_per_kr_cold": cold["cpu_main_thread"] * 1000 / n,
        "cpu_ms_per_kr_warm": warm["cpu_main_thread"] * 1000 / n,
        "peak_rss_mib": size["peak_rss_mib"],
        "freshness_p50": size.get("freshness", {}).get("p50"),
        "freshness_p95": size.get("freshness", {}).get("p95"),
        "idle_core_share": size.get("idle", {}).get("cpu_share_process"),
        "errors": cold["errors"] + warm["errors"] + naive["errors"],
    }


def targets(results: dict[str, Any], r: dict[str, Any]) -> list[str]:
    """How close each target is, measured, not judged kindly."""
    store = [
        max(fig["status_json_seconds"], fig["history_seconds"])
        for fig in results.get("store", {}).values()
        if "error" not in fig
    ]
    idle = r["idle_core_share"]
    return [
        "| target | wanted | measured |",
        "|---|---|---|",
        f"| requests per refresh | {TARGETS['requests']} | sources {r['requests_cold_sources']} "
        f"vs {r['lower_bound_sources']}; with Slack {r['requests_cold']} vs "
        f"{r['lower_bound_cold']} (cold), warm {r['requests_warm']} |",
        f"| refresh time | {TARGETS['refresh']} | cold {r['ratio_cold']:.1f}x, "
        f"warm {r['ratio_warm']:.1f}x |",
        f"| CPU per key-result refresh | {TARGETS['cpu']} | cold {r['cpu_ms_per_kr_cold']:.2f} ms, "
        f"warm {r['cpu_ms_per_kr_warm']:.2f} ms |",
        f"| idle | {TARGETS['idle']} | {_f(None if idle is None else idle * 100)}% |",
        f"| freshness (webhook hop) | {TARGETS['freshness']} | p95 {_f(r['freshness_p95'])} s |",
        f"| store queries | {TARGETS['store']} | slowest {_f(max(store) * 1000 if store else None)}"
        " ms |",
    ]


def _f(value: Any, fmt: str = ".3g") -> str:
    return "—" if value is None else format(value, fmt)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = [summarise(s) for s in results["sizes"]]
    out = [
        "# okrsync benchmark results",
        "",
        f"Machine: {m['cores']} cores, {m['memory']} RAM, Python {m['python']}, {m['platform']}; "
        f"run {m['date']}. A shared virtual machine: wall-clock figures carry noise, request "
        "counts do not.",
        "",
        f"Command: `{results['command']}`. Vendor latency injected: "
        f"{results['latency'] * 1000:.0f} ms per request. Fakes' own limits kept (Slack per-method "
        "and per-channel, HubSpot search 5/s, Salesforce daily allocation, GA4 token quotas).",
        "",
        "## 1-3. API economy, refresh time, CPU and memory",
        "",
        "| key results | okrsync requests, cold (sources + Slack) | lower bound | naive baseline "
        "| warm refresh requests | cold s / floor s (ratio) | warm s / floor s (ratio) "
        "| naive s | CPU ms / KR cold · warm | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['size']:,} | {r['requests_cold']} ({r['requests_cold_sources']} + "
            f"{r['requests_cold'] - r['requests_cold_sources']}) | {r['lower_bound_cold']} "
            f"({r['lower_bound_sources']} + {r['lower_bound_cold'] - r['lower_bound_sources']}) "
            f"| {r['naive_requests']} | {r['requests_warm']} | {_f(r['cold_seconds'])} / "
            f"{_f(r['floor_cold'])} ({_f(r['ratio_cold'], '.1f')}x) | {_f(r['warm_seconds'])} / "
            f"{_f(r['floor_warm'])} ({_f(r['ratio_warm'], '.1f')}x) | {_f(r['naive_seconds'])} "
            f"| {_f(r['cpu_ms_per_kr_cold'])} · {_f(r['cpu_ms_per_kr_warm'])} "
            f"| {_f(r['peak_rss_mib'], '.0f')} |"
        )
    out += ["", "Per vendor (cold okrsync / lower bound / naive):", ""]
    for s in results["sizes"]:
        parts = [
            f"{v} {s['cold']['requests'][v]}/{s['lower_bound'][v]}/{s['naive']['requests'][v]}"
            for v in s["lower_bound"]
        ]
        out.append(f"- {s['size']:,}: " + ", ".join(parts))
    out += ["", "## 4. Idle cost, 5. freshness", ""]
    for r in rows:
        out.append(
            f"- {r['size']:,} key results: freshness p50 {_f(r['freshness_p50'])} s, "
            f"p95 {_f(r['freshness_p95'])} s"
        )
    for s in results["sizes"]:
        if "idle" in s:
            idle = s["idle"]
            out.append(
                f"- idle, {s['size']:,} key results scheduled (`every 1h`, all fresh), daemon run "
                f"{idle['seconds']:.0f} s: {idle['cpu_share_process'] * 100:.2f}% of a core for "
                f"the whole process (the fakes' servers included), "
                f"{idle['cpu_share_main_thread'] * 100:.4f}% for the daemon's own thread; "
                f"{idle['ticks']} ticks"
            )
    out += [
        "",
        "Freshness is measured through the real webhook hop: the daemon loop and the HTTP API "
        "run in one event loop as `okrsync run` serves them (uvicorn on 127.0.0.1); each sample "
        "changes a value at the Salesforce fake, POSTs an okrsync-signed event to "
        "`/hooks/salesforce` with httpx, and times until the Slack fake's message shows the new "
        "value (the daemon re-syncs every metric read from that connection, then its next pass "
        "delivers the outbox). The webhook throttle keeps its default 2 s window; samples are "
        "spaced further apart than the window (and within Slack's chat.update budget), so each "
        "is an isolated event, which runs at once. An event arriving within the window after a "
        "run waits for that window's end.",
        "",
        "## 6. Store (status --json and history)",
        "",
        "`status_view` (+ `connections_view`) over 1,000 key results; it reads key-result rows, "
        "not measurements, so its cost follows the number of key results. `history` is one key "
        "result's last 100 of 1,000 measurements each. Best of 3.",
        "",
        "| backend | measurements | bulk load s | status --json query s | history query s |",
        "|---|---|---|---|---|",
    ]
    for backend, fig in results.get("store", {}).items():
        if "error" in fig:
            out.append(f"| {backend} | — | {fig['error']} | | |")
            continue
        out.append(
            f"| {backend} | {fig['measurements']:,} | {_f(fig['load_seconds'])} | "
            f"{_f(fig['status_json_seconds'])} | {_f(fig['history_seconds'])} |"
        )
    out += ["", "## Targets, at the largest size", ""]
    out += targets(results, rows[-1])
    out += ["", results.get("notes", ""), ""]
    return "\n".join(out)
