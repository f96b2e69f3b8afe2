"""The Jira connector: JQL metrics in, key-result state out onto issues.

Source (one request pattern per aggregate):

* ``count`` exact: page ``POST /rest/api/3/search/jql`` with ``fields: ["id"]`` and
  ``maxResults: 5000`` following ``nextPageToken`` until ``isLast`` (Cloud has no ``total``
  any more); Data Center asks ``/rest/api/2/search`` with ``maxResults: 0`` and reads ``total``.
  ``count: approximate`` is one ``POST /rest/api/3/search/approximate-count`` (Cloud only; DC's
  ``total`` is exact and as cheap, so it is used instead);
* ``sum`` / ``average`` of a number field (id, or a name resolved once per connection through
  ``GET /rest/api/3/field``); ``average`` is over the issues that have a value;
* ``done_ratio``: the share (0..1) of matching issues whose status category is Done, optionally
  restricted to ``parent = KEY``; ``None`` (no data) when nothing matches.

Sink: per push, at most one ``GET`` of the issue property (the last state written, and the
comment id), then — unless that state is exactly what would be written again — the field
``PUT /issue/{key}``, the one comment (``PUT .../comment/{id}``, or ``POST`` the first time), and
the property ``PUT .../properties/{key}`` last, so it only ever describes completed pushes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from connectors.jira.adf import (
    STATUS_TEXT,
    comment_document,
    comment_text,
    kr_number_text,
    marker,
    number_text,
    percent,
    text_of,
)
from connectors.jira.client import (
    BURST,
    AdaptivePace,
    FieldCatalog,
    IssueWriteSpacer,
    describe_error,
    error_table,
)
from connectors.jira.models import (
    ID_FIELDS,
    ID_PAGE,
    JiraConnection,
    JiraMirror,
    JiraQuery,
    render_jql,
)
from connectors.jira.work import JiraWorkTracker
from okrsync.domain.numbers import decimals_for, round_number
from okrsync.errors import (
    Blame,
    ConnectorError,
    QueryError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.budget import CallBudget
from okrsync.sdk.connector import Sink
from okrsync.sdk.http import ErrorRule, HttpClient, RetryPolicy
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import KeyResultUpdate, PushResult, Query, Reading, as_decimal
from okrsync.sdk.paging import CursorPaginator, OffsetPaginator

MAX_PAGES = 10_000  # the page cap: no real JQL metric (or comment list) needs more pages
COMMENT_PAGE = 100


def _decimal_json(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class JiraConnector(
    HttpSource[JiraConnection, JiraQuery], Sink[JiraConnection, JiraMirror], JiraWorkTracker
):
    """Source and sink over one Jira site: the retrying client of :class:`HttpSource`, and a
    second one on the same budget that never retries (for posting comments); a work tracker
    too (:mod:`connectors.jira.work`)."""

    query_model = JiraQuery
    mirror_model = JiraMirror
    burst = BURST
    describe_error = describe_error

    # Class attributes so a test or a subclass can make retries quick without a config field.
    retry: ClassVar[RetryPolicy] = RetryPolicy()

    def __init__(self, name: str, config: JiraConnection) -> None:
        super().__init__(name, config)  # max_concurrency: questions asked at once, as requests
        self._cloud = config.deployment == "cloud"
        # Posting a comment is not idempotent: a retry after a lost answer would post it twice.
        # This client never retries by itself; _post_comment looks for the comment first.
        self._once = self.make_client(retry=RetryPolicy(max_attempts=1), budget=self.client.budget)
        self._api = f"/rest/api/{config.api_version}"
        self._fields = FieldCatalog(self.client, self._api)
        self._spacer = IssueWriteSpacer(config.issue_write_interval)

    # --- the HTTP declarations --------------------------------------------------------------

    def auth(self) -> httpx.Auth | None:
        """Cloud: the account's email and API token as Basic auth (Data Center: a header)."""
        if self.config.deployment != "cloud":
            return None
        assert self.config.email is not None and self.config.api_token is not None  # the model
        return httpx.BasicAuth(self.config.email, self.config.api_token.get_secret_value())

    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.deployment != "cloud":
            assert self.config.personal_access_token is not None  # the model checks
            token = self.config.personal_access_token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def error_rules(self) -> Mapping[int, ErrorRule]:
        return error_table(self.config)

    def retry_policy(self) -> RetryPolicy:
        return self.retry

    def make_client(
        self, *, retry: RetryPolicy | None = None, budget: CallBudget | None = None
    ) -> HttpClient:
        """The base's client; a new budget (in the connection's shared bucket, so replicas
        share Jira's limit) is steered by :class:`AdaptivePace` below the configured ceiling.
        Each replica adapts its own pace to the headers it sees, which report the same
        site-wide pressure to all of them."""
        client = super().make_client(retry=retry, budget=budget)
        ceiling = self.config.requests_per_second
        if budget is None and ceiling is not None:
            pace = AdaptivePace(client.budget, ceiling, cloud=self.config.deployment == "cloud")
            client.budget.extra_observers.append(pace.observe)
        return client

    @property
    def api_calls(self) -> int:
        return self.client.calls + self._once.calls

    async def aclose(self) -> None:
        await super().aclose()
        await self._once.aclose()

    # --- source ---------------------------------------------------------------------------------

    async def fetch_one(self, query: Query[JiraQuery]) -> Reading:
        spec = query.spec
        jql = render_jql(spec.base_jql(), query.cycle.start, query.cycle.end)
        subject = query.subject
        before = self.client.calls
        raw = hashlib.sha256()
        try:
            value = await self._aggregate(spec, jql, subject, raw)
        except QueryError as exc:
            exc.message = f"{exc.message}; JQL: {jql}"
            raise exc.for_subject(self.name, subject) from None
        except VendorResponseError as exc:  # a looping or overlong listing, among others
            raise exc.for_subject(self.name, subject) from None
        described = spec.query_text().split(" of JQL: ")[0]
        return Reading(
            key=query.key,
            value=value,
            query_text=f"{described} of JQL: {jql}",
            fetched_at=datetime.now(UTC),
            raw_digest="sha256:" + raw.hexdigest(),
            api_calls=self.client.calls - before,
        )

    async def _aggregate(self, spec: JiraQuery, jql: str, subject: str, raw: Any) -> Decimal | None:
        if spec.aggregate == "count":
            if not self._cloud:
                body = await self._dc_page(jql, ["id"], 0, 0, subject, raw)
                return Decimal(self._int(body, "total", subject))
            if spec.count == "approximate":
                response = await self.client.request(
                    "POST",
                    f"{self._api}/search/approximate-count",
                    json={"jql": jql},
                    subject=subject,
                )
                raw.update(response.content)
                body = self.client.parse_json(response, subject=subject)
                return Decimal(self._int(body, "count", subject))
            return Decimal(sum([1 async for _ in self._issues(jql, ["id"], subject, raw)]))
        if spec.aggregate == "done_ratio":
            total = done = 0
            async for issue in self._issues(jql, ["status"], subject, raw):
                total += 1
                status = issue.get("fields", {}).get("status") or {}
                category = status.get("statusCategory") or {} if isinstance(status, dict) else {}
                if isinstance(category, dict) and category.get("key") == "done":
                    done += 1
            return Decimal(done) / Decimal(total) if total else None
        assert spec.field is not None  # the model requires it for sum/average
        field = await self._fields.resolve(spec.field, subject, QueryError)
        field_id = str(field["id"])
        total_value = Decimal(0)
        counted = 0
        async for issue in self._issues(jql, [field_id], subject, raw):
            value = (issue.get("fields") or {}).get(field_id)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise QueryError(
                    f"field {spec.field!r} ({field_id}) is not a number on {issue.get('key')}: "
                    f"got {type(value).__name__}",
                    subject=subject,
                )
            try:
                total_value += as_decimal(value)
            except (ArithmeticError, ValueError):
                raise QueryError(
                    f"field {spec.field!r} ({field_id}) is not a number on {issue.get('key')}: "
                    f"{str(value)[:40]!r}",
                    subject=subject,
                ) from None
            counted += 1
        if spec.aggregate == "sum":
            return total_value
        return total_value / counted if counted else None

    def _int(self, body: Any, key: str, subject: str) -> int:
        value = body.get(key) if isinstance(body, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise VendorResponseError(
                f"Jira's answer has no integer {key!r}", subject=subject
            ).for_subject(self.name, subject)
        return value

    async def _issues(
        self, jql: str, fields: list[str], subject: str, raw: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Every issue ``jql`` matches, with ``fields``, page after page: Cloud's
        ``nextPageToken`` (until ``isLast``), Data Center's ``startAt`` (until ``total``). A
        token handed out twice, or more than :data:`MAX_PAGES` pages, fails the metric."""
        what = f"issues of JQL {jql}"
        if not self._cloud:
            size = self.config.page_size
            offsets = OffsetPaginator(
                lambda body: self._issue_list(body, subject),
                page_size=size,
                total_of=lambda body: self._int(body, "total", subject),
                what=what,
                max_pages=MAX_PAGES,
                subject=subject,
            )
            while not offsets.finished:
                body = await self._dc_page(jql, fields, offsets.token or 0, size, subject, raw)
                for issue in self._issue_list(body, subject):
                    yield issue
                offsets.advance(body)
            return
        tokens = CursorPaginator(
            lambda body: None if body.get("isLast") is True else body.get("nextPageToken"),
            what=what,
            max_pages=MAX_PAGES,
            subject=subject,
        )
        size = ID_PAGE if fields in ID_FIELDS else self.config.page_size
        while not tokens.finished:
            request = tokens.params(
                {"jql": jql, "fields": fields, "maxResults": size}, "nextPageToken"
            )
            response = await self.client.request(
                "POST", f"{self._api}/search/jql", json=request, subject=subject
            )
            raw.update(response.content)
            body = self.client.parse_json(response, subject=subject)
            for issue in self._issue_list(body, subject):
                yield issue
            tokens.advance(body)

    async def _dc_page(
        self, jql: str, fields: list[str], start: int, size: int, subject: str, raw: Any
    ) -> Any:
        response = await self.client.request(
            "POST",
            f"{self._api}/search",
            json={"jql": jql, "startAt": start, "maxResults": size, "fields": fields},
            subject=subject,
        )
        raw.update(response.content)
        return self.client.parse_json(response, subject=subject)

    def _issue_list(self, body: Any, subject: str) -> list[dict[str, Any]]:
        issues = body.get("issues") if isinstance(body, dict) else None
        if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
            raise VendorResponseError(
                "Jira's search answer has no list of issues", subject=subject
            ).for_subject(self.name, subject)
        return issues

    # --- sink -----------------------------------------------------------------------------------

    def describe(self, mirror: JiraMirror) -> str:
        parts = [f"{self.name}: Jira issue {mirror.issue}"]
        if mirror.field:
            parts.append(f"field {mirror.field!r} = {mirror.field_value}")
        if mirror.comment:
            parts.append("one comment")
        parts.append(f"property {mirror.property or 'okrsync.<key result>'}")
        return ", ".join(parts)

    async def push(
        self, update: KeyResultUpdate, mirror: JiraMirror, previous_ref: str | None
    ) -> PushResult:
        subject = f"mirror on {mirror.issue} (key result {update.key_result_id!r})"
        issue_url = f"{self._api}/issue/{mirror.issue}"
        property_url = f"{issue_url}/properties/{mirror.property_key(update.key_result_id)}"
        stored = await self._stored_state(property_url, subject)

        field_change: dict[str, Any] | None = None
        if mirror.field:
            field_change = await self._field_change(update, mirror, subject)
        body: Any = None
        if mirror.comment:
            body = comment_document(update) if self._cloud else comment_text(update)
        # What this push would write, the delivery id aside: equal means nothing to do.
        content = self._state(update, mirror, field_change, None, "")
        content.pop("delivery_id")
        fingerprint = hashlib.sha256(
            json.dumps([field_change, body, content], sort_keys=True, default=str).encode()
        ).hexdigest()
        known_comment = stored.get("comment_id") if stored else None
        if (
            stored is not None
            and stored.get("fingerprint") == fingerprint
            and (not mirror.comment or known_comment)
            and (previous_ref is None or previous_ref == known_comment)
        ):
            return PushResult(ref=known_comment, detail={"unchanged": True})

        if field_change is not None:
            async with self._spacer.turn(mirror.issue):
                await self.client.request(
                    "PUT", issue_url, json={"fields": field_change}, subject=subject
                )
        comment_id: str | None = None
        if mirror.comment:
            comment_id = previous_ref or (str(known_comment) if known_comment else None)
            if comment_id is None:
                comment_id = await self._find_marked_comment(issue_url, update, subject)
            comment_id = await self._write_comment(mirror.issue, comment_id, body, update, subject)
        state = self._state(update, mirror, field_change, comment_id, fingerprint)
        async with self._spacer.turn(mirror.issue):
            await self.client.request("PUT", property_url, json=state, subject=subject)
        return PushResult(
            ref=comment_id,
            detail={"issue": mirror.issue, "comment_id": comment_id, "field": field_change},
        )

    async def _stored_state(self, property_url: str, subject: str) -> dict[str, Any] | None:
        try:
            body = await self.client.get_json(property_url, subject=subject)
        except TargetNotFoundError:
            # No property yet (or no issue: the first write below then says so clearly).
            return None
        value = body.get("value") if isinstance(body, dict) else None
        return value if isinstance(value, dict) else None

    async def _field_change(
        self, update: KeyResultUpdate, mirror: JiraMirror, subject: str
    ) -> dict[str, Any]:
        assert mirror.field is not None
        field = await self._fields.resolve(mirror.field, subject, TargetNotFoundError)
        field_id = str(field["id"])
        kind = (field.get("schema") or {}).get("type")
        if kind not in ("number", "string"):
            raise ConnectorError(
                f"field {mirror.field!r} ({field_id}) has type {kind!r}; okrsync writes number "
                "and single-line text fields only",
                subject=subject,
                blame=Blame.CONFIG,
            ).for_subject(self.name, subject)
        value: Any
        if mirror.field_value == "status":
            if kind == "number":
                raise ConnectorError(
                    f"field {mirror.field!r} ({field_id}) is a number field; field_value: status "
                    "needs a text field",
                    subject=subject,
                    blame=Blame.CONFIG,
                ).for_subject(self.name, subject)
            value = STATUS_TEXT[update.status]
        else:
            number = (
                percent(update.progress)
                if mirror.field_value == "progress_percent"
                else update.value
            )
            if number is None:
                value = None
            elif mirror.field_value == "progress_percent":
                value = float(number) if kind == "number" else f"{number_text(number)}%"
            elif kind == "number":  # the value as people read it: the key result's decimals
                value = float(round_number(number, decimals_for(update.unit, update.decimals)))
            else:
                value = kr_number_text(update, number)
        return {field_id: value}

    async def _find_marked_comment(
        self, issue_url: str, update: KeyResultUpdate, subject: str
    ) -> str | None:
        """The comment carrying this key result's marker (after a crash lost its id)."""
        wanted = marker(update.key_result_id)
        # A list without ``total`` is read as complete after its first page (total 0).
        offsets = OffsetPaginator(
            lambda body: self._comment_list(body, subject),
            page_size=COMMENT_PAGE,
            total_of=lambda body: body["total"] if isinstance(body.get("total"), int) else 0,
            what=f"comments of {issue_url}",
            max_pages=MAX_PAGES,
            subject=subject,
        )
        try:
            while not offsets.finished:
                body = await self.client.get_json(
                    f"{issue_url}/comment",
                    params={
                        "startAt": offsets.token or 0,
                        "maxResults": COMMENT_PAGE,
                        "orderBy": "created",
                    },
                    subject=subject,
                )
                for comment in self._comment_list(body, subject):
                    if isinstance(comment, dict) and wanted in text_of(comment.get("body")):
                        return str(comment.get("id"))
                offsets.advance(body)
        except VendorResponseError as exc:
            raise exc.for_subject(self.name, subject) from None
        return None

    def _comment_list(self, body: Any, subject: str) -> list[Any]:
        comments = body.get("comments") if isinstance(body, dict) else None
        if not isinstance(comments, list):
            raise VendorResponseError(
                "Jira's comment list has no comments array", subject=subject
            ).for_subject(self.name, subject)
        return comments

    async def _write_comment(
        self,
        issue_key: str,
        comment_id: str | None,
        body: Any,
        update: KeyResultUpdate,
        subject: str,
    ) -> str:
        issue_url = f"{self._api}/issue/{issue_key}"
        if comment_id is not None:
            try:
                async with self._spacer.turn(issue_key):
                    await self.client.request(
                        "PUT",
                        f"{issue_url}/comment/{comment_id}",
                        json={"body": body},
                        subject=subject,
                    )
                return comment_id
            except TargetNotFoundError:
                pass  # someone deleted our comment: post a new one below
        return await self._post_comment(issue_key, body, update, subject)

    async def _post_comment(
        self, issue_key: str, body: Any, update: KeyResultUpdate, subject: str
    ) -> str:
        """POST the comment at most once per answer we actually got.

        When the request fails transiently (a timeout, a 5xx, a reset connection), Jira may
        still have created the comment; so before trying again we look for our marker.
        """
        issue_url = f"{self._api}/issue/{issue_key}"
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._spacer.turn(issue_key):
                    created = await self._once.request_json(
                        "POST", f"{issue_url}/comment", json={"body": body}, subject=subject
                    )
                break
            except RetriableError as exc:
                found = await self._find_marked_comment(issue_url, update, subject)
                if found is not None:
                    return found
                wait = getattr(exc, "retry_after", None)
                if attempt >= self.retry.max_attempts or (
                    wait is not None and wait > self.retry.max_retry_after
                ):
                    raise
                if wait is None:
                    wait = self.retry.backoff(attempt)
                await asyncio.sleep(wait)
        new_id = created.get("id") if isinstance(created, dict) else None
        if not isinstance(new_id, str | int):
            raise VendorResponseError(
                "Jira created the comment but sent no id back", subject=subject
            ).for_subject(self.name, subject)
        return str(new_id)

    def _state(
        self,
        update: KeyResultUpdate,
        mirror: JiraMirror,
        field_change: dict[str, Any] | None,
        comment_id: str | None,
        fingerprint: str,
    ) -> dict[str, Any]:
        """The issue property: the key result's full state, and what okrsync wrote where."""
        return {
            "schema": 1,
            "objective": {"id": update.objective_id, "title": update.objective_title},
            "key_result": {
                "id": update.key_result_id,
                "title": update.key_result_title,
                "kind": update.kind,
                "unit": update.unit,
                "start": _decimal_json(update.start),
                "target": _decimal_json(update.target),
            },
            "cycle": update.cycle_id,
            "value": _decimal_json(update.value),
            "progress": _decimal_json(update.progress),
            "progress_display": _decimal_json(update.progress_display),
            "status": update.status.value,
            "observed_at": update.observed_at.isoformat(),
            "stale": update.stale,
            "checked_at": None if update.checked_at is None else update.checked_at.isoformat(),
            "delivery_id": update.idempotency_key,
            "comment_id": comment_id,
            "field": field_change,
            "fingerprint": fingerprint,
        }
