"""The sandbox fake's SOQL: a parser and evaluator for the subset okrsync's metrics use.

Supported: ``SELECT`` of fields (dotted relationship fields too), ``COUNT()``, and
``COUNT/COUNT_DISTINCT/SUM/AVG/MIN/MAX(field) [alias]``; ``FROM`` one object; ``WHERE`` with
``= != <> < <= > >=``, ``IN``/``NOT IN``, ``AND``/``OR``/``NOT`` and parentheses; literals:
strings, numbers, ``true``/``false``/``null``, dates (``2026-10-01``), dateTimes
(``2026-10-01T00:00:00Z``) and the date literals ``TODAY``, ``YESTERDAY``, ``TOMORROW``,
``THIS/LAST/NEXT_WEEK|MONTH|QUARTER|YEAR``, ``LAST_N_DAYS:n``, ``NEXT_N_DAYS:n``; ``GROUP BY``
one field; ``ORDER BY``; ``LIMIT``. Errors are the vendor's: ``MALFORMED_QUERY`` with the
row/column pointer, ``INVALID_FIELD``, ``INVALID_TYPE``.

Unlike Salesforce it uses calendar quarters (no custom fiscal year) and UTC for "today".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

AGGREGATES = ("COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX")
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
      |(?P<date>\d{4}-\d{2}-\d{2})
      |(?P<number>-?\d+(?:\.\d+)?)
      |(?P<string>'(?:\\.|[^'\\])*')
      |(?P<op>!=|<>|<=|>=|=|<|>)
      |(?P<punct>[(),])
      |(?P<ident>[A-Za-z_][\w.]*(?::\d+)?)""",
    re.VERBOSE,
)
KEYWORDS = {"SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "AND", "OR", "NOT", "IN"}


class SoqlError(Exception):
    """A query Salesforce would reject: ``error_code`` and ``message`` as the API words them."""

    def __init__(self, error_code: str, message: str) -> None:
        self.error_code = error_code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date  # inclusive


@dataclass(frozen=True)
class SelectItem:
    function: str | None  # None: a plain field
    field: str | None  # None for COUNT()
    name: str  # output name: the field, the alias or exprN


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass
class ParsedQuery:
    items: list[SelectItem]
    sobject: str
    where: Predicate | None = None
    group_by: str | None = None
    order_by: tuple[str, bool] | None = None
    limit: int | None = None
    fields_used: list[str] = field(default_factory=list)

    @property
    def count_only(self) -> bool:
        return (
            len(self.items) == 1 and self.items[0].function == "COUNT" and not self.items[0].field
        )

    @property
    def is_aggregate(self) -> bool:
        return any(item.function for item in self.items) or self.group_by is not None


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise malformed(text, pos, text[pos])
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(0), pos))
        pos = match.end()
    return tokens


def malformed(text: str, column: int, found: str) -> SoqlError:
    """Salesforce's wording: the query, a caret under the column, the unexpected token."""
    pointer = " " * column + "^"
    message = f"\n{text}\n{pointer}\nERROR at Row:1:Column:{column + 1}\nunexpected token: {found}"
    return SoqlError("MALFORMED_QUERY", message)


def date_literal(name: str, today: date) -> DateRange | None:
    upper = name.upper()
    if upper.startswith(("LAST_N_DAYS:", "NEXT_N_DAYS:")):
        days = int(upper.split(":", 1)[1])
        if upper.startswith("LAST"):
            return DateRange(today - timedelta(days=days), today)
        return DateRange(today, today + timedelta(days=days))
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)

    def quarter(start: date, shift: int) -> DateRange:
        month = start.month - 1 + 3 * shift
        first = date(start.year + month // 12, month % 12 + 1, 1)
        nxt = first.month - 1 + 3
        after = date(first.year + nxt // 12, nxt % 12 + 1, 1)
        return DateRange(first, after - timedelta(days=1))

    def month(shift: int) -> DateRange:
        index = today.month - 1 + shift
        first = date(today.year + index // 12, index % 12 + 1, 1)
        nxt = index + 1
        after = date(today.year + nxt // 12, nxt % 12 + 1, 1)
        return DateRange(first, after - timedelta(days=1))

    week = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    table: dict[str, Callable[[], DateRange]] = {
        "TODAY": lambda: DateRange(today, today),
        "YESTERDAY": lambda: DateRange(today - timedelta(days=1), today - timedelta(days=1)),
        "TOMORROW": lambda: DateRange(today + timedelta(days=1), today + timedelta(days=1)),
        "THIS_WEEK": lambda: DateRange(week, week + timedelta(days=6)),
        "LAST_WEEK": lambda: DateRange(week - timedelta(days=7), week - timedelta(days=1)),
        "NEXT_WEEK": lambda: DateRange(week + timedelta(days=7), week + timedelta(days=13)),
        "THIS_MONTH": lambda: month(0),
        "LAST_MONTH": lambda: month(-1),
        "NEXT_MONTH": lambda: month(1),
        "THIS_QUARTER": lambda: quarter(quarter_start, 0),
        "LAST_QUARTER": lambda: quarter(quarter_start, -1),
        "NEXT_QUARTER": lambda: quarter(quarter_start, 1),
        "THIS_YEAR": lambda: DateRange(date(today.year, 1, 1), date(today.year, 12, 31)),
        "LAST_YEAR": lambda: DateRange(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
        "NEXT_YEAR": lambda: DateRange(date(today.year + 1, 1, 1), date(today.year + 1, 12, 31)),
    }
    make = table.get(upper)
    return make() if make else None


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Parser:
    """Recursive descent over the tokens, with the object's field types for type checks."""

    def __init__(self, text: str, schema: Mapping[str, Mapping[str, str]], today: date) -> None:
        self.text = text
        self.schema = schema
        self.today = today
        self.tokens = tokenize(text)
        self.pos = 0
        self.fields: dict[str, str] = {}

    # --- token helpers --------------------------------------------------------------------------

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "ident" and token.text.upper() in words

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise malformed(self.text, len(self.text), "<EOF>")
        self.pos += 1
        return token

    def expect_keyword(self, word: str) -> None:
        token = self.take()
        if token.kind != "ident" or token.text.upper() != word:
            raise malformed(self.text, token.column, token.text)

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.text != char:
            raise malformed(self.text, token.column, token.text)

    def field_type(self, name: str) -> str:
        kind = self.fields.get(name.lower())
        if kind is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{self.sobject}'. If you are attempting to use "
                "a custom field, be sure to append the '__c' after the custom field name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        return kind

    # --- grammar --------------------------------------------------------------------------------

    def parse(self) -> ParsedQuery:
        self.expect_keyword("SELECT")
        raw_items = self.select_list()
        self.expect_keyword("FROM")
        token = self.take()
        if token.kind != "ident":
            raise malformed(self.text, token.column, token.text)
        schema = {k.lower(): v for k, v in self.schema.items()}.get(token.text.lower())
        if schema is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"\n{self.text}\n{' ' * token.column}^\nERROR at Row:1:Column:{token.column + 1}\n"
                f"sObject type '{token.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        self.sobject = next(k for k in self.schema if k.lower() == token.text.lower())
        self.fields = {k.lower(): v for k, v in schema.items()}
        query = ParsedQuery(items=self.resolve_items(raw_items), sobject=self.sobject)
        if self.at_keyword("WHERE"):
            self.take()
            query.where = self.or_expr()
        if self.at_keyword("GROUP"):
            self.take()
            self.expect_keyword("BY")
            token = self.take()
            self.field_type(token.text)
            query.group_by = token.text
        if self.at_keyword("ORDER"):
            self.take()
            self.expect_keyword("BY")
            token = self.take()
            descending = False
            if self.at_keyword("ASC", "DESC"):
                descending = self.take().text.upper() == "DESC"
            query.order_by = (token.text, descending)
        if self.at_keyword("LIMIT"):
            self.take()
            token = self.take()
            if token.kind != "number":
                raise malformed(self.text, token.column, token.text)
            query.limit = int(token.text)
        if self.peek() is not None:
            token = self.take()
            raise malformed(self.text, token.column, token.text)
        self.check_grouping(query)
        return query

    def select_list(self) -> list[tuple[str | None, str | None, str | None, Token]]:
        items: list[tuple[str | None, str | None, str | None, Token]] = []
        while True:
            token = self.take()
            if token.kind != "ident" or token.text.upper() in KEYWORDS:
                raise malformed(self.text, token.column, token.text)
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                function = token.text.upper()
                if function not in AGGREGATES:
                    raise malformed(self.text, token.column, token.text)
                self.take()
                argument = None
                if self.peek() is not None and self.peek().text != ")":  # type: ignore[union-attr]
                    argument = self.take().text
                self.expect_punct(")")
                alias = None
                after = self.peek()
                if after is not None and after.kind == "ident" and not self.at_keyword("FROM"):
                    alias = self.take().text
                items.append((function, argument, alias, token))
            else:
                items.append((None, token.text, None, token))
            if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                continue
            return items

    def resolve_items(
        self, raw: list[tuple[str | None, str | None, str | None, Token]]
    ) -> list[SelectItem]:
        items, unnamed = [], 0
        for function, argument, alias, token in raw:
            if function is None:
                assert argument is not None
                self.field_type(argument)
                items.append(SelectItem(None, argument, argument))
                continue
            if argument is None and function != "COUNT":
                raise malformed(self.text, token.column, ")")
            if argument is not None:
                kind = self.field_type(argument)
                if function in ("SUM", "AVG") and kind not in ("currency", "double", "int"):
                    raise SoqlError(
                        "MALFORMED_QUERY",
                        f"field {argument} does not support aggregate operator {function}",
                    )
            if argument is None and len(raw) > 1:
                raise SoqlError(
                    "MALFORMED_QUERY", "COUNT() and COUNT(fieldName) must be used alone"
                )
            if alias is None:
                name = f"expr{unnamed}"
                unnamed += 1
            else:
                name = alias
            items.append(SelectItem(function, argument, name))
        return items

    def check_grouping(self, query: ParsedQuery) -> None:
        if not query.is_aggregate or query.count_only:
            return
        grouped = (query.group_by or "").lower()
        for item in query.items:
            if item.function is None and (item.field or "").lower() != grouped:
                raise SoqlError(
                    "MALFORMED_QUERY", f"Field must be grouped or aggregated: {item.field}"
                )

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.at_keyword("OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.at_keyword("AND"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        if self.at_keyword("NOT"):
            self.take()
            inner = self.not_expr()
            return lambda r: not inner(r)
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.or_expr()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.take()
        if token.kind != "ident" or token.text.upper() in KEYWORDS:
            raise malformed(self.text, token.column, token.text)
        name = token.text
        kind = self.field_type(name)
        negate = False
        if self.at_keyword("NOT"):
            self.take()
            negate = True
        if self.at_keyword("IN"):
            self.take()
            self.expect_punct("(")
            values = [self.value(name, kind)]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                values.append(self.value(name, kind))
            self.expect_punct(")")
            return lambda r: any(compare(get_field(r, name), "=", v) for v in values) != negate
        if negate:
            raise malformed(self.text, token.column, "NOT")
        op = self.take()
        if op.kind != "op":
            raise malformed(self.text, op.column, op.text)
        value = self.value(name, kind)
        return lambda r: compare(get_field(r, name), op.text, value)

    def value(self, name: str, kind: str) -> Any:
        token = self.take()
        text = token.text
        if token.kind == "string":
            if kind in ("date", "datetime", "boolean", "currency", "double", "int"):
                wanted = {"datetime": "dateTime"}.get(kind, kind)
                raise SoqlError(
                    "INVALID_FIELD",
                    f"\n{self.text}\n{' ' * token.column}^\nERROR at Row:1:Column:"
                    f"{token.column + 1}\nvalue of filter criterion for field '{name}' must be "
                    f"of type {wanted} and should not be enclosed in quotes",
                )
            return text[1:-1].replace("\\'", "'")
        if token.kind == "number":
            return Decimal(text)
        if token.kind == "date":
            if kind == "datetime":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type dateTime "
                    "and should not be enclosed in quotes",
                )
            return date.fromisoformat(text)
        if token.kind == "datetime":
            if kind == "date":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type date "
                    "and should not be enclosed in quotes",
                )
            return _parse_datetime(text)
        if token.kind == "ident":
            upper = text.upper()
            if upper in ("TRUE", "FALSE"):
                return upper == "TRUE"
            if upper == "NULL":
                return None
            found = date_literal(text, self.today)
            if found is not None:
                return found
        raise malformed(self.text, token.column, text)


def get_field(record: Mapping[str, Any], name: str) -> Any:
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        lowered = {k.lower(): v for k, v in value.items()}
        value = lowered.get(part.lower())
    return value


def compare(actual: Any, op: str, wanted: Any) -> bool:
    if isinstance(wanted, DateRange):
        if actual is None:
            return op in ("!=", "<>")
        day = actual.date() if isinstance(actual, datetime) else actual
        return {
            "=": wanted.start <= day <= wanted.end,
            "!=": not wanted.start <= day <= wanted.end,
            "<>": not wanted.start <= day <= wanted.end,
            "<": day < wanted.start,
            "<=": day <= wanted.end,
            ">": day > wanted.end,
            ">=": day >= wanted.start,
        }[op]
    if op in ("=", "!=", "<>"):
        if isinstance(actual, str) and isinstance(wanted, str):
            equal = actual.lower() == wanted.lower()  # SOQL string comparison ignores case
        else:
            equal = actual == wanted
        return equal if op == "=" else not equal
    if actual is None or wanted is None:
        return False
    if (
        isinstance(actual, datetime)
        and isinstance(wanted, date)
        and not isinstance(wanted, datetime)
    ):
        wanted = datetime.combine(wanted, time(), tzinfo=actual.tzinfo)
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        actual = Decimal(str(actual))
    result: bool = {
        "<": actual < wanted,
        "<=": actual <= wanted,
        ">": actual > wanted,
        ">=": actual >= wanted,
    }[op]
    return result


def parse(text: str, schema: Mapping[str, Mapping[str, str]], today: date) -> ParsedQuery:
    return Parser(text, schema, today).parse()


def aggregate(query: ParsedQuery, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """AggregateResult rows: one per group (or one for the whole set without GROUP BY)."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    if query.group_by is None:
        groups[None] = list(records)
    else:
        for record in records:
            groups.setdefault(get_field(record, query.group_by), []).append(record)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for item in query.items:
            if item.function is None:
                row[(item.field or "").rsplit(".", 1)[-1]] = key
                continue
            values: list[Any] = (
                [get_field(m, item.field) for m in members] if item.field else list(members)
            )
            present: list[Any] = [v for v in values if v is not None]
            if item.function == "COUNT":
                row[item.name] = len(present)
            elif item.function == "COUNT_DISTINCT":
                row[item.name] = len(set(present))
            elif not present:
                row[item.name] = None
            elif item.function == "SUM":
                row[item.name] = sum(present, Decimal(0))
            elif item.function == "AVG":
                row[item.name] = float(sum(present, Decimal(0)) / len(present))
            elif item.function == "MIN":
                row[item.name] = min(present)
            else:
                row[item.name] = max(present)
        rows.append(row)
    return rows
