"""The sandbox GitHub itself: headers, error bodies, pagination — and PyGithub against it.

PyGithub is the most used Python client of the same API; that it works unchanged against the fake
for the calls okrsync makes is the check that the fake speaks GitHub, not a dialect of its own.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from github import Auth, Github, GithubException

from connectors.github.fake import TRACKING_COMMENTS, parse_search
from connectors.github.tests.conftest import API, TOKEN, Fake, new_fake

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}


def get(fake: Fake, path: str, **params: Any) -> httpx.Response:
    return httpx.get(fake.url + path, params=params, headers=HEADERS)


def test_rate_limit_headers_per_resource(fake: Fake) -> None:
    core = get(fake, f"/repos/{API}/milestones/1")
    search = get(fake, "/search/issues", q="is:issue")
    assert core.headers["x-ratelimit-resource"] == "core"
    assert core.headers["x-ratelimit-limit"] == "5000"
    assert core.headers["x-ratelimit-used"] == "1"
    assert search.headers["x-ratelimit-resource"] == "search"
    assert search.headers["x-ratelimit-limit"] == "30"
    assert search.headers["x-ratelimit-remaining"] == "29"
    assert int(search.headers["x-ratelimit-reset"]) > time.time()
    assert core.headers["content-type"] == "application/json; charset=utf-8"


def test_spent_search_window_answers_403_with_remaining_zero() -> None:
    fake = new_fake(search_limit=1, search_window=30)
    with fake.server:
        assert get(fake, "/search/issues", q="is:pr").status_code == 200
        refused = get(fake, "/search/issues", q="is:pr")
        core = get(fake, f"/repos/{API}")
    assert refused.status_code == 403
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["message"].startswith("API rate limit exceeded")
    assert core.status_code == 200  # the core window is separate


def test_error_bodies(fake: Fake) -> None:
    bad = httpx.get(fake.url + f"/repos/{API}", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    missing = get(fake, "/repos/okrsync-demo/ghost/issues/1")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    unrouted = get(fake, "/no/such/route")
    assert unrouted.status_code == 404 and unrouted.json()["message"] == "Not Found"
    invalid = get(fake, "/search/issues", q="label:bug")
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["message"] == "Validation Failed"
    assert body["errors"][0]["resource"] == "Search" and body["errors"][0]["field"] == "q"


def test_comment_listing_pages_with_link_headers(fake: Fake) -> None:
    first = get(fake, f"/repos/{API}/issues/1/comments", per_page=50)
    assert len(first.json()) == 50
    links = first.headers["link"]
    assert 'rel="next"' in links and 'rel="last"' in links and "page=3" in links
    last = get(fake, f"/repos/{API}/issues/1/comments", per_page=50, page=3)
    assert len(last.json()) == TRACKING_COMMENTS - 100
    assert 'rel="prev"' in last.headers["link"] and 'rel="next"' not in last.headers["link"]


def test_enterprise_prefix_and_urls(fake: Fake) -> None:
    answer = get(fake, f"/api/v3/repos/{API}/milestones/2")
    assert answer.status_code == 200
    assert answer.json()["url"] == f"{fake.url}/api/v3/repos/{API}/milestones/2"


def test_search_parser() -> None:
    query = parse_search('is:pr is:closed label:"good first issue",bug -label:wontfix repo:A/B')
    assert query.kind == "pr" and query.state == "closed" and query.repos == ["a/b"]
    assert query.label_sets == [{"good first issue", "bug"}]
    assert query.excluded_labels == {"wontfix"}


def test_pygithub_works_unchanged(fake: Fake) -> None:
    gh = Github(base_url=fake.url, auth=Auth.Token(TOKEN), retry=None)
    try:
        found = gh.search_issues("is:issue is:closed label:bug", repo=API)
        expected = sum(
            1
            for i in fake.data.all_items()
            if i.repo == API and not i.is_pr and i.state == "closed" and "bug" in i.labels
        )
        assert found.totalCount == expected

        repo = gh.get_repo(API)
        milestone = repo.get_milestone(2)
        assert (milestone.open_issues, milestone.closed_issues) == fake.data.milestone_counts(
            API, 2
        )
        assert milestone.title == "v1.1"

        issue = repo.get_issue(1)
        comment = issue.create_comment("<!-- okrsync:kr=pygithub -->\nfirst")
        comment.edit("<!-- okrsync:kr=pygithub -->\nsecond")
        assert comment.body.endswith("second")
        [stored] = fake.data.marked_comments("pygithub")
        assert stored.body.endswith("second") and stored.id == comment.id
        assert fake.data.created_per_issue[(API, 1)] == 1

        with pytest.raises(GithubException) as caught:
            gh.get_repo("okrsync-demo/ghost")
        assert caught.value.status == 404
    finally:
        gh.close()
