"""From readings to a key result's value, progress and status. Pure: no I/O, no clock.

A key result reads one metric or an expression over several. Each reading it used is kept as
provenance, so ``okrsync explain`` can say where the number came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from okrsync.domain.progress import progress
from okrsync.domain.status import elapsed_fraction, status_for
from okrsync.errors import EvaluationError
from okrsync.sdk.models import Reading, Status

if TYPE_CHECKING:
    from okrsync.config import CycleDef, KeyResultDef


@dataclass(frozen=True)
class MetricReading:
    """A reading as one metric saw it: the metric name, its connection and the answer."""

    metric: str
    connection: str
    reading: Reading
    run_id: str

    def provenance(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "connection": self.connection,
            "query": self.reading.query_text,
            "value": None if self.reading.value is None else str(self.reading.value),
            "fetched_at": self.reading.fetched_at.isoformat(),
            "digest": self.reading.raw_digest,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class Evaluation:
    value: Decimal | None
    progress: Decimal | None
    status: Status
    provenance: tuple[dict[str, Any], ...] = field(default=())
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


def evaluate(
    kr: KeyResultDef,
    cycle: CycleDef,
    readings: Mapping[str, MetricReading],
    at: datetime,
) -> Evaluation:
    """Compute ``kr`` from the readings of its metrics (keyed by metric name) at time ``at``."""
    used = [readings[name] for name in sorted(kr.metric_names()) if name in readings]
    provenance = tuple(r.provenance() for r in used)
    missing = sorted(kr.metric_names() - readings.keys())
    failed = [r for r in used if not r.reading.ok]
    if missing or failed:
        reasons = [f"metric {name!r} was not fetched" for name in missing]
        for r in failed:
            error = r.reading.error
            reasons.append(str(error) if error else f"metric {r.metric!r} returned no value")
        return Evaluation(None, None, Status.NO_DATA, provenance, "; ".join(reasons))
    values = {r.metric: r.reading.value for r in used if r.reading.value is not None}
    try:
        value = kr.value.evaluate(values) if kr.value is not None else values[kr.metric or ""]
    except EvaluationError as exc:
        return Evaluation(None, None, Status.NO_DATA, provenance, f"key result {kr.id!r}: {exc}")
    done = progress(kr.target_spec, value)
    status = status_for(kr.kind, done, elapsed_fraction(cycle.start, cycle.end, at))
    return Evaluation(value, done, status, provenance)
