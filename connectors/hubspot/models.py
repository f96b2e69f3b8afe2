"""The YAML a HubSpot connection and a HubSpot metric are written in.

Everything a metric can get wrong without asking HubSpot is refused here, when the config is
loaded: an operator without the value it needs, a summed metric without a property, more filters
than the search endpoint accepts (5 groups, 10 filters per group, 25 in all, counting the filters
the connector adds itself), a cycle placeholder inside a longer string.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from okrsync.sdk.connector import ConnectionConfig, QuerySpec

DEFAULT_BASE_URL = "https://api.hubapi.com"
SEARCH_RESULT_CEILING = 10_000  # the search endpoint pages no further than this
MAX_PAGE_SIZE = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
PLACEHOLDERS = ("{cycle_start}", "{cycle_end}")

Operator = Literal[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
]
Scalar = str | int | float | bool

# Objects whose records move through pipelines: the property names holding pipeline and stage.
PIPELINE_OBJECTS: dict[str, tuple[str, str, str]] = {
    # alias: (pipelines API object type, pipeline property, stage property)
    "deals": ("deals", "pipeline", "dealstage"),
    "0-3": ("deals", "pipeline", "dealstage"),
    "tickets": ("tickets", "hs_pipeline", "hs_pipeline_stage"),
    "0-5": ("tickets", "hs_pipeline", "hs_pipeline_stage"),
}


class HubSpotConnection(ConnectionConfig):
    """A HubSpot account reached with a private-app (or OAuth) access token."""

    type: Literal["hubspot"] = "hubspot"
    access_token: SecretStr = Field(
        description="Private app access token (pat-…); sent as Authorization: Bearer."
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="API host; the default is real.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    search_requests_per_second: float = Field(
        default=4.0,
        gt=0,
        description="Pace of search calls. HubSpot allows 5/s per account, shared by every app.",
    )
    max_concurrency: int = Field(default=2, ge=1, le=16)
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of a transient failure.")
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    search_result_limit: int = Field(
        default=SEARCH_RESULT_CEILING,
        ge=1,
        le=SEARCH_RESULT_CEILING,
        description="Results one search may page through; larger sums split their date window.",
    )
    pipeline_cache_seconds: float = Field(default=3600.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("access_token")
    @classmethod
    def _not_an_api_key(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if not token:
            raise ValueError("access_token is empty")
        if token.lower().startswith("hapikey"):
            raise ValueError("HubSpot API keys are retired: use a private app token (pat-…)")
        return value


class HubSpotFilter(BaseModel):
    """One search filter: ``{propertyName, operator, value | values | value + highValue}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    property: str = Field(min_length=1)
    operator: Operator
    value: Scalar | None = None
    values: list[Scalar] | None = None
    high_value: Scalar | None = None

    @model_validator(mode="after")
    def _operands(self) -> HubSpotFilter:
        op = self.operator
        has = {
            "value": self.value is not None,
            "values": self.values is not None,
            "high_value": self.high_value is not None,
        }
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            wanted: set[str] = set()
        elif op in ("IN", "NOT_IN"):
            wanted = {"values"}
        elif op == "BETWEEN":
            wanted = {"value", "high_value"}
        else:
            wanted = {"value"}
        given = {name for name, present in has.items() if present}
        if given != wanted:
            need = " and ".join(sorted(wanted)) if wanted else "no value"
            raise ValueError(f"{self.property}: operator {op} takes {need}")
        if self.values is not None and not self.values:
            raise ValueError(f"{self.property}: {op} needs at least one value")
        for item in [self.value, self.high_value, *(self.values or [])]:
            if isinstance(item, str) and "{cycle" in item and item.strip() not in PLACEHOLDERS:
                raise ValueError(
                    f"{self.property}: a cycle placeholder must be the whole value "
                    f"({', '.join(PLACEHOLDERS)}), got {item!r}"
                )
        return self


class HubSpotQuery(QuerySpec):
    """A count or a sum over one CRM object type, through the search endpoint."""

    object: str = Field(
        default="deals",
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="deals, contacts, companies, tickets, or an object type id (0-3, 2-1234…).",
    )
    aggregate: Literal["count", "sum"] = "count"
    property: str | None = Field(default=None, description="The numeric property a sum adds up.")
    pipeline: str | None = Field(default=None, description="Pipeline id or label.")
    stage: str | list[str] | None = Field(default=None, description="Stage id(s) or label(s).")
    stage_state: Literal["open", "closed", "won", "lost"] | None = Field(
        default=None, description="Every stage in that state, read from the pipelines' metadata."
    )
    date_property: str | None = Field(
        default=None, description="Keep records whose date property falls inside the cycle."
    )
    filters: list[HubSpotFilter] = Field(default_factory=list, description="ANDed filters.")
    any_of: list[list[HubSpotFilter]] = Field(
        default_factory=list, description="OR of filter lists, each ANDed with `filters`."
    )
    split_property: str = Field(
        default="createdate",
        description="Date property a large sum without date_property is split on.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> HubSpotQuery:
        if self.aggregate == "sum" and not self.property:
            raise ValueError("aggregate: sum needs `property` (e.g. amount)")
        if self.aggregate == "count" and self.property:
            raise ValueError("`property` is only used by aggregate: sum")
        if (
            self.pipeline or self.stage or self.stage_state
        ) and self.object not in PIPELINE_OBJECTS:
            raise ValueError(
                f"pipeline and stage filters apply to deals and tickets, not {self.object!r}"
            )
        if self.stage is not None and self.stage_state is not None:
            raise ValueError("give either `stage` or `stage_state`, not both")
        if isinstance(self.stage, list) and not self.stage:
            raise ValueError("`stage` is an empty list")
        self._check_limits()
        return self

    def _generated_filters(self) -> int:
        count = sum(1 for x in (self.pipeline, self.stage or self.stage_state) if x)
        if self.date_property or self.aggregate == "sum":
            count += 1  # the cycle window, or the window a large sum is split on
        if self.aggregate == "sum":
            count += 1  # HAS_PROPERTY on the summed property
        return count

    def _check_limits(self) -> None:
        groups = self.any_of or [[]]
        if len(groups) > MAX_GROUPS:
            raise ValueError(f"HubSpot accepts at most {MAX_GROUPS} filter groups (any_of)")
        per_group = [self._generated_filters() + len(self.filters) + len(g) for g in groups]
        if max(per_group) > MAX_FILTERS_PER_GROUP:
            raise ValueError(
                f"a filter group would hold {max(per_group)} filters (the connector adds "
                f"{self._generated_filters()}); HubSpot accepts {MAX_FILTERS_PER_GROUP}"
            )
        if sum(per_group) > MAX_FILTERS:
            raise ValueError(
                f"the search would hold {sum(per_group)} filters in all; HubSpot accepts "
                f"{MAX_FILTERS}"
            )

    def stage_list(self) -> list[str]:
        if self.stage is None:
            return []
        return [self.stage] if isinstance(self.stage, str) else list(self.stage)

    def is_count(self) -> bool:
        return self.aggregate == "count"

    def query_text(self) -> str:
        what = "count" if self.aggregate == "count" else f"sum({self.property})"
        conditions: list[str] = []
        if self.pipeline:
            conditions.append(f"pipeline = {self.pipeline!r}")
        if self.stage:
            conditions.append(f"stage in {self.stage_list()!r}")
        if self.stage_state:
            conditions.append(f"stage is {self.stage_state}")
        if self.date_property:
            conditions.append(f"{self.date_property} within the cycle")
        conditions.extend(filter_text(f) for f in self.filters)
        if self.any_of:
            alternatives = [" AND ".join(filter_text(f) for f in group) for group in self.any_of]
            conditions.append("(" + " OR ".join(f"({a})" for a in alternatives) + ")")
        where = f" where {' AND '.join(conditions)}" if conditions else ""
        return f"HubSpot {self.object}: {what}{where}"


def filter_text(spec: HubSpotFilter) -> str:
    if spec.operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return f"{spec.property} {spec.operator}"
    if spec.operator == "BETWEEN":
        return f"{spec.property} BETWEEN {spec.value} AND {spec.high_value}"
    if spec.values is not None:
        return f"{spec.property} {spec.operator} {list(spec.values)!r}"
    return f"{spec.property} {spec.operator} {spec.value}"
