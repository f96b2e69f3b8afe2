"""Whose value counts when a person checks in on a key result that a source also feeds.

The rule is configured per key result (``check_ins.manual_value``):

* ``until_source_changes`` (the default): a value checked in by hand stands until the source
  reports a value different from the one it had reported when the check-in was made. The
  source is then ahead of the person, and its value takes over again. A source that had
  reported nothing at check-in time is different with its first value.
* ``ignore``: the source alone sets the value; check-ins carry only a confidence and a note.

Pure: the recorder and the check-in path ask these questions with what the store holds.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class ManualValue(StrEnum):
    """Whether a value checked in by hand counts on a key result fed by a metric."""

    UNTIL_SOURCE_CHANGES = "until_source_changes"
    IGNORE = "ignore"


def manual_value_stands(
    rule: ManualValue, held_source_value: Decimal | None, reported: Decimal
) -> bool:
    """Whether a standing manual value survives the source reporting ``reported``.

    ``held_source_value`` is what the source had reported when the manual value was checked in
    (``None``: nothing yet). Only asked while a manual value stands.
    """
    if rule is ManualValue.IGNORE:
        return False
    return held_source_value is not None and reported == held_source_value


def check_in_may_set_value(rule: ManualValue, *, manual_key_result: bool) -> bool:
    """Whether a check-in may carry a value: always on a manual key result, else by the rule."""
    return manual_key_result or rule is not ManualValue.IGNORE
