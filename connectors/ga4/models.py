"""The YAML fields of a ``ga4`` connection and of one GA4 report metric."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from okrsync.sdk.connector import ConnectionConfig, QuerySpec

API_URL = "https://analyticsdata.googleapis.com"
MAX_METRICS_PER_REQUEST = 10  # GA4 refuses an 11th metric in one report
MAX_REPORTS_PER_BATCH = 5  # batchRunReports takes at most 5 reports
_PROPERTY = re.compile(r"^(?:properties/)?(\d+)$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_:]*$")

MatchType = Literal[
    "EXACT", "BEGINS_WITH", "ENDS_WITH", "CONTAINS", "FULL_REGEXP", "PARTIAL_REGEXP"
]


def property_number(value: str) -> str:
    found = _PROPERTY.match(value.strip())
    if found is None:
        raise ValueError(f"a GA4 property id is a number such as 123456789, got {value!r}")
    return found.group(1)


class GA4Connection(ConnectionConfig):
    type: Literal["ga4"] = "ga4"
    property_id: str | None = Field(
        default=None, description="Default GA4 property (numeric id); a metric may override it."
    )
    credentials_json: SecretStr | None = Field(
        default=None, description="The service-account JSON key itself (use ${ENV} in YAML)."
    )
    credentials_file: str | None = Field(
        default=None, description="Path of the service-account JSON key file."
    )
    api_url: str = Field(default=API_URL, description="Data API root (a proxy or the sandbox).")
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_concurrency: int = Field(default=10, ge=1, le=10, description="GA4 allows 10 at once.")
    page_size: int = Field(default=10_000, ge=1, le=250_000, description="Rows per report page.")

    @field_validator("property_id")
    @classmethod
    def _property(cls, value: str | None) -> str | None:
        return None if value is None else property_number(value)

    @model_validator(mode="after")
    def _one_key(self) -> GA4Connection:
        if (self.credentials_json is None) == (self.credentials_file is None):
            raise ValueError("give exactly one of credentials_json or credentials_file")
        return self


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionFilter(_Frozen):
    """One dimension condition: ``value`` (and ``match_type``) or ``in_list``; ANDed."""

    field: str
    value: str | None = None
    match_type: MatchType = "EXACT"
    in_list: tuple[str, ...] | None = None
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _one_test(self) -> DimensionFilter:
        if (self.value is None) == (self.in_list is None):
            raise ValueError(f"filter on {self.field!r}: give exactly one of value or in_list")
        if self.in_list is not None and not self.in_list:
            raise ValueError(f"filter on {self.field!r}: in_list is empty")
        return self

    def expression(self) -> dict[str, Any]:
        """The GA4 ``FilterExpression`` for this condition."""
        if self.in_list is not None:
            test: dict[str, Any] = {
                "inListFilter": {"values": list(self.in_list), "caseSensitive": self.case_sensitive}
            }
        else:
            test = {
                "stringFilter": {
                    "matchType": self.match_type,
                    "value": self.value,
                    "caseSensitive": self.case_sensitive,
                }
            }
        return {"filter": {"fieldName": self.field, **test}}

    def text(self) -> str:
        if self.in_list is not None:
            return f"{self.field} in ({', '.join(self.in_list)})"
        op = "=" if self.match_type == "EXACT" else f" {self.match_type.lower()} "
        return f"{self.field}{op}{self.value!r}"


class GA4Query(QuerySpec):
    """One GA4 metric over the cycle, as one number.

    Without ``dimensions`` the report is one row. With ``dimensions`` the value is the report's
    ``TOTAL`` row (GA4's own total, which de-duplicates users across rows, unlike a sum), or —
    with ``row_filter`` — the metric of the one row whose dimension values match (0 when no row
    matches: GA4 leaves out rows whose metrics are all zero).
    """

    metric: str = Field(description="GA4 API metric name, e.g. sessions, activeUsers.")
    property_id: str | None = Field(default=None, description="Overrides the connection's.")
    dimensions: tuple[str, ...] = ()
    filters: tuple[DimensionFilter, ...] = Field(default=(), description="ANDed conditions.")
    row_filter: dict[str, str] | None = Field(
        default=None, description="Pick the row whose dimension values are these."
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not _API_NAME.match(value):
            raise ValueError(f"{value!r} is not a GA4 metric API name (e.g. sessions)")
        return value

    @field_validator("property_id")
    @classmethod
    def _property(cls, value: str | None) -> str | None:
        return None if value is None else property_number(value)

    @model_validator(mode="after")
    def _row_filter(self) -> GA4Query:
        if self.row_filter is not None:
            unknown = sorted(set(self.row_filter) - set(self.dimensions))
            if unknown:
                raise ValueError(
                    f"row_filter names {', '.join(unknown)}, which is not in dimensions"
                )
        return self

    def dimension_filter(self) -> dict[str, Any] | None:
        if not self.filters:
            return None
        if len(self.filters) == 1:
            return self.filters[0].expression()
        return {"andGroup": {"expressions": [f.expression() for f in self.filters]}}

    def query_text(self) -> str:
        text = f"runReport {self.metric}"
        if self.property_id:
            text += f" on properties/{self.property_id}"
        if self.dimensions:
            text += f" by {', '.join(self.dimensions)}"
        if self.filters:
            text += f" where {' and '.join(f.text() for f in self.filters)}"
        if self.row_filter:
            text += " row " + ", ".join(f"{k}={v!r}" for k, v in sorted(self.row_filter.items()))
        elif self.dimensions:
            text += " (TOTAL)"
        return text
