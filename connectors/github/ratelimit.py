"""How GitHub says "slow down", and the error table that reads it.

GitHub answers a spent rate limit with **403 or 429**, and a 403 is also its answer to a token
without access. Read by status alone, a rate limit would be reported as "permission denied" and
the metric failed until a human looked; so :class:`GitHubRateLimits.classify` reads the answer
first:

* primary limit: ``x-ratelimit-remaining: 0`` on a 403/429. The wait is until
  ``x-ratelimit-reset`` (UTC epoch seconds) plus a small margin (:func:`reset_observer`); the
  connection's :class:`~okrsync.sdk.budget.CallBudget` holds itself until then from the headers
  of any answer, success or not, so the retry queues behind that hold (or the budget pauses the
  connection when the reset is further away than it may wait).
* secondary limit: a 403/429 whose message mentions a secondary (or abuse) rate limit. It
  usually carries ``Retry-After``, which the HTTP client honours; without one, GitHub's docs say
  to wait at least a minute, so the budget is held for ``secondary_wait`` seconds.

Search calls have their own limit (30 a minute) reported under ``x-ratelimit-resource: search``;
the connector gives them their own client and budget (:mod:`connectors.github.client`) so a spent
search window never holds the comment calls, and vice versa.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import httpx

from okrsync.errors import CredentialsError, QueryError, RateLimitedError, TargetNotFoundError
from okrsync.sdk.budget import CallBudget
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule

SECONDARY_MARKERS = ("secondary rate limit", "abuse")

PRIMARY_LIMIT = ErrorRule(
    ErrorAction.RATE_LIMITED,
    RateLimitedError,
    "GitHub's rate limit for this token is spent; waiting for its reset",
)
SECONDARY_LIMIT = ErrorRule(
    ErrorAction.RATE_LIMITED,
    RateLimitedError,
    "GitHub's secondary rate limit was hit (too many calls or comments at once)",
)

GITHUB_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        **DEFAULT_ERROR_TABLE,
        # A GitHub token cannot be refreshed by us: a 401 is the token itself.
        401: ErrorRule(
            ErrorAction.FAIL,
            CredentialsError,
            "GitHub rejected the token: check the connection's token (expired or revoked?)",
        ),
        403: ErrorRule(
            ErrorAction.FAIL,
            CredentialsError,
            "GitHub refused access: the token lacks a permission (see the connector's README)",
        ),
        404: ErrorRule(
            ErrorAction.FAIL,
            TargetNotFoundError,
            "not found on GitHub (or not visible to this token: GitHub answers 404 for private "
            "repositories it hides)",
        ),
        410: ErrorRule(
            ErrorAction.FAIL,
            TargetNotFoundError,
            "gone on GitHub (issues disabled on the repository, or the issue was deleted)",
        ),
        422: ErrorRule(ErrorAction.FAIL, QueryError, "GitHub rejected the request as invalid"),
    }
)


def _message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    if isinstance(body, dict):
        parts = [body.get("message"), body.get("documentation_url")]
        return " ".join(p for p in parts if isinstance(p, str)).lower()
    return ""


def is_primary_limit(response: httpx.Response) -> bool:
    return (
        response.status_code in (403, 429)
        and response.headers.get("x-ratelimit-remaining", "").strip() == "0"
    )


def is_secondary_limit(response: httpx.Response) -> bool:
    if response.status_code not in (403, 429):
        return False
    message = _message(response)
    return any(marker in message for marker in SECONDARY_MARKERS)


def reset_observer(margin: float) -> Callable[[httpx.Headers], float | None]:
    """A budget observer: when the window is spent, hold until ``x-ratelimit-reset`` + margin.

    The generic observer holds until the reset exactly; GitHub's resets are whole seconds and
    our clock is not GitHub's, so a request sent on the dot may meet the old window again.
    """

    def observe(headers: httpx.Headers) -> float | None:
        if headers.get("x-ratelimit-remaining", "").strip() != "0":
            return None
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return None
        return reset - time.time() + margin

    return observe


class GitHubRateLimits:
    """The ``classify`` hook of one GitHub client, bound to that client's budget."""

    def __init__(self, budget: CallBudget, *, secondary_wait: float = 60.0) -> None:
        self.budget = budget
        self.secondary_wait = secondary_wait

    def classify(self, response: httpx.Response) -> ErrorRule | None:
        """A rate-limit rule for a 403/429 that is one; ``None`` lets the status table decide."""
        if response.status_code not in (403, 429):
            return None
        if is_secondary_limit(response):
            if "retry-after" not in response.headers:
                self.budget.hold_until(self.secondary_wait)
            return SECONDARY_LIMIT
        if is_primary_limit(response):
            return PRIMARY_LIMIT
        return None
