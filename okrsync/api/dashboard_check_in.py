"""The dashboard's check-in form: a signed-in person records a key result's value by hand.

``POST /key-results/{id}/check-in`` takes the form on the key result's card (value, confidence
1 to 10, note) with the session's CSRF token (:mod:`okrsync.api.csrf`; missing or wrong: 403),
from a person who may check in on that objective (else 403). The fields are checked by the JSON
API's own model (:class:`okrsync.api.models.CheckIn`: a value, a confidence or both) and
recorded by the same function (:func:`okrsync.api.check_ins.check_in`): origin ``manual``,
mirrors queued, a double submit recorded once. The browser is then sent back to the
objective's page (post/redirect/get), which says what happened once.

The check-in is recorded with its confidence and the person's e-mail as its author, and
``source: dashboard`` in its provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import structlog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from okrsync.api import check_ins, csrf
from okrsync.api import models as m
from okrsync.api.context import ApiContext
from okrsync.api.errors import BadInput
from okrsync.api.offload import in_thread
from okrsync.api.oidc import OidcSignIn, Page, session_user

log = structlog.get_logger()

PATH = "/key-results/{key_result_id}/check-in"
CONFIDENCE = range(1, 11)


@dataclass(frozen=True)
class CheckInForm:
    value: Decimal | None  # None: a confidence (and note) only
    note: str | None
    confidence: int | None


def parse_form(form: Mapping[str, Any]) -> CheckInForm | str:
    """The form's check-in, or what is wrong with it (a sentence for the person). Checked by
    the JSON API's own model: a value, a confidence (1 to 10) or both, and a note."""
    raw_confidence = str(form.get("confidence") or "").strip()
    confidence = None
    if raw_confidence:
        if not raw_confidence.isdigit() or int(raw_confidence) not in CONFIDENCE:
            return "Confidence must be a whole number from 1 to 10."
        confidence = int(raw_confidence)
    body: dict[str, Any] = {} if confidence is None else {"confidence": confidence}
    value = str(form.get("value") or "").strip()
    if value:
        body["value"] = value
    note = str(form.get("note") or "").strip()
    if note:
        body["note"] = note
    try:
        checked = m.CheckIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = first["loc"][:1]
        if not where:  # neither value nor confidence
            return "Give a value, a confidence or both."
        names: dict[tuple[int | str, ...], str] = {
            ("note",): "The note",
            ("confidence",): "The confidence",
        }
        what = names.get(where, "The value")
        return f"{what} was not accepted: {first['msg']}."
    return CheckInForm(checked.value, checked.note, checked.confidence)


def check_in_routes(ctx: ApiContext, sign_in: OidcSignIn, page: Page) -> list[BaseRoute]:
    async def post(request: Request) -> Response:
        user = session_user(request)
        if user is None:
            return sign_in.login_redirect(request)
        fields = await csrf.read_form(request)
        if not csrf.valid(request.session, fields.get(csrf.FIELD)):
            return page(request, 403, "Refused", "This form has expired: reload the page.")
        wanted = request.path_params["key_result_id"]
        try:
            kr = ctx.config.key_result(wanted)
        except KeyError:
            return page(request, 404, "Not found", f"There is no key result “{wanted}”.")
        objective = ctx.config.objective(kr.objective_id)
        if not sign_in.may_check_in(user, objective.owner):
            message = f"You may not check in on “{kr.title}”: it is not your objective."
            return page(request, 403, "Refused", message)
        back = f"{_base(request)}/objectives/{quote(objective.id, safe='')}#kr-{quote(kr.id)}"
        parsed = parse_form(fields)
        if isinstance(parsed, str):
            request.session["flash"] = {"text": parsed, "failed": True}
            return RedirectResponse(back, status_code=303)
        try:
            text = await _record(ctx, wanted, parsed, user.email)
        except BadInput as exc:
            why = exc.error + (f" ({exc.detail})" if isinstance(exc.detail, str) else "")
            request.session["flash"] = {"text": f"Not recorded: {why}.", "failed": True}
            return RedirectResponse(back, status_code=303)
        request.session["flash"] = {"text": f"Checked in {text} on “{kr.title}”.", "failed": False}
        return RedirectResponse(back, status_code=303)

    return [Route(PATH, post, methods=["POST"], name="dashboard_check_in")]


async def _record(ctx: ApiContext, key_result_id: str, form: CheckInForm, author: str) -> str:
    """Records ``form`` as the JSON API's ``POST .../check-ins`` does, by the same function
    (:func:`okrsync.api.check_ins.check_in`), as ``author``; what was recorded, for the page."""
    request = check_ins.CheckInRequest(
        key_result_id,
        value=form.value,
        confidence=form.confidence,
        note=form.note,
        author=author,
        source="dashboard",
    )
    outcome = await in_thread(
        check_ins.check_in, ctx.engine, ctx.config, ctx.redactor, request, ctx.clock()
    )
    if ctx.daemon is not None and outcome.queued_now:
        ctx.daemon.nudge()  # deliver the new outbox rows now rather than at the next wake-up
    log.info("dashboard_check_in", key_result=key_result_id, deliveries=outcome.queued_now)
    parts = [] if form.value is None else [str(form.value)]
    if form.confidence is not None:
        parts.append(f"confidence {form.confidence}")
    return ", ".join(parts)


def _base(request: Request) -> str:
    root: Any = request.scope.get("root_path", "")
    return str(root).rstrip("/")
