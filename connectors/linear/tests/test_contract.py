"""What the connector sends, and what the fake answers, checked against Linear's real schema."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate
from graphql.execution.values import get_variable_values

from connectors.linear import LinearConnector, LinearProjectUpdateMirror, connector
from connectors.linear.fake import API_KEY, load_schema
from connectors.linear.sink import DOCUMENTS
from connectors.linear.source import ISSUES_QUERY
from connectors.linear.tests.conftest import CYCLE, SCHEMA, Fake, read, update
from connectors.linear.work import DOCUMENTS as WORK_DOCUMENTS
from connectors.linear.work import LinearWork
from okrsync.errors import QueryError
from okrsync.sdk.models import Status
from okrsync.sdk.work import Backlink


def check_request(body: Any) -> None:
    """A request body: a document valid against the schema, and variables it accepts."""
    schema = load_schema(SCHEMA)
    document = parse(body["query"])
    assert validate(schema, document) == []
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, operation.variable_definitions or (), body["variables"])
    assert not isinstance(coerced, list), coerced  # a list is the coercion errors


def test_every_document_validates_against_the_schema() -> None:
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))  # a fresh build, not the cache
    for document in (ISSUES_QUERY, *DOCUMENTS, *WORK_DOCUMENTS):
        assert validate(schema, parse(document)) == [], document


async def test_requests_sent_validate(fake: Fake, linear: LinearConnector) -> None:
    await read(linear, team="ENG", labels=["Bug"], state_type=["started", "completed"])
    await read(linear, project="Reliability", completed_after="-P2W", aggregate="sum_estimate")
    pid = str(fake.data.project_named("Reliability")["id"])
    first = await linear.push(update(), LinearProjectUpdateMirror(project_id=pid), None)
    await linear.push(
        update("60", progress="0.6"), LinearProjectUpdateMirror(project_id=pid), first.ref
    )
    await linear.push(
        update("61", progress="0.61"), LinearProjectUpdateMirror(project="Reliability"), None
    )
    records = fake.server.requests
    assert len(records) >= 7
    for record in records:
        assert record.method == "POST" and record.path == "/graphql"
        assert record.headers["authorization"] == API_KEY
        assert record.headers["content-type"] == "application/json"
        check_request(record.json_body())


async def test_work_requests_sent_validate(fake: Fake, linear: LinearConnector) -> None:
    work = LinearWork.model_validate(
        {"filter": {"team": "ENG", "labels": ["Bug"], "project": "Reliability"}}
    )
    await linear.list_work(work, CYCLE, None)
    await linear.list_work(work, CYCLE, datetime(2026, 12, 1, tzinfo=UTC))
    await linear.list_work_keys(work, CYCLE)
    issue = next(i["identifier"] for i in fake.data.issues if i["team"]["key"] == "ENG")
    link = Backlink("kr", "Ship it", Decimal(40), Status.ON_TRACK, None)
    ref = await linear.put_backlink(issue, link, None)
    await linear.put_backlink(issue, link, ref)
    await linear.remove_backlink(issue, link, None)  # looks the attachment up by url
    names = set()
    for record in fake.server.requests:
        body = record.json_body()
        check_request(body)
        names.add(body["query"].split("(")[0].split()[-1])
    assert names == {
        "OkrsyncWork",
        "OkrsyncWorkKeys",
        "OkrsyncAttach",
        "OkrsyncFindAttachment",
        "OkrsyncDetach",
    }


def test_fake_answers_carry_linear_headers_and_shapes(fake: Fake) -> None:
    response = httpx.post(
        f"{fake.url}/graphql",
        json={"query": "{ teams(first: 2) { nodes { id key name } pageInfo { hasNextPage } } }"},
        headers={"Authorization": API_KEY},
    )
    assert response.status_code == 200
    for name in ("Requests", "Complexity"):
        for part in ("Limit", "Remaining", "Reset"):
            assert f"x-ratelimit-{name.lower()}-{part.lower()}" in response.headers
    assert int(response.headers["x-complexity"]) > 0
    teams = response.json()["data"]["teams"]
    assert [t["key"] for t in teams["nodes"]] == ["ENG", "DES"] and teams["pageInfo"]["hasNextPage"]


def test_fake_rejects_invalid_documents_like_linear(fake: Fake) -> None:
    response = httpx.post(
        f"{fake.url}/graphql",
        json={"query": "{ issues { nodes { id storyPoints } } }"},
        headers={"Authorization": API_KEY},
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "storyPoints" in error["message"]
    too_many = httpx.post(
        f"{fake.url}/graphql",
        json={"query": "{ issues(first: 251) { nodes { id } } }"},
        headers={"Authorization": API_KEY},
    )
    [error] = too_many.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT" and too_many.json()["data"] is None


async def test_a_rejected_document_is_a_query_error(linear: LinearConnector) -> None:
    with pytest.raises(QueryError) as caught:
        await linear.graphql.execute("{ issues { nodes { nope } } }", {}, subject="metric 'x'")
    assert str(caught.value).startswith(
        "connection 'lin', metric 'x': Linear rejected the GraphQL document (HTTP 400: "
        "GRAPHQL_VALIDATION_FAILED"
    )


def test_descriptor() -> None:
    assert connector.type == "linear"
    assert connector.query_model is not None and connector.mirror_model is not None
    assert callable(connector.fake)
