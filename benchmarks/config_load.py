"""Config loading time: the YAML reader with libyaml's composer and with PyYAML's pure-Python one,
PyYAML's own ``safe_load`` (no lines, no guards) as the floor, and all of ``load_config_text``.

``python -m benchmarks.config_load --sizes 2000,10000`` prints, per size of a generated config
(:mod:`benchmarks.workload`), the best of ``--repeat`` runs of each, and the load average at the
start and the end (the machine is shared). The reader okrsync uses is ``read_yaml`` with libyaml;
ruamel's round-trip reader, which it replaced, took 99 s at 10,000 key results where libyaml took
1.8 s (same machine and minutes, load average 6).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import yaml

from benchmarks.workload import OFFLINE_ENVIRON, generate
from okrsync.config import load_config_text, read_yaml, yaml_source
from okrsync.plugins import load_registry


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - began)
    return best, result


def read_without_libyaml(text: str) -> yaml_source.YamlDocument:
    fast = yaml_source._LOADER
    yaml_source._LOADER = yaml.SafeLoader
    try:
        return read_yaml(text, filename="bench.yaml")
    finally:
        yaml_source._LOADER = fast


def measure(size: int, repeat: int) -> dict[str, float]:
    text = generate(size, date(2026, 11, 1)).yaml
    connectors = load_registry().connectors
    floor, _ = best_of(repeat, lambda: yaml.load(text, Loader=yaml.CSafeLoader))
    fast, fast_doc = best_of(repeat, lambda: read_yaml(text, filename="bench.yaml"))
    slow, slow_doc = best_of(1, lambda: read_without_libyaml(text))
    if (fast_doc.data, fast_doc.lines) != (slow_doc.data, slow_doc.lines):
        raise SystemExit(f"size {size}: the two composers read the config differently")
    load, _ = best_of(
        repeat,
        lambda: load_config_text(text, connectors, filename="bench.yaml", environ=OFFLINE_ENVIRON),
    )
    return {
        "bytes": len(text),
        "safe_load": floor,
        "libyaml": fast,
        "pure": slow,
        "load_config_text": load,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,10000", help="key results per config")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    print(
        "key results | bytes | yaml.safe_load (C) s | read_yaml libyaml s | "
        "read_yaml pure-Python s | load_config_text s"
    )
    for size in (int(part) for part in args.sizes.split(",")):
        row = measure(size, args.repeat)
        print(
            f"{size:>11,} | {row['bytes']:>9,} | {row['safe_load']:>20.3f} | "
            f"{row['libyaml']:>19.3f} | {row['pure']:>23.3f} | {row['load_config_text']:>18.3f}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
