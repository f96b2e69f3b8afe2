"""The fake and the source against HubSpot's published OpenAPI descriptions and its own client.

* Every search request the source sends (read from the sandbox log) validates against
  ``PublicObjectSearchRequest`` of both ``objects.v3.json`` and ``deals.v3.json``, on a path the
  spec declares; the fake's answers to them validate against
  ``CollectionResponseWithTotalSimplePublicObject``, its error bodies against ``Error``.
* ``hubspot-api-client`` pointed at the fake runs ``crm.deals.search_api.do_search`` unchanged.
"""

from __future__ import annotations

import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.hubspot.tests.conftest import TOKEN, Fake, make_source, query

# connectors/hubspot/tests/<this file>: parents[4] is the directory holding the repository, whose
# sibling ``shared/contracts`` holds the vendor descriptions (/work/shared/contracts here).
CONTRACTS = Path(__file__).resolve().parents[4] / "shared" / "contracts" / "hubspot"
# Imported by name: jsonschema ships no type stubs, and this keeps mypy strict either way.
Draft202012Validator: Any = importlib.import_module("jsonschema").Draft202012Validator
needs_contracts = pytest.mark.skipif(
    not CONTRACTS.is_dir(), reason=f"HubSpot API descriptions not found at {CONTRACTS}"
)


@cache
def spec(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACTS / name).read_text())
    return document


def validator(name: str, schema: str) -> Any:
    document = spec(name)
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    )


def path_declared(name: str, path: str) -> bool:
    for template, operations in spec(name)["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and "post" in operations:
            return True
    return False


def errors_of(v: Any, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in v.iter_errors(document)]


@needs_contracts
async def test_requests_and_answers_follow_the_spec(fake: Fake) -> None:
    source = make_source(fake, page_size=100)
    specs: list[dict[str, Any]] = [
        {"pipeline": "Sales Pipeline", "stage": "Closed Won", "date_property": "closedate"},
        {"aggregate": "sum", "property": "amount", "stage_state": "open"},
        {
            "object": "contacts",
            "filters": [{"property": "lifecyclestage", "operator": "IN", "values": ["lead"]}],
            "any_of": [
                [{"property": "createdate", "operator": "GTE", "value": "{cycle_start}"}],
                [{"property": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}],
            ],
        },
    ]
    try:
        for s in specs:
            reading = await source.fetch_one(query(**s))
            assert reading.ok
    finally:
        await source.aclose()
    searches = [r for r in fake.server.requests if r.path.endswith("/search")]
    assert len(searches) >= 4  # one count, two pages of the sum, one count
    request_schemas = [
        validator(name, "PublicObjectSearchRequest")
        for name in ("objects.v3.json", "deals.v3.json")
    ]
    answer_schema = validator("objects.v3.json", "CollectionResponseWithTotalSimplePublicObject")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for record in searches:
            assert path_declared("objects.v3.json", record.path), record.path
            body = record.json_body()
            for v in request_schemas:
                assert errors_of(v, body) == []
            answer = await client.post(f"{fake.url}{record.path}", json=body)
            assert answer.status_code == 200
            assert errors_of(answer_schema, answer.json()) == []
    assert path_declared("deals.v3.json", "/crm/v3/objects/0-3/search")


@needs_contracts
async def test_error_bodies_follow_the_spec(fake: Fake) -> None:
    error_schema = validator("objects.v3.json", "Error")
    url = f"{fake.url}/crm/v3/objects/deals/search"
    bad = {
        "filterGroups": [{"filters": [{"propertyName": "amout", "operator": "GT", "value": "1"}]}],
        "properties": [],
        "sorts": [],
        "limit": 10,
        "after": "0",
    }
    async with httpx.AsyncClient() as client:
        unauthorized = await client.post(url, json=bad)
        invalid = await client.post(url, json=bad, headers={"Authorization": f"Bearer {TOKEN}"})
    assert unauthorized.status_code == 401 and invalid.status_code == 400
    assert unauthorized.json()["category"] == "INVALID_AUTHENTICATION"
    assert invalid.json()["errors"][0]["message"] == 'Property "amout" does not exist'
    for answer in (unauthorized, invalid):
        assert errors_of(error_schema, answer.json()) == []


def test_hubspot_client_works_against_the_fake(fake: Fake) -> None:
    hubspot = pytest.importorskip("hubspot")
    from hubspot.crm.deals import Filter, FilterGroup, PublicObjectSearchRequest

    client = hubspot.HubSpot(access_token=TOKEN)
    search_api = client.crm.deals.search_api
    search_api.api_client.configuration.host = fake.url
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[Filter(property_name="dealstage", operator="EQ", value="closedwon")]
            )
        ],
        properties=["amount", "dealstage"],
        sorts=[json.dumps({"propertyName": "amount", "direction": "DESCENDING"})],
        limit=50,
        after="0",
    )
    first = search_api.do_search(public_object_search_request=request)
    won = fake.portal.where("deals", lambda d: d.properties["dealstage"] == "closedwon")
    assert first.total == len(won) and len(first.results) == min(50, len(won))
    assert all(r.properties["dealstage"] == "closedwon" for r in first.results)
    amounts = [float(r.properties["amount"]) for r in first.results if r.properties["amount"]]
    assert amounts == sorted(amounts, reverse=True)
    ids = {r.id for r in first.results}
    while first.paging is not None:
        request.after = first.paging.next.after
        first = search_api.do_search(public_object_search_request=request)
        ids |= {r.id for r in first.results}
    assert ids == {d.id for d in won}
    sent = fake.server.requests[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.json_body()["filterGroups"][0]["filters"][0]["propertyName"] == "dealstage"
