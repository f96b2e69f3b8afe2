"""``GET /crm/v3/objects/{objectType}`` (the list): paging with ``after``, through HubSpot's client
and checked against HubSpot's published deals description."""

from __future__ import annotations

import httpx
import hubspot
from hubspot.crm import deals as deals_api

from connectors.hubspot.tests.conftest import TOKEN, Fake
from connectors.hubspot.tests.test_hubspot_contract import violations


def test_hubspot_client_get_page_walks_every_deal(fake: Fake) -> None:
    client = hubspot.HubSpot(access_token=TOKEN)
    basic_api = client.crm.deals.basic_api
    basic_api.api_client.configuration.host = fake.url
    seen: list[str] = []
    amounts: dict[str, str | None] = {}
    after: str | None = None
    pages = 0
    while True:
        page = basic_api.get_page(limit=100, after=after, properties=["amount", "dealstage"])
        pages += 1
        seen += [r.id for r in page.results]
        amounts |= {r.id: r.properties.get("amount") for r in page.results}
        assert all(
            set(r.properties) >= {"amount", "dealstage", "hs_object_id"} for r in page.results
        )
        if page.paging is None:
            break
        after = page.paging.next.after
    deals = fake.portal.all("deals")
    assert seen == sorted((d.id for d in deals), key=int)  # each once, in id order
    assert pages == -(-len(deals) // 100)
    assert amounts == {d.id: d.properties["amount"] for d in deals}
    first = fake.server.requests[0]
    assert first.method == "GET" and first.path == "/crm/v3/objects/deals"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"


def test_the_list_answer_follows_hubspots_description(fake: Fake) -> None:
    answer = httpx.get(
        f"{fake.url}/crm/v3/objects/0-3",
        params={"limit": "3", "properties": "dealname,no_such_property"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200
    body = answer.json()
    kind = "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"
    assert violations(deals_api, body, kind, closed=False) == []
    assert len(body["results"]) == 3 and body["paging"]["next"]["after"] == "3"
    assert "no_such_property" not in body["results"][0]["properties"]  # ignored, as documented
    assert "X-HubSpot-RateLimit-Daily-Remaining" in answer.headers
    default = httpx.get(
        f"{fake.url}/crm/v3/objects/deals", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert len(default.json()["results"]) == 10  # the default page
    archived = httpx.get(
        f"{fake.url}/crm/v3/objects/deals",
        params={"archived": "true"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert archived.json() == {"results": []}
    refused = httpx.get(f"{fake.url}/crm/v3/objects/deals")
    assert refused.status_code == 401
