"""The JSON Schema of a config file, for editors (autocomplete, inline errors) and for CI.

The document's own structure comes from the document models in :mod:`okrsync.config.models`;
each installed connector adds its connection fields (chosen by ``type``), its query fields (for
metrics) and its mirror fields. The output is deterministic, so a committed schema changes only
when a model does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from okrsync.config.fields import ID_PATTERN
from okrsync.config.models import (
    ConfigDocument,
    ConnectionCommon,
    MetricCommon,
    MirrorCommon,
)
from okrsync.config.work import WorkCommon
from okrsync.sdk.connector import Connector

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://okrsync.dev/schema/config.json"
_REF_PREFIX = "#/$defs/"


def config_json_schema(connectors: Mapping[str, Connector]) -> dict[str, Any]:
    """The schema of a config file that may use every connector in ``connectors``."""
    installed = sorted(connectors.items())
    models: list[type[BaseModel]] = [ConfigDocument, ConnectionCommon, MetricCommon, MirrorCommon]
    models.append(WorkCommon)
    for _, connector in installed:
        models.append(connector.connection_model)
        if connector.query_model is not None:
            models.append(connector.query_model)
        if connector.mirror_model is not None:
            models.append(connector.mirror_model)
        if connector.work_model is not None:
            models.append(connector.work_model)
    unique = list(dict.fromkeys(models))
    refs, generated = models_json_schema(
        [(model, "validation") for model in unique], ref_template=_REF_PREFIX + "{model}"
    )
    defs: dict[str, Any] = generated.get("$defs", {})

    def definition(model: type[BaseModel]) -> dict[str, Any]:
        ref = refs[(model, "validation")]["$ref"]
        return copy.deepcopy(defs[ref.removeprefix(_REF_PREFIX)])

    root = definition(ConfigDocument)
    defs.pop(refs[(ConfigDocument, "validation")]["$ref"].removeprefix(_REF_PREFIX), None)

    connection_branches: list[dict[str, Any]] = []
    metric_branches: list[dict[str, Any]] = []
    mirror_branches: list[dict[str, Any]] = []
    work_branches: list[dict[str, Any]] = []
    work_common = definition(WorkCommon)
    connection_common = definition(ConnectionCommon)
    metric_common = definition(MetricCommon)
    mirror_common = definition(MirrorCommon)
    for kind, connector in installed:
        connection = definition(connector.connection_model)
        connection.setdefault("properties", {}).update(connection_common["properties"])
        connection["properties"]["type"] = {
            "const": kind,
            "description": connector.summary,
            "title": "Type",
        }
        connection["required"] = sorted({"type", *connection.get("required", [])})
        connection["title"] = f"{kind} connection"
        name = f"connection.{kind}"
        defs[name] = connection
        connection_branches.append({"$ref": _REF_PREFIX + name})
        if connector.query_model is not None:
            name = f"metric.{kind}"
            defs[name] = _merged(metric_common, definition(connector.query_model), f"{kind} metric")
            metric_branches.append({"$ref": _REF_PREFIX + name})
        if connector.mirror_model is not None:
            name = f"mirror.{kind}"
            defs[name] = _merged(
                mirror_common, definition(connector.mirror_model), f"{kind} mirror"
            )
            mirror_branches.append({"$ref": _REF_PREFIX + name})
        if connector.work_model is not None:
            name = f"work.{kind}"
            defs[name] = _merged(work_common, definition(connector.work_model), f"{kind} work")
            work_branches.append({"$ref": _REF_PREFIX + name})

    properties = root["properties"]
    properties["connections"] = {
        "type": "object",
        "description": "Named links to external systems; secrets as ${ENV_VAR} references.",
        "additionalProperties": _choice(connection_branches, "oneOf"),
        "propertyNames": {"pattern": ID_PATTERN},
    }
    properties["metrics"] = {
        "type": "object",
        "description": "Named queries, each answered by one source connection.",
        "additionalProperties": _choice(metric_branches, "anyOf"),
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    }
    key_result_name = next(
        name for name, body in defs.items() if body.get("title") == "KeyResultDocument"
    )
    defs[key_result_name]["properties"]["mirrors"] = {
        "type": "array",
        "description": "Where this key result's progress is pushed.",
        "items": _choice(mirror_branches, "anyOf"),
    }
    work_items = {
        "type": "array",
        "description": "Tracker queries listing the issues, PRs and epics behind it.",
        "items": _choice(work_branches, "anyOf"),
    }
    defs[key_result_name]["properties"]["work"] = work_items
    objective_name = next(
        name for name, body in defs.items() if body.get("title") == "ObjectiveDocument"
    )
    digest_branches = [
        {"$ref": _REF_PREFIX + f"mirror.{kind}"}
        for kind, connector in sorted(connectors.items())
        if connector.supports_digest
    ]
    defs[objective_name]["properties"]["mirrors"] = {
        "type": "array",
        "description": "Digest mirrors: the objective and all its key results in one message.",
        "items": _choice(digest_branches, "anyOf"),
    }
    defs[objective_name]["properties"]["work"] = copy.deepcopy(work_items)
    root["patternProperties"] = {"^x-": {}}
    root["$schema"] = SCHEMA_DIALECT
    root["$id"] = SCHEMA_ID
    root["title"] = "okrsync configuration"
    root["$defs"] = dict(sorted(_reachable(root, defs).items()))
    return root


def _reachable(root: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Only the definitions something refers to (the originals we copied are left out)."""
    kept: dict[str, Any] = {}
    pending: list[Any] = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                name = ref.removeprefix(_REF_PREFIX)
                if name not in kept and name in defs:
                    kept[name] = defs[name]
                    pending.append(defs[name])
            pending.extend(value for key, value in node.items() if key != "$defs")
        elif isinstance(node, list):
            pending.extend(node)
    return kept


def _choice(branches: list[dict[str, Any]], keyword: str) -> dict[str, Any]:
    if not branches:
        return {"not": {}}  # no installed connector can play this part
    if len(branches) == 1:
        return branches[0]
    return {keyword: branches}


def _merged(common: dict[str, Any], specific: dict[str, Any], title: str) -> dict[str, Any]:
    """One object schema with the common fields and a connector's own fields."""
    properties = {**specific.get("properties", {}), **common.get("properties", {})}
    required = sorted({*common.get("required", []), *specific.get("required", [])})
    merged: dict[str, Any] = {
        "type": "object",
        "title": title,
        "properties": dict(sorted(properties.items())),
        "additionalProperties": False,
    }
    if required:
        merged["required"] = required
    if "description" in specific:
        merged["description"] = specific["description"]
    return merged


def render_schema(connectors: Mapping[str, Connector]) -> str:
    return json.dumps(config_json_schema(connectors), indent=2, sort_keys=True) + "\n"


def write_schema(connectors: Mapping[str, Connector], path: Path) -> None:
    """Write the schema as stable JSON (sorted keys, 2-space indent, trailing newline)."""
    path.write_text(render_schema(connectors), encoding="utf-8")
