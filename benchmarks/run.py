"""``python -m benchmarks.run --sizes 100,1000,10000`` (or ``--smoke``): every figure of issue #8.

Each size runs in its own process (``benchmarks.measure``) so peak memory is that size's own;
then the store benchmark; then ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.

``--store`` (repeatable) names the stores: ``sqlite`` (a new file, the default) or a PostgreSQL
server URL, where each size gets a schema of its own, dropped after (test data is never
touched). The first store gets every figure; each other store its cold and warm refreshes
(``other_stores``), and ``recording`` sets every store's cold and warm times beside the floors.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.floor import floor_model
from benchmarks.measure import STORE_HELP, store_name
from benchmarks.report import load_average, load_baseline, machine, summarise, write
from benchmarks.store_bench import PG_URL, run_store
from benchmarks.workload import generate

HERE = Path(__file__).parent


def run_size(
    size: int,
    latency: float,
    idle: float,
    samples: int,
    workdir: Path,
    profile: bool,
    store: str = "sqlite",
    naive: bool = True,
) -> dict[str, Any]:
    name = store_name(store)
    out = workdir / (f"size-{size}.json" if name == "sqlite" else f"size-{size}-{name}.json")
    command = [
        sys.executable,
        "-m",
        "benchmarks.measure",
        "--size",
        str(size),
        "--latency",
        str(latency),
        "--idle-seconds",
        str(idle),
        "--freshness-samples",
        str(samples),
        "--out",
        str(out),
        "--store",
        store,
    ]
    if not naive:
        command.append("--no-naive")
    if profile:
        command += ["--profile", str(workdir / f"profile-{size}.prof")]
    subprocess.run(command, check=True, cwd=HERE.parent)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--smoke", action="store_true", help="~50 key results, a few seconds")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--measurements", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    parser.add_argument(
        "--reuse", type=Path, help="a directory of size-N.json from an earlier run to report"
    )
    parser.add_argument("--store", action="append", help=STORE_HELP + "; repeatable")
    args = parser.parse_args(argv)
    stores: list[str] = args.store or ["sqlite"]
    sizes = [50] if args.smoke else [int(s) for s in args.sizes.split(",")]
    measurements = 10_000 if args.smoke else args.measurements
    load_start = load_average()
    results: dict[str, Any] = {
        "machine": machine(),
        "latency": args.latency,
        "command": "python -m benchmarks.run "
        + ("--smoke" if args.smoke else f"--sizes {','.join(map(str, sizes))}")
        + "".join(f" --store {store_name(s)}" for s in stores),
        "refresh_store": store_name(stores[0]),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
        for size in sizes:
            largest = size == max(sizes)
            earlier = args.reuse / f"size-{size}.json" if args.reuse else None
            if earlier is not None and earlier.exists():
                reused: dict[str, Any] = json.loads(earlier.read_text())
                results["sizes"].append(reused)
                print(json.dumps(summarise(reused)), flush=True)
                continue
            results["sizes"].append(
                run_size(
                    size,
                    args.latency,
                    (2.0 if args.smoke else 10.0) if largest else 0.0,
                    3 if args.smoke else 20,
                    Path(tmp),
                    args.profile and largest,
                )
            )
            print(json.dumps(summarise(results["sizes"][-1])), flush=True)
        others: dict[str, list[dict[str, Any]]] = {}
        for store in stores[1:]:
            for size in sizes:
                measured = run_size(size, args.latency, 0.0, 0, Path(tmp), False, store, False)
                others.setdefault(store_name(store), []).append(measured)
                print(json.dumps(recording_row(measured, args.latency)), flush=True)
    if others:
        results["other_stores"] = others
    results["recording"] = [
        recording_row(size, args.latency)
        for size in [*results["sizes"], *(s for found in others.values() for s in found)]
    ]
    print(json.dumps(results["recording"], indent=1), flush=True)
    pg = next((s for s in stores if store_name(s) == "postgresql"), PG_URL)
    results["store"] = run_store(measurements, pg)
    print(json.dumps(results["store"]), flush=True)
    results["load_average"] = {"start": load_start, "end": load_average()}
    print(write(results, args.output, load_baseline()))
    return results


def recording_row(size: dict[str, Any], latency: float) -> dict[str, Any]:
    """A size's cold and warm refreshes on its store against the floors (from the current
    model, as the report computes them), and the ratios."""
    floor = floor_model(generate(size["size"], date.today()), latency)["floor"]
    return {
        "store": size.get("store", "sqlite"),
        "size": size["size"],
        "cold_seconds": size["cold"]["seconds"],
        "cold_floor": floor["cold"],
        "cold_over_floor": size["cold"]["seconds"] / floor["cold"],
        "cold_cpu_main_thread": size["cold"]["cpu_main_thread"],
        "warm_seconds": size["warm"]["seconds"],
        "warm_floor": floor["warm"],
        "warm_over_floor": size["warm"]["seconds"] / floor["warm"],
        "changed_cold": size["cold"]["changed"],
        "errors_cold": size["cold"]["errors"],
    }


if __name__ == "__main__":
    main()
