"""Check-ins from a chat app: ``POST /hooks/{connection}/commands`` and ``.../interactions``.

For a connection whose connector offers :class:`~okrsync.sdk.chat.ChatCheckIns` (Slack) and that
has its signing secret. Every request is verified by the connection first (for Slack: the ``v0``
HMAC of ``v0:timestamp:body`` under the signing secret, within 5 minutes of now); a request that
fails is answered 401 before its body is read for meaning.

* ``/commands`` (the slash command, ``/okr``) is acknowledged at once (200, empty: Slack wants an
  answer within 3 s); the form (Slack's modal) is opened off the request path, in a task that
  looks the person up and offers the key results they may check in on.
* ``/interactions`` (the submitted form) records the check-in through
  :func:`okrsync.api.check_ins.check_in` with the person as author and origin ``slack``, and is
  answered 200 with an empty body, or with the connector's refusal naming the field at fault.

Who may check in on what: when any objective has an ``owner``, a person is offered (and may
submit) the key results of the objectives they own, plus those of objectives without an owner.
An owner names a person by their chat user id (``U0123ABCD``), handle (``alice``, ``@alice``) or
e-mail address (``alice@example.com``, read with ``users.info``), compared without case. Without
any owner in the config, everyone may check in on every key result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync.api.bodies import BadBody, read_body
from okrsync.api.check_ins import CheckInRequest, check_in
from okrsync.api.context import ApiContext, error_response
from okrsync.api.errors import BadInput
from okrsync.api.offload import in_thread
from okrsync.config import Config
from okrsync.config.models import KeyResultDef
from okrsync.errors import ConnectorError
from okrsync.plugins import load_registry
from okrsync.sdk.chat import ChatCheckIns, ChatUser, Command, KeyResultChoice, Submission
from okrsync.sdk.connector import ConnectorBase
from okrsync.store.db import session_scope
from okrsync.store.tables import KeyResultRow

log = structlog.get_logger()

MAX_BODY = 256 * 1024  # Slack's payloads are a few KiB; a modal's state stays far below this
CHAT_SOURCE = "slack"


def _owner_name(owner: str) -> str:
    return owner.strip().removeprefix("@").lower()


def owners_used(config: Config) -> bool:
    return any(objective.owner for objective in config.objectives)


def allowed_key_results(config: Config, user: ChatUser) -> list[KeyResultDef]:
    """The key results ``user`` may check in on (see the module's text)."""
    names = user.names()
    limited = owners_used(config)
    return [
        kr
        for objective in config.objectives
        if not limited or not objective.owner or _owner_name(objective.owner) in names
        for kr in objective.key_results
    ]


def author_of(user: ChatUser) -> str:
    """How a chat check-in's author is recorded: ``@handle (slack U…)`` or the id alone."""
    return f"@{user.name} ({CHAT_SOURCE} {user.id})" if user.name else f"{CHAT_SOURCE} {user.id}"


def _choices(engine: Engine, config: Config, krs: Sequence[KeyResultDef]) -> list[KeyResultChoice]:
    with session_scope(engine) as session:
        rows = {kr.id: session.get(KeyResultRow, kr.id) for kr in krs}
    choices = []
    for kr in krs:
        row = rows[kr.id]
        current = None if row is None or row.value is None else f"{row.value.normalize():f}"
        objective = config.objective(kr.objective_id)
        choices.append(KeyResultChoice(kr.id, kr.title, objective.title, current))
    return choices


def read_submission(submission: Submission) -> tuple[CheckInRequest | None, dict[str, str]]:
    """The check-in a form asks for, or the refusal of each field at fault."""
    errors: dict[str, str] = {}
    if not submission.key_result_id:
        errors["key_result"] = "Choose a key result."
    value: Decimal | None = None
    if submission.value is not None:
        try:
            value = Decimal(submission.value.strip())
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            errors["value"] = "Enter a number."
            value = None
    confidence: int | None = None
    if submission.confidence is not None:
        text = submission.confidence.strip()
        confidence = int(text) if text.isascii() and text.isdigit() else None
        if confidence is None or not 1 <= confidence <= 10:
            errors["confidence"] = "Enter a whole number from 1 to 10."
            confidence = None
    if submission.value is None and submission.confidence is None:
        errors.setdefault("confidence", "Give a value, a confidence or both.")
    if errors or submission.key_result_id is None:
        return None, errors
    note = submission.note.strip() if submission.note else None
    request = CheckInRequest(
        submission.key_result_id,
        value=value,
        confidence=confidence,
        note=note or None,
        author=author_of(submission.user),
        source=CHAT_SOURCE,
    )
    return request, {}


def _field_of(refused: BadInput) -> str:
    if refused.status == 404:
        return "key_result"
    said = f"{refused.error} {refused.detail}".lower()
    return "confidence" if "confidence" in said else "value"


class ChatCheckInRoutes:
    """The two routes, the tasks that open forms, and the live connections they use."""

    def __init__(self, ctx: ApiContext, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.wall_clock = wall_clock
        self._live: dict[str, ConnectorBase[Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.opened = 0  # forms opened (tests count them)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/hooks/{connection}/commands", self.command, methods=["POST"]),
            Route("/hooks/{connection}/interactions", self.interaction, methods=["POST"]),
        ]

    def _get(self, name: str) -> ConnectorBase[Any] | None:
        """The HTTP side's own live connection (its own client, on the server's event loop,
        closed with the server), sharing the process's call budgets."""
        live = self._live.get(name)
        if live is None:
            shared = self.ctx.connections
            connectors = shared.connectors if shared is not None else load_registry().connectors
            connector = connectors.get(self.ctx.config.connection_types[name])
            if connector is None:
                return None
            ledger = shared.ledger if shared is not None else None
            config = self.ctx.config.connections[name]
            live = self._live[name] = connector.create(name, config, ledger=ledger)
        return live

    def _chat(self, name: str) -> ChatCheckIns | Response:
        if name not in self.ctx.config.connections:
            return error_response(404, "unknown connection", name)
        live = self._get(name)
        if not isinstance(live, ChatCheckIns) or not live.accepts_requests:
            return error_response(
                404,
                "check-ins are not enabled for this connection",
                "a slack connection with its signing_secret takes them",
            )
        return live

    async def _verified(self, request: Request) -> tuple[ChatCheckIns, bytes] | Response:
        name = request.path_params["connection"]
        chat = self._chat(name)
        if isinstance(chat, Response):
            return chat
        try:
            body = await read_body(request, MAX_BODY)
        except BadBody as refused:
            return refused.response()
        if not chat.verify_request(request.headers, body, self.wall_clock()):
            log.warning("chat_request_rejected", connection=name, reason="bad_signature")
            return error_response(401, "invalid signature", None)
        return chat, body

    async def command(self, request: Request) -> Response:
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        chat, body = verified
        command = chat.read_command(body)
        if command is None:
            return error_response(400, "not a slash command", None)
        task = asyncio.create_task(self._open(chat, command))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        log.info("chat_command", connection=request.path_params["connection"])
        return Response(status_code=200)  # Slack's ack: nothing shown to the user

    async def _open(self, chat: ChatCheckIns, command: Command) -> None:
        try:
            user = command.user
            if owners_used(self.ctx.config):
                user = await chat.identify(user)
            krs = allowed_key_results(self.ctx.config, user)
            choices = await in_thread(_choices, self.ctx.engine, self.ctx.config, krs)
            await chat.open_check_in(command, choices)
            self.opened += 1
        except ConnectorError as exc:
            log.warning("chat_form_not_opened", error=type(exc).__name__, detail=str(exc))

    async def interaction(self, request: Request) -> Response:
        verified = await self._verified(request)
        if isinstance(verified, Response):
            return verified
        chat, body = verified
        submission = chat.read_submission(body)
        if submission is None:  # another interaction (a button, a closed view): nothing to do
            return Response(status_code=200)
        wanted, errors = read_submission(submission)
        if wanted is None:
            return JSONResponse(chat.refuse(errors))
        user = submission.user
        if owners_used(self.ctx.config):
            with contextlib.suppress(ConnectorError):  # else matched by id and handle only
                user = await chat.identify(user)
            allowed = {kr.id for kr in allowed_key_results(self.ctx.config, user)}
            if wanted.key_result_id not in allowed:
                refusal = {"key_result": "You own no objective with this key result."}
                return JSONResponse(chat.refuse(refusal))
        ctx = self.ctx
        try:
            outcome = await in_thread(
                check_in, ctx.engine, ctx.config, ctx.redactor, wanted, ctx.clock()
            )
        except BadInput as refused:
            detail = f"{refused.error}: {refused.detail}" if refused.detail else refused.error
            return JSONResponse(chat.refuse({_field_of(refused): detail[:150]}))
        if ctx.daemon is not None and outcome.queued_now:
            ctx.daemon.nudge()
        log.info("chat_check_in", key_result=wanted.key_result_id, replayed=outcome.replayed)
        return Response(status_code=200)

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for live in self._live.values():
            await live.aclose()
        self._live.clear()
