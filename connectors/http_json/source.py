"""The ``http_json`` source: one number out of any JSON API, through a JSONPath.

It is the escape hatch for every system okrsync has no dedicated connector for, so it has to be
both forgiving (any path, GET or POST, three kinds of pagination, numbers sent as strings) and
strict where a wrong number would otherwise slip through silently:

* the JSONPath is compiled when the config is loaded, so a typo fails ``okrsync validate``
  instead of the first sync;
* a path that matches nothing, or matches something that is not a number, is an error that
  names the path and the metric, never a quiet zero (``count`` and ``sum`` are the exception:
  an empty list is a real answer, and "nothing won yet this quarter" must read 0);
* pagination stops with an error on a loop (a cursor or URL seen before, a page identical to an
  earlier one) or when it would go past ``max_pages``, because a sum over a truncated listing is
  a wrong number that looks right;
* a next-page URL on another host is refused: the connection's credentials go with every request,
  and a vendor's answer must not be able to send them somewhere else.

Cycle placeholders (``{cycle_start}``, ``{cycle_end}``, ``{cycle_id}``) are replaced token by
token, never with ``str.format``, so braces that belong to the user's text (a GraphQL query in a
POST body, say) are left alone and no format-string trickery can reach Python objects.

JSONPath dialect: ``jsonpath_ng.ext``, a superset of the basic grammar that adds filters
(``$.data[?(@.status == "won")].amount``), which a generic source cannot do without.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, urljoin, urlsplit

import httpx
from jsonpath_ng.ext.parser import parse as parse_json_path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from okrsync.errors import Blame, ConnectorError, VendorResponseError
from okrsync.sdk.auth import HttpAuth, auth_headers
from okrsync.sdk.connector import ConnectionConfig, QuerySpec, failed_reading
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import CycleWindow, Query, Reading, as_decimal, digest
from okrsync.sdk.paging import (
    CursorPaginator,
    NextUrlPaginator,
    PageNumberPaginator,
    Paginator,
    SamePageGuard,
)

PLACEHOLDERS = ("{cycle_start}", "{cycle_end}", "{cycle_id}")
_CYCLE_TOKEN = re.compile(r"\{cycle[._][A-Za-z_]*\}")
_SHOWN = 60  # characters of a vendor value quoted in an error message


# --- configuration ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def compile_json_path(text: str) -> Any:
    """The compiled JSONPath (cached: every page of every tick evaluates the same few paths)."""
    return parse_json_path(text)


def _valid_json_path(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("the JSONPath is empty (e.g. '$.total' or '$.data[*].amount')")
    try:
        compile_json_path(text)
    except Exception as exc:  # jsonpath_ng raises plain Exception subclasses from ply
        raise ValueError(f"{text!r} is not a valid JSONPath: {exc}") from None
    return text


JsonPath = Annotated[str, AfterValidator(_valid_json_path)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpJsonConnection(ConnectionConfig):
    type: Literal["http_json"] = "http_json"
    url: str = Field(description="Base URL; each metric's request_path is appended to it.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra headers sent with every request (values secret)."
    )
    auth: HttpAuth | None = None
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    max_concurrency: int = Field(default=4, ge=1, le=64)
    requests_per_second: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of a transient failure.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).netloc:
            raise ValueError(
                f"url must be an http(s) URL such as https://api.example.com, got {value!r}"
            )
        return value


class NextUrlPagination(_Frozen):
    """Each page names the URL of the next one (``{"next": "https://…?page=2"}``)."""

    type: Literal["next_url"]
    next_path: JsonPath


class CursorPagination(_Frozen):
    """Each page carries an opaque cursor, sent back as ``cursor_param`` for the next page."""

    type: Literal["cursor"]
    cursor_param: str = "cursor"
    cursor_path: JsonPath


class PagePagination(_Frozen):
    """Numbered pages (``page_param`` = start, start + 1, …) until a page has no items."""

    type: Literal["page"]
    page_param: str = "page"
    start: int = 1
    items_path: JsonPath


Pagination = Annotated[
    NextUrlPagination | CursorPagination | PagePagination, Field(discriminator="type")
]
Scalar = str | int | float | bool


class HttpJsonQuery(QuerySpec):
    request_path: str = Field(default="", description="Appended to the connection's url.")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Scalar] = Field(default_factory=dict)
    body: dict[str, Any] | None = Field(default=None, description="JSON body of a POST.")
    json_path: JsonPath = Field(description="Where the number is, e.g. $.total.")
    aggregate: Literal["first", "sum", "count", "min", "max", "avg"] = "first"
    pagination: Pagination | None = None
    max_pages: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _coherent(self) -> HttpJsonQuery:
        if "://" in self.request_path:
            raise ValueError(
                "request_path is appended to the connection's url: give a path such as "
                "'/v1/deals', and put the host in the connection"
            )
        if self.body is not None and self.method != "POST":
            raise ValueError("a request body needs method: POST")
        for text in _strings_in([self.request_path, self.params, self.body]):
            for token in _CYCLE_TOKEN.findall(text):
                if token not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {token}: use {', '.join(PLACEHOLDERS)}")
        return self

    def is_count(self) -> bool:
        return self.aggregate == "count"

    def query_text(self) -> str:
        text = f"{self.method} {self.request_path or '/'}"
        if self.params:
            text += "?" + "&".join(f"{k}={_param_text(v)}" for k, v in self.params.items())
        if self.body is not None:
            text += " " + json.dumps(self.body, separators=(",", ":"), sort_keys=True)
        text += f" → {self.json_path}"
        if self.aggregate != "first" or self.pagination is not None:
            text += f" ({self.aggregate}{' over pages' if self.pagination else ''})"
        return text


def _param_text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings_in(item)]
    return []


# --- cycle placeholders ------------------------------------------------------------------------


def cycle_values(cycle: CycleWindow) -> dict[str, str]:
    return {
        "{cycle_start}": cycle.start.isoformat(),
        "{cycle_end}": cycle.end.isoformat(),
        "{cycle_id}": cycle.id,
    }


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with exactly the known placeholder tokens replaced, and nothing else touched."""
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def substitute_json(value: Any, values: Mapping[str, str]) -> Any:
    """Placeholders replaced in every string of a JSON document (keys left as written)."""
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, dict):
        return {key: substitute_json(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_json(item, values) for item in value]
    return value


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one slash between them, and ``base`` untouched if no path.

    Done here rather than by httpx's ``base_url`` because that always adds a trailing slash,
    and ``/stats`` and ``/stats/`` are different resources on many servers.
    """
    if not path:
        return base
    if path.startswith("?"):
        return base + path
    return base.rstrip("/") + "/" + path.lstrip("/")


# --- reducing matches to one number ----------------------------------------------------------


class _Reducer:
    """Folds the JSONPath matches of every page into the metric's one number."""

    def __init__(self, query: HttpJsonQuery) -> None:
        self.aggregate = query.aggregate
        self.path = query.json_path
        self.count = 0
        self.numbers: list[Decimal] = []

    @property
    def done(self) -> bool:
        """``first`` needs no more pages once it has its number."""
        return self.aggregate == "first" and bool(self.numbers)

    def add(self, matches: list[Any]) -> None:
        self.count += len(matches)
        if self.aggregate == "count":
            return
        for match in matches[:1] if self.aggregate == "first" else matches:
            self.numbers.append(self._number(match))

    def _number(self, match: Any) -> Decimal:
        problem: str | None = None
        if match is None:
            problem = "null"
        elif isinstance(match, list | dict):
            kind = "a list" if isinstance(match, list) else "an object"
            problem = f"{kind}{'; add [*] to select its items' if isinstance(match, list) else ''}"
        else:
            try:
                number = as_decimal(match)
            except (TypeError, ValueError, ArithmeticError):
                number = None
            if number is not None and number.is_finite():
                return number
            problem = f"{_shorten(repr(match))}"
        raise VendorResponseError(f"{self.path} matched a non-number in the answer: {problem}")

    def result(self, pages: int) -> Decimal:
        if self.aggregate == "count":
            return Decimal(self.count)
        if self.aggregate == "sum":
            return sum(self.numbers, Decimal(0))
        if not self.numbers:
            where = f" ({pages} pages)" if pages > 1 else ""
            raise VendorResponseError(
                f"{self.path} matched nothing in the answer{where}", blame=Blame.CONFIG
            )
        if self.aggregate == "first":
            return self.numbers[0]
        if self.aggregate == "min":
            return min(self.numbers)
        if self.aggregate == "max":
            return max(self.numbers)
        return sum(self.numbers, Decimal(0)) / len(self.numbers)


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _subject(queries: Sequence[Query[HttpJsonQuery]]) -> str:
    """How a shared request names itself in errors: every metric it answers."""
    names = [name for query in queries for name in query.metrics]
    return f"metrics {', '.join(names)}"


def _named(error: ConnectorError, connection: str, subject: str) -> ConnectorError:
    """A copy of ``error`` naming this query's own metric(s), not the shared request's."""
    own = copy.copy(error)
    own.connection = own.connection or connection
    own.subject = subject
    own.args = (own.render(),)
    return own


def _first(path: str, document: Any) -> Any:
    matches = compile_json_path(path).find(document)
    return matches[0].value if matches else None


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PageRequest:
    url: str
    params: dict[str, Scalar] | None
    body: dict[str, Any] | None


def _listing(spec: HttpJsonQuery) -> str:
    """How pagination errors name the listing: its path and where its pages are found."""
    path = spec.request_path or "/"
    pagination = spec.pagination
    if isinstance(pagination, NextUrlPagination):
        return f"{path} (next URL at {pagination.next_path})"
    if isinstance(pagination, CursorPagination):
        return f"{path} (cursor at {pagination.cursor_path})"
    if isinstance(pagination, PagePagination):
        return f"{path} (page parameter {pagination.page_param!r})"
    return path


def _page_items(pagination: PagePagination, document: Any) -> list[Any]:
    """The items of one numbered page (the path may name the list itself or its items)."""
    items = [m.value for m in compile_json_path(pagination.items_path).find(document)]
    if len(items) == 1 and isinstance(items[0], list):
        return list(items[0])
    return items


class HttpJsonSource(HttpSource[HttpJsonConnection, HttpJsonQuery]):
    """Answers each metric with one or more requests to a JSON API."""

    query_model = HttpJsonQuery

    # Backoff between retries. Class attributes so a test (or a subclass for a touchy vendor)
    # can change them without a config field nobody else needs.
    initial_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 30.0
    rate_limit_backoff: ClassVar[float] = 1.0

    def base_url(self) -> str:
        return self.config.url

    def auth_headers(self) -> dict[str, str]:
        headers = {key: value.get_secret_value() for key, value in self.config.headers.items()}
        return {**headers, **auth_headers(self.config.auth).headers}

    def secrets(self) -> list[str]:
        return [*self.config.secret_values(), *auth_headers(self.config.auth).secrets]

    # --- one request, several metrics --------------------------------------------------------

    def batch_key(self, spec: HttpJsonQuery) -> str:
        """Everything that shapes the request (method, path, params, body, paging), not what is
        read from the answer: metrics differing only in ``json_path`` or ``aggregate`` share one
        request, and the scheduler (``request_key`` defaults to this) lets them fall due in the
        same pass."""
        return spec.model_dump_json(exclude={"json_path", "aggregate"})

    async def fetch(self, queries: Sequence[Query[HttpJsonQuery]]) -> list[Reading]:
        """Every query, one request (or page sequence) per distinct request and cycle: the
        answer is read at each query's path, so 40 metrics reading ``/stats`` cost one GET."""
        groups: dict[tuple[str, str, str, str], list[int]] = {}
        for index, query in enumerate(queries):
            cycle = query.cycle
            key = (self.batch_key(query.spec), cycle.id, str(cycle.start), str(cycle.end))
            groups.setdefault(key, []).append(index)
        readings: dict[int, Reading] = {}
        limit = asyncio.Semaphore(self.max_concurrency)

        async def run(indexes: list[int]) -> None:
            async with limit:
                answers = await self._answer([queries[i] for i in indexes])
            readings.update(zip(indexes, answers, strict=True))

        await asyncio.gather(*(run(indexes) for indexes in groups.values()))
        return [readings[index] for index in range(len(queries))]

    async def fetch_one(self, query: Query[HttpJsonQuery]) -> Reading:
        (reading,) = await self._answer([query])
        if reading.error is not None:
            raise reading.error
        return reading

    async def _answer(self, queries: Sequence[Query[HttpJsonQuery]]) -> list[Reading]:
        """Answer ``queries``, which share one request: its pages are read once, each page at
        every query's path. A query whose path fails (no match, not a number) fails alone; a
        request that fails fails every query that still needed it."""
        first = queries[0]
        spec = first.spec  # the request's fields are equal in all of them (``batch_key``)
        subject = first.subject if len(queries) == 1 else _subject(queries)
        reducers = [_Reducer(query.spec) for query in queries]
        errors: list[VendorResponseError | None] = [None] * len(queries)
        bodies: list[bytes] = []
        pages = self._paginator(spec)
        same_page = SamePageGuard(what=_listing(spec))
        request = self._first_request(spec, first.cycle)
        failure: ConnectorError | None = None
        try:
            while True:
                response = await self.client.request(
                    spec.method,
                    request.url,
                    params=request.params,
                    json=request.body,
                    subject=subject,
                )
                bodies.append(response.content)
                document = self.client.parse_json(response, subject=subject)
                for index, (query, reducer) in enumerate(zip(queries, reducers, strict=True)):
                    if errors[index] is not None or reducer.done:
                        continue
                    path = compile_json_path(query.spec.json_path)
                    try:
                        reducer.add([match.value for match in path.find(document)])
                    except VendorResponseError as exc:
                        errors[index] = exc
                if pages is None or all(
                    e is not None or r.done for e, r in zip(errors, reducers, strict=True)
                ):
                    break
                if isinstance(spec.pagination, PagePagination):
                    same_page.check(_page_items(spec.pagination, document), len(bodies))
                token = pages.advance(document, response)
                if token is None:
                    break
                request = self._next_request(spec, request, token, document)
        except ConnectorError as exc:
            failure = exc  # redacted below, with the path errors
        fetched_at = datetime.now(UTC)
        raw = digest(b"".join(bodies))
        readings: list[Reading] = []
        for index, (query, reducer) in enumerate(zip(queries, reducers, strict=True)):
            error: ConnectorError | None = errors[index]
            value: Decimal | None = None
            if error is None and failure is not None and not reducer.done:
                error = failure
            if error is None:
                try:
                    value = reducer.result(len(bodies))
                except VendorResponseError as exc:
                    error = exc
            if error is not None:
                if isinstance(error, VendorResponseError):
                    error.message = self.client.redact(error.message)
                readings.append(failed_reading(query, _named(error, self.name, query.subject)))
                continue
            readings.append(
                Reading(
                    key=query.key,
                    value=value,
                    query_text=query.spec.query_text(),
                    fetched_at=fetched_at,
                    raw_digest=raw,
                    api_calls=len(bodies) if index == 0 else 0,  # counted once per request
                )
            )
        return readings

    # --- pagination ----------------------------------------------------------------------------

    def _paginator(self, spec: HttpJsonQuery) -> Paginator[Any] | None:
        """How the query's next page is found, with the loop guard and ``max_pages``; ``None``
        when the query reads one page."""
        pagination = spec.pagination
        what, cap = _listing(spec), spec.max_pages
        if isinstance(pagination, NextUrlPagination):
            return NextUrlPaginator(
                functools.partial(self._next_url, pagination), what=what, max_pages=cap
            )
        if isinstance(pagination, CursorPagination):
            return CursorPaginator(
                lambda document: _first(pagination.cursor_path, document), what=what, max_pages=cap
            )
        if isinstance(pagination, PagePagination):
            # A listing of numbered pages ends on the first empty page (a page of one item may
            # still have a successor), so a page counts as full from its first item.
            return PageNumberPaginator(
                functools.partial(_page_items, pagination),
                page_size=1,
                first=pagination.start,
                what=what,
                max_pages=cap,
            )
        return None

    def _first_request(self, spec: HttpJsonQuery, cycle: CycleWindow) -> _PageRequest:
        values = cycle_values(cycle)
        path_values = {token: quote(value, safe="") for token, value in values.items()}
        params: dict[str, Scalar] = {
            key: substitute(value, values) if isinstance(value, str) else value
            for key, value in spec.params.items()
        }
        body = substitute_json(spec.body, values) if spec.body is not None else None
        request = _PageRequest(
            url=join_url(self.config.url, substitute(spec.request_path, path_values)),
            params=params or None,
            body=body,
        )
        if isinstance(spec.pagination, PagePagination):
            return self._with_param(
                spec, request, spec.pagination.page_param, spec.pagination.start
            )
        return request

    def _with_param(
        self, spec: HttpJsonQuery, request: _PageRequest, name: str, value: Scalar
    ) -> _PageRequest:
        """The request with one more parameter: in the JSON body of a POST, else in the query.

        POST listings (search endpoints) take their cursor or page in the body they search with.
        """
        if spec.method == "POST":
            return replace(request, body={**(request.body or {}), name: value})
        return replace(request, params={**(request.params or {}), name: value})

    def _next_request(
        self, spec: HttpJsonQuery, request: _PageRequest, token: Any, document: Any
    ) -> _PageRequest:
        """The request for the next page, whose ``token`` the paginator returned (its URL,
        cursor or number)."""
        pagination = spec.pagination
        if isinstance(pagination, NextUrlPagination):
            return _PageRequest(url=token, params=None, body=request.body)
        if isinstance(pagination, CursorPagination):
            # The cursor as the page gave it: a number stays a number in a POST body.
            cursor = _first(pagination.cursor_path, document)
            return self._with_param(spec, request, pagination.cursor_param, cursor)
        assert isinstance(pagination, PagePagination)
        return self._with_param(spec, request, pagination.page_param, token)

    def _next_url(
        self, pagination: NextUrlPagination, document: Any, response: httpx.Response | None
    ) -> str | None:
        """The next page's absolute URL, or ``None`` on the last page; a link to another host
        is refused (this connection's credentials go with every request)."""
        link = _first(pagination.next_path, document)
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise VendorResponseError(
                f"{pagination.next_path} should be the next page's URL, got {_shorten(repr(link))}"
            )
        base = str(response.url) if response is not None else self.config.url
        url = str(httpx.URL(urljoin(base, link)))
        theirs, ours = urlsplit(url), urlsplit(self.config.url)
        if (theirs.scheme, theirs.netloc.lower()) != (ours.scheme, ours.netloc.lower()):
            raise VendorResponseError(
                f"the next page's URL points to another host ({theirs.scheme}://{theirs.netloc}); "
                "okrsync does not send this connection's credentials there"
            )
        return url
