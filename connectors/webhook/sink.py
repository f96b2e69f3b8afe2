"""The ``webhook`` sink: POST each key result update as JSON to a URL the team owns.

Payload (one JSON object per delivery)::

    {"event": "key_result.updated",
     "objective": {"id": "revenue", "title": "Grow new-business revenue"},
     "key_result": {"id": "bookings", "title": "…", "kind": "increase", "unit": "USD",
                    "start": "0", "target": "1000"},
     "cycle": "2026-Q4",
     "value": "375.5", "progress": "0.3755", "progress_display": "0.3755",
     "status": "on_track", "observed_at": "2026-11-12T09:30:00+00:00",
     "stale": false, "checked_at": "2026-11-12T09:29:58+00:00",
     "confidence": 7, "score": "0.26285",
     "delivery_id": "<the update's idempotency key>", "final": false}

Numbers are JSON *strings* in plain decimal notation (never exponent form), because a JSON
number is a binary float in most receivers' parsers and 0.1 + 0.2 must not become
0.30000000000000004 on the way to someone's spreadsheet. Absent numbers are ``null``.
``stale`` is true while no source has confirmed ``value`` within the key result's
``stale_after``; ``checked_at`` is the last time one did (``null``: never). ``confidence`` is
the latest check-in's (1 to 10, or ``null``) and ``score`` the key result's grade (0 to 1; with a
``stretch``, the target scores 0.7). ``final`` is true on the one push that tells a mirror the
frozen values of a closed cycle.

A key result with linked work (a ``work`` entry, issue 15) also carries ``"work": {"todo": 3,
"in_progress": 5, "done": 12, "done_since": "…", "done_recently": [{"connection", "key",
"title", "url", "done_at"}, …], "done_recently_total": 2}``: its linked items by state and the
items done since the state the mirror showed before (:mod:`okrsync.sdk.work_summary`).

Headers: ``Idempotency-Key`` (the update's key: a receiver that stores it can drop the
duplicates that at-least-once delivery brings), ``X-Okrsync-Event``, ``X-Okrsync-Timestamp``
and, when the connection has a secret, ``X-Okrsync-Signature`` (see
:mod:`okrsync.sdk.webhooks`). A webhook creates no object we could update later, so
``push`` returns no reference; the idempotency key does that job.

On an objective (a digest mirror) the event is ``objective.updated`` and the body carries the
objective's ``progress`` (weighted roll-up), ``status``, ``owner`` and a ``key_results`` list of
the per-key-result fields above.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from okrsync.errors import ConnectorError, CredentialsError, TargetNotFoundError
from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, Sink
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
    HttpClient,
    OwnsHttpClient,
    RetryPolicy,
)
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult
from okrsync.sdk.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from okrsync.sdk.work_summary import WorkSummary

# A receiver answers 401/403 for a bad signature at least as often as for bad credentials, and
# nothing can be refreshed, so both say which setting to check; 410 means "unsubscribed".
WEBHOOK_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        **DEFAULT_ERROR_TABLE,
        401: ErrorRule(
            ErrorAction.FAIL,
            CredentialsError,
            "the receiver refused the delivery: check the connection's secret and headers",
        ),
        403: ErrorRule(
            ErrorAction.FAIL,
            CredentialsError,
            "the receiver refused the delivery: check the connection's secret and headers",
        ),
        404: ErrorRule(ErrorAction.FAIL, TargetNotFoundError, "no receiver at this URL"),
        410: ErrorRule(ErrorAction.FAIL, TargetNotFoundError, "the receiver is gone"),
    }
)


class WebhookConnection(ConnectionConfig):
    type: Literal["webhook"] = "webhook"
    url: str = Field(description="Where deliveries are POSTed.")
    secret: SecretStr | None = Field(
        default=None, description="Signs deliveries (HMAC-SHA256); empty means unsigned."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra headers sent with every delivery (values secret)."
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds one delivery may take.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                f"url must be an http(s) URL such as https://hooks.example.com/okr, got {value!r}"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _empty_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        """``secret: "${HOOK_SECRET:-}"`` resolves to "" when unset: that means no signing."""
        if value is not None and not value.get_secret_value():
            return None
        return value


DEFAULT_EVENT = "key_result.updated"
DIGEST_EVENT = "objective.updated"


class WebhookMirror(MirrorSpec):
    event: str = Field(
        default=DEFAULT_EVENT,
        min_length=1,
        description=f"Sent as 'event'; digest mirrors default to {DIGEST_EVENT!r}.",
    )
    path: str = Field(default="", description="Appended to the connection's url.")


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as exact plain text (``1E+3`` would be exact too, but surprises people)."""
    return None if value is None else format(value, "f")


def webhook_payload(update: KeyResultUpdate, event: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": event,
        "objective": {"id": update.objective_id, "title": update.objective_title},
        "key_result": {
            "id": update.key_result_id,
            "title": update.key_result_title,
            "kind": update.kind,
            "unit": update.unit,
            "start": decimal_text(update.start),
            "target": decimal_text(update.target),
        },
        "cycle": update.cycle_id,
        "value": decimal_text(update.value),
        "progress": decimal_text(update.progress),
        "progress_display": decimal_text(update.progress_display),
        "status": update.status.value,
        "observed_at": update.observed_at.isoformat(),
        "stale": update.stale,
        "checked_at": None if update.checked_at is None else update.checked_at.isoformat(),
        "confidence": update.confidence,
        "score": decimal_text(update.score),
        "delivery_id": update.idempotency_key,
        "final": update.final,  # the cycle closed: these are the frozen final values
    }
    if update.work is not None:  # only for a key result with linked work (issue 15)
        payload["work"] = work_body(update.work)
    return payload


def work_body(work: WorkSummary) -> dict[str, Any]:
    """The linked work's summary: counts by state and the items done since the last push."""
    return {
        "todo": work.todo,
        "in_progress": work.in_progress,
        "done": work.done,
        "done_since": None if work.done_since is None else work.done_since.isoformat(),
        "done_recently": [
            {
                "connection": item.connection,
                "key": item.key,
                "title": item.title,
                "url": item.url,
                "done_at": None if item.done_at is None else item.done_at.isoformat(),
            }
            for item in work.done_recently
        ],
        "done_recently_total": work.done_recently_total,
    }


def digest_payload(update: ObjectiveUpdate, event: str) -> dict[str, Any]:
    """An objective and all its key results, for digest mirrors."""
    return {
        "event": event,
        "objective": {
            "id": update.objective_id,
            "title": update.objective_title,
            "owner": update.owner,
        },
        "cycle": update.cycle_id,
        "progress": decimal_text(update.progress),
        "status": update.status.value,
        "observed_at": update.observed_at.isoformat(),
        "score": decimal_text(update.score),
        "delivery_id": update.idempotency_key,
        "key_results": [
            {k: v for k, v in webhook_payload(kr, event).items() if k not in ("event", "objective")}
            for kr in update.key_results
        ],
    }


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with one slash between, and ``base`` exactly as given without a path."""
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


class WebhookSink(OwnsHttpClient, Sink[WebhookConnection, WebhookMirror]):
    mirror_model = WebhookMirror
    supports_digest = True

    # A class attribute so a test or a subclass can make retries quick without a config field.
    retry: ClassVar[RetryPolicy] = RetryPolicy()

    def __init__(self, name: str, config: WebhookConnection) -> None:
        super().__init__(name, config)
        self._secret = config.secret.get_secret_value() if config.secret is not None else None
        self._client = HttpClient(
            connection=name,
            base_url=config.url,
            headers={key: value.get_secret_value() for key, value in config.headers.items()},
            timeout=config.timeout,
            retry=self.retry,
            error_table=WEBHOOK_ERROR_TABLE,
            secrets=config.secret_values(),
        )

    def describe(self, mirror: WebhookMirror) -> str:
        return f"{self.name}: POST {join_url(self.config.url, mirror.path)} ({mirror.event})"

    def delivery(
        self, update: KeyResultUpdate | ObjectiveUpdate, mirror: WebhookMirror
    ) -> tuple[bytes, dict[str, str]]:
        """The exact body and headers of one delivery (signed now, if there is a secret)."""
        if isinstance(update, ObjectiveUpdate):
            event = DIGEST_EVENT if mirror.event == DEFAULT_EVENT else mirror.event
            payload = digest_payload(update, event)
        else:
            event = mirror.event
            payload = webhook_payload(update, event)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": update.idempotency_key,
            "X-Okrsync-Event": event,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return body, headers

    async def push(
        self, update: KeyResultUpdate, mirror: WebhookMirror, previous_ref: str | None
    ) -> PushResult:
        subject = f"mirror {mirror.event!r} of key result {update.key_result_id!r}"
        return await self._post(update, mirror, subject)

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: WebhookMirror, previous_ref: str | None
    ) -> PushResult:
        subject = f"digest mirror of objective {update.objective_id!r}"
        return await self._post(update, mirror, subject)

    async def _post(
        self, update: KeyResultUpdate | ObjectiveUpdate, mirror: WebhookMirror, subject: str
    ) -> PushResult:
        body, headers = self.delivery(update, mirror)
        response = await self._client.request(
            "POST",
            join_url(self.config.url, mirror.path),
            content=body,
            headers=headers,
            subject=subject,
        )
        if not 200 <= response.status_code < 300:
            # httpx does not follow redirects, and a 3xx is not a delivery: the POST went nowhere.
            where = response.headers.get("location")
            hint = f" to {self._client.redact(where)}" if where else ""
            raise ConnectorError(
                f"the receiver answered HTTP {response.status_code}{hint} instead of accepting "
                "the delivery; configure the final URL",
                connection=self.name,
                subject=subject,
                status_code=response.status_code,
            )
        return PushResult(ref=None, detail={"status": response.status_code})
