"""A sandbox Salesforce org: OAuth token endpoint, SOQL query with paging, a report, limits.

Wire format as the real REST API: ``POST /services/oauth2/token`` (client credentials, refused
on the shared login hosts with ``400 invalid_grant: request not supported on this domain`` as
Salesforce does, since that flow works only on the org's My Domain; JWT bearer with the
assertion's RS256 signature checked against the connected app's public key; OAuth errors as
``{"error", "error_description"}`` with HTTP 400), ``GET /services/data/`` (the versions; it does
not count against the limit and carries no limit header, as documented), ``GET
/services/data/vXX.X/query?q=…`` and ``…/query/<locator>-<offset>`` pages (2000 records, or
``Sforce-Query-Options: batchSize=N`` with N clamped to 200-2000), ``GET
…/analytics/reports/<id>`` with a ``factMap``, ``…/limits``, ``…/sobjects`` and
``…/sobjects/<name>/describe`` (see :mod:`connectors.salesforce.fake_metadata`),
``Sforce-Limit-Info: api-usage=N/LIMIT`` on every counted answer, ``403 REQUEST_LIMIT_EXCEEDED``
past the limit, error bodies as JSON lists ``[{"message", "errorCode"}]``, ``401
INVALID_SESSION_ID`` for an unknown or expired token.

The org holds a few hundred Opportunities with owners, accounts, stages, amounts and close dates
spread over the year of ``today``, generated from a seed so every test sees the same numbers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.salesforce.fake_metadata import SOBJECTS, global_describe, org_limits
from connectors.salesforce.fake_soql import SoqlError, aggregate, get_field, parse

CLIENT_ID = "3MVG9sandboxConsumerKey.okrsync"
CLIENT_SECRET = "sbx-consumer-secret-5e1d9a"  # noqa: S105 - the fake's own test credential
USERNAME = "integration@okrsync.example"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce's shared login hosts, which refuse the client credentials flow. The fake answers as
# whatever host the request names (``Host``): on 127.0.0.1 or localhost it is the org's My Domain.
GENERIC_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
VERSIONS = ("58.0", "59.0", "60.0", "61.0", "62.0")
ORG_ID = "00D5e000000SbxAEAS"
STAGES_OPEN = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
SCHEMA: dict[str, dict[str, str]] = {
    "Opportunity": {
        "Id": "id",
        "Name": "string",
        "StageName": "string",
        "IsWon": "boolean",
        "IsClosed": "boolean",
        "Amount": "currency",
        "CloseDate": "date",
        "CreatedDate": "datetime",
        "OwnerId": "reference",
        "Owner.Name": "string",
        "AccountId": "reference",
        "Account.Name": "string",
        "Account.Industry": "string",
        "Type": "string",
    }
}
DEFAULT_BATCH = 2000
WON_REPORT_ID = "00O5e000008WonQAAS"


def _sf_id(prefix: str, number: int) -> str:
    return f"{prefix}5e00000{number:08d}AAA"[:18]


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code}], status, headers=headers)


@dataclass
class OrgData:
    """The org's records and its API bookkeeping; tests read it to compute expected numbers."""

    today: date
    opportunities: list[dict[str, Any]]
    api_limit: int = 15_000
    api_used: int = 0  # the whole org's usage in the rolling 24 h (other integrations included)
    refused: int = 0  # calls answered 403 REQUEST_LIMIT_EXCEEDED (the org's, whoever called)
    public_key: str | None = None  # the connected app's certificate key, for JWT bearer
    tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def issue_token(self) -> str:
        token = f"{ORG_ID}!AQ{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        self.tokens_issued += 1
        return token

    def expire_tokens(self) -> None:
        """Every session ends, as when an admin revokes them or the session times out."""
        self.tokens.clear()

    def where(self, **equals: Any) -> list[dict[str, Any]]:
        return [o for o in self.opportunities if all(o[k] == v for k, v in equals.items())]


def make_org(today: date, *, count: int = 320, seed: int = 2026) -> OrgData:
    rng = random.Random(seed)  # noqa: S311 - sample data, not cryptography
    owners = [
        (_sf_id("005", i + 1), name)
        for i, name in enumerate(["Ada Byron", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"])
    ]
    industries = ["Technology", "Finance", "Healthcare", "Retail"]
    accounts = [
        (_sf_id("001", i + 1), f"Account {i + 1:02d}", industries[i % len(industries)])
        for i in range(24)
    ]
    year_start = date(today.year, 1, 1)
    opportunities = []
    for number in range(1, count + 1):
        owner_id, owner_name = rng.choice(owners)
        account_id, account_name, industry = rng.choice(accounts)
        close = year_start + timedelta(days=rng.randrange(365))
        roll = rng.random()
        stage = "Closed Won" if roll < 0.3 else "Closed Lost" if roll < 0.55 else None
        if stage is None:
            stage = rng.choice(STAGES_OPEN)
        amount = None if number % 41 == 0 else Decimal(rng.randrange(50_000, 9_000_000)) / 100
        created = datetime.combine(
            close - timedelta(days=rng.randrange(10, 120)), datetime.min.time()
        )
        oid = _sf_id("006", number)
        opportunities.append(
            {
                "Id": oid,
                "Name": f"{account_name} deal {number}",
                "StageName": stage,
                "IsWon": stage == "Closed Won",
                "IsClosed": stage in ("Closed Won", "Closed Lost"),
                "Amount": amount,
                "CloseDate": close,
                "CreatedDate": created.replace(hour=rng.randrange(24), tzinfo=UTC),
                "OwnerId": owner_id,
                "Owner": {"Name": owner_name},
                "AccountId": account_id,
                "Account": {"Name": account_name, "Industry": industry},
                "Type": rng.choice(["New Business", "Existing Business"]),
            }
        )
    org = OrgData(today=today, opportunities=opportunities)
    org.reports[WON_REPORT_ID] = {
        "name": "Won opportunities",
        "filter": {"IsWon": True},
    }
    return org


class FakeSalesforce:
    """The route handlers, over one :class:`OrgData`."""

    def __init__(self, org: OrgData) -> None:
        self.org = org

    # --- helpers --------------------------------------------------------------------------------

    def limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.org.api_used}/{self.org.api_limit}"}

    def authorize(self, request: Request) -> Response | None:
        """401 for a bad session; 403 past the limit; else count the call (``None``)."""
        header = request.headers.get("authorization", "")
        token = header.split(" ", 1)[1] if header.lower().startswith(("bearer ", "oauth ")) else ""
        if token not in self.org.tokens:
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.org.api_used >= self.org.api_limit:
            self.org.refused += 1
            return _error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                f"TotalRequests Limit exceeded. Limit: {self.org.api_limit}",
                **self.limit_headers(),
            )
        self.org.api_used += 1
        return None

    def answer(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status, headers=self.limit_headers())

    def version_ok(self, request: Request) -> bool:
        return str(request.path_params.get("version", "")) in VERSIONS

    # --- OAuth ----------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        # Parsed by hand: starlette's form parser needs python-multipart, which we do not ship.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant = str(form.get("grant_type", ""))
        if grant == "client_credentials":
            if (request.url.hostname or "").lower() in GENERIC_LOGIN_HOSTS:
                return self.oauth_error("invalid_grant", "request not supported on this domain")
            if form.get("client_id") != CLIENT_ID:
                return self.oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != CLIENT_SECRET:
                return self.oauth_error("invalid_client", "invalid client credentials")
        elif grant == JWT_GRANT:
            problem = self.check_assertion(str(form.get("assertion", "")), request)
            if problem is not None:
                return self.oauth_error("invalid_grant", problem)
        else:
            return self.oauth_error("unsupported_grant_type", "grant type not supported")
        token = self.org.issue_token()
        base = str(request.base_url).rstrip("/")
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(
            hmac.new(CLIENT_SECRET.encode(), f"{base}{issued}".encode(), hashlib.sha256).digest()
        ).decode()
        return JSONResponse(
            {
                "access_token": token,
                "signature": signature,
                "scope": "api",
                "instance_url": base,
                "id": f"{base}/id/{ORG_ID}/{_sf_id('005', 99)}",
                "token_type": "Bearer",
                "issued_at": issued,
            }
        )

    @staticmethod
    def oauth_error(error: str, description: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, 400)

    def check_assertion(self, assertion: str, request: Request) -> str | None:
        if self.org.public_key is None:
            return "invalid assertion"
        audiences = [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            str(request.base_url).rstrip("/"),
        ]
        try:
            claims = jwt.decode(
                assertion,
                self.org.public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired authorization code"
        except jwt.InvalidAudienceError:
            return "audience is invalid"
        except jwt.PyJWTError:
            return "invalid assertion"
        if claims["iss"] != CLIENT_ID:
            return "invalid client identifier"
        if claims["sub"] != USERNAME:
            return "user hasn't approved this consumer"
        if claims["exp"] > time.time() + 300:
            return "invalid assertion: exp too far in the future"
        return None

    # --- REST -----------------------------------------------------------------------------------

    async def versions(self, request: Request) -> Response:
        return JSONResponse(
            [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in VERSIONS]
        )

    async def query(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        if not self.version_ok(request):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        text = request.query_params.get("q")
        if not text:
            return _error(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            parsed = parse(text, SCHEMA, self.org.today)
        except SoqlError as exc:
            return _error(400, exc.error_code, exc.message, **self.limit_headers())
        matched = [o for o in self.org.opportunities if parsed.where is None or parsed.where(o)]
        if parsed.count_only:
            return self.answer({"totalSize": len(matched), "done": True, "records": []})
        if parsed.is_aggregate:
            rows = [
                {k: _json_value(v) for k, v in row.items()} for row in aggregate(parsed, matched)
            ]
            if parsed.limit is not None:
                rows = rows[: parsed.limit]
            return self.answer({"totalSize": len(rows), "done": True, "records": rows})
        if parsed.order_by is not None:
            name, descending = parsed.order_by
            matched.sort(
                key=lambda r: (get_field(r, name) is None, get_field(r, name)), reverse=descending
            )
        if parsed.limit is not None:
            matched = matched[: parsed.limit]
        version = request.path_params["version"]
        records = [self.record(o, parsed.items, version) for o in matched]
        return self.page(records, 0, self.batch_size(request), version, None)

    def batch_size(self, request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        for part in options.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "batchsize" and value.strip().isdigit():
                return max(200, min(2000, int(value)))
        return DEFAULT_BATCH

    def page(
        self,
        records: list[dict[str, Any]],
        offset: int,
        size: int,
        version: str,
        locator: str | None,
    ) -> JSONResponse:
        chunk = records[offset : offset + size]
        body: dict[str, Any] = {"totalSize": len(records), "done": offset + size >= len(records)}
        if not body["done"]:
            if locator is None:
                locator = f"01g5e{secrets.token_hex(6)}"
                self.org.cursors[locator] = records
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + size}"
        body["records"] = chunk
        return self.answer(body)

    async def query_more(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        locator, _, offset = str(request.path_params["locator"]).rpartition("-")
        records = self.org.cursors.get(locator)
        if records is None or not offset.isdigit() or not self.version_ok(request):
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        version = request.path_params["version"]
        return self.page(records, int(offset), self.batch_size(request), version, locator)

    def record(self, source: Mapping[str, Any], items: list[Any], version: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": "Opportunity",
                "url": f"/services/data/v{version}/sobjects/Opportunity/{source['Id']}",
            }
        }
        for item in items:
            name: str = item.field
            if "." in name:
                relation, child = name.split(".", 1)
                kind = {"Owner": "User", "Account": "Account"}.get(relation, relation)
                nested = out.setdefault(relation, {"attributes": {"type": kind}})
                nested[child] = _json_value(get_field(source, name))
            else:
                canonical = next(k for k in SCHEMA["Opportunity"] if k.lower() == name.lower())
                out[canonical] = _json_value(source[canonical])
        return out

    async def limits(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        if not self.version_ok(request):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        return self.answer(org_limits(self.org.api_limit, self.org.api_used))

    async def sobjects(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        if not self.version_ok(request):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        return self.answer(global_describe(request.path_params["version"]))

    async def describe(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        name = str(request.path_params["name"])
        sobject = next((s for s in SOBJECTS.values() if s.name.lower() == name.lower()), None)
        if sobject is None or not self.version_ok(request):
            return _error(
                404, "NOT_FOUND", "The requested resource does not exist", **self.limit_headers()
            )
        return self.answer(sobject.describe(request.path_params["version"]))

    async def report(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        report = self.org.reports.get(str(request.path_params["report_id"]))
        if report is None or not self.version_ok(request):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        rows = self.org.where(**report["filter"])
        total = sum((o["Amount"] for o in rows if o["Amount"] is not None), Decimal(0))
        aggregates = [
            {"label": f"USD {total:,.2f}", "value": float(total)},
            {"label": str(len(rows)), "value": len(rows)},
        ]
        report_id = str(request.path_params["report_id"])
        return self.answer(
            {
                "attributes": {
                    "describeUrl": f"/services/data/v60.0/analytics/reports/{report_id}/describe",
                    "reportId": report_id,
                    "reportName": report["name"],
                    "type": "Report",
                },
                "allData": True,
                "factMap": {"T!T": {"aggregates": aggregates, "rows": []}},
                "groupingsAcross": {"groupings": []},
                "groupingsDown": {"groupings": []},
                "hasDetailRows": False,
                "reportMetadata": {
                    "id": report_id,
                    "name": report["name"],
                    "reportFormat": "TABULAR",
                    "aggregates": ["s!Amount", "RowCount"],
                    "reportType": {"type": "Opportunity", "label": "Opportunities"},
                },
            }
        )


def salesforce_app(
    *,
    today: date | None = None,
    api_limit: int = 15_000,
    api_used: int = 0,
    public_key: str | None = None,
    count: int = 320,
) -> Starlette:
    """The fake org as an ASGI app; its :class:`OrgData` is ``app.state.org``."""
    org = make_org(today or datetime.now(UTC).date(), count=count)
    org.api_limit, org.api_used, org.public_key = api_limit, api_used, public_key
    fake = FakeSalesforce(org)
    data = "/services/data/v{version}"
    app = Starlette(
        routes=[
            Route("/services/oauth2/token", fake.token, methods=["POST"]),
            Route("/services/data", fake.versions, methods=["GET"]),
            Route("/services/data/", fake.versions, methods=["GET"]),
            Route(f"{data}/query", fake.query, methods=["GET"]),
            Route(f"{data}/query/", fake.query, methods=["GET"]),
            Route(f"{data}/query/{{locator}}", fake.query_more, methods=["GET"]),
            Route(f"{data}/analytics/reports/{{report_id}}", fake.report, methods=["GET"]),
            Route(f"{data}/limits", fake.limits, methods=["GET"]),
            Route(f"{data}/limits/", fake.limits, methods=["GET"]),
            Route(f"{data}/sobjects", fake.sobjects, methods=["GET"]),
            Route(f"{data}/sobjects/", fake.sobjects, methods=["GET"]),
            Route(f"{data}/sobjects/{{name}}/describe", fake.describe, methods=["GET"]),
            Route(f"{data}/sobjects/{{name}}/describe/", fake.describe, methods=["GET"]),
        ]
    )
    app.state.org = org
    return app


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_value)
