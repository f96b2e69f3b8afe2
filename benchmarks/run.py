"""``python -m benchmarks.run --sizes 100,1000,10000`` (or ``--smoke``): every figure of issue #8.

Each size runs in its own process (``benchmarks.measure``) so peak memory is that size's own;
then the store benchmark; then ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import load_average, load_baseline, machine, summarise, write
from benchmarks.store_bench import run_store

HERE = Path(__file__).parent


def run_size(
    size: int, latency: float, idle: float, samples: int, workdir: Path, profile: bool
) -> dict[str, Any]:
    out = workdir / f"size-{size}.json"
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
    ]
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
    args = parser.parse_args(argv)
    sizes = [50] if args.smoke else [int(s) for s in args.sizes.split(",")]
    measurements = 10_000 if args.smoke else args.measurements
    load_start = load_average()
    results: dict[str, Any] = {
        "machine": machine(),
        "latency": args.latency,
        "command": "python -m benchmarks.run "
        + ("--smoke" if args.smoke else f"--sizes {','.join(map(str, sizes))}"),
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
    results["store"] = run_store(measurements)
    print(json.dumps(results["store"]), flush=True)
    results["load_average"] = {"start": load_start, "end": load_average()}
    print(write(results, args.output, load_baseline()))
    return results


if __name__ == "__main__":
    main()
