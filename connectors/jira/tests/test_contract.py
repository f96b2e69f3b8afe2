"""What the connector sends and what the fake answers, checked against Atlassian's OpenAPI.

The description (2.4 MB) is loaded once per module. Requests come from the sandbox's request
log after a real source and sink run; answers are fetched from the fake for every endpoint the
connector uses, successes and the error bodies alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connectors.jira import JiraMirror
from connectors.jira.fake import DEFAULT_API_TOKEN, DEFAULT_EMAIL
from connectors.jira.tests.helpers import CYCLE, Site, connect, query, serve, update
from connectors.jira.work import JiraWork
from okrsync.sandbox.faults import RequestRecord
from okrsync.sdk.models import Status
from okrsync.sdk.work import Backlink

# Atlassian's description, kept beside the connector (its source and licence: contracts/SOURCE.md)
SPEC = Path(__file__).resolve().parents[1] / "contracts" / "jira-cloud-platform-v3.openapi.json"
HOST = "https://your-domain.atlassian.net"  # the description's server; paths are what matter
# Jira writes timestamps as 2021-01-17T12:34:00.000+0000 (its own examples do too), which is not
# RFC 3339's date-time (that wants +00:00). The fake sends what Jira sends; this accepts both.
JIRA_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def jira_date_time(value: object) -> bool:
    return not isinstance(value, str) or JIRA_DATE_TIME.match(value) is not None


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # Atlassian's own document breaks one rule of the OpenAPI meta-schema (an enum whose
    # default, "", is not among its values), so the document itself is not validated.
    return OpenAPI.from_file_path(
        str(SPEC),
        config=Config(
            spec_validator_cls=None, extra_format_validators={"date-time": jira_date_time}
        ),
    )


@dataclass
class WireRequest:
    """An openapi-core request built from what went over the wire."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    host_url: str = HOST
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(self.query)),
            header=Headers(self.headers),
        )

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json").lower()

    @property
    def body(self) -> bytes | None:
        return self.raw or None


@dataclass
class WireResponse:
    status_code: int
    headers: dict[str, str]
    data: bytes | None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json").split(";")[0].lower()


def from_log(record: RequestRecord) -> WireRequest:
    headers = {k.lower(): v for k, v in record.headers.items()}
    return WireRequest(record.method, record.path, record.query, headers, record.body.encode())


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve()


async def test_the_connectors_requests_match_the_description(openapi: OpenAPI, site: Site) -> None:
    jira = connect(site.url, page_size=50)
    try:
        await jira.fetch_one(query(jql="project = WEB"))
        await jira.fetch_one(query(jql="project = WEB", count="approximate"))
        await jira.fetch_one(
            query(jql="project = WEB", aggregate="sum", field="Story point estimate")
        )
        await jira.fetch_one(query(aggregate="done_ratio", parent="OKR-12"))
        mirror = JiraMirror(issue="OKR-12", field="OKR progress")
        first = await jira.push(update(), mirror, None)
        await jira.push(update("50", "0.5"), mirror, first.ref)
        site.data.issues["OKR-12"].properties.clear()
        await jira.push(update("60", "0.6"), mirror, None)  # the marker scan: GET comments
    finally:
        await jira.aclose()
    seen = set()
    for record in site.server.requests:
        request = from_log(record)
        openapi.validate_request(request)
        seen.add(f"{record.method} {record.path}")
    assert {
        "POST /rest/api/3/search/jql",
        "POST /rest/api/3/search/approximate-count",
        "GET /rest/api/3/field",
        "PUT /rest/api/3/issue/OKR-12",
        "POST /rest/api/3/issue/OKR-12/comment",
        "GET /rest/api/3/issue/OKR-12/comment",
    } <= seen


async def test_the_work_trackers_requests_match_the_description(
    openapi: OpenAPI, site: Site
) -> None:
    jira = connect(site.url)
    work = JiraWork(jql="parent = OKR-12 ORDER BY key")
    link = Backlink("kr", "Ship it", Decimal(40), Status.ON_TRACK, None)
    try:
        await jira.list_work(work, CYCLE, None)
        await jira.list_work(work, CYCLE, datetime(2026, 11, 20, tzinfo=UTC))
        await jira.list_work_keys(work, CYCLE)
        await jira.put_backlink("OKR-201", link, None)
        await jira.remove_backlink("OKR-201", link, None)
    finally:
        await jira.aclose()
    seen = set()
    for record in site.server.requests:
        openapi.validate_request(from_log(record))
        seen.add(f"{record.method} {record.path}")
    assert {
        "POST /rest/api/3/search/jql",
        "GET /rest/api/3/myself",
        "POST /rest/api/3/issue/OKR-201/remotelink",
        "DELETE /rest/api/3/issue/OKR-201/remotelink",
    } <= seen


CALLS: list[tuple[str, str, Any, int]] = [
    ("GET", "/rest/api/3/serverInfo", None, 200),
    ("GET", "/rest/api/3/field", None, 200),
    ("POST", "/rest/api/3/search/jql", {"jql": "project = OKR", "maxResults": 5}, 200),
    ("GET", "/rest/api/3/search/jql?jql=project%20%3D%20API&fields=id&maxResults=100", None, 200),
    (
        "POST",
        "/rest/api/3/search/jql",
        {"jql": "parent = OKR-12", "fields": ["status", "customfield_10016"]},
        200,
    ),
    (
        "POST",
        "/rest/api/3/search/jql",
        {
            "jql": "parent = OKR-12",
            "fields": ["summary", "status", "assignee", "labels", "updated"],
        },
        200,
    ),
    ("POST", "/rest/api/3/search/jql", {"jql": "parent = OKR-12", "fields": ["key"]}, 200),
    ("POST", "/rest/api/3/search/jql", {"jql": "project = = OKR"}, 400),
    ("POST", "/rest/api/3/search/approximate-count", {"jql": "project = OKR"}, 200),
    ("POST", "/rest/api/3/search/approximate-count", {"jql": "colour = red"}, 400),
    ("GET", "/rest/api/3/issue/OKR-12?fields=summary,customfield_10016", None, 200),
    ("PUT", "/rest/api/3/issue/OKR-12", {"fields": {"customfield_10050": 42.5}}, 204),
    ("PUT", "/rest/api/3/issue/OKR-12", {"fields": {"customfield_99": 1}}, 400),
    ("PUT", "/rest/api/3/issue/OKR-9999", {"fields": {"customfield_10050": 1}}, 404),
    ("PUT", "/rest/api/3/issue/OKR-12/properties/okrsync.kr", {"value": "1"}, 201),
    ("PUT", "/rest/api/3/issue/OKR-12/properties/okrsync.kr", {"value": "2"}, 200),
    ("GET", "/rest/api/3/issue/OKR-12/properties/okrsync.kr", None, 200),
    ("GET", "/rest/api/3/issue/OKR-12/properties/absent", None, 404),
    (
        "POST",
        "/rest/api/3/issue/OKR-12/comment",
        {
            "body": {
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
            }
        },
        201,
    ),
    ("GET", "/rest/api/3/issue/OKR-12/comment?startAt=0&maxResults=50", None, 200),
    ("GET", "/rest/api/3/issue/OKR-12/comment/10000", None, 200),
    ("GET", "/rest/api/3/issue/OKR-12/comment/77", None, 404),
    (
        "POST",
        "/rest/api/3/issue/OKR-201/remotelink",
        {"globalId": "okrsync:key-result:kr", "object": {"url": "http://x/kr", "title": "KR"}},
        201,
    ),
    (
        "POST",
        "/rest/api/3/issue/OKR-201/remotelink",
        {"globalId": "okrsync:key-result:kr", "object": {"url": "http://x/kr", "title": "KR 2"}},
        200,
    ),
    ("GET", "/rest/api/3/issue/OKR-201/remotelink?globalId=okrsync%3Akey-result%3Akr", None, 200),
    (
        "DELETE",
        "/rest/api/3/issue/OKR-201/remotelink?globalId=okrsync%3Akey-result%3Akr",
        None,
        204,
    ),
    (
        "DELETE",
        "/rest/api/3/issue/OKR-201/remotelink?globalId=okrsync%3Akey-result%3Akr",
        None,
        404,
    ),
]


# openapi-core warns that it cannot check the OAuth2 scheme; Basic auth is what we send.
@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
async def test_the_fakes_answers_match_the_description(openapi: OpenAPI, site: Site) -> None:
    auth = (DEFAULT_EMAIL, DEFAULT_API_TOKEN)
    async with httpx.AsyncClient(base_url=site.url, auth=auth) as http:
        for method, url, body, status in CALLS:
            content = json.dumps(body).encode() if body is not None else b""
            headers = {"content-type": "application/json"} if body is not None else {}
            response = await http.request(method, url, content=content, headers=headers)
            assert response.status_code == status, (method, url, response.text)
            path, _, query_string = url.partition("?")
            request = WireRequest(method, path, query_string, headers, content)
            openapi.validate_request(request)
            if not response.content:
                # 204 (edit) and 200/201 (property) carry no body in Jira; the description
                # lists an empty-schema JSON content for them, which an empty body cannot meet.
                assert status in (200, 201, 204)
                continue
            answer = WireResponse(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.content or None,
            )
            openapi.validate_response(request, answer)
