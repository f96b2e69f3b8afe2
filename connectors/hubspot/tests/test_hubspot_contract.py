"""The fake and the source against HubSpot's API as HubSpot's own Python client describes it.

HubSpot's OpenAPI documents (HubSpot/HubSpot-public-api-spec-collection) are "proprietary to
HubSpot and not licensed for external use", so they are not kept in this repository.
``hubspot-api-client`` (Apache-2.0, a dev dependency) is generated from those documents by
OpenAPI Generator: each model class carries its schema's fields (``attribute_map``: the wire
name, ``openapi_types``: the type) and its setters enforce the required fields and enums. Checked
against it:

* every search request the source sends (read from the sandbox log) uses only fields
  ``PublicObjectSearchRequest`` declares (in both the objects and the deals API), of the declared
  types, with its required fields and enum values; replayed through the client's
  ``crm.objects`` search API it goes to the same path, and the fake's answers conform to
  ``CollectionResponseWithTotalSimplePublicObjectForwardPaging``, its error bodies to ``Error``;
* ``hubspot-api-client`` pointed at the fake runs ``crm.deals.search_api.do_search`` unchanged.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from functools import cache
from types import ModuleType
from typing import Any

import httpx
import hubspot

from connectors.hubspot.tests.conftest import TOKEN, Fake, make_source, query

OBJECTS: ModuleType = importlib.import_module("hubspot.crm.objects")
DEALS: ModuleType = importlib.import_module("hubspot.crm.deals")
SCALARS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "object": object,
    "datetime": str,
}


@cache
def validating(api: ModuleType) -> Any:
    """The API's client configuration with the generated setters' checks turned on."""
    configuration = api.Configuration()
    configuration.client_side_validation = True
    return configuration


def violations(
    api: ModuleType, value: Any, kind: str, *, closed: bool, where: str = "$"
) -> list[str]:
    """How ``value`` (decoded JSON) departs from the client's type ``kind``; [] when it conforms.

    ``closed``: a field the model does not declare is a violation (for what we send; HubSpot's
    schemas let answers carry more). ``null`` is left to the model, whose setter refuses it for a
    required field.
    """
    if value is None:
        return []
    if kind.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        inner = kind[5:-1]
        return [
            p
            for i, v in enumerate(value)
            for p in violations(api, v, inner, closed=closed, where=f"{where}[{i}]")
        ]
    if kind.startswith("dict["):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        inner = kind[kind.index(",") + 1 : -1].strip()
        return [
            p
            for k, v in value.items()
            for p in violations(api, v, inner, closed=closed, where=f"{where}.{k}")
        ]
    if kind in SCALARS:
        if isinstance(value, bool) and kind in ("int", "float"):
            return [f"{where}: {value!r} is not {kind}"]
        if not isinstance(value, SCALARS[kind]):
            return [f"{where}: {value!r} is not {kind}"]
        if kind == "datetime":
            try:
                datetime.fromisoformat(str(value))
            except ValueError:
                return [f"{where}: {value!r} is not a date-time"]
        return []
    model = getattr(api.models, kind)
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not a {kind}"]
    attribute = {wire: name for name, wire in model.attribute_map.items()}
    problems = [
        f"{where}.{k}: not a field of {kind}" for k in value if closed and k not in attribute
    ]
    known = {attribute[k]: v for k, v in value.items() if k in attribute}
    try:  # the generated setters: required fields and enum values
        model(**known, local_vars_configuration=validating(api))
    except ValueError as error:
        problems.append(f"{where}: {error}")
    for name, v in known.items():
        inner = model.openapi_types[name]
        at = f"{where}.{model.attribute_map[name]}"
        problems += violations(api, v, inner, closed=closed, where=at)
    return problems


def test_the_check_finds_what_hubspot_would_refuse() -> None:
    """The check itself: a misspelt field, a missing required one, a bad enum and a bad type."""
    request = "PublicObjectSearchRequest"
    filters = [{"propertyName": "amount", "operator": "GT", "value": "1"}]
    good = {"filterGroups": [{"filters": filters}], "limit": 10, "after": "0"}
    assert violations(OBJECTS, good, request, closed=True) == []
    assert violations(OBJECTS, {**good, "filter_groups": []}, request, closed=True) == [
        "$.filter_groups: not a field of PublicObjectSearchRequest"
    ]
    assert violations(OBJECTS, {**good, "filter_groups": []}, request, closed=False) == []
    no_name = {"filterGroups": [{"filters": [{"operator": "EQ"}]}]}
    [missing] = violations(OBJECTS, no_name, request, closed=True)
    assert missing.startswith("$.filterGroups[0].filters[0]:") and "property_name" in missing
    [operator] = violations(
        OBJECTS,
        {"filterGroups": [{"filters": [{**filters[0], "operator": "GREATER"}]}]},
        request,
        closed=True,
    )
    assert "operator" in operator and "GREATER" in operator
    assert violations(OBJECTS, {**good, "limit": "10"}, request, closed=True) == [
        "$.limit: '10' is not int"
    ]
    answer = "CollectionResponseWithTotalSimplePublicObjectForwardPaging"
    assert violations(OBJECTS, {"total": 0, "results": [{"id": "1"}]}, answer, closed=False) != []


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
    answer_type = "CollectionResponseWithTotalSimplePublicObjectForwardPaging"
    client = hubspot.HubSpot(access_token=TOKEN)
    search_api = client.crm.objects.search_api
    search_api.api_client.configuration.host = fake.url
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for record in searches:
            body = record.json_body()
            for models in (OBJECTS, DEALS):
                assert violations(models, body, "PublicObjectSearchRequest", closed=True) == []
            answer = await http.post(f"{fake.url}{record.path}", json=body)
            assert answer.status_code == 200
            assert violations(OBJECTS, answer.json(), answer_type, closed=False) == []
            # the client's own search: the path HubSpot declares, its answer deserialised
            object_type = record.path.split("/")[4]
            replayed = search_api.do_search(object_type, public_object_search_request=body)
            assert fake.server.requests[-1].path == record.path
            assert replayed.total == answer.json()["total"]


async def test_error_bodies_follow_the_spec(fake: Fake) -> None:
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
        assert violations(OBJECTS, answer.json(), "Error", closed=False) == []


def test_hubspot_client_works_against_the_fake(fake: Fake) -> None:
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
