"""The prometheus source against a REAL Prometheus server (Debian package ``prometheus``).

The server is started on a free loopback port with a temporary storage directory, scraping its
own ``/metrics`` every second; the test waits for the first sample, then queries it through the
connector. Skipped only when ``/usr/bin/prometheus`` is not installed
(``apt-get install -y --no-install-recommends prometheus``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.prometheus import PrometheusConnection, PrometheusQuery, PrometheusSource
from okrsync.errors import QueryError, VendorResponseError
from okrsync.sdk.models import CycleWindow, Query
from tests.binaries import require_binary

BINARY = Path("/usr/bin/prometheus")
READY_TIMEOUT = 20.0
CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))

ABSENT = "/usr/bin/prometheus is absent: apt-get install -y --no-install-recommends prometheus"


@pytest.fixture(autouse=True)
def _real_prometheus() -> None:
    require_binary(BINARY, ABSENT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _first_sample(url: str) -> bool:
    try:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="self"}'}, timeout=2)
        result: list[Any] = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(result)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("prometheus")
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: self\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(BINARY),
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={work / 'data'}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _first_sample(url):
            if process.poll() is not None:
                pytest.fail(
                    f"prometheus exited with {process.returncode}; see {work}/prometheus.log"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus had no sample after {READY_TIMEOUT:.0f}s")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log.close()


@pytest.fixture
async def source(prometheus_url: str) -> AsyncIterator[PrometheusSource]:
    config = PrometheusConnection.model_validate({"url": prometheus_url, "max_retries": 1})
    src = PrometheusSource("prom-real", config)
    yield src
    await src.aclose()


def query(text: str, metric: str = "availability", **spec: Any) -> Query[PrometheusQuery]:
    model = PrometheusQuery.model_validate({"query": text, **spec})
    return Query(Query.make_key("prom-real", model, CYCLE), "prom-real", (metric,), model, CYCLE)


async def test_vector_query(source: PrometheusSource) -> None:
    reading = await source.fetch_one(query('up{job="self"}'))
    assert reading.value == Decimal(1)
    count = await source.fetch_one(query('count(up{job="self"})'))
    assert count.value == Decimal(1)


async def test_scalar_query(source: PrometheusSource) -> None:
    reading = await source.fetch_one(query('scalar(up{job="self"}) * 300 + 0.5'))
    assert reading.value == Decimal("300.5")


async def test_several_series_and_aggregate(source: PrometheusSource) -> None:
    text = '{__name__=~"up|scrape_samples_scraped", job="self"}'
    (failed,) = await source.fetch([query(text)])
    assert isinstance(failed.error, QueryError) and "2 series" in str(failed.error)
    reading = await source.fetch_one(query(text, aggregate="min"))
    assert reading.value == Decimal(1)


async def test_empty_vector(source: PrometheusSource) -> None:
    (failed,) = await source.fetch([query('up{job="nonexistent"}')])
    assert isinstance(failed.error, VendorResponseError) and "no series matched" in str(
        failed.error
    )


async def test_bad_query_is_a_query_error(source: PrometheusSource) -> None:
    (failed,) = await source.fetch([query("sum(rate(up[5m])")])
    assert isinstance(failed.error, QueryError) and failed.error.status_code == 400
    text = str(failed.error)
    assert "connection 'prom-real', metric 'availability'" in text and "bad_data" in text
    assert source.api_calls == 1  # a 400 is not retried
