"""The connector's YAML models: what ``okrsync validate`` catches before any call."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.linear import LinearConnection, LinearProjectUpdateMirror, LinearQuery


def test_api_key_with_bearer_prefix_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not start with 'Bearer '"):
        LinearConnection(api_key="Bearer lin_api_x")


def test_exactly_one_credential() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'api_key'"):
        LinearConnection()
    key = LinearConnection(api_key="lin_api_x")
    token = LinearConnection(access_token="tok")
    assert key.authorization() == "lin_api_x" and token.authorization() == "Bearer tok"
    assert key.secret_values() == ["lin_api_x"]


def test_query_fields() -> None:
    spec = LinearQuery.model_validate({"state_type": "started", "labels": "Bug"})
    assert spec.state_type == ("started",) and spec.labels == ("Bug",)
    with pytest.raises(ValidationError):
        LinearQuery.model_validate({"state_type": "done"})
    with pytest.raises(ValidationError, match="unknown placeholder"):
        LinearQuery(completed_after="{cycle.start}")
    with pytest.raises(ValidationError, match="neither an ISO 8601 date"):
        LinearQuery(created_after="last week")
    with pytest.raises(ValidationError, match="not both"):
        LinearQuery(project="A", project_id="b")
    assert LinearQuery(created_after="-P2W").created_after == "-P2W"


def test_mirror_needs_one_project() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'project_id'"):
        LinearProjectUpdateMirror()
    assert LinearProjectUpdateMirror(project="X").no_data_health == "atRisk"
