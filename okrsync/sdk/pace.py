"""The arithmetic of a call budget's turns: pure functions over a bucket's state.

A vendor's limit is stated either as a rate with a burst (a token bucket: "4 a second") or as a
count in a sliding window ("50 a minute", "5 in any 5 seconds", "this share of a day"). The state
of one bucket is a small value (:class:`BucketState`); :func:`take` says when each of the next
``count`` requests may go and returns the new state. Nothing here reads a clock or sleeps: the
caller passes ``now`` and does the waiting, so the same function serves a budget kept in memory
by one process and one kept in a database row shared by every replica (computed under the row's
lock), and is tested on plain numbers.

Times are seconds on whatever clock the caller uses for ``now`` (a monotonic clock in memory,
the database's clock for a shared row); only differences of them leave this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Literal

# A window's sends are kept in at most this many slots (plus one): sends that fall in the same
# slot are merged and counted at the latest of their times. That keeps a day-long window of
# thousands of calls a few kilobytes, and only ever delays a send (by at most one slot's width).
WINDOW_SLOTS = 256


@dataclass(frozen=True)
class TokenBucket:
    """``rate`` requests a second on average; up to ``burst`` back to back after a quiet spell."""

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("a token bucket needs a positive, finite rate")
        if self.burst < 1:
            raise ValueError("a token bucket's burst must be at least 1")


@dataclass(frozen=True)
class SlidingWindow:
    """At most ``calls`` requests in any ``seconds`` long stretch of time."""

    calls: int
    seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError("a sliding window needs at least one call in a positive window")


Pace = TokenBucket | SlidingWindow


@dataclass(frozen=True)
class BucketState:
    """What one bucket remembers between turns.

    ``tokens``/``refilled_at`` belong to a token bucket (``None``: never used, so full); ``sends``
    to a sliding window, as ``(time, count)`` slots oldest first; ``hold_until`` is a time before
    which nobody may send, learnt from the vendor (``None``: no hold). A negative ``tokens`` or a
    send time in the future is a turn already promised to a caller who is still waiting for it.
    """

    tokens: float | None = None
    refilled_at: float | None = None
    sends: tuple[tuple[float, int], ...] = ()
    hold_until: float | None = None


@dataclass(frozen=True)
class Taken:
    """The answer of :func:`take`.

    ``waits`` holds one wait (seconds from ``now``) per granted request, in order; fewer than
    asked means the next one would have had to wait ``refused`` seconds, more than ``max_wait``,
    and was not granted (nor anything after it): the state keeps nothing for it. ``reason`` says
    whether the vendor's hold or the pace made that wait long. ``hold_left`` is the hold that
    remains at ``now``, so the caller can tell when it may try again.
    """

    state: BucketState
    waits: tuple[float, ...]
    refused: float | None = None
    reason: Literal["hold", "pace"] | None = None
    hold_left: float = 0.0
    used: int = 0  # a window's sends counted at the first refused turn (for messages)


def hold(state: BucketState, now: float, seconds: float) -> BucketState:
    """``state`` held for ``seconds`` from ``now``; holds only grow, nonsense is ignored."""
    if not math.isfinite(seconds) or seconds <= 0:
        return state
    until = now + seconds
    if state.hold_until is not None and state.hold_until >= until:
        return state
    return replace(state, hold_until=until)


def hold_left(state: BucketState, now: float) -> float:
    """Seconds until ``state``'s hold ends (0 when there is none)."""
    if state.hold_until is None:
        return 0.0
    return max(0.0, state.hold_until - now)


def take(
    state: BucketState,
    now: float,
    pace: Pace | None,
    *,
    count: int = 1,
    max_wait: float = math.inf,
) -> Taken:
    """The next ``count`` turns of a bucket: when each may send, and the state after them.

    Every turn first waits out the hold; a token bucket then needs a whole token (refilled at
    ``rate`` up to ``burst``), a sliding window a free place among the last ``calls`` sends. A
    granted turn is booked at once (the balance may go negative, a send time may lie ahead), so
    that the next caller queues behind it instead of computing the same time.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    left = hold_left(state, now)
    start = now + left
    waits: list[float] = []
    for _ in range(count):
        if pace is None:
            at, booked = start, state
        elif isinstance(pace, TokenBucket):
            at, booked = _bucket_turn(state, start, pace)
        else:
            at, booked = _window_turn(state, start, pace)
        wait = at - now
        if wait > max_wait:
            reason: Literal["hold", "pace"] = "hold" if left > max_wait else "pace"
            used = _in_window(state, start, pace) if isinstance(pace, SlidingWindow) else 0
            return Taken(state, tuple(waits), wait, reason, left, used)
        waits.append(max(0.0, wait))
        state = booked
    return Taken(state, tuple(waits), hold_left=left)


def _bucket_turn(state: BucketState, start: float, pace: TokenBucket) -> tuple[float, BucketState]:
    burst = float(pace.burst)
    tokens = burst if state.tokens is None else state.tokens
    refilled_at = start if state.refilled_at is None else state.refilled_at
    if start > refilled_at:
        tokens = min(burst, tokens + (start - refilled_at) * pace.rate)
        refilled_at = start
    tokens = min(tokens, burst)  # a smaller burst than the state was kept with
    at = start + max(0.0, 1.0 - tokens) / pace.rate
    return at, replace(state, tokens=tokens - 1.0, refilled_at=refilled_at)


def _live_sends(state: BucketState, start: float, pace: SlidingWindow) -> list[tuple[float, int]]:
    """The sends that still count for a turn at ``start`` or later."""
    return [(t, n) for t, n in state.sends if t > start - pace.seconds]


def _in_window(state: BucketState, start: float, pace: SlidingWindow) -> int:
    return sum(n for _, n in _live_sends(state, start, pace))


def _window_turn(
    state: BucketState, start: float, pace: SlidingWindow
) -> tuple[float, BucketState]:
    sends = _live_sends(state, start, pace)
    at = start
    excess = sum(n for _, n in sends) - (pace.calls - 1)
    for t, n in sends:  # oldest first: the turn comes when enough of them have left the window
        if excess <= 0:
            break
        excess -= n
        at = max(at, t + pace.seconds)
    if sends:
        at = max(at, sends[-1][0])  # never before a turn already booked: the log stays in order
    slot = pace.seconds / WINDOW_SLOTS
    if sends and math.floor(sends[-1][0] / slot) == math.floor(at / slot):
        sends[-1] = (at, sends[-1][1] + 1)  # counted at the later time: only ever stricter
    else:
        sends.append((at, 1))
    return at, replace(state, sends=tuple(sends))


def encode_sends(sends: tuple[tuple[float, int], ...]) -> str | None:
    """A window's sends as compact JSON text, for a store column (``None`` when empty)."""
    if not sends:
        return None
    return json.dumps([[t, n] for t, n in sends], separators=(",", ":"))


def decode_sends(text: str | None) -> tuple[tuple[float, int], ...]:
    """The inverse of :func:`encode_sends`; unreadable text counts as no sends."""
    if not text:
        return ()
    try:
        raw = json.loads(text)
        return tuple((float(t), int(n)) for t, n in raw)
    except (ValueError, TypeError):
        return ()
