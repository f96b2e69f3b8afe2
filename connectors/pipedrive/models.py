"""What a Pipedrive connection and a Pipedrive metric look like in YAML.

A metric is one number about deals: how many (``measure: count``) or how much (``measure:
value``), narrowed by status, pipeline, stage, owner, a saved Pipedrive filter, a currency and an
optional time window on one of the deal's time fields (``won_time`` between ``{cycle_start}`` and
``{cycle_end}``, typically). Which endpoint answers is the source's business (see ``source.py``);
the model only makes sure the question is coherent before the first sync.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from okrsync.sdk.connector import ConnectionConfig, QuerySpec

CYCLE_PLACEHOLDERS = ("{cycle_start}", "{cycle_end}")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

TimeField = Literal["won_time", "lost_time", "close_time", "add_time"]
Status = Literal["open", "won", "lost"]


class PipedriveConnection(ConnectionConfig):
    """One Pipedrive company, reached with one user's API token."""

    type: Literal["pipedrive"] = "pipedrive"
    company_domain: str | None = Field(
        default=None,
        description="The company's subdomain: 'acme' for https://acme.pipedrive.com.",
    )
    url: str | None = Field(
        default=None,
        description="Base URL instead of company_domain (a proxy, or the sandbox fake).",
    )
    api_token: SecretStr = Field(description="Personal API token (Settings → Personal → API).")
    token_in: Literal["header", "query"] = Field(
        default="header",
        description="Send the token as the x-api-token header (default) or the api_token "
        "query parameter (the legacy way, for proxies that strip custom headers).",
    )
    timeout: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    requests_per_second: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    page_size: int = Field(default=500, ge=1, le=500, description="Deals per listing page.")
    max_pages: int = Field(default=200, ge=1, le=10_000)

    @field_validator("company_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().lower().removesuffix(".pipedrive.com")
        if not _DOMAIN.fullmatch(text):
            raise ValueError(f"company_domain must be a subdomain such as 'acme', got {value!r}")
        return text

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"url must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_address(self) -> PipedriveConnection:
        if (self.company_domain is None) == (self.url is None):
            raise ValueError("give exactly one of company_domain (e.g. 'acme') or url")
        return self

    def base_url(self) -> str:
        if self.url is not None:
            return self.url
        return f"https://{self.company_domain}.pipedrive.com"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _date_or_placeholder(value: str) -> str:
    text = value.strip()
    if text in CYCLE_PLACEHOLDERS:
        return text
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a date (YYYY-MM-DD) nor one of {', '.join(CYCLE_PLACEHOLDERS)}"
        ) from None
    return text


class DealWindow(_Frozen):
    """Deals whose ``field`` falls between ``start`` and ``end``, both days included (UTC)."""

    field: TimeField = "won_time"
    start: str = "{cycle_start}"
    end: str = "{cycle_end}"

    @field_validator("start", "end")
    @classmethod
    def _day(cls, value: str) -> str:
        return _date_or_placeholder(value)


class PipedriveQuery(QuerySpec):
    """A count or a value sum over deals."""

    measure: Literal["count", "value"] = "count"
    status: Status | None = Field(default=None, description="Omitted: every not deleted deal.")
    pipeline_id: int | None = Field(default=None, ge=1)
    stage_id: int | None = Field(default=None, ge=1)
    owner_id: int | None = Field(default=None, ge=1, description="The owning user's id.")
    filter_id: int | None = Field(default=None, ge=1, description="A saved Pipedrive filter.")
    currency: str | None = Field(
        default=None, description="Only deals in this currency (ISO code), summed as they are."
    )
    window: DealWindow | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not _CURRENCY.fullmatch(code):
            raise ValueError(f"currency must be a 3-letter ISO code such as EUR, got {value!r}")
        return code

    @model_validator(mode="after")
    def _coherent(self) -> PipedriveQuery:
        implied = self.implied_status()
        if self.window is not None and implied is not None and self.status not in (None, implied):
            raise ValueError(
                f"a window on {self.window.field} only matches {implied} deals, "
                f"but status is {self.status!r}"
            )
        if (
            self.window is not None
            and self.window.start not in CYCLE_PLACEHOLDERS
            and self.window.end not in CYCLE_PLACEHOLDERS
            and self.window.start > self.window.end
        ):
            raise ValueError(f"window.start {self.window.start} is after window.end")
        return self

    def implied_status(self) -> Status | None:
        """The status a time window implies (only won deals have a won_time)."""
        if self.window is None:
            return None
        if self.window.field == "won_time":
            return "won"
        if self.window.field == "lost_time":
            return "lost"
        return None

    def effective_status(self) -> Status | None:
        return self.status or self.implied_status()

    def narrowed(self) -> bool:
        """Whether anything besides ``filter_id`` narrows the deals server-side."""
        return any(
            v is not None for v in (self.status, self.pipeline_id, self.stage_id, self.owner_id)
        )

    def uses_summary(self) -> bool:
        """The deals summary answers in one call unless a window or a filter mix needs a listing.

        Pipedrive documents that ``filter_id`` overrides the other filters on listings; whether
        the summary combines them is not documented, so that mix is listed and AND-ed here.
        """
        return self.window is None and not (self.filter_id is not None and self.narrowed())

    def is_count(self) -> bool:
        return self.measure == "count"

    def query_text(self) -> str:
        filters = [
            f"{name}={value}"
            for name, value in (
                ("status", self.effective_status()),
                ("pipeline_id", self.pipeline_id),
                ("stage_id", self.stage_id),
                ("owner_id" if not self.uses_summary() else "user_id", self.owner_id),
                ("filter_id", self.filter_id),
            )
            if value is not None
        ]
        if self.uses_summary():
            text = "GET /api/v1/deals/summary"
            if filters:
                text += "?" + "&".join(filters)
            if self.currency is not None:
                field = "count" if self.measure == "count" else "value"
                return f"{text} → data.values_total.{self.currency}.{field}"
            if self.measure == "count":
                return f"{text} → data.total_count"
            return f"{text} → data.total_currency_converted_value"
        if self.window is not None:
            filters.append(f"updated_since={self.window.start}")
        text = "GET /api/v2/deals"
        if filters:
            text += "?" + "&".join(filters)
        where = []
        if self.window is not None:
            where.append(f"{self.window.field} in {self.window.start}..{self.window.end}")
        if self.currency is not None:
            where.append(f"currency = {self.currency}")
        what = "count(deals)" if self.measure == "count" else "sum(value)"
        suffix = f" where {' and '.join(where)}" if where else ""
        return f"{text} → {what}{suffix} over pages"
