"""Each cycle of the config with its lifecycle state now: the cycle list of the API and CLI.

The state (:func:`okrsync.domain.cycles.state_at`) comes from the calendar and from ``closed_at``
in the store (a cycle closed early by command, or by the daemon).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from okrsync.config import Config, CycleDef
from okrsync.domain.cycles import CycleState, closes_at, state_at


@dataclass(frozen=True)
class CycleNow:
    cycle: CycleDef
    state: CycleState
    closes_at: datetime  # by the calendar
    closed_at: datetime | None  # in the store


def cycles_now(config: Config, closed: Mapping[str, datetime], now: datetime) -> list[CycleNow]:
    """The config's cycles by start, each with its state at ``now`` given the ``closed`` ones."""
    found: list[CycleNow] = []
    for cycle in sorted(config.cycles.values(), key=lambda c: (c.start, c.id)):
        closed_at = closed.get(cycle.id)
        state = state_at(cycle.span(), now, close_after=cycle.close_after, closed_at=closed_at)
        found.append(CycleNow(cycle, state, closes_at(cycle.span(), cycle.close_after), closed_at))
    return found
