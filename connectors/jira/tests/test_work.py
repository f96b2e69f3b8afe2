"""Jira as a work tracker, over a socket to the fake: reads, incremental reads, backlinks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors.jira.fake import FIELDS_PAGE_LIMIT, ID_PAGE_LIMIT
from connectors.jira.fake.data import STATUSES, Issue
from connectors.jira.tests.helpers import CYCLE, Site, connect, serve
from connectors.jira.work import JiraWork, since_clause, split_order_by
from okrsync.sdk.models import Status
from okrsync.sdk.work import Backlink, WorkState

EPIC = JiraWork(jql="parent = OKR-12 ORDER BY key")
STATE = {"new": WorkState.TODO, "indeterminate": WorkState.IN_PROGRESS, "done": WorkState.DONE}


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


def searches(site: Site) -> list[dict[str, object]]:
    return [r.json_body() for r in site.server.requests if r.path.endswith("/search/jql")]


def link(progress: str | None = "40") -> Backlink:
    return Backlink(
        key_result_id="launch_epic",
        key_result_title="Launch checkout v2",
        progress_display=None if progress is None else Decimal(progress),
        status=Status.AT_RISK,
        url="http://okrsync.example/key-results/launch_epic",
    )


def test_the_incremental_clause_goes_before_order_by_in_the_users_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    since = datetime(2026, 11, 20, 9, 30, 45, tzinfo=UTC)
    assert since_clause("parent = OKR-12 ORDER BY rank", since, berlin) == (
        '(parent = OKR-12) AND updated >= "2026/11/20 10:30" ORDER BY rank'
    )
    assert split_order_by('summary ~ "order by" order by key') == (
        'summary ~ "order by"',
        " order by key",
    )
    assert since_clause("project = OKR", since, ZoneInfo("UTC")).endswith('"2026/11/20 09:30"')
    # 02:30 happens twice in Berlin on 2026-10-25: ask from the first one, an hour earlier.
    autumn = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first of the two
    assert since_clause("project = OKR", autumn, berlin).endswith('"2026/10/25 01:30"')


def test_placeholders_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        JiraWork(jql="created >= {cycle_begin}")
    with pytest.raises(ValueError, match="empty"):
        JiraWork(jql="  ")


async def test_a_full_read_maps_status_categories(site: Site) -> None:
    jira = connect(site.url)
    try:
        items = await jira.list_work(EPIC, CYCLE, None)
    finally:
        await jira.aclose()
    by_key = {item.key: item for item in items}
    assert len(by_key) == 8
    expected = {k: i for k, i in site.data.issues.items() if i.parent == "OKR-12"}
    assert set(by_key) == set(expected)
    for key, issue in expected.items():
        category = STATE[STATUSES[issue.status][1]]
        assert by_key[key].state is category
        assert (by_key[key].done_at is not None) is (category is WorkState.DONE)
        assert by_key[key].url == f"{site.url}/browse/{key}"
    assert [i.state for i in items].count(WorkState.DONE) == 6
    (sent,) = searches(site)
    assert sent["fields"] == [
        "summary",
        "status",
        "assignee",
        "labels",
        "updated",
        "resolutiondate",
    ]


async def test_an_incremental_read_asks_only_for_what_changed(site: Site) -> None:
    site.data.change(
        "OKR-207",
        status="Done",
        assignee="Mia Krystof",
        labels=["checkout-v2"],
        at=datetime(2026, 11, 20, 9, 30, 20, tzinfo=UTC),
    )
    jira = connect(site.url)
    try:
        # 20 s after the change, within the same minute: still read (Jira compares minutes).
        changed = await jira.list_work(EPIC, CYCLE, datetime(2026, 11, 20, 9, 30, 40, tzinfo=UTC))
        again = await jira.list_work(EPIC, CYCLE, datetime(2026, 11, 20, 9, 31, tzinfo=UTC))
    finally:
        await jira.aclose()
    (item,) = changed
    assert (item.key, item.state, item.assignee, item.labels) == (
        "OKR-207",
        WorkState.DONE,
        "Mia Krystof",
        ("checkout-v2",),
    )
    assert item.done_at is not None and item.done_at.date().isoformat() == "2026-11-20"
    assert again == []
    # One GET /myself for the time zone, then one search per read.
    paths = [r.path for r in site.server.requests]
    assert paths == ["/rest/api/3/myself"] + ["/rest/api/3/search/jql"] * 2
    first, _ = searches(site)
    assert first["jql"] == '(parent = OKR-12) AND updated >= "2026/11/20 10:30" ORDER BY key'


async def test_entries_read_together_ask_for_the_time_zone_once(site: Site) -> None:
    jira = connect(site.url)
    since = datetime(2026, 11, 20, 9, 31, tzinfo=UTC)
    try:
        # the first incremental reads of several entries, started at once (as WorkSync does)
        await asyncio.gather(*(jira.list_work(EPIC, CYCLE, since) for _ in range(4)))
    finally:
        await jira.aclose()
    paths = [r.path for r in site.server.requests]
    assert paths.count("/rest/api/3/myself") == 1
    assert paths.count("/rest/api/3/search/jql") == 4


async def test_keys_only_read_sees_an_item_leave(site: Site) -> None:
    jira = connect(site.url)
    try:
        before = await jira.list_work_keys(EPIC, CYCLE)
        site.data.change("OKR-203", parent=None)
        after = await jira.list_work_keys(EPIC, CYCLE)
    finally:
        await jira.aclose()
    assert "OKR-203" in before and len(before) == 8
    assert set(before) - set(after) == {"OKR-203"}
    assert all(sent["fields"] == ["key"] for sent in searches(site))


async def test_keys_only_read_pages_at_jiras_documented_id_page(site: Site) -> None:
    # Jira's search/jql returns at most 5,000 issues a page when only ``id`` or ``key`` is asked
    # for, and 100 with fields: 250 issues are one ids-only request and three full ones.
    for n in range(250):
        site.data.issues[f"BIG-{n}"] = Issue(
            id=str(900_000 + n),
            key=f"BIG-{n}",
            project="OKR",
            issuetype="Story",
            status="To Do",
            summary=f"Big {n}",
            created=datetime(2026, 11, 1, tzinfo=UTC).date(),
            resolved=None,
            parent="OKR-900",
        )
    big = JiraWork(jql="parent = OKR-900 ORDER BY key")
    jira = connect(site.url)
    try:
        keys = await jira.list_work_keys(big, CYCLE)
        ids_requests = len(searches(site))
        items = await jira.list_work(big, CYCLE, None)
    finally:
        await jira.aclose()
    assert len(set(keys)) == 250 and {item.key for item in items} == set(keys)
    sent = searches(site)
    assert ids_requests == 1 and sent[0]["maxResults"] == ID_PAGE_LIMIT == 5000
    assert len(sent) - ids_requests == 3
    assert all(s["maxResults"] == FIELDS_PAGE_LIMIT for s in sent[ids_requests:])


async def test_backlinks_are_created_once_updated_in_place_and_removed(site: Site) -> None:
    jira = connect(site.url)
    issue = site.data.issues["OKR-201"]
    try:
        first = await jira.put_backlink("OKR-201", link("40"), None)
        second = await jira.put_backlink("OKR-201", link("100"), first)
        lost_ref = await jira.put_backlink("OKR-201", link("100"), None)  # as after a crash
        (stored,) = issue.remote_links.values()
        await jira.remove_backlink("OKR-201", link(), second)
        await jira.remove_backlink("OKR-201", link(), second)  # gone already: fine
    finally:
        await jira.aclose()
    assert first is not None and first == second == lost_ref
    assert site.data.remote_links_created["OKR-201"] == 1
    assert site.data.remote_links_updated["OKR-201"] == 2
    assert stored["globalId"] == "okrsync:key-result:launch_epic"
    assert stored["object"]["title"] == "OKR: Launch checkout v2 (100%, at risk)"
    assert stored["object"]["status"] == {"resolved": True}
    assert issue.remote_links == {}
    deletes = [r for r in site.server.requests if r.method == "DELETE"]
    assert [r.query for r in deletes] == ["globalId=okrsync%3Akey-result%3Alaunch_epic"] * 2


async def test_data_center_reads_and_links_through_rest_v2() -> None:
    for site in serve("datacenter"):
        site.data.change(
            "OKR-208", status="In Progress", at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        )
        jira = connect(site.url, "datacenter")
        try:
            changed = await jira.list_work(EPIC, CYCLE, datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
            ref = await jira.put_backlink("OKR-208", link(), None)
        finally:
            await jira.aclose()
        assert [(i.key, i.state) for i in changed] == [("OKR-208", WorkState.IN_PROGRESS)]
        assert ref is not None and len(site.data.issues["OKR-208"].remote_links) == 1
        paths = [f"{r.method} {r.path}" for r in site.server.requests]
        assert paths == [
            "GET /rest/api/2/myself",
            "POST /rest/api/2/search",
            "POST /rest/api/2/issue/OKR-208/remotelink",
        ]


async def test_links_on_one_issue_keep_jiras_per_issue_write_gap() -> None:
    for site in serve(write_interval=0.2):
        jira = connect(site.url, issue_write_interval=0.25)
        other = Backlink("conversion", "Lift conversion", None, Status.NO_DATA, None)
        try:
            await jira.put_backlink("OKR-202", link(), None)
            await jira.put_backlink("OKR-202", other, None)  # a second key result, same issue
            await jira.remove_backlink("OKR-202", other, None)
        finally:
            await jira.aclose()
        assert site.app.state.fake.per_issue_limited == 0  # never refused: we waited instead
        (kept,) = site.data.issues["OKR-202"].remote_links.values()
        assert kept["object"]["title"] == "OKR: Launch checkout v2 (40%, at risk)"
