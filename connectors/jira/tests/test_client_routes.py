"""Routes popular clients call on connect, served by the fake as Jira documents them.

The ``jira`` package (pycontribs) calls ``GET /rest/api/{2,3}/myself`` to learn who the token
belongs to and ``GET .../issue/{key}/properties`` to list an issue's properties. Both go over a
real socket to the fake; the v3 answers are checked against Atlassian's OpenAPI description.
The property list is the same store the okrsync mirror writes its state into.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jira import JIRA, JIRAError
from openapi_core import Config, OpenAPI

from connectors.jira import JiraMirror
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL, DEFAULT_PAT
from connectors.jira.tests.helpers import Site, connect, serve, update
from connectors.jira.tests.test_contract import WireRequest, WireResponse, jira_date_time

SPEC = Path(__file__).resolve().parents[1] / "contracts" / "jira-cloud-platform-v3.openapi.json"


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    config = Config(spec_validator_cls=None, extra_format_validators={"date-time": jira_date_time})
    return OpenAPI.from_file_path(str(SPEC), config=config)


def client(site: Site, **options: Any) -> JIRA:
    return JIRA(server=site.url, basic_auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN), **options)


@pytest.mark.parametrize("version", ["2", "3"])
def test_myself_is_the_tokens_user(site: Site, version: str) -> None:
    me = client(site, options={"rest_api_version": version}).myself()
    assert me["emailAddress"] == DEFAULT_EMAIL
    assert me["accountType"] == "atlassian" and me["active"] is True
    assert me["self"] == f"{site.url}/rest/api/{version}/user?accountId={me['accountId']}"
    assert set(me["avatarUrls"]) == {"16x16", "24x24", "32x32", "48x48"}
    assert me["timeZone"] and me["locale"] == "en_US" and me["displayName"]
    # Without expand Jira sends only the sizes of the two lists.
    assert me["groups"]["items"] == [] and me["groups"]["size"] == 2
    assert me["applicationRoles"] == {"size": 1, "items": []}
    assert f"/rest/api/{version}/myself" in {r.path for r in site.server.requests}


def test_myself_is_the_author_of_the_bots_comments(site: Site) -> None:
    jira = client(site)
    comment = jira.add_comment("OKR-12", "Progress: 40%")
    assert comment.raw["author"]["accountId"] == jira.myself()["accountId"]


def test_myself_expands_groups_and_roles(site: Site) -> None:
    auth = (DEFAULT_EMAIL, DEFAULT_API_TOKEN)
    answer = httpx.get(
        f"{site.url}/rest/api/3/myself", params={"expand": "groups,applicationRoles"}, auth=auth
    )
    me = answer.json()
    assert [g["name"] for g in me["groups"]["items"]] == ["jira-software-users", "okr-automation"]
    assert me["groups"]["size"] == 2
    assert me["applicationRoles"]["items"] == [{"key": "jira-software", "name": "Jira Software"}]


def test_myself_refuses_a_wrong_token(site: Site) -> None:
    jira = JIRA(server=site.url, basic_auth=(DEFAULT_EMAIL, "not-the-token"), max_retries=0)
    with pytest.raises(JIRAError) as caught:
        jira.myself()
    assert caught.value.status_code == 401


def test_myself_on_data_center_names_the_user() -> None:
    for dc in serve("datacenter"):
        me = JIRA(server=dc.url, token_auth=DEFAULT_PAT).myself()
        assert me["name"] == "okr-bot" and "accountId" not in me
        assert me["self"] == f"{dc.url}/rest/api/2/user?username=okr-bot"
        missing = httpx.get(
            f"{dc.url}/rest/api/3/myself", headers={"authorization": f"Bearer {DEFAULT_PAT}"}
        )
        assert missing.status_code == 404  # Data Center serves REST v2 only


async def test_issue_properties_list_what_was_written(site: Site) -> None:
    jira = client(site)
    assert jira.issue_properties("OKR-12") == []
    jira.add_issue_property("OKR-12", "team.notes", {"owner": "web"})
    connector = connect(site.url)
    try:
        await connector.push(update(), JiraMirror(issue="OKR-12"), None)
    finally:
        await connector.aclose()
    listed = jira.issue_properties("OKR-12")
    assert [p.key for p in listed] == ["team.notes", "okrsync.epic_done"]
    assert listed[0].raw["value"] == {"owner": "web"}
    assert listed[1].raw["value"] == site.data.issues["OKR-12"].properties["okrsync.epic_done"]
    async with httpx.AsyncClient(auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN)) as http:
        answer = await http.get(f"{site.url}/rest/api/3/issue/OKR-12/properties")
    keys = answer.json()
    assert keys == {
        "keys": [
            {
                "self": f"{site.url}/rest/api/3/issue/OKR-12/properties/team.notes",
                "key": "team.notes",
            },
            {
                "self": f"{site.url}/rest/api/3/issue/OKR-12/properties/okrsync.epic_done",
                "key": "okrsync.epic_done",
            },
        ]
    }


def test_issue_properties_of_a_missing_issue_is_404(site: Site) -> None:
    with pytest.raises(JIRAError) as caught:
        client(site, max_retries=0).issue_properties("OKR-9999")
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/rest/api/3/myself",
        "/rest/api/3/myself?expand=groups,applicationRoles",
        "/rest/api/3/issue/OKR-12/properties",
        "/rest/api/3/issue/OKR-9999/properties",
    ],
)
def test_the_answers_match_the_description(openapi: OpenAPI, site: Site, path: str) -> None:
    client(site).add_issue_property("OKR-12", "team.notes", {"owner": "web"})
    response = httpx.get(f"{site.url}{path}", auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN))
    route, _, query_string = path.partition("?")
    request = WireRequest("GET", route, query_string, {}, b"")
    openapi.validate_request(request)
    headers = {k.lower(): v for k, v in response.headers.items()}
    openapi.validate_response(
        request, WireResponse(response.status_code, headers, response.content)
    )
