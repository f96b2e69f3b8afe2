"""The SDK's paginators: each kind finds the next page, and every kind stops a loop or an
over-long listing with an error instead of a short answer."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.errors import VendorResponseError
from okrsync.sdk.paging import (
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    SamePageGuard,
    read_pages,
)


def drive(paginator: Paginator[Any], pages: dict[Any, Any]) -> list[Any]:
    seen = []
    while not paginator.finished:
        page = pages[paginator.token]
        seen.append(page)
        paginator.advance(page)
    return seen


def test_cursor_follows_until_the_cursor_is_absent() -> None:
    pages = {
        None: {"items": [1, 2], "next": "b"},
        "b": {"items": [3], "next": "c"},
        "c": {"items": [4], "next": None},
    }
    read = drive(CursorPaginator(lambda page: page["next"]), pages)
    assert [i for page in read for i in page["items"]] == [1, 2, 3, 4]


def test_cursor_repeated_is_a_loop_not_an_end() -> None:
    pages = {None: {"next": "b"}, "b": {"next": "c"}, "c": {"next": "b"}}
    with pytest.raises(VendorResponseError, match="pagination loop: page 3 of deals gave the "):
        drive(CursorPaginator(lambda page: page["next"], what="deals"), pages)


def test_a_start_cursor_is_sent_first_and_handed_back_is_a_loop() -> None:
    pages = {"0": {"next": "5"}, "5": {"next": "0"}}
    paginator = CursorPaginator(lambda page: page["next"], what="deals", start="0")
    assert paginator.token == "0"
    with pytest.raises(VendorResponseError, match="page 2 of deals gave the cursor '0' again"):
        drive(paginator, pages)


def test_has_more_without_a_cursor_is_an_error() -> None:
    paginator = CursorPaginator(
        lambda page: page["pageInfo"]["endCursor"],
        has_more=lambda page: page["pageInfo"]["hasNextPage"],
    )
    with pytest.raises(VendorResponseError, match="next page of pages but gave no cursor"):
        paginator.advance({"pageInfo": {"hasNextPage": True, "endCursor": None}})


def test_a_cursor_that_is_not_text_is_an_error() -> None:
    with pytest.raises(VendorResponseError, match="should be a cursor"):
        CursorPaginator(lambda page: page["next"]).advance({"next": {"a": 1}})


def test_page_cap_is_an_error_never_a_short_answer() -> None:
    pages: dict[str | None, dict[str, str]] = {str(i): {"next": str(i + 1)} for i in range(1, 10)}
    pages[None] = {"next": "1"}
    with pytest.raises(VendorResponseError, match=r"more than max_pages \(3\) pages"):
        drive(CursorPaginator(lambda page: page["next"], max_pages=3), pages)


def test_exactly_max_pages_is_fine() -> None:
    pages = {None: {"next": "1"}, "1": {"next": "2"}, "2": {"next": None}}
    assert len(drive(CursorPaginator(lambda page: page["next"], max_pages=3), pages)) == 3


def test_next_url_back_to_the_page_just_read_is_a_loop() -> None:
    paginator = NextUrlPaginator(lambda page, response: page["next"])
    response = httpx.Response(200, request=httpx.Request("GET", "https://api.test/things?p=2"))
    paginator.advance({"next": "https://api.test/things?p=2"}, None)
    with pytest.raises(VendorResponseError, match="next URL"):
        paginator.advance({"next": "https://api.test/things?p=2"}, response)


def test_next_url_leaving_the_api_is_refused() -> None:
    paginator = NextUrlPaginator(
        lambda page, response: page["next"],
        allowed=lambda url: url.startswith("/services/data/"),
    )
    with pytest.raises(VendorResponseError, match="leaves the API"):
        paginator.advance({"next": "https://evil.test/steal"})


def test_offset_stops_at_the_total_and_on_a_short_page() -> None:
    def items(page: dict[str, Any]) -> list[Any]:
        return list(page["issues"])

    with_total = OffsetPaginator(items, page_size=2, total_of=lambda page: page["total"])
    pages = {0: {"issues": [1, 2], "total": 5}, 2: {"issues": [3, 4], "total": 5}}
    pages[4] = {"issues": [5], "total": 5}
    assert len(drive(with_total, pages)) == 3
    short = OffsetPaginator(items, page_size=2)
    assert len(drive(short, {0: {"issues": [1, 2]}, 2: {"issues": [3]}})) == 2


def test_offset_empty_page_before_the_promised_total_is_an_error() -> None:
    paginator = OffsetPaginator(
        lambda page: page["rows"], page_size=2, total_of=lambda page: page["total"]
    )
    paginator.advance({"rows": [1, 2], "total": 4})
    with pytest.raises(VendorResponseError, match="promised 4 pages but the page at offset 2"):
        paginator.advance({"rows": [], "total": 4})


def test_page_numbers_count_from_first_and_end_on_a_short_page() -> None:
    paginator = PageNumberPaginator(lambda page: page, page_size=2)
    assert drive(paginator, {1: [1, 2], 2: [3, 4], 3: [5]}) == [[1, 2], [3, 4], [5]]
    assert paginator.pages_read == 3


def test_same_page_guard_catches_an_api_that_ignores_the_page_parameter() -> None:
    guard = SamePageGuard(what="milestones")
    guard.check([{"id": 1}], 1)
    guard.check([{"id": 2}], 2)
    with pytest.raises(VendorResponseError, match="page 3 of milestones has the same items"):
        guard.check([{"id": 1}], 3)


def test_params_leave_the_token_out_of_the_first_request() -> None:
    paginator = CursorPaginator(lambda page: page["next"])
    assert paginator.params({"limit": 10}, "after") == {"limit": 10}
    paginator.advance({"next": "x"})
    assert paginator.params({"limit": 10}, "after") == {"limit": 10, "after": "x"}


def test_advance_after_the_end_is_a_programming_error() -> None:
    paginator = CursorPaginator(lambda page: page["next"])
    paginator.advance({"next": None})
    with pytest.raises(RuntimeError):
        paginator.advance({"next": None})


async def test_read_pages_fetches_each_token_once_in_order() -> None:
    asked: list[object] = []
    pages = {None: {"next": "b"}, "b": {"next": "c"}, "c": {}}

    async def fetch(token: str | None) -> dict[str, Any]:
        asked.append(token)
        return pages[token]

    read = await read_pages(CursorPaginator(lambda page: page.get("next")), fetch)
    assert asked == [None, "b", "c"]
    assert read == [pages[None], pages["b"], pages["c"]]


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30))
def test_any_cursor_chain_either_ends_or_is_caught(chain: list[int]) -> None:
    """Whatever cursors a vendor sends, the listing ends, loops with an error, or hits the cap:
    it never reads a page twice."""
    links: dict[str | None, str] = {None: str(chain[0])}
    for here, there in itertools.pairwise(chain):
        links.setdefault(str(here), str(there))
    read: list[object] = []
    paginator = CursorPaginator(lambda token: links.get(token), max_pages=10)
    try:
        while not paginator.finished:
            assert paginator.token not in read
            read.append(paginator.token)
            paginator.advance(paginator.token)
    except VendorResponseError:
        pass
    assert len(read) <= 10
