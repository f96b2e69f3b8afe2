"""Numbers people read: a key result's value, start and target as a mirror or page shows them.

One rule everywhere (Slack, Teams, Jira, Linear, GitHub, webhooks, the dashboard, ``status``):

* A key result shows ``decimals`` digits after the point: the ``decimals:`` it sets, else the
  default of its unit (:func:`default_decimals`): ``%`` → 1, anything else (currencies such as
  ``$``, ``€``, ``USD``, ``EUR``; counts such as ``deals``; no unit) → 0.
* Rounding is half-up (``2.5`` → ``3``, ``-2.5`` → ``-3``), as
  :func:`okrsync.domain.progress.percent` rounds: people reading ``87.25 %`` expect ``87.3 %``.
  Exact :class:`~decimal.Decimal` arithmetic, never a float.
* Always exactly ``decimals`` digits after the point (``75`` with 1 decimal is ``75.0``), never an
  exponent, a comma every three digits of the integer part (``30,500``), ``-0`` shown as ``0``.

The stored and webhook ``value`` stays exact; only what people read is rounded.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

MAX_DECIMALS = 6
"""The most digits after the point a key result may ask for."""

PERCENT_UNITS = frozenset({"%", "percent", "pct"})


def default_decimals(unit: str | None) -> int:
    """Digits after the point for ``unit`` when the key result sets no ``decimals``.

    ``%`` (or ``percent``) → 1; currencies, counts and no unit → 0.
    """
    if unit is not None and unit.strip().lower() in PERCENT_UNITS:
        return 1
    return 0


def decimals_for(unit: str | None, decimals: int | None) -> int:
    """The key result's own ``decimals`` if set, else its unit's default."""
    return default_decimals(unit) if decimals is None else decimals


def round_number(value: Decimal, decimals: int) -> Decimal:
    """``value`` rounded half-up to exactly ``decimals`` places (``-0`` becomes ``0``)."""
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"decimals must be between 0 and {MAX_DECIMALS}, not {decimals}")
    if not value.is_finite():
        raise ValueError(f"cannot show {value} as a number")
    with localcontext() as context:
        # enough precision for any finite value's integer part plus the wanted decimals
        context.prec = max(28, value.adjusted() + decimals + 2)
        rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # no "-0.0"


def format_number(value: Decimal, decimals: int) -> str:
    """``value`` rounded half-up to ``decimals`` places, with thousands separators.

    >>> format_number(Decimal("66.66666666666666666666666667"), 1)
    '66.7'
    >>> format_number(Decimal("30500.0"), 0)
    '30,500'
    """
    return f"{round_number(value, decimals):,.{decimals}f}"


def display_number(value: Decimal | None, unit: str | None, decimals: int | None) -> str | None:
    """A key result's number as people read it (no unit), or None for no value."""
    if value is None:
        return None
    return format_number(value, decimals_for(unit, decimals))
