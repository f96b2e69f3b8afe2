"""The ``jira`` package (pycontribs), pointed at the fake, works unchanged for our calls.

jira 3.10 on Cloud routes ``search_issues`` to ``enhanced_search_issues`` (``/search/jql`` with
``nextPageToken``); it keeps its default REST version 2, which Jira Cloud (and the fake) also
serve. Without server info it falls back to the removed ``/search`` and gets Cloud's 410.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jira import JIRA, JIRAError

from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, REMOVED_SEARCH
from connectors.jira.tests.helpers import Site, serve


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


def client(site: Site, **options: Any) -> JIRA:
    return JIRA(server=site.url, basic_auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN), **options)


def test_search_issues_uses_the_new_endpoint(site: Site) -> None:
    jira = client(site)
    assert jira.deploymentType == "Cloud"
    issues = jira.search_issues("parent = OKR-12", maxResults=0)  # 0: every page
    assert sorted(i.key for i in issues) == [f"OKR-{200 + n}" for n in range(1, 9)]
    assert {i.fields.status.statusCategory.key for i in issues} == {"done", "indeterminate", "new"}
    first_page = jira.enhanced_search_issues("project = WEB", maxResults=50)
    assert len(first_page) == 50 and first_page.nextPageToken
    rest = jira.enhanced_search_issues(
        "project = WEB", nextPageToken=first_page.nextPageToken, maxResults=100
    )
    assert len(rest) == 70
    assert jira.approximate_issue_count("project = API") == 90
    paths = {r.path for r in site.server.requests}
    assert "/rest/api/2/search/jql" in paths and "/rest/api/2/search" not in paths


def test_without_server_info_the_old_search_gets_410(site: Site) -> None:
    jira = client(site, get_server_info=False, max_retries=0)
    with pytest.raises(JIRAError) as caught:
        jira.search_issues("project = OKR")
    assert caught.value.status_code == 410
    assert REMOVED_SEARCH in str(caught.value.text)


def test_add_comment_and_update_it(site: Site) -> None:
    jira = client(site)
    comment = jira.add_comment("OKR-12", "Progress: 40%")
    assert site.data.comments_created["OKR-12"] == 1
    comment.update(body="Progress: 55%")
    stored = site.data.comments[comment.id]
    assert stored.body == "Progress: 55%"
    assert site.data.comments_created["OKR-12"] == 1
    assert site.data.comments_updated["OKR-12"] == 1
    assert jira.comment("OKR-12", comment.id).body == "Progress: 55%"
    v3 = client(site, options={"rest_api_version": "3"})
    assert v3.comment("OKR-12", comment.id).raw["body"]["type"] == "doc"
