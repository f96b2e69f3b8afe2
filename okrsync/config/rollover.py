"""Rolling ``cycle: current`` over in a running process, as loading the config again would.

:func:`rolled_over` takes a loaded :class:`~okrsync.config.models.Config` and a later day and
returns the config as :func:`~okrsync.config.loader.load_config` would have built it from the
same file on that day: the followed series expanded up to the new day (cycles already listed are
kept, so a closed cycle keeps its definition and its frozen record), and every objective that
says ``cycle: current`` moved to the series' cycle that is current now. The file is not read
again: edits made to it meanwhile still need a restart. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from okrsync.config.cycles import current_cycle
from okrsync.config.models import Config, CycleDef
from okrsync.domain.cycles import expand


def following(config: Config) -> set[str]:
    """The cycles the objectives that follow the series are in now (one, or none)."""
    return {o.cycle for o in config.objectives if o.follows_series}


def rolled_over(config: Config, today: date) -> Config | None:
    """``config`` with ``cycle: current`` resolved for ``today``; None when nothing moves."""
    series = config.followed_series
    if series is None or not following(config):
        return None
    listed = [c for c in config.cycles.values() if c.series == series.id_template]
    if not listed:
        return None
    close = listed[0].close_after
    cycles = dict(config.cycles)
    for span in expand(series, today):
        if span.id not in cycles:
            cycles[span.id] = CycleDef(
                span.id, span.start, span.end, close, series=series.id_template
            )
    generated = sorted(
        (c for c in cycles.values() if c.series == series.id_template), key=lambda c: c.start
    )
    now_current = current_cycle(generated, today)
    if now_current is None or following(config) == {now_current}:
        return None
    objectives = tuple(
        dataclasses.replace(o, cycle=now_current) if o.follows_series else o
        for o in config.objectives
    )
    return dataclasses.replace(config, cycles=cycles, objectives=objectives)
