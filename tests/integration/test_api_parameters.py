"""The JSON API's parameters as FastAPI takes them: typed, validated, refused as {error, detail}.

FastAPI validates the path, query and header parameters each route declares; a refusal must
still be okrsync's 400 naming the parameter (never FastAPI's 422 ``{"detail": [...]}``), the
document must describe only what the API answers, and every read must answer HEAD as it did
when it was a Starlette route.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from okrsync.api.openapi import openapi_document
from okrsync.api.v1 import MAX_LIMIT
from tests.integration.api_support import TOKEN, api_service

LIMIT_RULE = f"limit: an integer from 1 to {MAX_LIMIT}"
LISTS = ("cycles", "objectives", "key-results", "runs", "deliveries", "connections")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("parameters")
    with api_service(root, f"sqlite:///{root / 'okrsync.db'}") as svc:
        yield svc.url


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "limit", ["0", "-1", "+5", " 5", "5.0", "1e2", "abc", "", str(MAX_LIMIT + 1), "9" * 5000]
)
def test_a_bad_limit_is_a_400_naming_it(url: str, path: str, limit: str) -> None:
    answer = httpx.get(f"{url}/api/v1/{path}", params={"limit": limit})
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid query parameter", "detail": LIMIT_RULE}


@pytest.mark.parametrize("path", LISTS)
def test_a_limit_in_digits_is_taken(url: str, path: str) -> None:
    answer = httpx.get(f"{url}/api/v1/{path}", params={"limit": "0001"})
    assert answer.status_code == 200
    assert answer.json()["total"] >= len(
        next(v for v in answer.json().values() if isinstance(v, list))
    )


def test_the_first_bad_parameter_is_the_one_named(url: str) -> None:
    both = httpx.get(f"{url}/api/v1/deliveries", params={"limit": "x", "status": "lost"})
    assert both.json()["detail"] == LIMIT_RULE
    status = httpx.get(f"{url}/api/v1/deliveries", params={"status": "lost", "cursor": ""})
    assert status.status_code == 400
    assert status.json()["detail"].startswith("status: one of ('pending', 'done'")
    cycle = httpx.get(f"{url}/api/v1/objectives", params={"cycle": "c" * 101})
    assert cycle.json() == {
        "error": "invalid query parameter",
        "detail": "cycle: a cycle's id, 1 to 100 characters",
    }


@pytest.mark.parametrize("cursor", ["", "x" * 1001, "bm90LWEtY3Vyc29y"])
def test_a_cursor_this_list_did_not_give_is_a_400(url: str, cursor: str) -> None:
    answer = httpx.get(f"{url}/api/v1/runs", params={"cursor": cursor})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("cursor: not one this list gave")


@pytest.mark.parametrize("path", [*LISTS, "key-results/deals", "objectives/o"])
def test_every_read_answers_head_with_the_headers_of_its_get(url: str, path: str) -> None:
    get = httpx.get(f"{url}/api/v1/{path}")
    head = httpx.head(f"{url}/api/v1/{path}")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified"):
        assert head.headers.get(name) == get.headers.get(name)


def test_a_wrong_method_is_a_405_allowing_get_and_head(url: str) -> None:
    answer = httpx.delete(f"{url}/api/v1/key-results/deals")
    assert answer.status_code == 405
    assert answer.json() == {"error": "Method Not Allowed", "detail": None}
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_writes_check_the_token_before_reading_the_body(url: str) -> None:
    path = f"{url}/api/v1/key-results/deals/check-ins"
    unauthenticated = httpx.post(path, content=b"{not json")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == 'Bearer realm="okrsync"'
    malformed = httpx.post(path, content=b"{not json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "malformed JSON"


def test_the_document_names_only_answers_the_api_gives() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # a refused parameter is a 400, not FastAPI's 422
    assert {"CheckIn", "SyncRequest"} <= set(schemas)  # bodies okrsync reads itself
    for path, operations in document["paths"].items():
        assert set(operations) <= {"get", "post"}, path  # HEAD is answered, not documented
        for operation in operations.values():
            for code, described in operation["responses"].items():
                if code.startswith(("4", "5")):
                    ref = described["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, code)


def test_the_served_document_is_the_generated_one(tmp_path: Path) -> None:
    with api_service(tmp_path, f"sqlite:///{tmp_path / 'okrsync.db'}", synced=False) as svc:
        served = httpx.get(f"{svc.url}/api/v1/openapi.json")
        assert httpx.get(f"{svc.url}/openapi.json").status_code == 404  # FastAPI's own: off
        assert httpx.get(f"{svc.url}/docs").status_code == 404
    assert served.json() == openapi_document()
