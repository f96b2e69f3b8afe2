"""The GitHub mirror: one comment per key result on an issue, edited in place.

The first push creates the comment (``POST /repos/{owner}/{repo}/issues/{n}/comments``) and
returns a reference ``owner/repo#n:comment_id``; later pushes edit it
(``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``), so the issue carries one living
status comment per key result instead of a stream of them.

Every comment starts with a hidden marker, ``<!-- okrsync:kr=<key result id> -->``. When there
is no reference — the first push, or a crash after GitHub created the comment but before the
store recorded the reference — the sink lists the issue's comments (all pages) and edits the
one carrying its marker before it would create another. The same happens when the referenced
comment is gone (someone deleted it: 404) or the reference names another issue (the mirror was
moved): a reference is a shortcut, the marker is the truth. An edit whose body would not change
is skipped.

A stale key result (no source confirmed it within its ``stale_after``) gets a ``[!WARNING]``
alert under the heading, "Stale — last confirmed <time>"; the next fresh push edits it away.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.github.client import GitHubBase
from connectors.github.models import GitHubCommentMirror, GitHubConnection
from okrsync.errors import (
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.http_connector import SubjectSink
from okrsync.sdk.models import KeyResultUpdate, PushResult, Status

BAR_WIDTH = 20
_UNSAFE_IN_MARKER = re.compile(r"[^A-Za-z0-9._:/@+-]")
_REF = re.compile(r"^(?P<repo>[^#\s]+)#(?P<issue>\d+):(?P<comment>\d+)$")
_STATUS = {
    Status.ON_TRACK: "🟢 On track",
    Status.AT_RISK: "🟡 At risk",
    Status.OFF_TRACK: "🔴 Off track",
    Status.NO_DATA: "⚪ No data",
}


def marker(key_result_id: str) -> str:
    """The hidden line that tells our comment for ``key_result_id`` apart from everyone's."""
    safe = _UNSAFE_IN_MARKER.sub(lambda m: f"%{ord(m.group()):02X}", key_result_id)
    return f"<!-- okrsync:kr={safe} -->"


def make_ref(mirror: GitHubCommentMirror, comment_id: int) -> str:
    return f"{mirror.repo}#{mirror.issue}:{comment_id}"


def ref_comment_id(previous_ref: str | None, mirror: GitHubCommentMirror) -> int | None:
    """The comment id in ``previous_ref`` when it belongs to this mirror's issue, else ``None``.

    A bare number is accepted too (a reference written by hand, or by an older okrsync).
    """
    if not previous_ref:
        return None
    text = previous_ref.strip()
    if text.isdigit():
        return int(text)
    match = _REF.match(text)
    if match is None:
        return None
    if match["repo"].lower() != mirror.repo.lower() or int(match["issue"]) != mirror.issue:
        return None
    return int(match["comment"])


def _number(text: str | None, unit: str | None = None) -> str:
    """A number as :meth:`KeyResultUpdate.display` wrote it, with its unit."""
    if text is None:
        return "—"
    if unit in ("%", "percent"):
        return f"{text} %"
    return f"{text} {unit}" if unit else text


def _plain(value: Decimal) -> str:
    """A percentage with its one decimal, without a trailing ``.0`` (``87.5``, ``100``)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell and on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def progress_bar(fraction: Decimal | None) -> str:
    if fraction is None:
        return "`" + "░" * BAR_WIDTH + "`  —"
    clamped = min(max(fraction, Decimal(0)), Decimal(1))
    filled = int((clamped * BAR_WIDTH).to_integral_value(rounding="ROUND_HALF_UP"))
    percent = (fraction * 100).quantize(Decimal("0.1"))
    return "`" + "█" * filled + "░" * (BAR_WIDTH - filled) + f"`  **{_plain(percent)} %**"


def _utc_text(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def stale_lines(update: KeyResultUpdate) -> list[str]:
    """A GitHub alert block saying the number has not been confirmed in time (none if fresh)."""
    if not update.stale:
        return []
    when = (
        "no source has confirmed this value"
        if update.checked_at is None
        else f"last confirmed {_utc_text(update.checked_at)}"
    )
    return ["> [!WARNING]", f"> **Stale** — {when}", ""]


def render_comment(update: KeyResultUpdate) -> str:
    """The Markdown body of the key result's comment (deterministic for one update)."""
    # The bar is clamped; the figure beside it is not, so over-achievement shows as 120 %.
    fraction = update.progress if update.progress is not None else update.progress_display
    target = _number(update.display(update.target), update.unit)
    if update.start is not None and update.target is not None:
        target = f"{target} (from {_number(update.display(update.start), update.unit)})"
    lines = [
        marker(update.key_result_id),
        f"### 🎯 {_cell(update.key_result_title)}",
        "",
        *stale_lines(update),
        f"**Objective:** {_cell(update.objective_title)} · **Cycle:** {_cell(update.cycle_id)}",
        "",
        progress_bar(fraction),
        "",
        "| | |",
        "| --- | --- |",
        f"| Value | {_cell(_number(update.display(update.value), update.unit))} |",
        f"| Target | {_cell(target)} |",
        f"| Status | {_STATUS[update.status]} |",
        "",
        f"<sub>Updated by okrsync · observed {update.observed_at.isoformat()}</sub>",
    ]
    return "\n".join(lines) + "\n"


class GitHubSink(GitHubBase, SubjectSink[GitHubConnection, GitHubCommentMirror]):
    mirror_model = GitHubCommentMirror

    def describe(self, mirror: GitHubCommentMirror) -> str:
        return f"{self.name}: comment on {mirror.repo}#{mirror.issue} (edited in place)"

    def mirror_name(self, mirror: GitHubCommentMirror) -> str:
        return f"{mirror.repo}#{mirror.issue}"

    async def push_to(
        self,
        update: KeyResultUpdate,
        mirror: GitHubCommentMirror,
        previous_ref: str | None,
        subject: str,
    ) -> PushResult:
        body = render_comment(update)
        comment_id = ref_comment_id(previous_ref, mirror)
        if comment_id is not None:
            try:
                comment = await self._edit(mirror, comment_id, body, subject)
            except TargetNotFoundError:
                comment = None  # the comment was deleted: find ours by marker, or post anew
            if comment is not None:
                return self._result(mirror, comment, "edited")
        mark = marker(update.key_result_id)
        existing = await self._find_marked(mirror, mark, subject)
        if existing is not None:
            if existing.get("body") == body:
                return self._result(mirror, existing, "unchanged")
            comment = await self._edit(mirror, _comment_id(existing), body, subject)
            return self._result(mirror, comment, "recovered")
        comment, action = await self._create(mirror, mark, body, subject)
        return self._result(mirror, comment, action)

    # --- calls -----------------------------------------------------------------------------------

    async def _edit(
        self, mirror: GitHubCommentMirror, comment_id: int, body: str, subject: str
    ) -> dict[str, Any]:
        data = await self.api.core.request_json(
            "PATCH",
            self.api.url(f"/repos/{mirror.repo}/issues/comments/{comment_id}"),
            json={"body": body},
            subject=subject,
        )
        return _comment(data, subject)

    async def _create(
        self, mirror: GitHubCommentMirror, mark: str, body: str, subject: str
    ) -> tuple[dict[str, Any], str]:
        """POST the comment, retrying only when that cannot make a second one.

        A rate-limit answer means nothing was created: wait (the budget holds) and post again.
        A 5xx or a timeout is ambiguous — GitHub may have created the comment and lost the
        answer — so look for our marker before posting again.
        """
        url = self.api.url(f"/repos/{mirror.repo}/issues/{mirror.issue}/comments")
        attempts = self.api.retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                data = await self.api.create.request_json(
                    "POST", url, json={"body": body}, subject=subject
                )
                return _comment(data, subject), "created"
            except RateLimitedError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(self.api.retry.rate_limit_backoff)  # plus any budget hold
            except RetriableError:
                await asyncio.sleep(self.api.retry.backoff(attempt))
                landed = await self._find_marked(mirror, mark, subject)
                if landed is not None:
                    if landed.get("body") != body:
                        landed = await self._edit(mirror, _comment_id(landed), body, subject)
                    return landed, "created"
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_marked(
        self, mirror: GitHubCommentMirror, mark: str, subject: str
    ) -> dict[str, Any] | None:
        """Our earlier comment on the issue, if one survives (the oldest, should there be two)."""
        async for page in self.api.pages(
            f"/repos/{mirror.repo}/issues/{mirror.issue}/comments", params={}, subject=subject
        ):
            for item in page:
                if isinstance(item, dict) and isinstance(item.get("body"), str):
                    first_line = item["body"].lstrip().split("\n", 1)[0].strip()
                    if first_line == mark:
                        return item
        return None

    def _result(
        self, mirror: GitHubCommentMirror, comment: dict[str, Any], action: str
    ) -> PushResult:
        comment_id = _comment_id(comment)
        detail: dict[str, Any] = {"action": action, "comment_id": comment_id}
        if isinstance(comment.get("html_url"), str):
            detail["html_url"] = comment["html_url"]
        return PushResult(ref=make_ref(mirror, comment_id), detail=detail)


def _comment(data: Any, subject: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise VendorResponseError("GitHub's comment answer is not a JSON object", subject=subject)
    _comment_id(data)
    return data


def _comment_id(comment: dict[str, Any]) -> int:
    value = comment.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise VendorResponseError(f"GitHub's comment has no numeric id (got {value!r})")
    return value
