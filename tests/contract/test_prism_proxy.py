"""Each fake behind Stoplight Prism's validating proxy of its vendor's description.

For every vendor whose description is in ``connectors/<vendor>/contracts/`` and that Prism can
read, the fake (a :class:`~okrsync.sandbox.SandboxServer`) runs behind ``prism proxy --errors``
and okrsync's own connector talks to the proxy: a short sync of a few metrics, and a mirror push
where the connector is a sink. Prism checks each request against the description before passing
it on and each of the fake's answers after; a violation either way turns the answer into an
error (``application/problem+json``) and a logged line, so the test asserts that the readings
equal the fake's own, that the pushes succeeded, and that Prism logged no refusal or violation.
A control test shows the check notices an off-contract request and an off-contract answer.

Not covered here, honestly:

* **GA4**: its description is a Google API *discovery document*, not OpenAPI or Swagger; Prism
  cannot read it: Prism 5.14.2 takes the document's ``"$ref": "RunReportRequest"`` for a file
  name and stops (``ENOENT``). ``connectors/ga4/tests/test_contract.py`` checks the GA4 fake
  against it instead.
* **Linear**: a GraphQL schema; a REST contract proxy does not apply.

The descriptions Prism reads are the repository's files with the few changes listed (and
explained) in :mod:`tests.contract.descriptions`. Prism is needed: under ``CI=true`` its
absence fails these tests, elsewhere it skips them with the install command.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from jira import JIRA
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connectors.jira import JiraMirror, JiraQuery
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, jira_app
from connectors.jira.tests.helpers import connect as jira_connector
from connectors.jira.tests.helpers import query as jira_query
from connectors.jira.tests.helpers import update as jira_update
from connectors.jira.work import JiraWork
from connectors.mixpanel import MixpanelConnection, MixpanelQuery, MixpanelSource
from connectors.mixpanel.fake import mixpanel_app
from connectors.slack import SlackMirror
from connectors.slack.fake import slack_app
from connectors.slack.tests.conftest import Slack, kr_update, make_sink, objective_update
from okrsync.sandbox import SandboxServer
from okrsync.sdk.models import CycleWindow, Query, Status
from okrsync.sdk.work import Backlink
from tests.contract.descriptions import for_prism
from tests.contract.prism import INSTALL, PrismProxy, require_prism

CYCLE = CycleWindow("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
MP_USER = "okr-reader.9f8e7d.mp-service-account"
MP_SECRET = "mp-secret-5d4c3b2a1f"
MP_PROJECT = 31337


@dataclass
class Proxied:
    """A fake and the Prism proxy in front of it."""

    fake: SandboxServer
    app: Starlette
    prism: PrismProxy


async def off_contract_segmentation(request: Request) -> PlainTextResponse:
    return PlainTextResponse("not the documented JSON")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proxied]]:
    """Every vendor's fake behind its proxy; the Prism processes load their descriptions at once."""
    require_prism()
    work = tmp_path_factory.mktemp("prism")
    apps: dict[str, Starlette] = {
        "jira": jira_app(),
        "mixpanel": mixpanel_app(
            username=MP_USER, secret=MP_SECRET, project_id=MP_PROJECT, anchor=date(2026, 12, 31)
        ),
        "slack": slack_app(),
        # The control: an upstream that answers Mixpanel's segmentation off the contract.
        "control": Starlette(routes=[Route("/api/query/segmentation", off_contract_segmentation)]),
    }
    fakes = {name: SandboxServer(app, name=f"prism-{name}") for name, app in apps.items()}
    started: dict[str, Proxied] = {}
    try:
        for name, fake in fakes.items():
            fake.__enter__()
            vendor = "mixpanel" if name == "control" else name
            prism = PrismProxy(for_prism(vendor, work), fake.url, work / f"{name}.log")
            started[name] = Proxied(fake, apps[name], prism)
            prism.start()
        for each in started.values():
            each.prism.wait_ready()
        yield started
    finally:
        for each in started.values():
            each.prism.stop()
        for fake in fakes.values():
            fake.__exit__(None, None, None)


def assert_clean(prism: PrismProxy) -> None:
    problems = prism.problems()
    assert problems == [], "Prism found requests or answers off the description:\n" + "\n".join(
        problems
    )


# --- Jira ----------------------------------------------------------------------------------


def jira_queries() -> list[Query[JiraQuery]]:
    return [
        jira_query("issues", jql="project = WEB"),
        jira_query("points", jql="project = WEB", aggregate="sum", field="customfield_10016"),
        jira_query("done", aggregate="done_ratio", parent="OKR-12"),
        jira_query("approx", jql="project = OKR", count="approximate"),
    ]


async def test_jira_connector_stays_inside_the_contract(proxied: dict[str, Proxied]) -> None:
    jira = proxied["jira"]
    direct = jira_connector(jira.fake.url)
    through = jira_connector(jira.prism.url)
    try:
        expected = [(await direct.fetch_one(q)).value for q in jira_queries()]
        got = [(await through.fetch_one(q)).value for q in jira_queries()]
        mirror = JiraMirror(issue="OKR-12", field="OKR progress")
        first = await through.push(jira_update(), mirror, None)
        second = await through.push(jira_update("55", "0.55"), mirror, first.ref)
    finally:
        await direct.aclose()
        await through.aclose()
    assert got == expected
    assert second.ref == first.ref  # the one comment was updated through the proxy
    issue = jira.app.state.jira.issues["OKR-12"]
    assert issue.properties["okrsync.epic_done"]["comment_id"] == first.ref
    forwarded = set(jira.prism.forwarded())
    assert {
        "POST /rest/api/3/search/jql",
        "PUT /rest/api/3/issue/OKR-12",
        "POST /rest/api/3/issue/OKR-12/comment",
        "PUT /rest/api/3/issue/OKR-12/properties/okrsync.epic_done",
    } <= forwarded, forwarded
    assert_clean(jira.prism)


async def test_jira_work_tracker_stays_inside_the_contract(proxied: dict[str, Proxied]) -> None:
    jira = proxied["jira"]
    through = jira_connector(jira.prism.url)
    work = JiraWork(jql="parent = OKR-12 ORDER BY key")
    link = Backlink("launch_epic", "Launch checkout v2", Decimal(40), Status.AT_RISK, None)
    try:
        items = await through.list_work(work, CYCLE, None)
        await through.list_work(work, CYCLE, datetime(2026, 11, 20, tzinfo=UTC))
        keys = await through.list_work_keys(work, CYCLE)
        ref = await through.put_backlink("OKR-201", link, None)
        again = await through.put_backlink("OKR-201", link, ref)
        await through.remove_backlink("OKR-201", link, ref)
    finally:
        await through.aclose()
    assert len(items) == len(keys) == 8 and ref == again
    assert jira.app.state.jira.remote_links_created["OKR-201"] == 1
    assert {
        "POST /rest/api/3/issue/OKR-201/remotelink",
        "DELETE /rest/api/3/issue/OKR-201/remotelink",
    } <= set(jira.prism.forwarded())
    assert_clean(jira.prism)


def test_jira_client_routes_stay_inside_the_contract(proxied: dict[str, Proxied]) -> None:
    jira = proxied["jira"]
    client = JIRA(
        server=jira.prism.url,
        basic_auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN),
        options={"rest_api_version": "3"},  # the description is REST v3's
    )
    client.add_issue_property("OKR-7", "team.notes", {"owner": "web"})
    assert client.myself()["emailAddress"] == DEFAULT_EMAIL
    assert [p.key for p in client.issue_properties("OKR-7")] == ["team.notes"]
    assert {"GET /rest/api/3/myself", "GET /rest/api/3/issue/OKR-7/properties"} <= set(
        jira.prism.forwarded()
    )
    assert_clean(jira.prism)


# --- Mixpanel ------------------------------------------------------------------------------


def mixpanel_source(url: str) -> MixpanelSource:
    config = MixpanelConnection.model_validate(
        {
            "type": "mixpanel",
            "region": url,
            "project_id": MP_PROJECT,
            "service_account_username": MP_USER,
            "service_account_secret": MP_SECRET,
            "queries_per_hour": 36000,
            "max_retries": 0,
        }
    )
    return MixpanelSource("mp", config)


def mixpanel_queries() -> list[Query[MixpanelQuery]]:
    specs: list[dict[str, Any]] = [
        {"event": "Signed up"},
        {"event": "Viewed report", "type": "unique"},
        {"event": "Signed up", "where": 'properties["plan"] == "pro"'},
    ]
    made = []
    for number, spec in enumerate(specs):
        model = MixpanelQuery.model_validate(spec)
        made.append(Query(Query.make_key("mp", model, CYCLE), "mp", (f"m{number}",), model, CYCLE))
    return made


@pytest.fixture
async def mixpanel_sources(
    proxied: dict[str, Proxied],
) -> AsyncIterator[tuple[MixpanelSource, MixpanelSource]]:
    direct = mixpanel_source(proxied["mixpanel"].fake.url)
    through = mixpanel_source(proxied["mixpanel"].prism.url)
    yield direct, through
    await direct.aclose()
    await through.aclose()


async def test_mixpanel_source_stays_inside_the_contract(
    proxied: dict[str, Proxied], mixpanel_sources: tuple[MixpanelSource, MixpanelSource]
) -> None:
    direct, through = mixpanel_sources
    expected = [(await direct.fetch_one(q)).value for q in mixpanel_queries()]
    got = [(await through.fetch_one(q)).value for q in mixpanel_queries()]
    assert got == expected and all(value is not None and value > 0 for value in got)
    prism = proxied["mixpanel"].prism
    assert prism.forwarded().count("GET /api/query/segmentation") == len(expected)
    assert_clean(prism)


# --- Slack ---------------------------------------------------------------------------------


async def test_slack_sink_stays_inside_the_contract(proxied: dict[str, Proxied]) -> None:
    slack = proxied["slack"]
    state = slack.app.state.slack
    sink = make_sink(Slack(slack.fake, state), base_url=f"{slack.prism.url}/api/")
    try:
        alerts = SlackMirror(channel="C0OKRS0001", thread_alerts=True)
        first = await sink.push(kr_update("200", "0.2"), alerts, None)
        again = await sink.push(kr_update("600", "0.6", Status.AT_RISK), alerts, first.ref)
        found = await sink.push(kr_update("700", "0.7"), alerts, None)  # the ref was lost
        digest = await sink.push_digest(objective_update(), SlackMirror(channel="#okrs"), None)
    finally:
        await sink.aclose()
    assert again.ref == first.ref and found.ref == first.ref and digest.ref
    forwarded = set(slack.prism.forwarded())
    assert {
        "POST /api/chat.postMessage",
        "POST /api/chat.update",
        "GET /api/conversations.history",
    } <= forwarded, forwarded
    assert_clean(slack.prism)


# --- the check itself ----------------------------------------------------------------------


def test_the_proxy_reports_requests_and_answers_off_the_contract(
    proxied: dict[str, Proxied],
) -> None:
    prism = proxied["control"].prism
    url = f"{prism.url}/api/query/segmentation"
    auth = (MP_USER, MP_SECRET)
    missing_event = httpx.get(url, params={"project_id": MP_PROJECT}, auth=auth)
    assert missing_event.status_code == 422
    assert missing_event.headers["content-type"].startswith("application/problem+json")
    wrong_answer = httpx.get(
        url,
        params={
            "project_id": MP_PROJECT,
            "event": "Signed up",
            "from_date": "2026-10-01",
            "to_date": "2026-12-31",
        },
        auth=auth,
    )
    assert wrong_answer.status_code == 500, wrong_answer.text
    assert "VIOLATIONS" in wrong_answer.json()["type"]
    logged = "\n".join(prism.problems())
    assert "UNPROCESSABLE_ENTITY" in logged and "VIOLATIONS" in logged


def test_without_prism_ci_fails_and_a_developer_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("tests.contract.prism.PRISM", tmp_path / "no-prism")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(INSTALL)):
        require_prism()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=re.escape(INSTALL)):
        require_prism()
