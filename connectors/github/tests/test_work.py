"""GitHub as a work tracker, over a socket to the fake: reads, incremental reads, labels."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.github import fake as fake_module
from connectors.github import work as work_module
from connectors.github.tests.conftest import API, CYCLE, WEB, Fake, make_connector
from connectors.github.work import GitHubWork, label_name, state_of
from okrsync.sdk.models import Status
from okrsync.sdk.work import Backlink, WorkState

AFTER_SEED = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)  # the fake's data ends 2026-12-31


def connector(fake: Fake) -> Any:
    return make_connector(fake.url, search_requests_per_minute=600, search_burst=50)


def searches(fake: Fake) -> list[dict[str, str]]:
    return [
        dict(pair.split("=", 1) for pair in r.query.split("&"))
        for r in fake.server.requests
        if r.path == "/search/issues"
    ]


def link(kr: str = "launch_epic") -> Backlink:
    return Backlink(kr, "Launch checkout v2", Decimal(40), Status.ON_TRACK, None)


def test_state_mapping_and_label_names() -> None:
    base = {"repository_url": "http://x/repos/o/r", "number": 1}
    assert state_of({**base, "state": "open"}) is WorkState.TODO
    assert state_of({**base, "state": "open", "assignees": [{"login": "a"}]}) is (
        WorkState.IN_PROGRESS
    )
    assert state_of({**base, "state": "open", "pull_request": {}, "draft": True}) is (
        WorkState.IN_PROGRESS
    )
    assert state_of({**base, "state": "closed", "state_reason": "not_planned"}) is WorkState.DONE
    assert label_name("launch_epic") == "okr:launch_epic"
    long = label_name("x" * 80)
    assert len(long) == 50 and long != label_name("x" * 79)


def test_a_search_must_name_its_kind_and_leave_updated_to_okrsync() -> None:
    with pytest.raises(ValueError, match="is:issue or is:pr"):
        GitHubWork(search="repo:acme/shop label:x")
    with pytest.raises(ValueError, match="updated:"):
        GitHubWork(search="repo:acme/shop is:pr updated:>2026-01-01")
    with pytest.raises(ValueError, match="placeholder"):
        GitHubWork(search="is:pr created:>{cycle_begin}")


async def test_a_full_read_pages_and_maps_states(fake: Fake) -> None:
    fake.data.change(API, 2, state="open", assignees=("amara",))
    github = connector(fake)
    try:
        items = await github.list_work(GitHubWork(search=f"repo:{API} is:issue"), CYCLE, None)
    finally:
        await github.aclose()
    expected = {f"{API}#{i.number}": i for i in fake.data.items[API] if not i.is_pr}
    assert len(expected) > 100  # two pages of 100
    assert {item.key for item in items} == set(expected)
    assert len(items) == len(expected)  # no item read twice
    for item in items:
        source = expected[item.key]
        if source.state == "closed":
            assert item.state is WorkState.DONE and item.done_at == source.closed_at
        elif source.assignees:
            assert item.state is WorkState.IN_PROGRESS and item.assignee == "amara"
        else:
            assert item.state is WorkState.TODO
        assert item.url == f"https://github.com/{API}/issues/{source.number}"
    assert [s["sort"] + s.get("order", "") for s in searches(fake)] == ["updatedasc"] * 2


async def test_an_incremental_read_asks_only_for_what_changed(fake: Fake) -> None:
    merged, drafted = [i for i in fake.data.items[WEB] if i.is_pr and i.state == "open"][:2]
    fake.data.change(WEB, merged.number, state="closed", at=datetime(2027, 1, 5, 10, tzinfo=UTC))
    fake.data.change(WEB, drafted.number, draft=True, at=datetime(2027, 1, 5, 11, tzinfo=UTC))
    github = connector(fake)
    work = GitHubWork(search=f"repo:{WEB} is:pr")
    try:
        changed = await github.list_work(work, CYCLE, AFTER_SEED)
    finally:
        await github.aclose()
    # Sorted by update, oldest first: the merged one, then the one turned into a draft.
    assert [(i.key, i.state) for i in changed] == [
        (f"{WEB}#{merged.number}", WorkState.DONE),
        (f"{WEB}#{drafted.number}", WorkState.IN_PROGRESS),
    ]
    assert changed[0].done_at == datetime(2027, 1, 5, 10, tzinfo=UTC)
    (sent,) = searches(fake)  # one request
    assert "updated%3A%3E%3D2027-01-05T09%3A00%3A00Z" in sent["q"]


async def test_a_result_past_the_search_cap_goes_on_from_the_last_update(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_module, "MAX_SEARCH_RESULTS", 50)
    monkeypatch.setattr(work_module, "SEARCH_CAP", 50)
    monkeypatch.setattr(work_module, "SEARCH_PAGE", 25)
    github = connector(fake)
    try:
        items = await github.list_work(GitHubWork(search=f"repo:{API} is:issue"), CYCLE, None)
    finally:
        await github.aclose()
    expected = {f"{API}#{i.number}" for i in fake.data.items[API] if not i.is_pr}
    assert len(expected) > 100
    assert [item.key for item in items].count(items[0].key) == 1
    assert {item.key for item in items} == expected and len(items) == len(expected)
    windows = {s["q"] for s in searches(fake)}
    assert len(windows) == 3  # the query, then twice more from the last update seen
    before = len(searches(fake))
    github = connector(fake)
    try:
        since = datetime(2025, 1, 1, tzinfo=UTC)  # before every item: all of them again
        again = await github.list_work(GitHubWork(search=f"repo:{API} is:issue"), CYCLE, since)
    finally:
        await github.aclose()
    assert {item.key for item in again} == expected
    later = [s["q"] for s in searches(fake)[before:]]
    assert len(set(later)) == 3
    assert all(q.count("updated%3A") == 1 for q in later)  # one updated: qualifier each


async def test_keys_only_read_sees_an_item_leave(fake: Fake) -> None:
    work = GitHubWork(search=f"repo:{API} is:issue label:security")
    github = connector(fake)
    try:
        before = await github.list_work_keys(work, CYCLE)
        number = int(before[0].split("#")[1])
        item = fake.data.item(API, number)
        assert item is not None
        fake.data.change(API, number, labels=tuple(x for x in item.labels if x != "security"))
        after = await github.list_work_keys(work, CYCLE)
    finally:
        await github.aclose()
    assert set(before) - set(after) == {f"{API}#{number}"}


async def test_label_backlinks_are_created_once_and_removed(fake: Fake) -> None:
    github = connector(fake)
    try:
        ref = await github.put_backlink(f"{API}#3", link(), None)
        await github.put_backlink(f"{API}#3", link(), ref)  # a repeat
        await github.put_backlink(f"{API}#4", link(), None)  # same repo: label known
    finally:
        await github.aclose()
    again = connector(fake)  # a new process, as after a crash: the label exists already
    try:
        await again.put_backlink(f"{API}#3", link(), None)
        await again.remove_backlink(f"{API}#4", link(), ref)
        await again.remove_backlink(f"{API}#4", link(), ref)  # gone already: fine
    finally:
        await again.aclose()
    assert ref == "okr:launch_epic"
    assert fake.data.labels_created[API] == 1
    assert fake.data.labels_added[(API, 3, ref)] == 1
    assert fake.data.item(API, 3).labels.count(ref) == 1  # type: ignore[union-attr]
    assert ref not in fake.data.item(API, 4).labels  # type: ignore[union-attr]
    posts = [r.path for r in fake.server.requests if r.method == "POST"]
    assert posts.count(f"/repos/{API}/labels") == 2  # once per process
    assert not any("comments" in path for path in posts)
