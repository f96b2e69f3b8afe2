"""What sharing a call budget through PostgreSQL costs per request (issue 12).

Run with ``python -m benchmarks.budget_ledger`` (PostgreSQL at 127.0.0.1:5432, database
``test``). Measured, each in a fresh schema, with a pace far above the requests made so that
nothing waits for the pace and only the bookkeeping is timed:

* ``memory``: a ``CallBudget`` slot with its bucket in memory (the single-node path);
* ``postgres_sequential``: one request at a time, each slot one round trip to the store;
* ``postgres_concurrent``: ``CONCURRENCY`` requests at a time on one budget, whose waiting
  callers share one round trip (what ``transactions per request`` shows);
* ``postgres_three_replicas``: three budgets on three engines, one bucket, all at once: the row
  lock queues them;
* ``hold_only``: a budget without a pace (only the vendor's holds), whose hold is read at most
  once a second.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import create_engine, text

from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.ledger import ConnectionBudgets
from okrsync.store.budget_ledger import PostgresLedger
from okrsync.store.db import make_engine, upgrade

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUESTS = 2000
CONCURRENCY = 8
FAST = BudgetPolicy(max_concurrency=CONCURRENCY, requests_per_second=1e6, burst=1_000_000)


async def timed(requests: int, run: Callable[[], Awaitable[None]]) -> float:
    """Microseconds per request of ``requests`` requests made by ``run``."""
    began = time.perf_counter()
    await run()
    return (time.perf_counter() - began) / requests * 1e6


async def sequential(budget: CallBudget, n: int) -> list[float]:
    """Each slot's latency, microseconds."""
    latencies = []
    for _ in range(n):
        began = time.perf_counter()
        async with budget.slot():
            pass
        latencies.append((time.perf_counter() - began) * 1e6)
    return latencies


async def concurrent(budgets: list[CallBudget], n: int) -> None:
    per = n // (len(budgets) * CONCURRENCY)

    async def worker(budget: CallBudget) -> None:
        for _ in range(per):
            async with budget.slot():
                await asyncio.sleep(0)  # the request itself: gives the others a turn

    await asyncio.gather(*(worker(b) for b in budgets for _ in range(CONCURRENCY)))


async def measure(url: str) -> dict[str, object]:
    engines = [make_engine(url) for _ in range(3)]
    ledgers = [PostgresLedger(engine) for engine in engines]
    budgets = ConnectionBudgets("bench", ledgers[0])
    results: dict[str, object] = {}
    try:
        memory = await sequential(CallBudget(FAST), REQUESTS)
        results["memory_us"] = round(statistics.median(memory), 1)

        shared = CallBudget(FAST, shared=budgets.bucket("sequential"))
        await sequential(shared, 50)  # warm the pool
        before = ledgers[0].transactions
        latencies = await sequential(shared, REQUESTS)
        results["postgres_sequential_us"] = {
            "median": round(statistics.median(latencies), 1),
            "p95": round(statistics.quantiles(latencies, n=20)[-1], 1),
            "transactions_per_request": (ledgers[0].transactions - before) / REQUESTS,
        }

        one = CallBudget(FAST, shared=budgets.bucket("concurrent"))
        before = ledgers[0].transactions
        per_request = await timed(REQUESTS, lambda: concurrent([one], REQUESTS))
        results["postgres_concurrent"] = {
            "us_per_request": round(per_request, 1),
            "transactions_per_request": round((ledgers[0].transactions - before) / REQUESTS, 3),
        }

        three = [
            CallBudget(FAST, shared=ConnectionBudgets("bench", ledger).bucket("replicas"))
            for ledger in ledgers
        ]
        before = sum(ledger.transactions for ledger in ledgers)
        per_request = await timed(REQUESTS, lambda: concurrent(three, REQUESTS))
        results["postgres_three_replicas"] = {
            "us_per_request": round(per_request, 1),
            "transactions_per_request": round(
                (sum(ledger.transactions for ledger in ledgers) - before) / REQUESTS, 3
            ),
        }

        holds = CallBudget(BudgetPolicy(), shared=budgets.bucket("holds"))
        before = ledgers[0].transactions
        latencies = await sequential(holds, REQUESTS)
        results["hold_only_us"] = {
            "median": round(statistics.median(latencies), 1),
            "transactions": ledgers[0].transactions - before,
        }
    finally:
        for ledger in ledgers:
            await ledger.aclose()
        for engine in engines:
            engine.dispose()
    return results


def main() -> None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        upgrade(make_engine(url))
        print(json.dumps(asyncio.run(measure(url)), indent=2))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
