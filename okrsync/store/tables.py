"""The store's tables. Definitions come from YAML and are upserted; history is append-only.

Removed definitions are archived (``archived_at`` set), never deleted, so their measurements stay
readable. Values are exact Decimals (see :mod:`okrsync.store.types`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from okrsync.domain.statuses import ConnectionStatus, DeliveryStatus, RunStatus
from okrsync.store.types import DecimalText, UtcDateTime


def _decimal(**kw: Any) -> Any:
    return Field(default=None, sa_type=DecimalText, **kw)


def _when(**kw: Any) -> Any:
    return Field(default=None, sa_type=UtcDateTime, **kw)


class CycleRow(SQLModel, table=True):
    __tablename__ = "cycles"

    id: str = Field(primary_key=True, max_length=100)
    start: date
    end: date
    archived_at: datetime | None = _when()
    # when it closed and its close-out record was written; set once (see engine.closeout)
    closed_at: datetime | None = _when()
    closed_by: str | None = Field(default=None, max_length=20)  # calendar | command


class ObjectiveRow(SQLModel, table=True):
    __tablename__ = "objectives"
    __table_args__ = (
        Index("ix_objectives_position", "position", "id"),
        Index("ix_objectives_cycle_position", "cycle_id", "position", "id"),
    )

    id: str = Field(primary_key=True, max_length=100)
    title: str
    cycle_id: str = Field(max_length=100, index=True)
    owner: str | None = None
    weight: Decimal = Field(default=Decimal(1), sa_type=DecimalText)
    description: str | None = None
    position: int = 0
    archived_at: datetime | None = _when()


class KeyResultRow(SQLModel, table=True):
    """A key result's definition and its current state (value, progress, status)."""

    __tablename__ = "key_results"
    __table_args__ = (Index("ix_key_results_objective_position", "objective_id", "position", "id"),)

    id: str = Field(primary_key=True, max_length=100)
    objective_id: str = Field(max_length=100, index=True)
    title: str
    kind: str = Field(max_length=20)
    start: Decimal | None = _decimal()
    target: Decimal | None = _decimal()
    low: Decimal | None = _decimal()
    high: Decimal | None = _decimal()
    unit: str | None = None
    decimals: int | None = None  # as configured; None: the unit's (okrsync.domain.numbers)
    weight: Decimal = Field(default=Decimal(1), sa_type=DecimalText)
    metric: str | None = None
    expression: str | None = None
    stale_after_seconds: int | None = None
    position: int = 0
    archived_at: datetime | None = _when()
    # state
    value: Decimal | None = _decimal()
    progress: Decimal | None = _decimal()
    status: str = Field(default="no_data", max_length=20)
    observed_at: datetime | None = _when()  # when the current value was first seen
    checked_at: datetime | None = _when()  # last time a source confirmed it
    last_measurement_id: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = _when()
    # the ``checked_at`` whose staleness the mirrors were told of; cleared when confirmed again
    stale_announced_for: datetime | None = _when()
    # check-ins and grading (see okrsync.engine.check_ins)
    stretch: Decimal | None = _decimal()
    confidence: int | None = None  # the latest check-in's, 1-10
    score: Decimal | None = _decimal()  # 0-1, okrsync.domain.grading
    source_value: Decimal | None = _decimal()  # the value the source last reported
    # while a manual value stands: since when, and what the source had reported then
    manual_since: datetime | None = _when()
    held_source_value: Decimal | None = _decimal()


class MeasurementRow(SQLModel, table=True):
    """One observed value of a key result; append-only. One row per change of value."""

    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_kr_observed", "key_result_id", "observed_at"),
        UniqueConstraint("request_key", name="uq_measurements_request_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key_result_id: str = Field(max_length=100)
    value: Decimal | None = _decimal()
    progress: Decimal | None = _decimal()
    status: str = Field(max_length=20)
    observed_at: datetime = Field(sa_type=UtcDateTime)
    run_id: str | None = Field(default=None, max_length=64)
    origin: str = Field(default="auto", max_length=10)  # auto | manual
    note: str | None = None
    # a check-in's Idempotency-Key (or a digest of its content): a repeat records nothing new
    request_key: str | None = Field(default=None, max_length=100)
    confidence: int | None = None  # a check-in's, 1-10
    author: str | None = Field(default=None, max_length=200)  # who checked in
    provenance: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))


class RunRow(SQLModel, table=True):
    """One execution of a sync pass: what was asked, how many calls, what failed."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started", "started_at", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    trigger: str = Field(max_length=20)
    started_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = _when()
    queries: int = 0
    api_calls: int = 0
    changed: int = 0
    errors: int = 0
    status: str = Field(default=RunStatus.RUNNING.value, max_length=20)
    instance_id: str | None = Field(default=None, max_length=100)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class MirrorRow(SQLModel, table=True):
    """Where a key result is pushed; holds the external reference the sink created."""

    __tablename__ = "mirrors"

    key: str = Field(primary_key=True, max_length=200)
    key_result_id: str | None = Field(default=None, max_length=100, index=True)
    objective_id: str | None = Field(default=None, max_length=100)  # digest mirrors
    connection: str = Field(max_length=100)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    external_ref: str | None = None
    last_delivered_at: datetime | None = _when()
    last_scheduled_at: datetime | None = _when()  # the last tick of the mirror's own schedule
    archived_at: datetime | None = _when()
    # order: every delivery queued for this mirror takes the next sequence number (under this
    # row's lock, so numbers follow commit order); a push of an older one than it shows is refused
    last_seq: int = Field(default=0, sa_type=BigInteger)
    delivered_seq: int = Field(default=0, sa_type=BigInteger)
    # one push in flight per mirror, across replicas
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _when()


class DeliveryRow(SQLModel, table=True):
    """The outbox: one push of a key result's state to one mirror, delivered at least once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_mirror_seq", "mirror_key", "seq"),
        Index("ix_deliveries_status_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mirror_key: str = Field(max_length=200, index=True)
    seq: int = Field(default=0, sa_type=BigInteger)  # the mirror's sequence: recorded order
    key_result_id: str | None = Field(default=None, max_length=100)
    objective_id: str | None = Field(default=None, max_length=100)  # digest deliveries
    measurement_id: int | None = None
    idempotency_key: str = Field(max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=20)
    attempts: int = 0
    created_at: datetime = Field(sa_type=UtcDateTime)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    delivered_at: datetime | None = _when()
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _when()
    last_error: str | None = None
    external_ref: str | None = None


class ConnectionStateRow(SQLModel, table=True):
    """Health of one connection: ok, failing, paused for quota, credentials rejected."""

    __tablename__ = "connection_states"

    name: str = Field(primary_key=True, max_length=100)
    type: str = Field(max_length=50)
    status: str = Field(default=ConnectionStatus.UNKNOWN.value, max_length=30)
    consecutive_failures: int = 0
    last_ok_at: datetime | None = _when()
    last_error_at: datetime | None = _when()
    last_error: str | None = None
    paused_until: datetime | None = _when()


class MetricStateRow(SQLModel, table=True):
    """When each metric last ran, so a restarted daemon knows what it missed."""

    __tablename__ = "metric_states"

    name: str = Field(primary_key=True, max_length=100)
    last_run_at: datetime | None = _when()
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _when()


class MetricDefinitionRow(SQLModel, table=True):
    """A metric's definition as applied last (connection, query, schedule), for ``plan``."""

    __tablename__ = "metric_definitions"

    name: str = Field(primary_key=True, max_length=100)
    connection: str = Field(max_length=100)
    query: str
    schedule: str | None = Field(default=None, max_length=200)
    applied_at: datetime = Field(sa_type=UtcDateTime)


class ConnectionDefinitionRow(SQLModel, table=True):
    """A connection's non-secret fields as applied last, for ``plan``; secrets never stored."""

    __tablename__ = "connection_definitions"

    name: str = Field(primary_key=True, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    applied_at: datetime = Field(sa_type=UtcDateTime)


class WorkItemRow(SQLModel, table=True):
    """One tracker item (issue, PR, epic) linked to a key result or objective by a ``work`` entry.

    ``work_key`` names the config entry (owner, connection, query); an item that leaves its query
    keeps its row with ``unlinked_at`` set, like archived definitions.
    """

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("work_key", "item_key", name="uq_work_items_entry_item"),
        Index("ix_work_items_key_result", "key_result_id", "unlinked_at"),
        Index("ix_work_items_objective", "objective_id", "unlinked_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    work_key: str = Field(max_length=200)
    key_result_id: str | None = Field(default=None, max_length=100)
    objective_id: str | None = Field(default=None, max_length=100)
    connection: str = Field(max_length=100)
    item_key: str = Field(max_length=200)
    title: str
    state: str = Field(max_length=20)  # okrsync.sdk.work.WorkState
    url: str | None = None
    assignee: str | None = None
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    updated_at: datetime | None = _when()
    done_at: datetime | None = _when()
    first_linked_at: datetime = Field(sa_type=UtcDateTime)
    unlinked_at: datetime | None = _when()
    # the backlink okrsync keeps on the item (remote link id, label, attachment id) and a digest
    # of what it shows, so it is rewritten only on a material change
    backlink_ref: str | None = None
    backlink_shown: str | None = Field(default=None, max_length=100)
    backlink_at: datetime | None = _when()


class WorkReadRow(SQLModel, table=True):
    """Where each ``work`` entry's reads stand: the next incremental read asks for changes since
    ``read_since``; ``reconciled_at`` is the last ids-only pass that finds items gone."""

    __tablename__ = "work_reads"

    work_key: str = Field(primary_key=True, max_length=200)
    connection: str = Field(max_length=100)
    read_since: datetime | None = _when()
    read_at: datetime | None = _when()
    reconciled_at: datetime | None = _when()
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _when()


class CycleCloseoutRow(SQLModel, table=True):
    """A closed cycle's frozen record: one row per key result and per objective, written once
    in the transaction that closes the cycle, never changed afterwards."""

    __tablename__ = "cycle_closeouts"
    __table_args__ = (
        UniqueConstraint("cycle_id", "subject", "subject_id", name="uq_cycle_closeouts_subject"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(max_length=100)
    subject: str = Field(max_length=20)  # key_result | objective
    subject_id: str = Field(max_length=100)
    objective_id: str = Field(max_length=100)
    title: str
    kind: str | None = Field(default=None, max_length=20)
    position: int = 0
    weight: Decimal = Field(default=Decimal(1), sa_type=DecimalText)
    unit: str | None = None
    start: Decimal | None = _decimal()
    target: Decimal | None = _decimal()
    value: Decimal | None = _decimal()
    progress: Decimal | None = _decimal()
    status: str = Field(max_length=20)
    score: Decimal | None = _decimal()
    confidence: int | None = None
    closed_at: datetime = Field(sa_type=UtcDateTime)


class ApiTokenRow(SQLModel, table=True):
    """An API token (``okrsync token create``): its SHA-256, never the token itself."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("name", name="uq_api_tokens_name"),
        UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=20)  # the token's first characters, shown to tell tokens apart
    token_sha256: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)
    last_used_at: datetime | None = _when()
    revoked_at: datetime | None = _when()


class ReminderRow(SQLModel, table=True):
    """A check-in reminder claimed for one tick: its primary key is the claim, so however many
    replicas (or restarts) reach the tick, one of them sends it (okrsync.engine.reminders)."""

    __tablename__ = "reminders_sent"

    reminder: str = Field(primary_key=True, max_length=64)  # SHA-256 of connection/channel/owner
    tick: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    claimed_by: str = Field(max_length=100)
    claimed_at: datetime = Field(sa_type=UtcDateTime)
    key_results: int = 0  # how many the message listed (0: nobody needed reminding)
