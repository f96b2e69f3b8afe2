"""The GitHub source against the sandbox GitHub on a loopback socket.

Expected numbers come from the fake's own records through plain Python predicates, not through
the fake's search parser, so a parser that miscounts shows up as well as a connector that does.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import ValidationError

from connectors.github import GitHubConnector, GitHubQuery, connector
from connectors.github.fake import Item
from connectors.github.tests.conftest import (
    API,
    CYCLE,
    TOKEN,
    WEB,
    Fake,
    make_connector,
    new_fake,
    query,
)
from okrsync.errors import (
    CredentialsError,
    QueryError,
    QuotaExhaustedError,
    RetriableError,
    VendorResponseError,
)
from okrsync.sandbox import FaultKind


def in_cycle(when: datetime | None) -> bool:
    return when is not None and CYCLE.start <= when.date() <= CYCLE.end


def count(fake: Fake, predicate: Any) -> int:
    return sum(1 for item in fake.data.all_items() if predicate(item))


def closed_bugs(item: Item) -> bool:
    return (
        item.repo == API
        and not item.is_pr
        and item.state == "closed"
        and "bug" in item.labels
        and in_cycle(item.closed_at)
    )


BUGS = {"search": "is:issue is:closed label:bug closed:{cycle_start}..{cycle_end}", "repo": API}


# --- values ----------------------------------------------------------------------------------


async def test_search_count_is_exact(fake: Fake, github: GitHubConnector) -> None:
    reading = await github.fetch_one(query(**BUGS))
    expected = count(fake, closed_bugs)
    assert expected > 0 and reading.value == Decimal(expected)
    assert reading.api_calls == 1 and github.api_calls == 1
    assert reading.raw_digest.startswith("sha256:")
    assert reading.query_text.startswith("GET /search/issues?q=is:issue is:closed label:bug")

    [sent] = fake.server.requests
    assert sent.path == "/search/issues"
    params = parse_qs(sent.query)
    assert params["q"] == [f"is:issue is:closed label:bug closed:2026-10-01..2026-12-31 repo:{API}"]
    assert params["per_page"] == ["1"]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"


async def test_pull_requests_created_since_cycle_start(fake: Fake, github: GitHubConnector) -> None:
    reading = await github.fetch_one(
        query("prs", search="repo:okrsync-demo/web created:>={cycle_start}", kind="pr")
    )
    expected = count(
        fake, lambda i: i.repo == WEB and i.is_pr and i.created_at.date() >= CYCLE.start
    )
    assert expected > 0 and reading.value == Decimal(expected)


async def test_open_issues_with_either_label_across_repos(
    fake: Fake, github: GitHubConnector
) -> None:
    reading = await github.fetch_one(
        query("open", search='is:issue is:open label:security,"good first issue"')
    )
    expected = count(
        fake,
        lambda i: (
            not i.is_pr and i.state == "open" and {"security", "good first issue"} & set(i.labels)
        ),
    )
    assert expected > 0 and reading.value == Decimal(expected)


async def test_milestone_completion_by_number(fake: Fake, github: GitHubConnector) -> None:
    opened, closed = fake.data.milestone_counts(API, 2)
    assert opened and closed
    reading = await github.fetch_one(query("v11", repo=API, milestone=2))
    assert reading.value == Decimal(closed) / Decimal(opened + closed) * 100
    ratio = await github.fetch_one(query("v11", repo=API, milestone=2, measure="ratio"))
    assert ratio.value == Decimal(closed) / Decimal(opened + closed)
    total = await github.fetch_one(query("v11", repo=API, milestone=2, measure="total"))
    assert total.value == opened + closed
    assert [r.path for r in fake.server.requests] == [f"/repos/{API}/milestones/2"] * 3


async def test_milestone_by_title_follows_link_pages_and_remembers(
    fake: Fake, github: GitHubConnector
) -> None:
    for n in range(120):
        fake.data.add_milestone(API, f"Sprint {n}", state="closed" if n % 2 else "open")
    target = fake.data.add_milestone(API, "2026-Q4 stretch")
    for number in (3, 4, 5, 6, 7):
        fake.data.assign(API, number, target.number)
    fake.data.close_issue(API, 3)
    opened, closed = fake.data.milestone_counts(API, target.number)
    assert opened + closed == 5 and closed >= 1

    spec = {"repo": API, "milestone": "{cycle_id} stretch"}
    first = await github.fetch_one(query("stretch", **spec))
    assert first.value == Decimal(closed) / Decimal(opened + closed) * 100
    listed = [r for r in fake.server.requests if r.path.endswith("/milestones")]
    assert len(listed) == 2  # 125 milestones: two pages of 100, found through Link: rel="next"
    assert parse_qs(listed[0].query) == {"state": ["all"], "per_page": ["100"]}
    assert parse_qs(listed[1].query)["page"] == ["2"]

    fake.server.reset()
    again = await github.fetch_one(query("stretch", **spec))
    assert again.value == first.value
    assert [r.path for r in fake.server.requests] == [f"/repos/{API}/milestones/{target.number}"]


@pytest.mark.parametrize(
    ("link", "said"),
    [
        ("{url}/repos/{repo}/milestones?page=2", "pagination loop"),
        ("https://elsewhere.example/repos/{repo}/milestones?page=2", "leaves the API"),
    ],
)
async def test_milestone_listing_stops_on_a_looping_or_foreign_next_link(
    fake: Fake, github: GitHubConnector, link: str, said: str
) -> None:
    target = link.format(url=fake.url, repo=API)
    fake.fault(
        FaultKind.STATUS,
        status=200,
        body="[]",
        headers={"Link": f'<{target}>; rel="next"'},
        path="/milestones$",
        times=-1,
    )
    reading = (await github.fetch([query("v9", repo=API, milestone="v9.9")]))[0]
    assert isinstance(reading.error, VendorResponseError)
    assert said in str(reading.error) and "metric 'v9'" in str(reading.error)
    listed = [r for r in fake.server.requests if r.path.endswith("/milestones")]
    assert len(listed) == (2 if said == "pagination loop" else 1)


async def test_unknown_milestone_title_names_the_metric(github: GitHubConnector) -> None:
    reading = (await github.fetch([query("v9", repo=API, milestone="v9.9")]))[0]
    assert isinstance(reading.error, QueryError)
    text = str(reading.error)
    assert "connection 'gh'" in text and "metric 'v9'" in text and "'v9.9'" in text


async def test_empty_milestone_has_no_completion(fake: Fake, github: GitHubConnector) -> None:
    empty = fake.data.add_milestone(API, "Nothing yet")
    with pytest.raises(VendorResponseError, match="no issues yet"):
        await github.fetch_one(query("empty", repo=API, milestone=empty.number))
    counted = await github.fetch_one(
        query("empty", repo=API, milestone=empty.number, measure="open")
    )
    assert counted.value == 0


async def test_enterprise_base_url(fake: Fake) -> None:
    ghe = make_connector(fake.url + "/api/v3")
    try:
        reading = await ghe.fetch_one(query(**BUGS))
    finally:
        await ghe.aclose()
    assert reading.value == count(fake, closed_bugs)
    assert fake.server.requests[0].path == "/api/v3/search/issues"


# --- incomplete results ----------------------------------------------------------------------


async def test_incomplete_results_fail_by_default_and_warn_on_request(
    fake: Fake, github: GitHubConnector
) -> None:
    fake.data.incomplete_results = True
    with pytest.raises(RetriableError, match="may be incomplete") as caught:
        await github.fetch_one(query(**BUGS))
    assert "metric 'bugs_closed'" in str(caught.value)
    reading = await github.fetch_one(query(**BUGS, incomplete_results="warn"))
    assert reading.value == count(fake, closed_bugs)


# --- vendor trouble --------------------------------------------------------------------------


async def test_429_with_retry_after_then_success(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.STATUS, status=429, retry_after="1", path="/search/issues")
    started = time.monotonic()
    reading = await github.fetch_one(query(**BUGS))
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert reading.value == count(fake, closed_bugs)
    assert reading.api_calls == 2


async def test_5xx_then_success(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.STATUS, status=502, times=2, path="/milestones/")
    reading = await github.fetch_one(query("v11", repo=API, milestone=2))
    assert reading.value is not None and reading.api_calls == 3


async def test_bad_credentials_names_the_connection(fake: Fake) -> None:
    wrong = make_connector(fake.url, token="ghp_wrongTokenXYZ987654321")
    try:
        [reading] = await wrong.fetch([query(**BUGS)])
    finally:
        await wrong.aclose()
    assert isinstance(reading.error, CredentialsError)
    text = str(reading.error)
    assert text.startswith("connection 'gh', metric 'bugs_closed': GitHub rejected the token")
    assert "Bad credentials" in text and "HTTP 401" in text
    assert "ghp_wrongTokenXYZ987654321" not in text


async def test_invalid_search_names_the_metric(github: GitHubConnector) -> None:
    [reading] = await github.fetch(
        [query("ghost", search="is:issue is:open", repo="okrsync-demo/ghost")]
    )
    assert isinstance(reading.error, QueryError)
    text = str(reading.error)
    assert "metric 'ghost'" in text and "HTTP 422" in text
    assert "cannot be searched" in text


async def test_malformed_and_html_bodies(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.MALFORMED, path="/search/issues")
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await github.fetch_one(query(**BUGS))
    fake.fault(FaultKind.HTML, status=200, path="/milestones/")
    with pytest.raises(VendorResponseError, match="HTML page"):
        await github.fetch_one(query("v11", repo=API, milestone=2))


async def test_answer_without_total_count(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(FaultKind.STATUS, status=200, body='{"items": []}', path="/search/issues")
    with pytest.raises(VendorResponseError, match="total_count"):
        await github.fetch_one(query(**BUGS))


async def test_plain_403_is_permission_not_rate_limit(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=403,
        body='{"message": "Resource not accessible by personal access token", '
        '"documentation_url": "https://docs.github.com/rest", "status": "403"}',
        headers={"x-ratelimit-remaining": "4990", "content-type": "application/json"},
        path="/milestones/",
    )
    with pytest.raises(CredentialsError, match="refused access") as caught:
        await github.fetch_one(query("v11", repo=API, milestone=2))
    assert "Resource not accessible" in str(caught.value)
    assert github.api_calls == 1  # not retried


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"search": "label:bug"}, "is:issue or is:pr"),
        ({"search": "is:issue", "milestone": 1, "repo": API}, "exactly one"),
        ({"milestone": 3}, "needs repo"),
        ({"search": "is:pr closed:>={cycle.start}"}, "unknown placeholder"),
        ({"search": "is:pr", "repo": "not a repo"}, "owner/name"),
        ({"search": "is:pr", "measure": "ratio"}, "milestones only"),
    ],
)
def test_metric_validation(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        GitHubQuery.model_validate(spec)


def test_kind_adds_the_qualifier_once() -> None:
    spec = GitHubQuery.model_validate({"search": "label:bug", "kind": "issue", "repo": API})
    assert spec.search_text() == f"label:bug is:issue repo:{API}"
    assert spec.search_text(CYCLE) == spec.search_text()
    both = GitHubQuery.model_validate({"search": f"is:pr repo:{API}", "kind": "pr", "repo": API})
    assert both.search_text() == f"is:pr repo:{API}"


def test_descriptor() -> None:
    assert connector.type == "github"
    assert connector.query_model is GitHubQuery
    assert connector.mirror_model is not None
    assert connector.fake is not None


# --- rate limits -------------------------------------------------------------------------------


async def test_search_window_is_respected_without_holding_core_calls() -> None:
    fake = new_fake(search_limit=3, search_window=2.0)
    with fake.server:
        github = make_connector(fake.url)
        try:
            started = time.monotonic()
            values = [(await github.fetch_one(query(**BUGS))).value for _ in range(5)]
            searched = time.monotonic() - started
            # the search budget now holds after a spent window; the core budget does not
            await github.fetch_one(query(**BUGS))  # spends the 3rd call of the new window
            core_started = time.monotonic()
            milestone = await github.fetch_one(query("v11", repo=API, milestone=2))
            core_took = time.monotonic() - core_started
        finally:
            await github.aclose()
    assert len(set(values)) == 1 and values[0] == Decimal(count(fake, closed_bugs))
    assert fake.fake.refused["search"] == 0  # paced by the headers: GitHub never said no
    assert searched >= 0.9  # waited for x-ratelimit-reset at least once
    assert milestone.value is not None and core_took < 0.5


async def test_primary_limit_403_far_away_pauses_instead_of_permission_error(
    fake: Fake, github: GitHubConnector
) -> None:
    reset = int(time.time()) + 3600
    fake.fault(
        FaultKind.STATUS,
        status=403,
        body='{"message": "API rate limit exceeded for user ID 1.", '
        '"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-'
        'api#about-the-primary-rate-limits", "status": "403"}',
        headers={
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        },
        path="/milestones/",
    )
    with pytest.raises(QuotaExhaustedError) as caught:
        await github.fetch_one(query("v11", repo=API, milestone=2))
    assert caught.value.resume_at is not None and caught.value.resume_at >= reset - 5


async def test_secondary_limit_is_waited_out(fake: Fake, github: GitHubConnector) -> None:
    fake.fault(
        FaultKind.STATUS,
        status=403,
        body='{"message": "You have exceeded a secondary rate limit. Please wait a few minutes '
        'before you try again.", "documentation_url": "https://docs.github.com/rest/overview/'
        'rate-limits-for-the-rest-api#about-secondary-rate-limits", "status": "403"}',
        headers={"x-ratelimit-remaining": "4000", "content-type": "application/json"},
        path="/search/issues",
    )
    started = time.monotonic()
    reading = await github.fetch_one(query(**BUGS))
    assert time.monotonic() - started >= 0.25  # the secondary wait (0.3 s in these tests)
    assert reading.value == count(fake, closed_bugs) and reading.api_calls == 2


def test_dates_in_the_fake_lie_before_the_anchor(fake: Fake) -> None:
    assert all(i.created_at.date() <= date(2026, 12, 31) for i in fake.data.all_items())


@pytest.mark.parametrize("limit_status", [403, 429])
async def test_spent_window_answer_waits_for_the_reset(limit_status: int) -> None:
    """Another client spent the search window: GitHub's 403/429 is waited out, then counted."""
    fake = new_fake(search_limit=2, search_window=1.0, limit_status=limit_status)
    with fake.server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as other:
            for _ in range(2):
                await other.get("/search/issues", params={"q": "is:pr"})
        github = make_connector(fake.url)
        try:
            reading = await github.fetch_one(query(**BUGS))
        finally:
            await github.aclose()
    assert fake.fake.refused["search"] == 1  # GitHub said no once, with remaining 0 …
    assert reading.value == count(fake, closed_bugs)  # … and the retry after the reset worked
    assert reading.api_calls == 2
