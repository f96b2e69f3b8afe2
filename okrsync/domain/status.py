"""Whether a key result (or an objective) is keeping pace with its cycle.

Status compares progress with the fraction of the cycle that has elapsed: halfway through the
quarter, a key result at 0.45 is on track and one at 0.2 is off track. Everything is exact
``Decimal`` arithmetic and takes the moment explicitly, so a status never depends on when a test
happens to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext

from okrsync.domain.progress import ENGINE_CONTEXT, ONE, ZERO, KRKind, display_progress
from okrsync.sdk.models import Status

ON_TRACK_GAP = Decimal("0.10")
"""Progress may trail elapsed time by this much and still be on track."""

AT_RISK_GAP = Decimal("0.25")
"""Trailing by more than ``ON_TRACK_GAP`` and at most this much is at risk; beyond, off track."""

_HALF = Decimal("0.5")
_MICROSECOND = timedelta(microseconds=1)


def elapsed_fraction(cycle_start: date, cycle_end: date, at: datetime) -> Decimal:
    """Fraction of the cycle elapsed at ``at``, clamped to [0, 1].

    The cycle covers whole UTC days: from ``cycle_start`` 00:00 UTC up to the end of
    ``cycle_end`` (``cycle_end + 1 day`` 00:00 UTC), so a cycle whose start and end are the same
    day lasts 24 hours and the last day counts in full. The fraction is computed from integer
    microseconds, so it is exact up to the 28 significant digits of the engine context.

    ``at`` must be timezone-aware: a naive datetime has no defined instant, and guessing would
    shift statuses by the server's UTC offset.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("elapsed_fraction needs a timezone-aware datetime")
    if cycle_end < cycle_start:
        raise ValueError(f"cycle ends ({cycle_end}) before it starts ({cycle_start})")
    begin = datetime.combine(cycle_start, time(), tzinfo=UTC)
    end = datetime.combine(cycle_end + timedelta(days=1), time(), tzinfo=UTC)
    elapsed = at.astimezone(UTC) - begin
    if elapsed <= timedelta(0):
        return ZERO
    total = end - begin
    if elapsed >= total:
        return ONE
    with localcontext(ENGINE_CONTEXT):
        return Decimal(elapsed // _MICROSECOND) / Decimal(total // _MICROSECOND)


def status_for(kind: KRKind, progress: Decimal | None, elapsed: Decimal) -> Status:
    """Status of a key result of ``kind`` with ``progress`` when ``elapsed`` of its cycle is gone.

    * no progress (no reading yet, or the last one failed): ``NO_DATA``
    * increase / decrease: by how much progress trails the elapsed fraction (``elapsed -
      progress``): at most ``ON_TRACK_GAP`` is on track, at most ``AT_RISK_GAP`` at risk, more
      is off track. Being ahead of pace is a negative gap, hence on track.
    * stay_above / stay_below / stay_between: the line is held (progress 1) or it is not; there
      is no pace to keep, so there is no "at risk".
    * milestone: done is on track; not done is fine in the first half of the cycle, at risk in
      the second half, and off track once the cycle is over.
    """
    if progress is None:
        return Status.NO_DATA
    match kind:
        case KRKind.INCREASE | KRKind.DECREASE:
            return _pace_status(progress, elapsed)
        case KRKind.STAY_ABOVE | KRKind.STAY_BELOW | KRKind.STAY_BETWEEN:
            return Status.ON_TRACK if progress >= ONE else Status.OFF_TRACK
        case KRKind.MILESTONE:
            if progress >= ONE:
                return Status.ON_TRACK
            if elapsed >= ONE:
                return Status.OFF_TRACK
            if elapsed >= _HALF:
                return Status.AT_RISK
            return Status.ON_TRACK


def _pace_status(progress: Decimal, elapsed: Decimal) -> Status:
    with localcontext(ENGINE_CONTEXT):
        gap = elapsed - progress
    if gap <= ON_TRACK_GAP:
        return Status.ON_TRACK
    if gap <= AT_RISK_GAP:
        return Status.AT_RISK
    return Status.OFF_TRACK


@dataclass(frozen=True)
class Weighted:
    """One contribution to a roll-up: a key result's (unclamped) progress and its weight."""

    progress: Decimal | None
    weight: Decimal


def rollup(items: Sequence[Weighted]) -> Decimal | None:
    """Weighted mean progress of ``items``, each progress first clamped to [0, 1].

    Clamping before averaging is a deliberate choice: an objective is only as healthy as its key
    results together, and one key result at 300 % must not hide another stuck at 0 %. Without
    the clamp, ``(3 + 0) / 2`` would report the objective as over-achieved.

    An item without progress (no data yet, or a failing source) counts as 0 rather than being
    left out: dropping it would let a broken integration make an objective look better. Only
    when *no* item has progress is the roll-up itself unknown (``None``), and likewise when the
    total weight is 0 (including an empty sequence), since a mean over nothing is undefined.

    Raises ``ValueError`` for a negative or non-finite weight, which config validation rejects.
    """
    for item in items:
        if not item.weight.is_finite() or item.weight < 0:
            raise ValueError(f"weights must be finite and not negative, got {item.weight}")
    if all(item.progress is None for item in items):
        return None
    with localcontext(ENGINE_CONTEXT):
        total_weight = sum((item.weight for item in items), ZERO)
        if total_weight == 0:
            return None
        weighted = sum(
            (
                item.weight * (ZERO if item.progress is None else display_progress(item.progress))
                for item in items
            ),
            ZERO,
        )
        return weighted / total_weight


def objective_status(progress: Decimal | None, elapsed: Decimal) -> Status:
    """Status of an objective from its rolled-up progress: the pace rule of an increase KR."""
    return status_for(KRKind.INCREASE, progress, elapsed)
