"""Turning the measured figures into results.json and RESULTS.md.

Every sentence of RESULTS.md that gives a figure or a comparison is written here from the
figures of the same run (``results.json``), or from a committed baseline run's json: a rerun
whose figures differ reads differently. ``python -m benchmarks.report`` rebuilds RESULTS.md from
a results.json (the bounds and floors are recomputed with the current model, ``floor.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from benchmarks.floor import floor_model, limits_used
from benchmarks.workload import SLACK_CHANNELS, SLACK_MIRRORED, generate

HERE = Path(__file__).parent
BASELINE = HERE / "results_first_run.json"
"""The first run's figures (commit 82df514, before the recording fixes), compared with."""

REFRESH_TARGET = 1.5  # refresh time ≤ 1.5x the floor
CPU_TARGET_MS = 1.0  # CPU per key result refreshed
IDLE_TARGET = 0.01  # share of a core
FRESHNESS_TARGET = 2.0  # seconds, p95
STORE_TARGET = 0.1  # seconds per query


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


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def complete(results: dict[str, Any]) -> dict[str, Any]:
    """The model beside the figures: each size's request bounds and floors from the current
    model, and the limits the floors use with their sources. Hand-written notes are dropped."""
    for size in results["sizes"]:
        size.update(floor_model(generate(size["size"], date.today()), results["latency"]))
    results["limits"] = limits_used()
    results.pop("notes", None)
    return results


def summarise(size: dict[str, Any]) -> dict[str, Any]:
    n = size["size"]
    cold, warm, naive = size["cold"], size["warm"], size["naive"]
    lower = size["lower_bound"]
    lower_warm = size.get("lower_bound_warm", {})
    return {
        "size": n,
        "requests_cold": sum(cold["requests"].values()),
        "requests_cold_sources": sum(v for k, v in cold["requests"].items() if k != "slack"),
        "requests_warm": sum(warm["requests"].values()),
        "lower_bound_cold": sum(lower.values()),
        "lower_bound_sources": sum(v for k, v in lower.items() if k != "slack"),
        "lower_bound_warm": sum(lower_warm.values()) if lower_warm else None,
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


def _f(value: Any, fmt: str = ".3g") -> str:
    return "—" if value is None else format(value, fmt)


def _sizes(values: list[int]) -> str:
    return " / ".join(f"{v:,}" for v in values)


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


# --- prose computed from the figures ----------------------------------------------------------


def _against(asked: dict[str, int], bound: dict[str, int]) -> str:
    """How one refresh's requests compare with its bound, vendor by vendor."""
    over = [f"{v} {asked.get(v, 0)} vs {n}" for v, n in bound.items() if asked.get(v, 0) > n]
    under = [f"{v} {asked.get(v, 0)} vs {n}" for v, n in bound.items() if asked.get(v, 0) < n]
    if not over and not under:
        return "equal to the bound for every vendor"
    parts = []
    if over:
        parts.append("above it for " + ", ".join(over))
    if under:
        parts.append("below it for " + ", ".join(under))
    return "; ".join(parts)


def economy(results: dict[str, Any]) -> list[str]:
    """API economy: okrsync's requests against the lower bound, cold and warm, and the naive
    baseline's requests as a multiple of okrsync's."""
    sizes = results["sizes"]
    rows = [summarise(s) for s in sizes]
    cold_equal = all(s["cold"]["requests"] == s["lower_bound"] for s in sizes)
    warm_equal = all(
        s["warm"]["requests"] == s.get("lower_bound_warm", s["warm"]["requests"]) for s in sizes
    )
    out = []
    if cold_equal and warm_equal:
        out.append(
            "API economy: okrsync's requests equal the lower bound at every size, cold ("
            + ", ".join(f"{r['requests_cold']}/{r['lower_bound_cold']}" for r in rows)
            + ", Slack included) and warm ("
            + ", ".join(f"{r['requests_warm']}/{r['lower_bound_warm']}" for r in rows)
            + ": no Slack push, and no token, field catalog or pipelines read, which the "
            "connections keep from the cold refresh)."
        )
    else:
        for s, r in zip(sizes, rows, strict=True):
            warm_bound = s.get("lower_bound_warm", {})
            out.append(
                f"API economy at {r['size']:,} key results: cold {r['requests_cold']} requests "
                f"against a lower bound of {r['lower_bound_cold']} "
                f"({_against(s['cold']['requests'], s['lower_bound'])}); warm "
                f"{r['requests_warm']} against {_f(r['lower_bound_warm'])} "
                f"({_against(s['warm']['requests'], warm_bound)})."
            )
    multiples = [r["naive_requests"] / r["requests_cold"] for r in rows if r["requests_cold"]]
    out.append(
        "The naive baseline makes "
        + " / ".join(f"{m:.0f}x" for m in multiples)
        + f" okrsync's cold requests at {_sizes([r['size'] for r in rows])} key results."
    )
    return out


def floors(results: dict[str, Any]) -> list[str]:
    """Where a refresh came under the floor, which a floor should make impossible."""
    under = [
        f"{label} at {r['size']:,} ({ratio:.2f}x)"
        for r in map(summarise, results["sizes"])
        for label, ratio in (("cold", r["ratio_cold"]), ("warm", r["ratio_warm"]))
        if ratio < 1
    ]
    if not under:
        return ["No refresh came under its floor."]
    return [
        "A refresh came under its floor: "
        + ", ".join(under)
        + ". The fakes then allowed more than the documented limits the floor assumes."
    ]


def cpu(results: dict[str, Any]) -> list[str]:
    rows = [summarise(s) for s in results["sizes"]]
    if len(rows) < 2:
        return []
    first, last = rows[0], rows[-1]
    falls = last["cpu_ms_per_kr_cold"] < first["cpu_ms_per_kr_cold"]
    text = (
        f"CPU per key result (cold) {'falls' if falls else 'does not fall'} from "
        f"{first['cpu_ms_per_kr_cold']:.2f} ms at {first['size']:,} key results to "
        f"{last['cpu_ms_per_kr_cold']:.2f} ms at {last['size']:,}"
    )
    if falls:
        text += (
            ": one-off costs (first requests, token exchanges, the first Slack posts) are "
            "shared by fewer key results at the smaller size"
        )
    return [text + "."]


def mirrors(results: dict[str, Any]) -> list[str]:
    counts = [s.get("mirrored", 0) for s in results["sizes"]]
    return [
        f"Slack mirrors: one key result in ten, at most {SLACK_MIRRORED} (Slack's limits are "
        f"per workspace and channel), over {len(SLACK_CHANNELS)} channels: "
        + ", ".join(f"{n} at {s['size']:,}" for n, s in zip(counts, results["sizes"], strict=True))
        + "."
    ]


def freshness(results: dict[str, Any]) -> list[str]:
    largest = results["sizes"][-1]
    fresh = largest.get("freshness")
    if not fresh:
        return []
    workload = generate(largest["size"], date.today())
    soql = {s["soql"] for s in workload.specs.values() if s["connection"] == "salesforce"}
    key_results = sum(
        1
        for name in workload.metric_of.values()
        if workload.specs[name]["connection"] == "salesforce"
    )
    return [
        f"Freshness at {largest['size']:,}: one webhook event re-syncs the "
        f"{fresh['metrics_per_event']:,} metrics read from the Salesforce connection "
        f"({key_results:,} key results; {len(soql)} distinct SOQL texts, so "
        f"{len(soql)} queries with GROUP BY batching), then delivers; over "
        f"{fresh['samples']} samples p50 {fresh['p50']:.2f} s, p95 {fresh['p95']:.2f} s, "
        f"max {fresh['max']:.2f} s, {fresh.get('delivery_error_count', 0)} delivery errors."
    ]


def config_load(results: dict[str, Any]) -> list[str]:
    largest = results["sizes"][-1]
    load = largest.get("config_load")
    if not load:
        return []
    return [
        f"Config loading (not in the refresh figures): {load['seconds']:.2f} s for the "
        f"{largest['size']:,}-key-result file (`config_load` in `results.json`)."
    ]


def limits_section(results: dict[str, Any]) -> list[str]:
    limits = results.get("limits") or limits_used()
    out = [
        "## The floor's limits",
        "",
        "The floor counts only the requests a refresh needs (`lower_bound` cold; "
        "`lower_bound_warm` without the token, catalog and pipelines reads the connections "
        "keep, and without Slack) and the vendors' published limits, not okrsync's own "
        "settings:",
        "",
        "| vendor | concurrency | rate | as documented | source |",
        "|---|---|---|---|---|",
    ]
    for name, limit in limits.items():
        rate = limit["per_second"]
        unit = " per channel" if name == "slack" else ""
        out.append(
            f"| {name} | {limit['concurrency'] or 'none published'} | "
            f"{f'{rate:g}/s{unit}' if rate else 'none published'} | {limit['documented']} | "
            f"{limit['source']} |"
        )
    return out


def _ratio_text(before: float, after: float, *, smaller_is_better: bool = True) -> str:
    if before == after:
        return "same"
    if (after < before) == smaller_is_better:
        return f"{before / after:.1f}x better" if after else "better"
    return f"{after / before:.1f}x worse" if before else "worse"


def baseline_section(results: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """This run against a committed earlier run, at the largest size both measured; both floors
    from the current model, so the ratios compare."""
    if not baseline:
        return []
    theirs = {s["size"]: s for s in baseline["sizes"]}
    common = [s for s in results["sizes"] if s["size"] in theirs]
    if not common:
        return []
    now = common[-1]
    before = json.loads(json.dumps(theirs[now["size"]]))
    before.update(floor_model(generate(now["size"], date.today()), baseline["latency"]))
    a, b = summarise(before), summarise(now)
    lines = [
        f"## Against the first run ({baseline['machine']['date']}, "
        f"`benchmarks/{BASELINE.name}`), {now['size']:,} key results",
        "",
        "| | first run | this run | change |",
        "|---|---|---|---|",
        f"| requests, cold / lower bound | {a['requests_cold']} / {a['lower_bound_cold']} "
        f"| {b['requests_cold']} / {b['lower_bound_cold']} | "
        f"{_ratio_text(a['requests_cold'], b['requests_cold'])} |",
        f"| cold refresh / floor | {a['cold_seconds']:.2f} s ({a['ratio_cold']:.1f}x) "
        f"| {b['cold_seconds']:.2f} s ({b['ratio_cold']:.1f}x) "
        f"| {_ratio_text(a['cold_seconds'], b['cold_seconds'])} |",
        f"| warm refresh / floor | {a['warm_seconds']:.2f} s ({a['ratio_warm']:.1f}x) "
        f"| {b['warm_seconds']:.2f} s ({b['ratio_warm']:.1f}x) "
        f"| {_ratio_text(a['warm_seconds'], b['warm_seconds'])} |",
        f"| CPU per key result, cold · warm | {a['cpu_ms_per_kr_cold']:.2f} · "
        f"{a['cpu_ms_per_kr_warm']:.2f} ms | {b['cpu_ms_per_kr_cold']:.2f} · "
        f"{b['cpu_ms_per_kr_warm']:.2f} ms | "
        f"{_ratio_text(a['cpu_ms_per_kr_cold'], b['cpu_ms_per_kr_cold'])} (cold) |",
        f"| peak RSS | {a['peak_rss_mib']:.0f} MiB | {b['peak_rss_mib']:.0f} MiB | "
        f"{_ratio_text(a['peak_rss_mib'], b['peak_rss_mib'])} |",
    ]
    if a["freshness_p95"] is not None and b["freshness_p95"] is not None:
        lines.append(
            f"| freshness p95 | {a['freshness_p95']:.2f} s | {b['freshness_p95']:.2f} s | "
            f"{_ratio_text(a['freshness_p95'], b['freshness_p95'])} |"
        )
    if a["idle_core_share"] is not None and b["idle_core_share"] is not None:
        lines.append(
            f"| idle, share of a core (whole process) | {a['idle_core_share'] * 100:.2f}% | "
            f"{b['idle_core_share'] * 100:.2f}% | "
            f"{_ratio_text(a['idle_core_share'], b['idle_core_share'])} |"
        )
    return lines


def targets(results: dict[str, Any], r: dict[str, Any]) -> list[str]:
    """Each target, measured at the largest size, and whether it is met."""
    store = [
        max(fig["status_json_seconds"], fig["history_seconds"])
        for fig in results.get("store", {}).values()
        if "error" not in fig
    ]
    largest = results["sizes"][-1]
    requests_ok = largest["cold"]["requests"] == largest["lower_bound"] and largest["warm"][
        "requests"
    ] == largest.get("lower_bound_warm", largest["warm"]["requests"])
    idle = r["idle_core_share"]
    fresh = r["freshness_p95"]
    return [
        "| target | wanted | measured | verdict |",
        "|---|---|---|---|",
        f"| requests per refresh | = lower bound | sources {r['requests_cold_sources']} "
        f"vs {r['lower_bound_sources']}; with Slack {r['requests_cold']} vs "
        f"{r['lower_bound_cold']} (cold); warm {r['requests_warm']} vs "
        f"{_f(r['lower_bound_warm'])} | {_met(requests_ok)} |",
        f"| refresh time | ≤ {REFRESH_TARGET}x floor | cold {r['ratio_cold']:.1f}x, "
        f"warm {r['ratio_warm']:.1f}x | "
        f"{_met(max(r['ratio_cold'], r['ratio_warm']) <= REFRESH_TARGET)} |",
        f"| CPU per key-result refresh | < {CPU_TARGET_MS:g} ms | cold "
        f"{r['cpu_ms_per_kr_cold']:.2f} ms, warm {r['cpu_ms_per_kr_warm']:.2f} ms | "
        f"{_met(max(r['cpu_ms_per_kr_cold'], r['cpu_ms_per_kr_warm']) < CPU_TARGET_MS)} |",
        f"| idle | < {IDLE_TARGET:.0%} of a core | "
        f"{_f(None if idle is None else idle * 100)}% | "
        f"{_met(None if idle is None else idle < IDLE_TARGET)} |",
        f"| freshness (webhook hop) | p95 < {FRESHNESS_TARGET:g} s | p95 {_f(fresh)} s | "
        f"{_met(None if fresh is None else fresh < FRESHNESS_TARGET)} |",
        f"| store queries | < {STORE_TARGET * 1000:.0f} ms | slowest "
        f"{_f(max(store) * 1000 if store else None)} ms | "
        f"{_met(max(store) < STORE_TARGET if store else None)} |",
    ]


def markdown(results: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    m = results["machine"]
    rows = [summarise(s) for s in results["sizes"]]
    load = results.get("load_average")
    out = [
        "# okrsync benchmark results",
        "",
        f"Machine: {m['cores']} cores, {m['memory']} RAM, Python {m['python']}, {m['platform']}; "
        f"run {m['date']}. A shared virtual machine: wall-clock figures carry noise, request "
        "counts do not."
        + (
            f" Load average (1, 5, 15 min) at the start {', '.join(map(str, load['start']))}, "
            f"at the end {', '.join(map(str, load['end']))}."
            if load
            else " The load average was not recorded by this run."
        ),
        "",
        f"Command: `{results['command']}`. Vendor latency injected: "
        f"{results['latency'] * 1000:.0f} ms per request. Fakes' own limits kept (Slack per-method "
        "and per-channel, HubSpot search per second, Salesforce daily allocation, GA4 token "
        "quotas). This file is generated by `benchmarks/report.py` from `results.json`"
        + (
            f"; rebuilt from the run's figures on {results['rebuilt']} by `python -m "
            "benchmarks.report` (bounds and floors from the current model)."
            if results.get("rebuilt")
            else "."
        ),
        "",
        "## 1-3. API economy, refresh time, CPU and memory",
        "",
        "| key results | okrsync requests, cold (sources + Slack) | lower bound | naive baseline "
        "| warm refresh requests / bound | cold s / floor s (ratio) | warm s / floor s (ratio) "
        "| naive s | CPU ms / KR cold · warm | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['size']:,} | {r['requests_cold']} ({r['requests_cold_sources']} + "
            f"{r['requests_cold'] - r['requests_cold_sources']}) | {r['lower_bound_cold']} "
            f"({r['lower_bound_sources']} + {r['lower_bound_cold'] - r['lower_bound_sources']}) "
            f"| {r['naive_requests']} | {r['requests_warm']} / {_f(r['lower_bound_warm'])} "
            f"| {_f(r['cold_seconds'])} / {_f(r['floor_cold'])} ({_f(r['ratio_cold'], '.1f')}x) "
            f"| {_f(r['warm_seconds'])} / {_f(r['floor_warm'])} ({_f(r['ratio_warm'], '.1f')}x) "
            f"| {_f(r['naive_seconds'])} | {_f(r['cpu_ms_per_kr_cold'])} · "
            f"{_f(r['cpu_ms_per_kr_warm'])} | {_f(r['peak_rss_mib'], '.0f')} |"
        )
    out += ["", "Per vendor (cold okrsync / lower bound / naive):", ""]
    for s in results["sizes"]:
        parts = [
            f"{v} {s['cold']['requests'][v]}/{s['lower_bound'][v]}/{s['naive']['requests'][v]}"
            for v in s["lower_bound"]
        ]
        out.append(f"- {s['size']:,}: " + ", ".join(parts))
    out += ["", *(f"- {line}" for line in economy(results) + floors(results) + cpu(results))]
    out += ["", *limits_section(results)]
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
    out += [*(f"- {line}" for line in freshness(results) + mirrors(results) + config_load(results))]
    window = results["sizes"][-1].get("freshness", {}).get("hook_window_seconds")
    out += [
        "",
        "Freshness is measured through the real webhook hop: the daemon loop and the HTTP API "
        "run in one event loop as `okrsync run` serves them (uvicorn on 127.0.0.1); each sample "
        "changes a value at the Salesforce fake, POSTs an okrsync-signed event to "
        "`/hooks/salesforce` with httpx, and times until the Slack fake's message shows the new "
        "value (the daemon re-syncs every metric read from that connection, then its next pass "
        "delivers the outbox). "
        + (f"The webhook throttle's window was {window:g} s; " if window is not None else "")
        + "samples are spaced further apart than the window (and within Slack's chat.update "
        "budget), so each is an isolated event, which runs at once.",
        "",
        "How it is measured: okrsync runs in the main thread of one process per size, the fakes "
        "in threads of the same process; CPU per key result is the main thread's CPU "
        "(`time.thread_time`, the process's is in `results.json`); peak RSS is the whole "
        "process. The naive baseline (`benchmarks/naive.py`) runs right after okrsync against "
        "the same fakes, retrying 429s after `Retry-After`, a few requests at a time per vendor, "
        "one new Slack message per changed mirrored key result.",
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
    comparison = baseline_section(results, baseline)
    if comparison:
        out += ["", *comparison]
    out.append("")
    return "\n".join(out)


def load_baseline(path: Path = BASELINE) -> dict[str, Any] | None:
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def write(results: dict[str, Any], output: Path, baseline: dict[str, Any] | None) -> str:
    """results.json and RESULTS.md in ``output``, the markdown from the json's figures."""
    complete(results)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = markdown(results, baseline)
    (output / "RESULTS.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    results["rebuilt"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(write(results, args.output, load_baseline(args.baseline)))


if __name__ == "__main__":
    main()
