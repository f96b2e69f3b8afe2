"""The naive baseline: what a straightforward script does to keep the same key results current.

Each key result is refreshed on its own with httpx: one request per key result per page, no
sharing of identical questions, no batching; every changed key result posts a new Slack message
(the script has nowhere to keep a message's ts). It retries a 429 after ``Retry-After`` like any
script that wants to finish, and runs four requests at once per vendor, as okrsync does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from benchmarks.workload import SLACK_CHANNELS, Workload, cycle_dates
from connectors.ga4.auth import ServiceAccountKey, TokenProvider
from connectors.salesforce.models import DEFAULT_API_VERSION

CONCURRENCY = 4
CLOSED_WON = ["closedwon", "101202304"]
CLOSED_LOST = ["closedlost", "101202305"]
HUBSPOT_STAGES = {"won": CLOSED_WON, "lost": CLOSED_LOST, "closed": CLOSED_WON + CLOSED_LOST}


@dataclass
class NaiveReport:
    seconds: float = 0.0
    values: dict[str, Decimal] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def _send(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request; a 429 is waited out and sent again."""
    while True:
        response = await client.request(method, url, **kw)
        if response.status_code != 429:
            response.raise_for_status()
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


class NaiveRefresher:
    def __init__(self, workload: Workload, environ: dict[str, str], today: date) -> None:
        self.workload = workload
        self.env = environ
        self.start, self.end = cycle_dates(today)
        self.limits = {
            v: asyncio.Semaphore(CONCURRENCY)
            for v in ("jira", "salesforce", "ga4", "hubspot", "slack")
        }
        self.sf_token: tuple[str, str] | None = None
        self.ga4_token: str | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, client: httpx.AsyncClient) -> NaiveReport:
        report = NaiveReport()
        began = time.perf_counter()

        async def one(kr_id: str, metric: str) -> None:
            spec = self.workload.specs[metric]
            kind = spec["connection"]
            try:
                async with self.limits[kind]:
                    value = await self.fetchers[kind](client, spec)
                report.values[kr_id] = value
                if kr_id in self.mirrored:
                    async with self.limits["slack"]:
                        await self.post_slack(client, kr_id, value)
            except httpx.HTTPError as exc:
                report.errors.append(f"{kr_id}: {exc}")

        await asyncio.gather(*(one(k, m) for k, m in self.workload.metric_of.items()))
        report.seconds = time.perf_counter() - began
        return report

    @property
    def mirrored(self) -> dict[str, str]:
        return {
            kr: SLACK_CHANNELS[i % len(SLACK_CHANNELS)]
            for i, kr in enumerate(self.workload.mirrored)
        }

    @property
    def fetchers(
        self,
    ) -> dict[str, Callable[[httpx.AsyncClient, dict[str, Any]], Awaitable[Decimal]]]:
        return {
            "jira": self.jira,
            "salesforce": self.salesforce,
            "ga4": self.ga4,
            "hubspot": self.hubspot,
        }

    async def jira(self, client: httpx.AsyncClient, spec: dict[str, Any]) -> Decimal:
        auth = (self.env["B_JIRA_EMAIL"], self.env["B_JIRA_API_TOKEN"])
        summing = spec.get("aggregate") == "sum"
        fields = ["customfield_10016"] if summing else ["id"]
        body: dict[str, Any] = {
            "jql": spec["jql"],
            "fields": fields,
            "maxResults": 100 if summing else 5000,
        }
        total = Decimal(0)
        while True:
            answer = (
                await _send(
                    client,
                    "POST",
                    f"{self.env['B_JIRA_URL']}/rest/api/3/search/jql",
                    json=body,
                    auth=auth,
                )
            ).json()
            for issue in answer["issues"]:
                points = issue.get("fields", {}).get("customfield_10016")
                total += Decimal(str(points or 0)) if summing else 1
            if answer.get("isLast", True) or not answer.get("nextPageToken"):
                return total
            body["nextPageToken"] = answer["nextPageToken"]

    async def salesforce(self, client: httpx.AsyncClient, spec: dict[str, Any]) -> Decimal:
        async with self._lock:
            if self.sf_token is None:
                answer = (
                    await _send(
                        client,
                        "POST",
                        f"{self.env['B_SALESFORCE_URL']}/services/oauth2/token",
                        data={
                            "grant_type": "client_credentials",
                            "client_id": self.env["B_SALESFORCE_CLIENT_ID"],
                            "client_secret": self.env["B_SALESFORCE_CLIENT_SECRET"],
                        },
                    )
                ).json()
                self.sf_token = (answer["access_token"], answer["instance_url"])
        token, instance = self.sf_token
        soql = spec["soql"].replace("{cycle_start}", self.start.isoformat())
        soql = soql.replace("{cycle_end}", self.end.isoformat())
        answer = (
            await _send(
                client,
                "GET",
                f"{instance}/services/data/v{DEFAULT_API_VERSION}/query",
                params={"q": soql},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        field_name = soql.split("GROUP BY ")[1].strip()
        for record in answer["records"]:
            if str(record.get(field_name)).lower() == str(spec["group_value"]).lower():
                return Decimal(str(record.get("expr0") or 0))
        return Decimal(0)

    async def ga4(self, client: httpx.AsyncClient, spec: dict[str, Any]) -> Decimal:
        async with self._lock:
            if self.ga4_token is None:
                key = ServiceAccountKey.parse(
                    json.dumps(
                        {
                            "type": "service_account",
                            "client_email": self.env["B_GA4_CLIENT_EMAIL"],
                            "private_key": json.loads(f'"{self.env["B_GA4_PRIVATE_KEY_JSON"]}"'),
                            "token_uri": f"{self.env['B_GA4_URL']}/token",
                        }
                    ),
                    connection="naive",
                    where="naive",
                )
                provider = TokenProvider("naive", key)
                self.ga4_token = await provider.token()
                await provider.aclose()
        body: dict[str, Any] = {
            "dateRanges": [{"startDate": self.start.isoformat(), "endDate": "today"}],
            "metrics": [{"name": spec["metric"]}],
        }
        for f in spec.get("filters", []):
            body["dimensionFilter"] = {
                "filter": {"fieldName": f["field"], "stringFilter": {"value": f["value"]}}
            }
        url = f"{self.env['B_GA4_URL']}/v1beta/properties/{self.env['B_GA4_PROPERTY']}:runReport"
        answer = (
            await _send(
                client,
                "POST",
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.ga4_token}"},
            )
        ).json()
        rows = answer.get("rows") or []
        return Decimal(rows[0]["metricValues"][0]["value"]) if rows else Decimal(0)

    async def hubspot(self, client: httpx.AsyncClient, spec: dict[str, Any]) -> Decimal:
        state = spec["stage_state"]
        closed = HUBSPOT_STAGES["closed"]
        flt = (
            {"propertyName": "dealstage", "operator": "NOT_IN", "values": closed}
            if state == "open"
            else {"propertyName": "dealstage", "operator": "IN", "values": HUBSPOT_STAGES[state]}
        )
        summing = spec.get("aggregate") == "sum"
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [flt]}],
            "limit": 200 if summing else 1,
            "properties": ["amount"],
        }
        url = f"{self.env['B_HUBSPOT_URL']}/crm/v3/objects/deals/search"
        headers = {"Authorization": f"Bearer {self.env['B_HUBSPOT_TOKEN']}"}
        total = Decimal(0)
        while True:
            answer = (await _send(client, "POST", url, json=body, headers=headers)).json()
            if not summing:
                return Decimal(answer["total"])
            for row in answer["results"]:
                total += Decimal(str(row["properties"].get("amount") or 0))
            following = answer.get("paging", {}).get("next", {}).get("after")
            if not following:
                return total
            body["after"] = following

    async def post_slack(self, client: httpx.AsyncClient, kr_id: str, value: Decimal) -> None:
        await _send(
            client,
            "POST",
            f"{self.env['B_SLACK_URL']}/api/chat.postMessage",
            json={"channel": self.mirrored[kr_id], "text": f"{kr_id}: {value}"},
            headers={"Authorization": f"Bearer {self.env['B_SLACK_TOKEN']}"},
        )


async def run_naive(workload: Workload, environ: dict[str, str], today: date) -> NaiveReport:
    async with httpx.AsyncClient(timeout=60) as client:
        return await NaiveRefresher(workload, environ, today).refresh(client)
