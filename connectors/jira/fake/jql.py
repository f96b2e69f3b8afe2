"""A tiny JQL subset for the fake: enough for the tests and the demo, worded like Jira's errors.

Supported: ``clause AND clause ...`` where a clause is ``field op value``; fields ``project``,
``status``, ``statusCategory``, ``parent``, ``issuetype`` (alias ``type``), ``key``, ``created``,
``resolved``, ``updated`` (date-times ``"yyyy/MM/dd HH:mm"`` in the user's time zone, to
the minute); parentheses (they group nothing when AND is the only connective); operators
``=``/``!=`` (text fields, case-insensitive) and ``>=``, ``<=``, ``>``, ``<`` (dates,
``"yyyy-mm-dd"``); an optional trailing ``ORDER BY ...``, ignored.
Anything else is a 400 with Jira's wording, which is what the connector's error path needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

TEXT_FIELDS = {
    "project": "project",
    "status": "status",
    "statuscategory": "statusCategory",
    "parent": "parent",
    "issuetype": "issuetype",
    "type": "issuetype",
    "key": "key",
}
DATE_FIELDS = {"created": "created", "resolved": "resolved"}
# Compared to the minute, in the time zone of the user who asks (Jira's rule for date-times).
DATETIME_FIELDS = {"updated": "updated", "updateddate": "updated"}
DATETIME_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
USER_TIME_ZONE = ZoneInfo("Europe/Berlin")  # the fake's user (GET /myself says so too)
_TOKEN = re.compile(
    r"\s*(?:(?P<string>\"[^\"]*\"|'[^']*')|(?P<op>!=|>=|<=|=|>|<)|(?P<paren>[()])|(?P<word>[A-Za-z0-9_.\-]+)|(?P<bad>\S))"
)

Predicate = Callable[[Mapping[str, Any]], bool]


class JqlError(ValueError):
    """A query Jira would reject with 400; ``str()`` is Jira's message."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int  # 1-based character, as Jira reports it


def _tokens(jql: str) -> list[_Token]:
    found: list[_Token] = []
    for match in _TOKEN.finditer(jql):
        kind = match.lastgroup or "bad"
        text = match.group(kind)
        found.append(_Token(kind, text, match.start(kind) + 1))
    return found


def _unquote(token: _Token) -> str:
    if token.kind == "string":
        return token.text[1:-1]
    return token.text


def _syntax(message: str, token: _Token | None, jql: str) -> JqlError:
    where = token.position if token is not None else len(jql) + 1
    return JqlError(f"Error in the JQL Query: {message} (line 1, character {where})")


def parse(jql: str) -> Predicate:
    """The predicate ``jql`` selects issues with; raises :class:`JqlError` like Jira would."""
    # Parentheses only group, and with AND alone grouping changes nothing: drop them.
    tokens = [t for t in _tokens(jql) if t.kind != "paren"]
    end = next(
        (
            i
            for i, t in enumerate(tokens)
            if t.kind == "word"
            and t.text.lower() == "order"
            and i + 1 < len(tokens)
            and tokens[i + 1].text.lower() == "by"
        ),
        len(tokens),
    )
    tokens = tokens[:end]
    if not tokens:
        raise JqlError(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to "
            "your query."
        )
    clauses: list[Predicate] = []
    i = 0
    while True:
        if i + 3 > len(tokens):
            raise _syntax("Expecting a field, an operator and a value", None, jql)
        field, op, value = tokens[i], tokens[i + 1], tokens[i + 2]
        if field.kind == "bad" or op.kind == "bad" or value.kind == "bad":
            bad = next(t for t in (field, op, value) if t.kind == "bad")
            raise _syntax(f"The character '{bad.text}' is a reserved JQL character.", bad, jql)
        if field.kind != "word" and field.kind != "string":
            raise _syntax(f"Expecting a field name but got '{field.text}'.", field, jql)
        if op.kind != "op":
            raise _syntax(
                f"Expecting operator but got '{op.text}'. The valid operators are '=', '!=', "
                "'<', '>', '<=', '>='.",
                op,
                jql,
            )
        if value.kind == "op":
            raise _syntax(
                f"Expecting either a value or a function but got '{value.text}'.", value, jql
            )
        clauses.append(_clause(_unquote(field), op.text, _unquote(value), jql))
        i += 3
        if i == len(tokens):
            break
        joiner = tokens[i]
        if joiner.kind != "word" or joiner.text.lower() != "and":
            raise _syntax(f"Expecting either 'OR' or 'AND' but got '{joiner.text}'.", joiner, jql)
        i += 1
        if i == len(tokens):
            raise _syntax("Expecting a field name but reached the end of the query.", None, jql)
    return lambda issue: all(clause(issue) for clause in clauses)


def _datetime_clause(field: str, attribute: str, op: str, value: str) -> Predicate:
    for pattern in DATETIME_FORMATS:
        try:
            when = datetime.strptime(value, pattern).replace(tzinfo=USER_TIME_ZONE)
            break
        except ValueError:
            continue
    else:
        raise JqlError(
            f"Date value '{value}' for field '{field}' is invalid. Valid formats include: "
            "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a "
            "period format e.g. '-5d', '4w 2d'."
        )
    if op not in (">=", "<=", ">", "<"):
        raise JqlError(f"The operator '{op}' is not supported by the '{field}' field.")

    def on_moment(issue: Mapping[str, Any]) -> bool:
        moment = issue.get(attribute)
        if not isinstance(moment, datetime):
            return False
        minute = moment.replace(second=0, microsecond=0)
        if op == ">=":
            return minute >= when
        if op == ">":
            return minute > when
        if op == "<=":
            return minute <= when
        return minute < when

    return on_moment


def _clause(field: str, op: str, value: str, jql: str) -> Predicate:
    name = field.lower()
    if name in TEXT_FIELDS:
        if op not in ("=", "!="):
            raise JqlError(f"The operator '{op}' is not supported by the '{field}' field.")
        attribute = TEXT_FIELDS[name]
        wanted = value.lower()
        if op == "=":
            return lambda issue: str(issue.get(attribute) or "").lower() == wanted
        return lambda issue: str(issue.get(attribute) or "").lower() != wanted
    if name in DATE_FIELDS:
        attribute = DATE_FIELDS[name]
        try:
            when = date.fromisoformat(value)
        except ValueError:
            raise JqlError(
                f"Date value '{value}' for field '{field}' is invalid. Valid formats include: "
                "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a "
                "period format e.g. '-5d', '4w 2d'."
            ) from None
        compare: dict[str, Callable[[date, date], bool]] = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
        }
        test = compare[op]

        def on_date(issue: Mapping[str, Any]) -> bool:
            day = issue.get(attribute)
            return isinstance(day, date) and test(day, when)

        return on_date
    if name in DATETIME_FIELDS:
        return _datetime_clause(field, DATETIME_FIELDS[name], op, value)
    raise JqlError(f"Field '{field}' does not exist or you do not have permission to view it.")
