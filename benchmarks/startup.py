"""Start-up and ``status --json`` as a user runs them: each figure is a fresh ``okrsync`` process.

``python -m benchmarks.startup`` times, best and median of ``--repeat`` runs, with the peak RSS of
each child (``os.wait4``'s resource usage of that one process):

* ``okrsync --help``;
* ``okrsync validate`` on the starter config (``okrsync init``) and on the 10,000 key result
  workload config (:mod:`benchmarks.workload`, its ``${B_…}`` from ``OFFLINE_ENVIRON``);
* ``okrsync status --json`` on a store holding the starter's definitions, and at 10,000 key
  results (definitions upserted, then every key result given a value in one ``UPDATE``), on
  SQLite and on PostgreSQL (a schema of its own on ``--pg-url``; skipped with a note when the
  server cannot be reached).

``--baseline DIR`` runs every command a second time with ``DIR`` first on ``PYTHONPATH`` (an
export of an older commit: ``git archive <rev> | tar -x -C DIR``), so the before and after come
from the same machine in the same minutes. Writes ``benchmarks/startup.json`` and
``benchmarks/STARTUP.md``, whose prose is computed from the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from benchmarks.workload import OFFLINE_ENVIRON, generate

HERE = Path(__file__).parent
ROOT = HERE.parent
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SIZE = 10_000
TODAY = date(2026, 11, 15)

# issue 13's targets: seconds, and MiB for status --json
TARGETS: dict[str, float] = {
    "help": 0.3,
    "validate_starter": 0.3,
    "status_starter_sqlite": 0.3,
    "validate_workload": 1.5,  # at 10,000 key results
    "status_workload_sqlite": 1.0,
    "status_workload_postgresql": 1.0,
}
STATUS_MIB = 200.0


# Linux carries a parent's peak RSS into a forked child's ``ru_maxrss`` (it is recorded at
# ``exec``), so children are started by this small launcher, begun before the benchmark builds
# its stores: each figure is then the command's own peak (at least the launcher's ~15 MiB).
LAUNCHER = """
import json, os, subprocess, sys, tempfile, time
for line in sys.stdin:
    job = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(job["argv"], stdout=out, stderr=err, env=job["env"], cwd=job["cwd"])
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        report = {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
            "code": code,
            "bytes": out.tell(),
            "stderr": err.read()[-2000:].decode(errors="replace") if code else "",
        }
    print(json.dumps(report), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"argv": argv, "env": dict(env), "cwd": str(cwd)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        report: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if report["code"] != 0:
            raise RuntimeError(f"{argv} exited {report['code']}: {report['stderr']}")
        return report

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def measure(
    launcher: Launcher, argv: list[str], env: Mapping[str, str], cwd: Path, repeat: int
) -> dict[str, Any]:
    reports = [launcher.run(argv, env, cwd) for _ in range(repeat)]
    walls = [r["wall"] for r in reports]
    return {
        "best_s": round(min(walls), 3),
        "median_s": round(statistics.median(walls), 3),
        "best_cpu_s": round(min(r["cpu"] for r in reports), 3),
        "peak_rss_mib": round(max(r["maxrss_kib"] for r in reports) / 1024, 1),
        "output_bytes": reports[-1]["bytes"],
        "runs": repeat,
    }


def okrsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "okrsync", *args]


def build_store(url: str, config_text: str) -> None:
    """Definitions from ``config_text``, then a value and a check time for every key result."""
    from pydantic import SecretStr
    from sqlalchemy import text

    from okrsync.app import App
    from okrsync.config import load_config_text
    from okrsync.plugins import load_registry
    from okrsync.settings import Settings

    registry = load_registry()
    config = load_config_text(
        config_text, registry.connectors, filename="bench.yaml", environ=OFFLINE_ENVIRON
    )
    app = App.open(Settings(database_url=SecretStr(url)), config=config, registry=registry)
    try:
        app.apply_definitions()
        checked = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        with app.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE key_results SET value = '42', progress = '0.42', status = 'on_track', "
                    "observed_at = :at, checked_at = :at"
                ),
                {"at": checked},
            )
    finally:
        app.engine.dispose()


@contextmanager
def pg_schema(pg_url: str) -> Iterator[str | None]:
    """A fresh schema's URL, or None (with the reason printed) when PostgreSQL is away."""
    from sqlalchemy import create_engine, text

    schema = f"startup_{uuid.uuid4().hex[:8]}"
    root = create_engine(pg_url)
    try:
        with root.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # no PostgreSQL here: keep the SQLite figures
        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
        root.dispose()
        yield None
        return
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with root.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        root.dispose()


def run(
    repeat: int, heavy_repeat: int, pg_url: str, baseline: Path | None, size: int = SIZE
) -> dict[str, Any]:
    from okrsync.examples import starter_config

    variants: dict[str, Path | None] = {"current": None}
    if baseline is not None:
        variants["baseline"] = baseline
    results: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "run_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size": size,
        "repeat": repeat,
        "heavy_repeat": heavy_repeat,
        "figures": {name: {} for name in variants},
    }
    launcher = Launcher()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="okrsync-startup-") as tmp:
        work = Path(tmp)
        starter = work / "starter.yaml"
        starter.write_text(starter_config())
        workload = work / "workload.yaml"
        workload.write_text(generate(size, TODAY).yaml)
        base_env = {**os.environ, **OFFLINE_ENVIRON}
        # An installed okrsync runs from compiled modules (pip compiles them): so do the
        # children, even where the shell sets PYTHONDONTWRITEBYTECODE (this machine's does,
        # and every process then compiled each of okrsync's modules again).
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        sources = [ROOT / "okrsync", ROOT / "connectors"]
        sources += [path / "okrsync" for path in variants.values() if path is not None]
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", *map(str, sources)],
            env=base_env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stores = {
            "starter_sqlite": (f"sqlite:///{work / 'starter.db'}", starter.read_text()),
            "workload_sqlite": (f"sqlite:///{work / 'workload.db'}", workload.read_text()),
        }
        for url, text_ in stores.values():
            build_store(url, text_)
        with pg_schema(pg_url) as pg:
            if pg is not None:
                build_store(pg, workload.read_text())
                stores["workload_postgresql"] = (pg, "")
            for variant, path in variants.items():
                env = dict(base_env)
                if path is not None:
                    env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
                figures = results["figures"][variant]
                print(f"[{variant}] --help", file=sys.stderr)
                figures["help"] = measure(launcher, okrsync("--help"), env, work, repeat)
                figures["validate_starter"] = measure(
                    launcher, okrsync("validate", "-c", str(starter)), env, work, repeat
                )
                print(f"[{variant}] validate {size:,}", file=sys.stderr)
                figures["validate_workload"] = measure(
                    launcher, okrsync("validate", "-c", str(workload)), env, work, heavy_repeat
                )
                for name, (url, _) in stores.items():
                    print(f"[{variant}] status --json {name}", file=sys.stderr)
                    store_env = {**env, "OKRSYNC_DATABASE_URL": url}
                    times = repeat if name.startswith("starter") else heavy_repeat
                    figures[f"status_{name}"] = measure(
                        launcher, okrsync("status", "--json"), store_env, work, times
                    )
    launcher.close()
    results["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return results


def labels(size: int) -> dict[str, str]:
    return {
        "help": "`okrsync --help`",
        "validate_starter": "`okrsync validate`, starter config",
        "validate_workload": f"`okrsync validate`, {size:,} key results",
        "status_starter_sqlite": "`okrsync status --json`, starter store (SQLite)",
        "status_workload_sqlite": f"`okrsync status --json`, {size:,} key results (SQLite)",
        "status_workload_postgresql": (
            f"`okrsync status --json`, {size:,} key results (PostgreSQL)"
        ),
    }


def _verdict(name: str, figure: dict[str, Any], size: int) -> str:
    target = TARGETS.get(name)
    if target is None or ("workload" in name and size != SIZE):
        return ""  # the targets at scale are set for 10,000 key results
    met = figure["best_s"] < target
    words = f"< {target:g} s"
    if name.startswith("status_workload"):
        met = met and figure["peak_rss_mib"] < STATUS_MIB
        words += f", < {STATUS_MIB:g} MiB"
    return f"{words}: {'met' if met else 'not met'}"


def _incomparable(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the older run did less work: it printed under half of what the newer did."""
    old, new = before.get("output_bytes"), after.get("output_bytes")
    return old is not None and new is not None and old * 2 < new


def markdown(results: dict[str, Any]) -> str:
    current = results["figures"]["current"]
    baseline = results["figures"].get("baseline")
    machine = results["machine"]
    load = results.get("load_average", [])
    lines = [
        "## Start-up and `status --json` (issue 13)",
        "",
        f"Machine: {machine['cores']} cores, Python {machine['python']}, {machine['platform']}; "
        f"run {results['run_at']}"
        + (
            f", load average {load[0]:.1f} at the start and {load[1]:.1f} at the end"
            if load
            else ""
        )
        + ". Each figure is a fresh `python -m okrsync` process: best and median wall time of "
        f"{results['repeat']} runs ({results['heavy_repeat']} at {results['size']:,} key "
        "results), the best CPU time (user + system) of the child, and its peak RSS. "
        "Modules are compiled to bytecode before the runs, as an install does. "
        "On a shared machine the CPU time is the steadier figure. "
        "Command: `python -m benchmarks.startup" + (" --baseline DIR`" if baseline else "`") + ".",
        "",
    ]
    if baseline:
        lines += [
            "| command | before: best s · CPU s · MiB | after: best s | median s | CPU s | "
            "peak RSS MiB | CPU speed-up | target (best wall) |",
            "|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| command | best s | median s | CPU s | peak RSS MiB | target (best wall) |",
            "|---|---|---|---|---|---|",
        ]
    size = results["size"]
    named = labels(size)
    for name, label in named.items():
        figure = current.get(name)
        if figure is None:
            continue
        verdict = _verdict(name, figure, size)
        after = (
            f"{figure['best_s']:.3f} | {figure['median_s']:.3f} | {figure['best_cpu_s']:.3f} | "
            f"{figure['peak_rss_mib']:.0f}"
        )
        if baseline and name in baseline and not _incomparable(baseline[name], figure):
            before = baseline[name]
            speed = before["best_cpu_s"] / figure["best_cpu_s"] if figure["best_cpu_s"] else 0.0
            lines.append(
                f"| {label} | {before['best_s']:.3f} · {before['best_cpu_s']:.3f} · "
                f"{before['peak_rss_mib']:.0f} | {after} | {speed:.1f}x | {verdict} |"
            )
        elif baseline:
            lines.append(f"| {label} | not comparable | {after} | — | {verdict} |")
        else:
            lines.append(f"| {label} | {after} | {verdict} |")
    judged = [n for n in TARGETS if n in current and _verdict(n, current[n], size)]
    met = [n for n in judged if _verdict(n, current[n], size).endswith(": met")]
    missed = [n for n in judged if n not in met]
    lines += [
        "",
        f"Targets met: {len(met)} of {len(met) + len(missed)}"
        + (f"; not met: {'; '.join(named[n] for n in missed)}." if missed else "."),
    ]
    incomparable = [
        f"{named[n]} ({baseline[n]['output_bytes']:,} bytes before, "
        f"{current[n]['output_bytes']:,} after)"
        for n in named
        if baseline and n in baseline and n in current and _incomparable(baseline[n], current[n])
    ]
    if incomparable:
        lines.append(
            "Not comparable, the older okrsync having printed less than half the output (it did "
            f"not read the same store): {'; '.join(incomparable)}."
        )
    if "status_workload_postgresql" not in current:
        lines.append("PostgreSQL was not reachable in this run: its row is missing.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs of the quick commands")
    parser.add_argument("--heavy-repeat", type=int, default=3, help="runs at --size")
    parser.add_argument("--size", type=int, default=SIZE, help="key results in the workload")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--baseline", type=Path, help="an older export to compare with")
    parser.add_argument("--out", type=Path, default=HERE, help="where the two files go")
    args = parser.parse_args(argv)
    results = run(args.repeat, args.heavy_repeat, args.pg_url, args.baseline, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "STARTUP.md").write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
