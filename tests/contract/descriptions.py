"""The vendors' descriptions as Prism reads them: the repository's files, with listed changes.

Each description in ``connectors/<vendor>/contracts/`` is kept byte-identical to its upstream.
Prism gets a copy written here, changed only where listed below and for the reason given:

* **Routing** (Mixpanel, Slack): Prism's HTTP server matches the request path against the
  description's paths alone, without the server's base path (Mixpanel's ``/api/query``,
  Slack's ``basePath: /api``), so the base path is moved into every path.
* **Jira sends no body** on ``PUT .../properties/{key}`` (200/201) and ``PUT /issue/{key}``
  (204); Atlassian's description lists ``application/json`` with an empty schema there, which an
  empty answer cannot meet (``connectors/jira/tests/test_contract.py`` notes the same).
* **Slack**: see :func:`slack`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {
    "jira": ROOT / "connectors" / "jira" / "contracts" / "jira-cloud-platform-v3.openapi.json",
    "mixpanel": ROOT / "connectors" / "mixpanel" / "contracts" / "query.openapi.yaml",
    "slack": ROOT / "connectors" / "slack" / "contracts" / "slack-web-api.swagger2.json",
}
JIRA_BODYLESS = {
    ("/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}", "put"): ("200", "201"),
    ("/rest/api/3/issue/{issueIdOrKey}", "put"): ("204",),
}


def prefixed(paths: dict[str, Any], base: str) -> dict[str, Any]:
    return {base.rstrip("/") + path: item for path, item in paths.items()}


def jira() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(CONTRACTS["jira"].read_text())
    for (path, method), statuses in JIRA_BODYLESS.items():
        for status in statuses:
            spec["paths"][path][method]["responses"][status].pop("content")
    return spec


def mixpanel() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(CONTRACTS["mixpanel"].read_text())
    base = urlsplit(spec["servers"][0]["url"].replace("{regionAndDomain}", "mixpanel")).path
    spec["paths"] = prefixed(spec["paths"], base)
    return spec


def write(vendor: str, spec: dict[str, Any], folder: Path) -> Path:
    target = folder / f"{vendor}.prism.json"
    target.write_text(json.dumps(spec))
    return target


def for_prism(vendor: str, folder: Path) -> Path:
    """The description Prism reads for ``vendor``, written into ``folder``."""
    build = {"jira": jira, "mixpanel": mixpanel, "slack": slack}[vendor]
    return write(vendor, copy.deepcopy(build()), folder)


SLACK_JSON_METHODS = ("/chat.postMessage", "/chat.update")
SLACK_JSON_ARGUMENTS: dict[str, Any] = {
    "blocks": {"$ref": "#/definitions/blocks"},  # an array in a JSON body, not a JSON string
    "attachments": {"type": "array", "items": {"type": "object"}},
    "metadata": {"type": "object"},  # message metadata, 2022
}
SLACK_NEWER_MESSAGE_FIELDS: dict[str, Any] = {"metadata": {"type": "object"}, "edited": {}}


def slack_json_body(operation: dict[str, Any]) -> None:
    """A write method's form fields as one JSON body, the token in ``Authorization: Bearer``."""
    form = [p for p in operation["parameters"] if p["in"] == "formData"]
    properties = {p["name"]: SLACK_JSON_ARGUMENTS.get(p["name"], {"type": p["type"]}) for p in form}
    properties["metadata"] = SLACK_JSON_ARGUMENTS["metadata"]
    body = {
        "type": "object",
        "properties": properties,
        "required": [p["name"] for p in form if p.get("required")],
    }
    operation["consumes"] = ["application/json"]
    operation["parameters"] = [
        {"in": "body", "name": "body", "required": True, "schema": body},
        *(p for p in operation["parameters"] if p["in"] not in ("formData", "header")),
    ]


def slack() -> dict[str, Any]:
    """Slack's 2021 description, brought to what Slack documents and the connector sends.

    * ``chat.postMessage`` and ``chat.update`` take a JSON body (Slack documents JSON for write
      methods, with the token only in ``Authorization: Bearer``); the description lists their
      arguments as form fields, a required ``token`` header, and ``blocks`` as a JSON string.
    * Newer than the description: ``metadata`` (argument and message field, 2022),
      ``include_all_metadata`` on ``conversations.history``, ``edited`` on messages, and
      history's ``response_metadata`` (the description's own example carries it, its schema
      forbids it). The same list as ``connectors/slack/tests/test_contract.py``'s.
    """
    spec: dict[str, Any] = json.loads(CONTRACTS["slack"].read_text())
    for method in SLACK_JSON_METHODS:
        slack_json_body(spec["paths"][method]["post"])
    history = spec["paths"]["/conversations.history"]["get"]
    history["parameters"].append(
        {"in": "query", "name": "include_all_metadata", "type": "boolean", "required": False}
    )
    history["responses"]["200"]["schema"]["properties"]["response_metadata"] = {"type": "object"}
    spec["definitions"]["objs_message"]["properties"].update(SLACK_NEWER_MESSAGE_FIELDS)
    spec["paths"] = prefixed(spec["paths"], spec.pop("basePath"))
    return spec
