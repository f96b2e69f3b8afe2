"""A fake of the two kinds of Teams channel webhook, with what each answers.

* **Workflows** (``POST /workflows/{id}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=…
  &sv=1.0&sig=…``): a wrong or missing ``sig`` → 401, an unknown or deleted workflow → 404, both
  with Logic Apps' ``{"error": {"code", "message"}}``; a body that is not JSON → 400; anything
  else → **202** with an empty body. Whether the card can be posted is decided afterwards, as the
  real flow does: a card that is not an Adaptive Card of version ≤ 1.4 with the required fields
  becomes a *failed run* (kept in :attr:`TeamsState.failed_runs` with the error text) and is not
  posted.
* **Legacy incoming webhook** (``POST /webhookb2/{path}``): a valid card → 200 ``1``; a body
  that is not JSON → 400 ``Bad payload received by generic incoming webhook.``; a card Teams
  refuses → 200 with ``Webhook message delivery failed with error: Microsoft Teams endpoint
  returned HTTP error 400 …`` (the real status hidden in a 200); a removed connector → 410.
* Per-webhook rate limit (default 4 posts a second): **429** with ``Retry-After``.

Tests read ``app.state.teams`` (a :class:`TeamsState`): the cards posted, counted per key result
and per objective by the card's ``okrsync-<kind>-<id>`` container id.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

WORKFLOW_ID = "0f3c2b1a9d8e4f7a8b6c5d4e3f2a1b0c"
SIGNATURE = "Xq3vN8kQ1fWmZ7pR2tYb5cLd9hJs4gE6uA0oIiKe-Tw"
LEGACY_PATH = "1a2b3c4d@5e6f/IncomingWebhook/7a8b9c0d/1e2f3a4b"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ELEMENTS = {
    "TextBlock", "RichTextBlock", "Image", "ImageSet", "Media", "Container", "ColumnSet",
    "Column", "FactSet", "ActionSet", "Table",
}  # fmt: skip
ACTIONS = {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}


def _version(text: Any) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except ValueError:
        return None


@dataclass
class Post:
    channel: str
    card: dict[str, Any]
    subjects: list[str]


@dataclass
class TeamsState:
    workflows: dict[str, str] = field(default_factory=lambda: {WORKFLOW_ID: SIGNATURE})
    legacy: set[str] = field(default_factory=lambda: {LEGACY_PATH})
    removed_legacy: set[str] = field(default_factory=set)
    posts: list[Post] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    rate: tuple[int, float] = (4, 1.0)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _calls: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def posts_for(self, kind: str, id: str) -> int:
        with self.lock:
            return sum(f"okrsync-{kind}-{id}" in p.subjects for p in self.posts)

    def cards(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p.card for p in self.posts]

    def delete_workflow(self, workflow_id: str = WORKFLOW_ID) -> None:
        with self.lock:
            self.workflows.pop(workflow_id, None)

    def remove_legacy(self, path: str = LEGACY_PATH) -> None:
        with self.lock:
            self.legacy.discard(path)
            self.removed_legacy.add(path)

    def throttle(self, key: str) -> int | None:
        calls, window = self.rate
        now = time.monotonic()
        with self.lock:
            recent = self._calls[key]
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= calls:
                return max(1, math.ceil(recent[0] + window - now))
            recent.append(now)
            return None


def card_problems(body: Any, max_version: tuple[int, int]) -> list[str]:
    """Why Teams would not post ``body``, in words like the flow run's (empty: it would)."""
    if not isinstance(body, dict):
        return ["The request body must be a JSON object"]
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return [
            "The 'foreach' expression '@triggerOutputs()?['body']?['attachments']' is of type "
            "'Null'; it must be an array"
        ]
    problems: list[str] = []
    if body.get("type") != "message":
        problems.append("Property 'type' of the message must be 'message'")
    for index, attachment in enumerate(attachments):
        where = f"attachments[{index}]"
        if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_TYPE:
            problems.append(f"{where}.contentType must be '{CARD_TYPE}'")
            continue
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append("Property 'type' must be 'AdaptiveCard'")
            continue
        version = _version(card.get("version"))
        if version is None or version > max_version:
            limit = ".".join(map(str, max_version))
            problems.append(
                f"AdaptiveCard version {card.get('version')!r} is not supported (≤ {limit})"
            )
        problems.extend(_element_problems(card.get("body"), f"{where}.content.body", version))
        for action in card.get("actions") or []:
            if not isinstance(action, dict) or action.get("type") not in ACTIONS:
                problems.append(f"unsupported action {action!r}: webhooks take Action.OpenUrl")
            elif action["type"] == "Action.OpenUrl" and not isinstance(action.get("url"), str):
                problems.append("Action.OpenUrl needs a url")
    return problems


def _element_problems(items: Any, where: str, version: tuple[int, int] | None) -> list[str]:
    if not isinstance(items, list):
        return [f"{where} must be an array of elements"]
    problems: list[str] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ELEMENTS:
            problems.append(f"{at}: unknown element type {kind!r}")
            continue
        assert isinstance(item, dict)
        if kind == "TextBlock" and not isinstance(item.get("text"), str):
            problems.append(f"{at}: TextBlock needs text")
        elif kind == "FactSet":
            facts = item.get("facts")
            if not isinstance(facts, list) or not all(
                isinstance(f, dict)
                and isinstance(f.get("title"), str)
                and isinstance(f.get("value"), str)
                for f in facts
            ):
                problems.append(f"{at}: FactSet needs facts of {{title, value}} strings")
        elif kind == "Container":
            problems.extend(_element_problems(item.get("items"), f"{at}.items", version))
        elif kind == "Table" and (version is None or version < (1, 5)):
            problems.append(f"{at}: Table needs AdaptiveCard 1.5")
    return problems


def _subjects(card: Any) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("id"), str) and value["id"].startswith("okrsync-"):
                found.append(value["id"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(card)
    return found


def _logic_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def teams_app(state: TeamsState | None = None) -> Starlette:
    teams = state if state is not None else TeamsState()

    def throttled(key: str) -> Response | None:
        wait = teams.throttle(key)
        if wait is None:
            return None
        return JSONResponse(
            {"error": {"code": "TooManyRequests", "message": "Rate limit is exceeded."}},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    async def workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        with teams.lock:
            signature = teams.workflows.get(workflow_id)
        if signature is None:
            return _logic_error(
                404, "WorkflowNotFound", f"The workflow '{workflow_id}' could not be found."
            )
        sig = request.query_params.get("sig")
        if not sig:
            return _logic_error(
                401,
                "DirectApiAuthorizationRequired",
                "The request must be authenticated only by Shared Access scheme.",
            )
        if sig != signature:
            return _logic_error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authentication token is not valid.",
            )
        limited = throttled(f"workflow:{workflow_id}")
        if limited is not None:
            return limited
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _logic_error(
                400,
                "InvalidRequestContent",
                "The input body for trigger 'manual' of type 'Request' must be of type JSON.",
            )
        problems = card_problems(body, (1, 4))
        with teams.lock:
            if problems:  # the flow run fails later; the caller only ever sees 202
                teams.failed_runs.append("; ".join(problems))
            else:
                teams.posts.append(Post("workflow", body, _subjects(body)))
        return Response(status_code=202)

    async def legacy(request: Request) -> Response:
        path = request.path_params["path"]
        with teams.lock:
            known, removed = path in teams.legacy, path in teams.removed_legacy
        if removed:
            return PlainTextResponse("Connector configuration not found", status_code=410)
        if not known:
            return PlainTextResponse("Invalid webhook URL", status_code=404)
        limited = throttled(f"legacy:{path}")
        if limited is not None:
            return limited
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse(
                "Bad payload received by generic incoming webhook.", status_code=400
            )
        problems = card_problems(body, (1, 5))
        if problems:
            return PlainTextResponse(
                "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
                "HTTP error 400 with ContextId tcid=0,server=okrsync-fake,cv=fake.0..",
                status_code=200,
            )
        with teams.lock:
            teams.posts.append(Post("legacy", body, _subjects(body)))
        return PlainTextResponse("1")

    app = Starlette(
        routes=[
            Route(
                "/workflows/{workflow_id}/triggers/manual/paths/invoke", workflow, methods=["POST"]
            ),
            Route("/webhookb2/{path:path}", legacy, methods=["POST"]),
        ]
    )
    app.state.teams = teams
    return app


def workflow_url(base: str, workflow_id: str = WORKFLOW_ID, sig: str = SIGNATURE) -> str:
    """A Workflows trigger URL on the fake, shaped like the real one."""
    return (
        f"{base}/workflows/{workflow_id}/triggers/manual/paths/invoke"
        f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"
    )


def legacy_url(base: str, path: str = LEGACY_PATH) -> str:
    return f"{base}/webhookb2/{path}"
