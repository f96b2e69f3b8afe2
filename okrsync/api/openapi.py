"""The OpenAPI 3.1 document of the JSON API, generated from :data:`okrsync.api.v1.OPERATIONS`
and the pydantic models; committed as ``okrsync/api/openapi.json`` (a test fails when stale).

Regenerate with ``python -m okrsync.api.openapi > okrsync/api/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from okrsync.api import models as m
from okrsync.api.v1 import IF_NONE_MATCH, OPERATIONS, PREFIX, Operation

REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Bad input (malformed JSON, a bad query parameter)",
    401: "Missing or wrong bearer token",
    403: "Writes are disabled: no OKRSYNC_API_TOKEN is configured",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    422: "The body does not validate",
}


def _schemas() -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (m.ErrorBody, "serialization"): None
    }
    for op in OPERATIONS:
        wanted[(op.response, "serialization")] = None
        if op.body is not None:
            wanted[(op.body, "validation")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=REF)
    return dict(refs), dict(defs.get("$defs", {}))


def _operation(op: Operation, refs: dict[Any, Any]) -> Any:
    error_ref = refs[(m.ErrorBody, "serialization")]

    def error(code: int) -> dict[str, Any]:
        return {
            "description": ERROR_TEXT[code],
            "content": {"application/json": {"schema": error_ref}},
        }

    responses: dict[str, Any] = {
        str(op.status): {
            "description": op.summary,
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
        }
    }
    if op.cached:
        headers = {
            "ETag": {
                "description": "Changes with every recorded value, confirmation, error or run "
                "(and each minute, as status follows the clock); send it as If-None-Match",
                "schema": {"type": "string"},
            },
            "Last-Modified": {
                "description": "The last change recorded in the store",
                "schema": {"type": "string"},
            },
        }
        responses[str(op.status)]["headers"] = headers
        responses["304"] = {
            "description": "Not modified: If-None-Match is current",
            "headers": headers,
        }
    codes = set(op.errors) | ({401, 403} if op.write else set())
    for code in sorted(codes):
        responses[str(code)] = error(code)
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": responses,
    }
    params = (*op.params, IF_NONE_MATCH) if op.cached else op.params
    if params:
        doc["parameters"] = [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in params
        ]
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.write:
        doc["security"] = [{"bearer": []}]
    return doc


@cache
def openapi_document() -> dict[str, Any]:
    refs, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "okrsync",
            "version": "1.0.0",  # the API's version, not the package's
            "description": (
                "Read OKRs, runs, deliveries and connection health; check in values; ask for a "
                "sync. Reads are open; writes need `Authorization: Bearer <OKRSYNC_API_TOKEN>`. "
                "Exact numbers are decimal strings. Errors are `{error, detail}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
