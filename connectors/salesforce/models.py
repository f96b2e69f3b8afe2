"""The YAML fields of a Salesforce connection and of a Salesforce metric.

Two ways to sign in, both server-to-server (no browser, no stored refresh token): the OAuth 2.0
client credentials flow (a connected app with a run-as user) and the JWT bearer flow (a connected
app with a certificate, the private key here). Either way the token answer names the org's
``instance_url``; every API call goes there.

A metric is either SOQL (an aggregate query read from one row or one ``GROUP BY`` group, a
``COUNT()`` read from ``totalSize``, or a plain query summed over every page) or a saved report
read from its fact map. Everything that can be checked without calling Salesforce is checked
when the config is loaded, so a typo fails ``okrsync validate`` rather than the first sync.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.salesforce.soql import check_placeholders, group_by_field, is_count_only
from okrsync.sdk.connector import ConnectionConfig, QuerySpec

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
# Salesforce's shared login hosts. The client credentials flow is refused there
# ("invalid_grant: request not supported on this domain"): it works only on the org's My Domain.
GENERIC_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
MY_DOMAIN_HINT = (
    "the client credentials flow needs the org's My Domain as login_url, "
    "e.g. https://acme.my.salesforce.com (Setup > My Domain), "
    "not login.salesforce.com or test.salesforce.com"
)
DEFAULT_API_VERSION = "60.0"
_VERSION = re.compile(r"\d{2,3}\.0")
_REPORT_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientCredentials(_Frozen):
    """OAuth 2.0 client credentials: the connected app's consumer key and secret."""

    flow: Literal["client_credentials"]
    client_id: str = Field(min_length=1, description="The connected app's consumer key.")
    client_secret: SecretStr = Field(description="The connected app's consumer secret.")


class JwtBearer(_Frozen):
    """OAuth 2.0 JWT bearer: an RS256 assertion signed with the connected app's private key."""

    flow: Literal["jwt_bearer"]
    client_id: str = Field(min_length=1, description="The connected app's consumer key (iss).")
    username: str = Field(min_length=1, description="The pre-authorized user to act as (sub).")
    private_key: SecretStr = Field(description="PEM private key matching the app's certificate.")
    audience: str | None = Field(
        default=None,
        description="JWT aud; default the login_url (https://test.salesforce.com for sandboxes).",
    )
    assertion_lifetime: int = Field(
        default=180, ge=10, le=180, description="Seconds until the assertion expires (max 3 min)."
    )

    @field_validator("private_key")
    @classmethod
    def _looks_like_pem(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if "PRIVATE KEY-----" not in text:
            raise ValueError("private_key must be a PEM private key (-----BEGIN PRIVATE KEY-----)")
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError(
                "private_key cannot be read as an unencrypted PEM private key "
                "(check the line breaks, and that it is not password-protected)"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("private_key must be an RSA key (Salesforce signs with RS256)")
        return value


Auth = Annotated[ClientCredentials | JwtBearer, Field(discriminator="flow")]


class SalesforceConnection(ConnectionConfig):
    """A Salesforce org, reached through a connected app."""

    type: Literal["salesforce"]
    auth: Auth  # before login_url, whose check depends on the flow
    login_url: str = Field(
        default=DEFAULT_LOGIN_URL,
        description="Where tokens are asked: the org's My Domain URL, e.g. "
        "https://acme.my.salesforce.com (required by the client credentials flow); the JWT "
        "bearer flow may also use https://login.salesforce.com or test.salesforce.com.",
    )
    api_version: str = Field(
        default=DEFAULT_API_VERSION, description="REST API version, e.g. 60.0."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    max_concurrency: int = Field(default=4, ge=1, le=25)
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of a transient failure.")
    query_batch_size: int | None = Field(
        default=None,
        ge=200,
        le=2000,
        description="Records per page of a plain query (Sforce-Query-Options batchSize).",
    )
    max_pages: int = Field(default=200, ge=1, le=10_000, description="Pages one query may read.")
    max_share_of_daily_limit: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Share of the org's daily API allocation this connection may use itself.",
    )
    org_reserve_share: float = Field(
        default=0.10,
        ge=0,
        lt=1,
        description="Share of the org's daily allocation always left free for the org's other "
        "users: no call is sent while the org's remaining calls are below it.",
    )

    @field_validator("login_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        text = value.strip().rstrip("/")
        if not text.startswith(("https://", "http://")):
            raise ValueError("login_url must start with https://")
        if isinstance(info.data.get("auth"), ClientCredentials) and is_generic_login_host(text):
            raise ValueError(f"{text} is a shared login host: {MY_DOMAIN_HINT}")
        return text

    @model_validator(mode="after")
    def _client_credentials_need_my_domain(self) -> SalesforceConnection:
        if not isinstance(self.auth, ClientCredentials):
            return self
        if "login_url" not in self.model_fields_set:
            raise ValueError(f"login_url is missing: {MY_DOMAIN_HINT}")
        return self

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        text = value.strip().lstrip("vV")
        if not _VERSION.fullmatch(text):
            raise ValueError("api_version must look like 60.0")
        return text


def is_generic_login_host(url: str) -> bool:
    """True for Salesforce's shared login hosts; any other host (a My Domain, or a sandbox fake on
    127.0.0.1) counts as the org's own domain."""
    return (urlsplit(url).hostname or "").lower() in GENERIC_LOGIN_HOSTS


class SalesforceQuery(QuerySpec):
    """One number from Salesforce: a SOQL query or a report."""

    soql: str | None = Field(
        default=None,
        description="SOQL; {cycle_start}/{cycle_end} become date literals (2026-10-01), "
        "{cycle_start_datetime}/{cycle_end_datetime} dateTime literals, {cycle_id} the id.",
    )
    value_field: str | None = Field(
        default=None,
        description="Field holding the number: an alias, expr0, expr1…, or a record field for "
        "aggregate: sum (dotted for relationships, e.g. Account.AnnualRevenue). Default expr0.",
    )
    aggregate: Literal["row", "count", "sum"] | None = Field(
        default=None,
        description="row: read value_field from the one result row (or the group_value row); "
        "count: the query's totalSize; sum: add value_field over every record of every page. "
        "Default: count for SELECT COUNT(), else row.",
    )
    group_value: str | int | bool | None = Field(
        default=None,
        description="With GROUP BY: the value of the grouping field whose row to read. Metrics "
        "with the same SOQL share one request.",
    )
    group_field: str | None = Field(
        default=None, description="The grouping field's name in the rows; default from GROUP BY."
    )
    report_id: str | None = Field(default=None, description="A saved report's 15/18-char id.")
    fact_map_key: str = Field(default="T!T", description="Report fact map key; T!T = grand total.")
    aggregate_index: int = Field(default=0, ge=0, description="Which of the report's aggregates.")

    @model_validator(mode="after")
    def _one_kind(self) -> SalesforceQuery:
        if (self.soql is None) == (self.report_id is None):
            raise ValueError("give exactly one of soql or report_id")
        if self.report_id is not None:
            if not _REPORT_ID.fullmatch(self.report_id):
                raise ValueError(f"report_id {self.report_id!r} is not a 15 or 18 character id")
            return self
        assert self.soql is not None
        check_placeholders(self.soql)
        if self.aggregate == "sum" and not self.value_field:
            raise ValueError("aggregate: sum needs value_field (the record field to add up)")
        if self.group_value is not None and self.effective_group_field() is None:
            raise ValueError("group_value needs a GROUP BY in the SOQL (or group_field)")
        return self

    @property
    def mode(self) -> Literal["row", "count", "sum", "report"]:
        if self.report_id is not None:
            return "report"
        if self.aggregate is not None:
            return self.aggregate
        return "count" if is_count_only(self.soql or "") else "row"

    def effective_group_field(self) -> str | None:
        if self.group_field:
            return self.group_field
        found = group_by_field(self.soql or "")
        return found.rsplit(".", 1)[-1] if found else None

    def is_count(self) -> bool:
        return self.mode == "count"

    def query_text(self) -> str:
        if self.report_id is not None:
            return (
                f"report {self.report_id} factMap[{self.fact_map_key!r}]"
                f".aggregates[{self.aggregate_index}]"
            )
        text = self.soql or ""
        if self.group_value is not None:
            text = f"{text} [group {self.effective_group_field()} = {self.group_value}]"
        return text
