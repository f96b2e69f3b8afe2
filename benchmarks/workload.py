"""Generated configs of N key results over the sandbox fakes, with realistic sharing.

Every key result has its own metric name (as teams write them), but the specs repeat: many key
results ask the same JQL, read the same GA4 report or the same SOQL ``GROUP BY``. The planner must
notice; the naive baseline does not. The mix and the pools are fixed so every run is comparable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

KRS_PER_OBJECTIVE = 5
SLACK_MIRRORED = (
    40  # at most this many key results have a Slack mirror (Slack's limits are per workspace)
)
SLACK_CHANNELS = tuple(f"C0BENCH{i:04d}" for i in range(8))
# share of key results per vendor, in a repeating pattern of 20
MIX = ("jira",) * 8 + ("salesforce",) * 5 + ("ga4",) * 5 + ("hubspot",) * 2

PROJECTS = ("OKR", "WEB", "API")
ISSUE_TYPES = ("Bug", "Story", "Task", "Epic")
JQL_STATES = ("statusCategory != Done", "statusCategory = Done", "status = 'In Progress'")
SOQL_GROUPS = (  # (GROUP BY field, aggregate, the group values key results pick)
    (
        "StageName",
        "COUNT(Id)",
        (
            "Prospecting",
            "Qualification",
            "Proposal/Price Quote",
            "Negotiation/Review",
            "Closed Won",
            "Closed Lost",
        ),
    ),
    ("Type", "SUM(Amount)", ("New Business", "Existing Business")),
    ("IsWon", "COUNT(Id)", (True, False)),
)
GA4_METRICS = ("sessions", "activeUsers", "conversions", "totalRevenue")
GA4_COUNTRIES = ("France", "Germany", "United States")
HUBSPOT_STATES = ("open", "closed", "won", "lost")


@dataclass(frozen=True)
class Needed:
    """The requests one refresh of a vendor cannot do without.

    ``setup`` ones (an OAuth token, a catalog of fields or stages) must be answered before the
    ``data`` ones that use them, and the connection keeps them for the next refresh, so a warm
    refresh (the next one, within the hour) needs only the ``data`` ones.
    """

    setup: int
    data: int

    @property
    def total(self) -> int:
        return self.setup + self.data


@dataclass
class Workload:
    size: int
    yaml: str
    specs: dict[str, dict[str, Any]]  # metric name -> spec (with "connection")
    mirrored: list[str]  # key result ids with a Slack mirror
    metric_of: dict[str, str]  # key result id -> metric name
    distinct: dict[str, int] = field(default_factory=dict)  # distinct specs per connection

    def needed(self, *, warm: bool = False) -> dict[str, Needed]:
        """Per fake, the requests a full refresh needs: cold (the first, on a fresh daemon) or
        warm (the next one with nothing changed, so no Slack pushes and nothing set up again).

        Jira: one search per distinct JQL (every one fits a page); set up: one field catalog
        read when a metric names its field. Salesforce: one query per distinct SOQL text (GROUP
        BY answers all its group values); set up: one OAuth token. GA4: one batchRunReports per
        5 reports of up to 10 metrics sharing filters; set up: one OAuth token. HubSpot: one
        search per distinct question; set up: one pipelines read (``stage_state`` needs to know
        which stages are closed). Slack: one chat.postMessage per mirror on the first refresh
        (an unchanged value is not pushed again).
        """
        reports = {
            json.dumps(s.get("filters", []), sort_keys=True)
            for s in self.specs.values()
            if s["connection"] == "ga4"
        }
        soql = {s["soql"] for s in self.specs.values() if s["connection"] == "salesforce"}
        jira = self.distinct.get("jira", 0)
        hubspot = self.distinct.get("hubspot", 0)
        catalog = any("field" in s for s in self.specs.values() if s["connection"] == "jira")
        cold = {
            "jira": Needed(1 if jira and catalog else 0, jira),
            "salesforce": Needed(1 if soql else 0, len(soql)),
            "ga4": Needed(1 if reports else 0, math.ceil(len(reports) / 5)),
            "hubspot": Needed(1 if hubspot else 0, hubspot),
            "slack": Needed(0, len(self.mirrored)),
        }
        if not warm:
            return cold
        return {
            vendor: Needed(0, 0 if vendor == "slack" else need.data)
            for vendor, need in cold.items()
        }

    def lower_bound(self, *, warm: bool = False) -> dict[str, int]:
        """Vendor requests one full refresh cannot go below, per fake (see :meth:`needed`)."""
        return {vendor: need.total for vendor, need in self.needed(warm=warm).items()}


def pool(kind: str, size: int) -> list[dict[str, Any]]:
    """Distinct questions of one vendor; the pool grows slowly with the number of key results."""
    if kind == "jira":
        out = [
            {"jql": f"project = {p} AND issuetype = {t} AND {s}"}
            for p in PROJECTS
            for t in ISSUE_TYPES
            for s in JQL_STATES
        ]
        out += [{**q, "aggregate": "sum", "field": "Story point estimate"} for q in out[:36]]
        return out[: min(len(out), max(4, size // 100))]
    if kind == "salesforce":
        return [
            {
                "soql": f"SELECT {g}, {agg} FROM Opportunity WHERE CloseDate >= {{cycle_start}} "
                f"AND CloseDate <= {{cycle_end}} GROUP BY {g}",
                "group_value": v,
            }
            for g, agg, values in SOQL_GROUPS
            for v in values
        ]
    if kind == "ga4":
        filters: list[list[dict[str, Any]]] = [[]]
        filters += [[{"field": "country", "value": c}] for c in GA4_COUNTRIES]
        return [
            {"metric": m, **({"dimensions": ["country"], "filters": f} if f else {})}
            for f in filters
            for m in GA4_METRICS
        ]
    if kind == "hubspot":
        out = [{"object": "deals", "stage_state": s} for s in HUBSPOT_STATES]
        out += [{**q, "aggregate": "sum", "property": "amount"} for q in out]
        return out[: min(len(out), max(2, size // 500))]
    raise ValueError(kind)


def connections_yaml() -> str:
    return """connections:
  jira:
    type: jira
    url: "${B_JIRA_URL}"
    email: "${B_JIRA_EMAIL}"
    api_token: "${B_JIRA_API_TOKEN}"
  salesforce:
    type: salesforce
    login_url: "${B_SALESFORCE_URL}"
    auth:
      flow: client_credentials
      client_id: "${B_SALESFORCE_CLIENT_ID}"
      client_secret: "${B_SALESFORCE_CLIENT_SECRET}"
  hubspot: {type: hubspot, base_url: "${B_HUBSPOT_URL}", access_token: "${B_HUBSPOT_TOKEN}"}
  ga4:
    type: ga4
    property_id: "${B_GA4_PROPERTY}"
    api_url: "${B_GA4_URL}"
    credentials_json: >-
      {"type": "service_account", "client_email": "${B_GA4_CLIENT_EMAIL}",
      "private_key": "${B_GA4_PRIVATE_KEY_JSON}", "token_uri": "${B_GA4_URL}/token"}
  slack: {type: slack, token: "${B_SLACK_TOKEN}", base_url: "${B_SLACK_URL}/api/"}
"""


OFFLINE_ENVIRON = {
    **{
        f"B_{n}_URL": "http://127.0.0.1:9"
        for n in ("JIRA", "SALESFORCE", "HUBSPOT", "GA4", "SLACK")
    },
    "B_JIRA_EMAIL": "a@b.c",
    "B_JIRA_API_TOKEN": "t",
    "B_SALESFORCE_CLIENT_ID": "i",
    "B_SALESFORCE_CLIENT_SECRET": "s",
    "B_HUBSPOT_TOKEN": "t",
    "B_GA4_PROPERTY": "1",
    "B_GA4_CLIENT_EMAIL": "a@b.c",
    "B_GA4_PRIVATE_KEY_JSON": "k",
    "B_SLACK_TOKEN": "xoxb-1",
}
"""Values for every ``${B_…}`` the workload's config reads, for loading it without the fakes
(the store and config-load benchmarks never call a vendor)."""


def cycle_dates(today: date) -> tuple[date, date]:
    return today - timedelta(days=45), today + timedelta(days=45)


def generate(size: int, today: date, schedule: str = "every 1h") -> Workload:
    pools = {kind: pool(kind, size) for kind in set(MIX)}
    counters = dict.fromkeys(pools, 0)
    specs: dict[str, dict[str, Any]] = {}
    metric_of: dict[str, str] = {}
    mirrored: list[str] = []
    wanted = min(SLACK_MIRRORED, max(1, size // 10))  # one key result in ten, up to 40
    every = max(1, size // wanted)
    start, end = cycle_dates(today)
    lines = [
        "version: 1",
        f"defaults: {{schedule: {schedule}}}",
        connections_yaml().rstrip(),
        f'cycles:\n  - {{id: bench, start: "{start}", end: "{end}"}}',
        "metrics:",
    ]
    objectives: list[str] = ["objectives:"]
    for i in range(size):
        kind = MIX[i % len(MIX)]
        choices = pools[kind]
        spec = {"connection": kind, **choices[counters[kind] % len(choices)]}
        counters[kind] += 1
        name = f"m{i:05d}"
        specs[name] = spec
        lines.append(f"  {name}: {json.dumps(spec)}")
        kr_id = f"kr{i:05d}"
        metric_of[kr_id] = name
        if i % KRS_PER_OBJECTIVE == 0:
            o = i // KRS_PER_OBJECTIVE
            objectives.append(
                f"  - {{id: o{o:04d}, title: Objective {o}, cycle: bench, owner: team{o % 50}, "
                "key_results: ["
            )
        kr: dict[str, Any] = {
            "id": kr_id,
            "title": f"Key result {i}",
            "metric": name,
            "kind": "increase",
            "start": 0,
            "target": 1_000_000,
        }
        if i % every == 0 and len(mirrored) < wanted:
            channel = SLACK_CHANNELS[len(mirrored) % len(SLACK_CHANNELS)]
            kr["mirrors"] = [{"connection": "slack", "channel": channel}]
            mirrored.append(kr_id)
        last = i % KRS_PER_OBJECTIVE == KRS_PER_OBJECTIVE - 1 or i == size - 1
        objectives.append(f"      {json.dumps(kr)}" + ("]}" if last else ","))
    distinct = {
        kind: len(
            {json.dumps(s, sort_keys=True) for s in specs.values() if s["connection"] == kind}
        )
        for kind in pools
    }
    text = "\n".join(lines + objectives) + "\n"
    return Workload(size, text, specs, mirrored, metric_of, distinct)
