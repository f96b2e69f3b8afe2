"""The YAML fields of a ``prometheus`` connection and of one PromQL metric."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from okrsync.sdk.auth import HttpAuth
from okrsync.sdk.connector import ConnectionConfig, QuerySpec

CYCLE_RANGE = "{cycle_range}"


class PrometheusConnection(ConnectionConfig):
    type: Literal["prometheus"] = "prometheus"
    url: str = Field(description="Base URL of the Prometheus server, e.g. http://prom:9090.")
    auth: HttpAuth | None = Field(
        default=None, description="bearer (a proxy or managed Prometheus) or basic (web.config)"
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one query may take.")
    max_retries: int = Field(default=3, ge=0, le=10)
    max_concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                f"url must be an http(s) URL such as http://prometheus:9090, got {value!r}"
            )
        return value.rstrip("/")


Aggregate = Literal["sum", "max", "min", "avg", "first"]


class PrometheusQuery(QuerySpec):
    """One instant PromQL query that must come back as one number."""

    query: str = Field(description="PromQL; '{cycle_range}' becomes the cycle's elapsed range.")
    aggregate: Aggregate | None = Field(
        default=None, description="How several series fold into one number; unset: an error."
    )
    at: Literal["now", "cycle_end"] = Field(
        default="now", description="Evaluation time: now, or the end of the cycle (if past)."
    )

    @field_validator("query")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the PromQL query is empty")
        return value.strip()

    def query_text(self) -> str:
        text = self.query
        if self.aggregate is not None:
            text += f" ({self.aggregate} over series)"
        if self.at != "now":
            text += f" @ {self.at}"
        return text
