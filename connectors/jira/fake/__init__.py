"""The sandbox Jira: Cloud REST v3 (and v2) or Data Center v2, on the real paths and bodies.

Served (``{v}`` is 3 or 2 on Cloud, 2 only on Data Center):

* ``GET /rest/api/{v}/serverInfo`` (anonymous), ``GET /rest/api/{v}/field``;
* Cloud: ``GET|POST /rest/api/{v}/search/jql`` (``nextPageToken``/``isLast``, no ``total``;
  ``maxResults`` default 50, at most 5000 for ``fields=id`` or ``fields=key`` and 100
  otherwise) and
  ``POST /rest/api/{v}/search/approximate-count``; the removed ``/rest/api/{v}/search`` answers
  **410** with the body Jira Cloud sends since CHANGE-2046;
* Data Center: ``GET|POST /rest/api/2/search`` with ``startAt``/``maxResults``/``total``;
* ``GET|PUT /rest/api/{v}/issue/{key}`` (PUT: ``{"fields": {...}}``, 204), comments
  (``GET|POST .../comment``, ``GET|PUT .../comment/{id}``: 201/200), issue properties
  (``GET .../properties``: the keys, each with its ``self``; ``GET|PUT .../properties/{key}``:
  201 created, 200 updated);
* remote issue links: ``GET|POST|DELETE /rest/api/{v}/issue/{key}/remotelink`` (POST upserts
  by ``globalId``: 201 when it adds a link, 200 when it replaces the one with that id; DELETE
  takes ``?globalId=``, 204, or 404 when there is none);
* search results carry ``updated``, ``labels`` and ``assignee``; JQL may filter on ``updated``
  in the user's time zone (``GET /myself``'s ``timeZone``), and ``JiraData.change`` edits an
  issue as a person would (moving ``updated``), so tests can change a state or move an issue
  out of a query;
* ``GET /rest/api/{v}/myself``: the user the credentials belong to, in Jira's ``User`` shape
  (Cloud: ``accountId``/``accountType``; Data Center: ``name``/``key``), ``groups`` and
  ``applicationRoles`` as sizes only unless ``expand`` names them, as Jira answers.

Errors use Jira's ``{"errorMessages": [...], "errors": {...}}`` bodies: 400 for bad JQL or an
unknown/unsettable field, 404 for a missing issue, comment or property, 401 (plain text, as
Jira Cloud answers) without valid Basic auth (Cloud) or Bearer personal access token (DC).
With ``write_interval`` set, two writes to one issue closer than that answer 429 with
``RateLimit-Reason: jira-per-issue-on-write`` and ``Retry-After``, like Jira's per-issue limit.
With ``burst_limit=(calls, seconds)`` set, the site answers 429 with ``Retry-After``,
``RateLimit-Reason: jira-burst-based`` and ``X-RateLimit-Limit`` once more than ``calls``
authenticated requests arrive in any ``seconds``: counted for the site, whichever client or
process sent them, as Jira's burst limit is. ``app.state.fake.rate_limited`` counts the refusals
per reason.
A Cloud site also enforces Jira Cloud's documented burst rate limits per endpoint and method
(:mod:`connectors.jira.fake.limits`; ``burst_rates=None`` turns them off, a mapping changes them,
also while serving) and sends their headers: ``X-RateLimit-Limit``/``-Remaining`` on every
authenticated answer, ``X-RateLimit-NearLimit: true`` under 20% of the budget, and 429 with
``Retry-After``, ``X-RateLimit-Reset`` and ``RateLimit-Reason: jira-burst-based`` when it is spent.
``latency`` delays every answer (a vendor's round trip); ``peak_in_flight`` is the most requests
the site held at once.

State lives in ``app.state.jira`` (:class:`JiraData`): issues, comments and the per-issue
counts of comments created and updated, so tests can see what a sink changed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.jira.fake.data import FIELDS, ISSUE_TYPES, PROJECTS, STATUSES, Issue, JiraData
from connectors.jira.fake.jql import USER_TIME_ZONE, JqlError
from connectors.jira.fake.limits import (
    BURST_REASON,
    DOCUMENTED_BURST_RATES,
    BurstLimiter,
    reset_stamp,
)

DEFAULT_EMAIL = "okr-bot@example.com"
DEFAULT_API_TOKEN = "sandbox-api-token"  # noqa: S105 - the fake's own token
DEFAULT_PAT = "sandbox-pat"
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ID_PAGE_LIMIT = 5000  # Jira's most issues a page, when only ``id`` or ``key`` is asked for
ID_FIELDS = (["id"], ["key"])
FIELDS_PAGE_LIMIT = 100
PROPERTY_LIMIT = 32768
BOT_ACCOUNT_ID = "5b10a2844c20165700ede21g"  # the token's user: it writes the comments
BOT_DISPLAY_NAME = "OKR bot"
BOT_USERNAME = "okr-bot"  # Data Center identifies users by name
BOT_GROUPS = ("jira-software-users", "okr-automation")

Handler = Callable[[Request], Awaitable[Response]]


def _errors(status: int, messages: list[str], errors: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errorMessages": messages, "errors": errors or {}}, status_code=status)


def _stamp(day: date | datetime | None) -> str | None:
    if day is None:
        return None
    if isinstance(day, datetime):
        moment = day
    else:
        moment = datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def adf_text(body: Any) -> str:
    """The plain text of an ADF document (for v2 answers and marker searches)."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        own = body.get("text") if isinstance(body.get("text"), str) else ""
        inner = "".join(adf_text(child) for child in body.get("content") or [])
        sep = "\n" if body.get("type") in ("paragraph", "heading", "codeBlock") else ""
        return f"{own}{inner}{sep}"
    if isinstance(body, list):
        return "".join(adf_text(item) for item in body)
    return ""


def _as_adf(body: Any) -> Any:
    if isinstance(body, dict):
        return body
    text = str(body)
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


class JiraFake:
    def __init__(
        self,
        data: JiraData,
        *,
        deployment: Literal["cloud", "datacenter"],
        email: str,
        api_token: str,
        pat: str,
        write_interval: float,
        burst_limit: tuple[int, float] | None = None,
        burst_rates: MutableMapping[str, float] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.data = data
        self.deployment = deployment
        self.email = email
        self.api_token = api_token
        self.pat = pat
        self.write_interval = write_interval
        self._last_write: dict[str, float] = {}
        self.per_issue_limited = 0
        self.burst_limit = burst_limit
        self._recent: deque[float] = deque()  # arrival times within the burst window
        self.rate_limited: Counter[str] = Counter()  # refusals per RateLimit-Reason
        self.limiter = (
            BurstLimiter(burst_rates) if burst_rates is not None and deployment == "cloud" else None
        )
        self.latency = latency
        self.in_flight = 0
        self.peak_in_flight = 0
        self.answered: Counter[str] = Counter()  # authenticated answers per endpoint

    # --- plumbing -------------------------------------------------------------------------------

    def versions(self) -> tuple[str, ...]:
        return ("2", "3") if self.deployment == "cloud" else ("2",)

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if self.deployment == "datacenter":
            return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.pat)
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        email, _, token = decoded.partition(":")
        return email == self.email and hmac.compare_digest(token, self.api_token)

    def route(self, handler: Handler, *, anonymous: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            if request.path_params.get("version") not in self.versions():
                return _errors(404, ["null for uri: " + str(request.url)])
            if not anonymous and not self.authorized(request):
                return PlainTextResponse(
                    "Client must be authenticated to access this resource.", status_code=401
                )
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                if anonymous:
                    return await handler(request)
                return await self._limited(handler, request)
            finally:
                self.in_flight -= 1

        return endpoint

    async def _limited(self, handler: Handler, request: Request) -> Response:
        if (limited := self.burst_gate()) is not None:
            return limited
        verdict = None
        if self.limiter is not None:
            verdict = self.limiter.admit(handler.__name__, request.method)
            if verdict is not None and not verdict.allowed:
                self.rate_limited[BURST_REASON] += 1
                # Jira documents no 429 body: clients must key on the status and headers only.
                return Response(status_code=429, headers=verdict.headers)
        self.answered[handler.__name__] += 1
        response = await handler(request)
        if verdict is not None:
            for name, value in verdict.headers.items():
                response.headers[name] = value
        return response

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + f"/rest/api/{request.path_params['version']}"

    async def json_body(self, request: Request) -> tuple[Any, Response | None]:
        raw = await request.body()
        if not raw.strip():
            return None, None
        try:
            return json.loads(raw), None
        except ValueError:
            return None, _errors(400, ["Unexpected character in the request body: not JSON."])

    def missing_issue(self) -> Response:
        return _errors(404, ["Issue does not exist or you do not have permission to see it."])

    def burst_gate(self) -> Response | None:
        """The site's burst limit: a sliding window over every authenticated request."""
        if self.burst_limit is None:
            return None
        calls, seconds = self.burst_limit
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - seconds:
            self._recent.popleft()
        if len(self._recent) >= calls:
            self.rate_limited[BURST_REASON] += 1
            wait = max(1, math.ceil(self._recent[0] + seconds - now))
            # Jira documents no 429 body: clients must key on the status and headers only.
            return Response(
                status_code=429,
                headers={
                    "Retry-After": str(wait),
                    "RateLimit-Reason": BURST_REASON,
                    "X-RateLimit-Limit": str(calls),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset_stamp(time.time() + wait),
                },
            )
        self._recent.append(now)
        return None

    def write_gate(self, issue: Issue) -> Response | None:
        """Jira's per-issue write limit, simplified to a minimum gap between writes."""
        if self.write_interval <= 0:
            return None
        now = time.monotonic()
        last = self._last_write.get(issue.key)
        if last is not None and now - last < self.write_interval:
            self.per_issue_limited += 1
            self.rate_limited["jira-per-issue-on-write"] += 1
            return Response(
                status_code=429,
                headers={
                    "Retry-After": "1",
                    "RateLimit-Reason": "jira-per-issue-on-write",
                },
            )
        self._last_write[issue.key] = now
        return None

    # --- rendering ------------------------------------------------------------------------------

    def render_issue(self, request: Request, issue: Issue, fields: list[str]) -> dict[str, Any]:
        base = self.base(request)
        if fields == ["id"]:
            return {"id": issue.id}
        status_id, cat_key, cat_name, cat_id = STATUSES[issue.status]
        every: dict[str, Any] = {
            "summary": issue.summary,
            "status": {
                "self": f"{base}/status/{status_id}",
                "id": status_id,
                "name": issue.status,
                "statusCategory": {
                    "self": f"{base}/statuscategory/{cat_id}",
                    "id": cat_id,
                    "key": cat_key,
                    "name": cat_name,
                },
            },
            "issuetype": {
                "id": ISSUE_TYPES[issue.issuetype],
                "name": issue.issuetype,
                "subtask": False,
                "hierarchyLevel": 1 if issue.issuetype == "Epic" else 0,
            },
            "project": {
                "id": PROJECTS[issue.project][0],
                "key": issue.project,
                "name": issue.project,
            },
            "created": _stamp(issue.created),
            "resolutiondate": _stamp(issue.resolved),
            "updated": _stamp(issue.updated_at()),
            "labels": list(issue.labels),
            "assignee": self.render_user(request, issue.assignee),
            **issue.fields,
        }
        if issue.parent is not None:
            parent = self.data.find(issue.parent)
            every["parent"] = {
                "id": parent.id if parent else "",
                "key": issue.parent,
                "self": f"{base}/issue/{parent.id if parent else issue.parent}",
            }
        wanted = set(fields)
        if not wanted or "*all" in wanted or "*navigable" in wanted:
            chosen = every
        else:
            chosen = {k: v for k, v in every.items() if k in wanted}
        return {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": issue.id,
            "self": f"{base}/issue/{issue.id}",
            "key": issue.key,
            "fields": chosen,
        }

    def render_user(self, request: Request, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        account = "5b10ac8d82e05b22cc7d" + format(sum(name.encode()) % 0xFFFF, "04x")
        return {
            "self": f"{self.base(request)}/user?accountId={account}",
            "accountId": account,
            "accountType": "atlassian",
            "displayName": name,
            "active": True,
        }

    def render_remote_link(self, request: Request, issue: Issue, link: dict[str, Any]) -> Any:
        shown = {k: v for k, v in link.items() if k != "globalId" or v is not None}
        shown["self"] = f"{self.base(request)}/issue/{issue.key}/remotelink/{link['id']}"
        return shown

    def render_comment(self, request: Request, comment_id: str) -> dict[str, Any]:
        comment = self.data.comments[comment_id]
        issue = self.data.find(comment.issue)
        author = {
            "accountId": BOT_ACCOUNT_ID,
            "displayName": BOT_DISPLAY_NAME,
            "active": True,
        }
        body = _as_adf(comment.body)
        if request.path_params["version"] == "2":
            body = adf_text(comment.body).rstrip("\n")
        return {
            "self": f"{self.base(request)}/issue/{issue.id if issue else ''}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "updateAuthor": author,
            "body": body,
            "created": _stamp(comment.created),
            "updated": _stamp(comment.updated),
            "jsdPublic": True,
        }

    # --- endpoints ------------------------------------------------------------------------------

    async def server_info(self, request: Request) -> Response:
        cloud = self.deployment == "cloud"
        return JSONResponse(
            {
                "baseUrl": str(request.base_url).rstrip("/"),
                "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.15",
                "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 15],
                "deploymentType": "Cloud" if cloud else "Server",
                "buildNumber": 100290 if cloud else 9120015,
                "buildDate": "2026-11-01T00:00:00.000+0000",
                "serverTime": _stamp(datetime.now(UTC)),
                "scmInfo": "57a0ca5b",
                "serverTitle": "Sandbox Jira",
            }
        )

    async def fields(self, request: Request) -> Response:
        return JSONResponse(FIELDS)

    async def removed_search(self, request: Request) -> Response:
        if self.deployment == "cloud":
            return _errors(410, [REMOVED_SEARCH])
        return await self.dc_search(request)

    async def _search_args(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        if request.method == "POST":
            body, problem = await self.json_body(request)
            if problem is not None:
                return {}, problem
            return (body if isinstance(body, dict) else {}), None
        query = request.query_params
        args: dict[str, Any] = {k: query.get(k) for k in query if k != "fields"}
        if "fields" in query:
            args["fields"] = [f for v in query.getlist("fields") for f in v.split(",") if f]
        return args, None

    @staticmethod
    def _fields(args: dict[str, Any], default: list[str]) -> list[str]:
        raw = args.get("fields")
        if raw is None:
            return default
        if isinstance(raw, str):
            return [f.strip() for f in raw.split(",") if f.strip()]
        return [str(f) for f in raw]

    async def search_jql(self, request: Request) -> Response:
        args, problem = await self._search_args(request)
        if problem is not None:
            return problem
        jql = str(args.get("jql") or "")
        try:
            issues = self.data.select(jql)
        except JqlError as exc:
            return _errors(400, [str(exc)])
        fields = self._fields(args, ["id"])
        limit = ID_PAGE_LIMIT if fields in ID_FIELDS else FIELDS_PAGE_LIMIT
        try:
            size = min(int(args.get("maxResults") or 50), limit)
        except ValueError:
            return _errors(400, ["maxResults must be a number."])
        offset = 0
        token = args.get("nextPageToken")
        if token:
            try:
                seen_jql, _, start = base64.urlsafe_b64decode(str(token)).decode().rpartition("|")
                offset = int(start)
            except (ValueError, binascii.Error):
                return _errors(400, ["The provided next page token is invalid or expired."])
            if seen_jql != jql:
                return _errors(400, ["The provided next page token is invalid or expired."])
        page = issues[offset : offset + max(size, 1)] if size > 0 else []
        body: dict[str, Any] = {
            "issues": [self.render_issue(request, issue, fields) for issue in page],
        }
        end = offset + len(page)
        if end < len(issues) and size > 0:
            body["nextPageToken"] = base64.urlsafe_b64encode(f"{jql}|{end}".encode()).decode()
            body["isLast"] = False
        else:
            body["isLast"] = True
        return JSONResponse(body)

    async def not_here(self, request: Request) -> Response:
        return _errors(404, ["null for uri: " + str(request.url)])

    async def approximate_count(self, request: Request) -> Response:
        if self.deployment != "cloud":
            return await self.not_here(request)
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        jql = str((body or {}).get("jql") or "") if isinstance(body, dict) else ""
        try:
            count = len(self.data.select(jql))
        except JqlError as exc:
            return _errors(400, [str(exc)])
        return JSONResponse({"count": count})

    async def dc_search(self, request: Request) -> Response:
        args, problem = await self._search_args(request)
        if problem is not None:
            return problem
        jql = str(args.get("jql") or "")
        try:
            issues = self.data.select(jql) if jql.strip() else self.data.select("key != none")
        except JqlError as exc:
            return _errors(400, [str(exc)])
        try:
            start = int(args.get("startAt") or 0)
            size = min(
                int(str(args["maxResults"]) if args.get("maxResults") is not None else 50), 1000
            )
        except ValueError:
            return _errors(400, ["startAt and maxResults must be numbers."])
        fields = self._fields(args, ["*navigable"])
        page = issues[start : start + size]
        return JSONResponse(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(issues),
                "issues": [self.render_issue(request, issue, fields) for issue in page],
            }
        )

    async def issue(self, request: Request) -> Response:
        issue = self.data.find(request.path_params["key"])
        if issue is None:
            return self.missing_issue()
        if request.method == "GET":
            fields = self._fields(dict(request.query_params), ["*all"])
            return JSONResponse(self.render_issue(request, issue, fields))
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
            return _errors(400, ["Can not deserialize the request body: fields must be an object."])
        known = {f["id"]: f for f in FIELDS}
        errors: dict[str, str] = {}
        for field_id, value in body.get("fields", {}).items():
            meta = known.get(field_id)
            if meta is None or field_id == "status":
                errors[field_id] = (
                    f"Field '{field_id}' cannot be set. It is not on the appropriate screen, "
                    "or unknown."
                )
            elif meta["schema"]["type"] == "number" and not (
                value is None or (isinstance(value, int | float) and not isinstance(value, bool))
            ):
                errors[field_id] = "Operation value must be a number"
            elif meta["schema"]["type"] == "string" and not (
                value is None or isinstance(value, str)
            ):
                errors[field_id] = "Operation value must be a string"
            elif isinstance(value, str) and len(value) > 255:
                errors[field_id] = (
                    "The entered text is too long. It exceeds the allowed limit of 255 characters."
                )
        if errors:
            return _errors(400, [], errors)
        if (limited := self.write_gate(issue)) is not None:
            return limited
        with self.data.lock:
            for field_id, value in body.get("fields", {}).items():
                if field_id == "summary":
                    issue.summary = str(value)
                else:
                    issue.fields[field_id] = value
                self.data.field_edits[issue.key] += 1
        if request.query_params.get("returnIssue") == "true":
            return JSONResponse(self.render_issue(request, issue, ["*all"]))
        return Response(status_code=204)

    async def comments(self, request: Request) -> Response:
        issue = self.data.find(request.path_params["key"])
        if issue is None:
            return self.missing_issue()
        if request.method == "GET":
            every = self.data.comments_of(issue)
            try:
                start = int(request.query_params.get("startAt", "0"))
                size = min(int(request.query_params.get("maxResults", "5000")), 5000)
            except ValueError:
                return _errors(400, ["startAt and maxResults must be numbers."])
            page = every[start : start + size]
            return JSONResponse(
                {
                    "startAt": start,
                    "maxResults": size,
                    "total": len(every),
                    "comments": [self.render_comment(request, c.id) for c in page],
                }
            )
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        checked = self._comment_body(request, body)
        if isinstance(checked, Response):
            return checked
        if (limited := self.write_gate(issue)) is not None:
            return limited
        comment = self.data.new_comment(issue, checked)
        return JSONResponse(self.render_comment(request, comment.id), status_code=201)

    def _comment_body(self, request: Request, body: Any) -> Any:
        content = body.get("body") if isinstance(body, dict) else None
        if request.path_params["version"] == "3":
            if not (isinstance(content, dict) and content.get("type") == "doc"):
                return _errors(400, [], {"comment": "Comment body is not valid!"})
        elif not isinstance(content, str) or not content.strip():
            return _errors(400, [], {"comment": "Comment body can not be empty!"})
        return content

    async def comment(self, request: Request) -> Response:
        issue = self.data.find(request.path_params["key"])
        if issue is None:
            return self.missing_issue()
        comment_id = request.path_params["comment_id"]
        existing = self.data.comments.get(comment_id)
        if existing is None or existing.issue != issue.key:
            return _errors(404, [f"Can not find a comment for the id: {comment_id}."])
        if request.method == "GET":
            return JSONResponse(self.render_comment(request, comment_id))
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        checked = self._comment_body(request, body)
        if isinstance(checked, Response):
            return checked
        if (limited := self.write_gate(issue)) is not None:
            return limited
        with self.data.lock:
            if existing.body != checked:
                existing.body = checked
                existing.updated = datetime.now(UTC)
                self.data.comments_updated[issue.key] += 1
        return JSONResponse(self.render_comment(request, comment_id))

    async def remote_links(self, request: Request) -> Response:
        """Remote issue links: GET (all, or the one ``globalId``), POST (upsert by
        ``globalId``: 201 created, 200 updated), DELETE ``?globalId=`` (204)."""
        issue = self.data.find(request.path_params["key"])
        if issue is None:
            return self.missing_issue()
        global_id = request.query_params.get("globalId")
        if request.method == "GET":
            with self.data.lock:
                links = list(issue.remote_links.values())
            if global_id is not None:
                found = [link for link in links if link.get("globalId") == global_id]
                if not found:
                    return _errors(404, ["No remote link with the given globalId was found."])
                return JSONResponse(self.render_remote_link(request, issue, found[0]))
            return JSONResponse([self.render_remote_link(request, issue, link) for link in links])
        if request.method == "DELETE":
            if not global_id:
                return _errors(400, ["The globalId parameter is required."])
            if (limited := self.write_gate(issue)) is not None:
                return limited
            with self.data.lock:
                gone = issue.remote_links.pop(global_id, None)
            if gone is None:
                return _errors(404, ["No remote link with the given globalId was found."])
            return Response(status_code=204)
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        target = body.get("object") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(target, dict):
            return _errors(400, [], {"object": "The remote object is required."})
        errors = {
            name: f"The {name} of the remote object is required."
            for name in ("url", "title")
            if not isinstance(target.get(name), str) or not target[name].strip()
        }
        wanted = body.get("globalId")
        if wanted is not None and (not isinstance(wanted, str) or len(wanted) > 255):
            errors["globalId"] = "The globalId must be a string of at most 255 characters."
        if errors:
            return _errors(400, [], errors)
        if (limited := self.write_gate(issue)) is not None:
            return limited
        kept = {k: body[k] for k in ("application", "relationship", "object") if k in body}
        link_id, created = self.data.put_remote_link(issue, wanted, kept)
        return JSONResponse(
            {"id": link_id, "self": f"{self.base(request)}/issue/{issue.key}/remotelink/{link_id}"},
            status_code=201 if created else 200,
        )

    async def myself(self, request: Request) -> Response:
        """The credentials' user; ``expand=groups,applicationRoles`` fills those two lists."""
        site = str(request.base_url).rstrip("/")
        base = self.base(request)
        expand = {part.strip() for part in request.query_params.get("expand", "").split(",")}
        cloud = self.deployment == "cloud"
        groups = [
            {"name": name, "self": f"{base}/group?groupname={quote(name)}"}
            | ({"groupId": f"0a1b2c3d-0000-4000-8000-{index:012d}"} if cloud else {})
            for index, name in enumerate(BOT_GROUPS, start=1)
        ]
        roles = [{"key": "jira-software", "name": "Jira Software"}]
        identity: dict[str, Any]
        if cloud:
            identity = {
                "self": f"{base}/user?accountId={BOT_ACCOUNT_ID}",
                "accountId": BOT_ACCOUNT_ID,
                "accountType": "atlassian",
                "emailAddress": self.email,
            }
            avatar = f"{site}/secure/useravatar?ownerId={BOT_ACCOUNT_ID}"
        else:
            identity = {
                "self": f"{base}/user?username={BOT_USERNAME}",
                "key": "JIRAUSER10100",
                "name": BOT_USERNAME,
                "emailAddress": self.email,
            }
            avatar = f"{site}/secure/useravatar?ownerId=JIRAUSER10100"
        return JSONResponse(
            {
                **identity,
                "avatarUrls": {
                    f"{size}x{size}": f"{avatar}&size={size}" for size in (48, 24, 16, 32)
                },
                "displayName": BOT_DISPLAY_NAME,
                "active": True,
                "timeZone": USER_TIME_ZONE.key,
                "locale": "en_US",
                "groups": {
                    "size": len(groups),
                    "items": groups if "groups" in expand else [],
                },
                "applicationRoles": {
                    "size": len(roles),
                    "items": roles if "applicationRoles" in expand else [],
                },
                "expand": "groups,applicationRoles",
            }
        )

    async def issue_property_keys(self, request: Request) -> Response:
        """``{"keys": [{"self", "key"}]}``: every property set on the issue, in write order."""
        asked = request.path_params["key"]
        issue = self.data.find(asked)
        if issue is None:
            return self.missing_issue()
        with self.data.lock:
            names = list(issue.properties)
        issue_url = f"{self.base(request)}/issue/{asked}"
        return JSONResponse(
            {
                "keys": [
                    {"self": f"{issue_url}/properties/{quote(name, safe='')}", "key": name}
                    for name in names
                ]
            }
        )

    async def issue_property(self, request: Request) -> Response:
        issue = self.data.find(request.path_params["key"])
        if issue is None:
            return self.missing_issue()
        name = request.path_params["property"]
        if request.method == "GET":
            if name not in issue.properties:
                return _errors(404, [f"The property with key '{name}' does not exist."])
            return JSONResponse({"key": name, "value": issue.properties[name]})
        raw = await request.body()
        if len(name) > 255:
            return _errors(400, ["The property key cannot be longer than 255 characters."])
        if len(raw) > PROPERTY_LIMIT:
            return _errors(400, ["The property value cannot be longer than 32768 bytes."])
        body, problem = await self.json_body(request)
        if problem is not None:
            return problem
        if body is None:
            return _errors(400, ["The property value can not be empty."])
        if (limited := self.write_gate(issue)) is not None:
            return limited
        with self.data.lock:
            created = name not in issue.properties
            issue.properties[name] = body
        return Response(status_code=201 if created else 200)


def jira_app(
    *,
    deployment: Literal["cloud", "datacenter"] = "cloud",
    data: JiraData | None = None,
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
    pat: str = DEFAULT_PAT,
    write_interval: float = 0.0,
    burst_limit: tuple[int, float] | None = None,
    burst_rates: MutableMapping[str, float] | None = None,
    documented_limits: bool = True,
    latency: float = 0.0,
) -> Starlette:
    """The fake as an ASGI app; its state is ``app.state.jira`` and ``app.state.fake``.

    A Cloud site enforces Jira's documented burst limits unless ``documented_limits`` is off;
    ``burst_rates`` replaces them (requests per second per endpoint, by method).
    """
    if burst_rates is None and documented_limits:
        burst_rates = dict(DOCUMENTED_BURST_RATES)
    fake = JiraFake(
        data or JiraData(),
        deployment=deployment,
        email=email,
        api_token=api_token,
        pat=pat,
        write_interval=write_interval,
        burst_limit=burst_limit,
        burst_rates=burst_rates,
        latency=latency,
    )
    prefix = "/rest/api/{version}"
    search = fake.search_jql if deployment == "cloud" else fake.not_here
    routes = [
        Route(f"{prefix}/serverInfo", fake.route(fake.server_info, anonymous=True)),
        Route(f"{prefix}/field", fake.route(fake.fields)),
        Route(f"{prefix}/search", fake.route(fake.removed_search), methods=["GET", "POST"]),
        Route(f"{prefix}/search/jql", fake.route(search), methods=["GET", "POST"]),
        Route(
            f"{prefix}/search/approximate-count",
            fake.route(fake.approximate_count),
            methods=["POST"],
        ),
        Route(f"{prefix}/issue/{{key}}", fake.route(fake.issue), methods=["GET", "PUT"]),
        Route(
            f"{prefix}/issue/{{key}}/comment",
            fake.route(fake.comments),
            methods=["GET", "POST"],
        ),
        Route(
            f"{prefix}/issue/{{key}}/comment/{{comment_id}}",
            fake.route(fake.comment),
            methods=["GET", "PUT"],
        ),
        Route(f"{prefix}/myself", fake.route(fake.myself)),
        Route(
            f"{prefix}/issue/{{key}}/remotelink",
            fake.route(fake.remote_links),
            methods=["GET", "POST", "DELETE"],
        ),
        Route(f"{prefix}/issue/{{key}}/properties", fake.route(fake.issue_property_keys)),
        Route(
            f"{prefix}/issue/{{key}}/properties/{{property}}",
            fake.route(fake.issue_property),
            methods=["GET", "PUT"],
        ),
    ]
    app = Starlette(routes=routes)
    app.state.jira = fake.data
    app.state.fake = fake
    return app


__all__ = ["DEFAULT_API_TOKEN", "DEFAULT_EMAIL", "DEFAULT_PAT", "JiraData", "adf_text", "jira_app"]
