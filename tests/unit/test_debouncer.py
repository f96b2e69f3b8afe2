"""The webhook throttle: leading edge at once, the rest of a window's events together at its end."""

from __future__ import annotations

import asyncio
import itertools

from okrsync.api.hooks import Debouncer

WINDOW = 0.2
EARLY = 0.01  # asyncio may run a timer up to its clock resolution early; be lenient by far more
LATE = 0.5  # a shared machine can be slow to wake the loop; far below what a broken throttle does


class Recorder:
    """What a fire callback saw: when (loop time) and which metrics."""

    def __init__(self) -> None:
        self.fires: list[tuple[float, set[str]]] = []

    def __call__(self, metrics: set[str]) -> None:
        self.fires.append((asyncio.get_running_loop().time(), set(metrics)))


def test_an_isolated_event_fires_at_once() -> None:
    async def scenario() -> tuple[float, Recorder]:
        fired = Recorder()
        debouncer = Debouncer(WINDOW, fired)
        at = asyncio.get_running_loop().time()
        debouncer.add({"deals"})
        assert fired.fires and fired.fires[0][1] == {"deals"}  # before any await: no timer
        await asyncio.sleep(WINDOW + 0.1)
        return at, fired

    at, fired = asyncio.run(scenario())
    assert len(fired.fires) == 1
    assert fired.fires[0][0] - at < EARLY


def test_a_burst_within_the_window_fires_twice_the_second_time_together() -> None:
    async def scenario() -> Recorder:
        fired = Recorder()
        debouncer = Debouncer(WINDOW, fired)
        for i in range(10):
            debouncer.add({f"m{i}", "shared"})
            await asyncio.sleep(0.005)
        await asyncio.sleep(WINDOW * 3)
        assert debouncer.fired == 2
        return fired

    fired = asyncio.run(scenario())
    assert [metrics for _, metrics in fired.fires] == [
        {"m0", "shared"},
        {f"m{i}" for i in range(1, 10)} | {"shared"},
    ]
    (first, _), (second, _) = fired.fires
    assert WINDOW - EARLY <= second - first < WINDOW + LATE


def test_the_trailing_fire_opens_the_next_window_and_a_quiet_window_resets() -> None:
    async def scenario() -> tuple[float, Recorder]:
        fired = Recorder()
        debouncer = Debouncer(WINDOW, fired)
        debouncer.add({"a"})  # leading
        await asyncio.sleep(WINDOW / 4)
        debouncer.add({"b"})  # trailing, at first + WINDOW
        await asyncio.sleep(WINDOW)  # now just past the trailing fire
        debouncer.add({"c"})  # within the window the trailing fire opened
        await asyncio.sleep(WINDOW * 2.5)  # c fired at second + WINDOW; then a quiet window
        quiet_event = asyncio.get_running_loop().time()
        debouncer.add({"d"})  # nothing ran within the window: at once again
        return quiet_event, fired

    quiet_event, fired = asyncio.run(scenario())
    assert [metrics for _, metrics in fired.fires] == [{"a"}, {"b"}, {"c"}, {"d"}]
    times = [at for at, _ in fired.fires]
    for earlier, later in itertools.pairwise(times[:3]):
        assert WINDOW - EARLY <= later - earlier < WINDOW + LATE
    assert times[3] - quiet_event < EARLY


def test_cancel_drops_what_was_waiting() -> None:
    async def scenario() -> Recorder:
        fired = Recorder()
        debouncer = Debouncer(WINDOW, fired)
        debouncer.add({"a"})
        debouncer.add({"b"})
        debouncer.cancel()
        await asyncio.sleep(WINDOW * 2)
        return fired

    assert [metrics for _, metrics in asyncio.run(scenario()).fires] == [{"a"}]


def test_a_zero_window_fires_every_event() -> None:
    async def scenario() -> Recorder:
        fired = Recorder()
        debouncer = Debouncer(0, fired)
        for name in ("a", "b", "c"):
            debouncer.add({name})
        return fired

    assert [metrics for _, metrics in asyncio.run(scenario()).fires] == [{"a"}, {"b"}, {"c"}]
