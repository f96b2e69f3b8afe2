"""Building search requests, and splitting a date window that holds too many records. Pure.

HubSpot's search answers at most 10,000 results per query (asking for ``after`` beyond that is a
400), so a sum over more records than that cannot be paged in one go. The count is free — every
answer carries ``total`` — so the source asks first, and when a window holds more than the
ceiling it halves the window on a date property and asks again for each half, recursively, until
every piece fits. The pieces are disjoint and together cover the window exactly (``BETWEEN`` is
inclusive at both ends, so the halves are ``[low, mid]`` and ``[mid + 1, high]`` in
milliseconds), so no record is counted twice or lost.

Dates go to HubSpot as epoch milliseconds (UTC). A cycle covers its first day from 00:00:00.000
to its last day at 23:59:59.999, so ``{cycle_end}`` includes the whole last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.hubspot.models import HubSpotFilter, HubSpotQuery, Scalar
from okrsync.sdk.models import CycleWindow

EPOCH_MS_MIN = 0
EPOCH_MS_MAX = 4_102_444_800_000 - 1  # 2099-12-31T23:59:59.999Z: "no upper bound"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, exactly (no float rounding)."""
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def day_start_ms(day: date) -> int:
    return epoch_ms(datetime.combine(day, time(0), tzinfo=UTC))


def day_end_ms(day: date) -> int:
    return day_start_ms(day + timedelta(days=1)) - 1


@dataclass(frozen=True)
class CycleBounds:
    start_ms: int
    end_ms: int

    @classmethod
    def of(cls, cycle: CycleWindow) -> CycleBounds:
        return cls(day_start_ms(cycle.start), day_end_ms(cycle.end))

    def substitute(self, value: Scalar) -> str:
        """A filter value as HubSpot wants it: a string, placeholders as epoch milliseconds."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            text = value.strip()
            if text == "{cycle_start}":
                return str(self.start_ms)
            if text == "{cycle_end}":
                return str(self.end_ms)
            return value
        return str(value)


@dataclass(frozen=True)
class Window:
    """An inclusive range of epoch milliseconds on one date property."""

    field: str
    low: int
    high: int

    @property
    def splittable(self) -> bool:
        return self.low < self.high

    def halves(self) -> tuple[Window, Window]:
        middle = self.low + (self.high - self.low) // 2
        return (
            Window(self.field, self.low, middle),
            Window(self.field, middle + 1, self.high),
        )

    def filter(self) -> dict[str, Any]:
        return {
            "propertyName": self.field,
            "operator": "BETWEEN",
            "value": str(self.low),
            "highValue": str(self.high),
        }

    def describe(self) -> str:
        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")

        return f"{self.field} {iso(self.low)} … {iso(self.high)}"


def filter_json(spec: HubSpotFilter, bounds: CycleBounds) -> dict[str, Any]:
    out: dict[str, Any] = {"propertyName": spec.property, "operator": spec.operator}
    if spec.value is not None:
        out["value"] = bounds.substitute(spec.value)
    if spec.high_value is not None:
        out["highValue"] = bounds.substitute(spec.high_value)
    if spec.values is not None:
        out["values"] = [bounds.substitute(v) for v in spec.values]
    return out


@dataclass(frozen=True)
class Resolved:
    """Pipeline and stage ids after looking labels up (``None``: no such filter)."""

    pipeline_property: str | None = None
    pipeline_id: str | None = None
    stage_property: str | None = None
    stage_ids: tuple[str, ...] | None = None


def base_groups(
    spec: HubSpotQuery, resolved: Resolved, bounds: CycleBounds
) -> list[list[dict[str, Any]]]:
    """The metric's filter groups (OR of ANDs), without any date window."""
    common: list[dict[str, Any]] = []
    if resolved.pipeline_property and resolved.pipeline_id is not None:
        common.append(
            {
                "propertyName": resolved.pipeline_property,
                "operator": "EQ",
                "value": resolved.pipeline_id,
            }
        )
    if resolved.stage_property and resolved.stage_ids is not None:
        ids = list(resolved.stage_ids)
        if len(ids) == 1:
            common.append(
                {"propertyName": resolved.stage_property, "operator": "EQ", "value": ids[0]}
            )
        else:
            common.append(
                {"propertyName": resolved.stage_property, "operator": "IN", "values": ids}
            )
    if spec.aggregate == "sum" and spec.property:
        # Records without the property add nothing, and a misspelt property becomes HubSpot's
        # 400 naming it, instead of a sum that is silently zero.
        common.append({"propertyName": spec.property, "operator": "HAS_PROPERTY"})
    common.extend(filter_json(f, bounds) for f in spec.filters)
    if not spec.any_of:
        return [common]
    return [common + [filter_json(f, bounds) for f in group] for group in spec.any_of]


def cycle_window(spec: HubSpotQuery, bounds: CycleBounds) -> Window | None:
    if spec.date_property is None:
        return None
    return Window(spec.date_property, bounds.start_ms, bounds.end_ms)


def whole_range(spec: HubSpotQuery) -> Window:
    """The window a sum with no date filter is split on once it proves too large."""
    return Window(spec.split_property, EPOCH_MS_MIN, EPOCH_MS_MAX)


def search_body(
    groups: list[list[dict[str, Any]]],
    window: Window | None,
    *,
    properties: list[str],
    limit: int,
    after: str = "0",
) -> dict[str, Any]:
    """A ``PublicObjectSearchRequest``.

    All five fields the published spec marks required are sent (``after`` as ``"0"`` on the first
    page, ``sorts`` empty), so the request validates against the spec as well as the real API.
    """
    filter_groups = []
    for group in groups:
        filters = [*group, window.filter()] if window is not None else list(group)
        if filters:
            filter_groups.append({"filters": filters})
    return {
        "filterGroups": filter_groups,
        "properties": properties,
        "sorts": [],
        "limit": limit,
        "after": after,
    }
