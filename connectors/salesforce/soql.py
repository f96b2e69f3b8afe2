"""Turning a metric's SOQL template into the SOQL sent for one cycle, and reading its shape.

Cycle placeholders are replaced token by token (never ``str.format``): SOQL has no braces of its
own, but a string literal may, and a format string could reach Python objects. A token such as
``{cycle_strat}`` is a typo that must fail when the config is loaded, not be sent to Salesforce.

Date and dateTime are different literal types in SOQL and neither is quoted: ``CloseDate >=
2026-10-01`` but ``CreatedDate >= 2026-10-01T00:00:00Z``. Comparing a dateTime field with a
date literal is a Salesforce error, so both forms are offered. ``{cycle_end_datetime}`` is the
last second of the cycle's last day (the cycle end is inclusive), so use it with ``<=``.

This module only *reads* SOQL as much as the source needs (is it ``SELECT COUNT()``? what does
it group by?); it is not the sandbox fake's parser, which lives in ``fake_soql``.
"""

from __future__ import annotations

import re

from okrsync.sdk.models import CycleWindow

_TOKEN = re.compile(r"\{cycle[._][A-Za-z_]*\}")
_COUNT_ONLY = re.compile(r"^\s*SELECT\s+COUNT\s*\(\s*\)\s+FROM\b", re.IGNORECASE)
_GROUP_BY = re.compile(
    r"\bGROUP\s+BY\s+(?:ROLLUP\s*\(|CUBE\s*\()?\s*([A-Za-z_][\w.]*)", re.IGNORECASE
)
PLACEHOLDERS = (
    "{cycle_start}",
    "{cycle_end}",
    "{cycle_start_datetime}",
    "{cycle_end_datetime}",
    "{cycle_id}",
)


def _canonical(token: str) -> str:
    return token.replace("{cycle.", "{cycle_")


def check_placeholders(template: str) -> None:
    """Raise ``ValueError`` naming any ``{cycle…}`` token that is not a known placeholder."""
    for match in _TOKEN.finditer(template):
        if _canonical(match.group(0)) not in PLACEHOLDERS:
            known = ", ".join(PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {match.group(0)}; known: {known}")


def cycle_values(cycle: CycleWindow) -> dict[str, str]:
    return {
        "{cycle_start}": cycle.start.isoformat(),
        "{cycle_end}": cycle.end.isoformat(),
        "{cycle_start_datetime}": f"{cycle.start.isoformat()}T00:00:00Z",
        "{cycle_end_datetime}": f"{cycle.end.isoformat()}T23:59:59Z",
        "{cycle_id}": cycle.id,
    }


def render(template: str, cycle: CycleWindow) -> str:
    """The SOQL for ``cycle``: each placeholder token replaced by its literal."""
    values = cycle_values(cycle)
    return _TOKEN.sub(lambda m: values.get(_canonical(m.group(0)), m.group(0)), template)


def is_count_only(soql: str) -> bool:
    """``SELECT COUNT() FROM …``: the answer is ``totalSize``, the records list is empty."""
    return _COUNT_ONLY.match(soql) is not None


def group_by_field(soql: str) -> str | None:
    """The (first) field after ``GROUP BY``, as written (``Owner.Name``), or ``None``."""
    match = _GROUP_BY.search(soql)
    return match.group(1) if match else None


_SELECT_LIST = re.compile(r"^\s*SELECT\s+(.*?)\s+FROM\s", re.IGNORECASE | re.DOTALL)
_AGGREGATE_ITEM = re.compile(r"^([A-Za-z_]+)\s*\(.*\)\s*([A-Za-z_]\w*)?$", re.DOTALL)


def _split_top_level(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def aggregate_columns(soql: str) -> dict[str, str]:
    """Output name → aggregate function (upper case) of each aggregate in the select list.

    Unaliased aggregates are named ``expr0``, ``expr1``… in the order they appear, as Salesforce
    names them; an alias replaces the name. Used to tell a ``SUM`` over no rows (read as 0)
    from an ``AVG`` over no rows (no value at all).
    """
    match = _SELECT_LIST.match(soql)
    if match is None:
        return {}
    columns: dict[str, str] = {}
    unnamed = 0
    for item in _split_top_level(match.group(1)):
        found = _AGGREGATE_ITEM.match(item)
        if found is None:
            continue
        function, alias = found.group(1).upper(), found.group(2)
        if alias is None:
            columns[f"expr{unnamed}"] = function
            unnamed += 1
        else:
            columns[alias] = function
    return columns
