"""Config loading time: YAML read by libyaml against ruamel alone, and all of ``load_config_text``.

``python -m benchmarks.config_load --sizes 2000,10000`` prints, per size of a generated config
(:mod:`benchmarks.workload`), the best of ``--repeat`` runs of: ``read_yaml`` (libyaml, what
okrsync uses), ``read_yaml_with_ruamel`` (the pure-Python reader it used before, still the
fallback), and the whole ``load_config_text`` (YAML, references, checks). The two readers'
results are compared, so a figure is only printed for documents they read alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from benchmarks.workload import OFFLINE_ENVIRON, generate
from okrsync.config import load_config_text, read_yaml
from okrsync.config.yaml_source import read_yaml_with_ruamel
from okrsync.plugins import load_registry


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - began)
    return best, result


def measure(size: int, repeat: int) -> dict[str, float]:
    text = generate(size, date(2026, 11, 1)).yaml
    connectors = load_registry().connectors
    fast, fast_doc = best_of(repeat, lambda: read_yaml(text, filename="bench.yaml"))
    slow, slow_doc = best_of(1, lambda: read_yaml_with_ruamel(text, filename="bench.yaml"))
    if (fast_doc.data, fast_doc.lines) != (slow_doc.data, slow_doc.lines):
        raise SystemExit(f"size {size}: libyaml and ruamel read the config differently")
    load, _ = best_of(
        repeat,
        lambda: load_config_text(text, connectors, filename="bench.yaml", environ=OFFLINE_ENVIRON),
    )
    return {"bytes": len(text), "libyaml": fast, "ruamel": slow, "load_config_text": load}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,10000", help="key results per config")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    print("key results | bytes | read_yaml libyaml s | ruamel s | speed-up | load_config_text s")
    for size in (int(part) for part in args.sizes.split(",")):
        row = measure(size, args.repeat)
        print(
            f"{size:>11,} | {row['bytes']:>9,} | {row['libyaml']:>19.3f} | {row['ruamel']:>8.2f}"
            f" | {row['ruamel'] / row['libyaml']:>7.1f}x | {row['load_config_text']:>18.3f}"
        )


if __name__ == "__main__":
    main()
