"""The shared state of call budgets: one row per connection and bucket (PostgreSQL replicas).

Replicas on one PostgreSQL store take their turns from these rows (see
:mod:`okrsync.store.budget_ledger`), so a connection's vendor limit is one limit for all of them.
Times are seconds since the epoch on the database's clock, the one clock every replica shares;
``sends`` is a sliding window's recent sends as JSON (:func:`okrsync.sdk.pace.encode_sends`).
A SQLite store never writes here: one daemon per file keeps its budgets in memory.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class CallBudgetRow(SQLModel, table=True):
    __tablename__ = "call_budgets"

    connection: str = Field(primary_key=True, max_length=100)
    bucket: str = Field(primary_key=True, max_length=200)
    tokens: float | None = None  # a token bucket's balance (None: full)
    refilled_at: float | None = None
    sends: str | None = None
    hold_until: float | None = None  # nobody sends before this (learnt from the vendor)
