"""What the recorder writes for check-ins and grading: a key result's score from its
definition, and the mark a manual check-in leaves (confidence, author, whether it sets the
value)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from okrsync.config import KeyResultDef
from okrsync.domain.grading import score


@dataclass(frozen=True)
class CheckInMark:
    """A manual check-in's own fields, beside its value and note."""

    confidence: int | None = None  # 1 to 10
    author: str | None = None  # who checked in: an API token's label, a Slack user, a principal
    sets_value: bool = True  # False: a check-in of confidence and note only


def score_for(kr: KeyResultDef, value: Decimal | None) -> Decimal | None:
    """``kr``'s score for ``value`` by its grading rule and stretch; ``None`` without a value."""
    return score(kr.target_spec, value, stretch=kr.stretch, rule=kr.grading)
