"""What the ga4 source sends and what the fake answers, against Google's discovery document.

The discovery document is not OpenAPI: its ``schemas`` are converted here to JSON Schema with
``additionalProperties: false``, so an unknown or misspelt field fails, as it would at Google.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from connectors.ga4.tests.test_ga4 import CYCLE, OTHER, Fake, fake, make_source, query

__all__ = ["fake"]  # the fixture, shared with test_ga4

# Google's discovery document, kept beside the connector (source and licence: contracts/SOURCE.md)
CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "analyticsdata-v1beta.json"
_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def _convert(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any] = {}
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {k: _convert(v) for k, v in node["properties"].items()}
            out["additionalProperties"] = False
        elif "additionalProperties" in node:
            out["additionalProperties"] = _convert(node["additionalProperties"])
    elif kind == "array":
        out["type"] = "array"
        out["items"] = _convert(node.get("items", {}))
    elif kind in _TYPES:
        out["type"] = _TYPES[kind]
        if "enum" in node:
            out["enum"] = node["enum"]
    return out


def schema_for(name: str) -> dict[str, Any]:
    document = json.loads(CONTRACT.read_text())
    definitions = {k: _convert(v) for k, v in document["schemas"].items()}
    return {"$ref": f"#/definitions/{name}", "definitions": definitions}


def check(instance: Any, name: str) -> None:
    jsonschema.Draft7Validator(schema_for(name)).validate(instance)


def test_the_converted_schema_catches_unknown_fields() -> None:
    with pytest.raises(jsonschema.ValidationError):
        check({"metrics": [{"name": "sessions", "alias": "x"}]}, "RunReportRequest")
    with pytest.raises(jsonschema.ValidationError):
        check({"returnPropertyQuota": "yes"}, "RunReportRequest")


async def test_requests_and_answers_match_the_discovery_document(fake: Fake) -> None:
    source = make_source(fake, page_size=50)
    france = [{"field": "country", "in_list": ["France"]}]
    queries = [
        query("sessions"),
        query("totalRevenue"),
        query("conversions", "fr", filters=france, dimensions=["country"]),
        query("sessions", "de", dimensions=["date", "country"], row_filter={"country": "Germany"}),
        query("activeUsers", "other", property_id=OTHER),
    ]
    try:
        readings = await source.fetch(queries)
    finally:
        await source.aclose()
    assert all(r.ok for r in readings), [r.error for r in readings]
    sent = fake.report_requests()
    assert {r.path.rsplit(":", 1)[1] for r in sent} == {"runReport", "batchRunReports"}
    token = next(r.headers["authorization"] for r in sent)
    for record in sent:
        kind = "BatchRunReports" if record.path.endswith("batchRunReports") else "RunReport"
        check(record.json_body(), f"{kind}Request")
        answer = httpx.post(  # noqa: ASYNC210 - a check after the source is done
            fake.url + record.path, json=record.json_body(), headers={"Authorization": token}
        )
        assert answer.status_code == 200, answer.text
        check(answer.json(), f"{kind}Response")
        if kind == "RunReport":
            assert "propertyQuota" in answer.json()
    assert CYCLE.id == "2026-Q3"


def test_error_bodies_are_google_envelopes(fake: Fake) -> None:
    answer = httpx.post(f"{fake.url}/v1beta/properties/1:runReport", json={})
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "status"} and error["status"] == "UNAUTHENTICATED"
    check({"code": 401, "message": error["message"]}, "Status")
