"""The dashboard's check-in form: a signed-in person records a key result's value by hand.

``POST /key-results/{id}/check-in`` takes the form on the key result's card (value, confidence
1 to 10, note) with the session's CSRF token (:mod:`okrsync.api.csrf`; missing or wrong: 403),
from a person who may check in on that objective (else 403). The value and note are checked by
the JSON API's own model (:class:`okrsync.api.models.CheckIn`) and recorded by the same function
(:func:`okrsync.api.check_ins.record_check_in`): origin ``manual``, mirrors queued, a double
submit recorded once. The browser is then sent back to the objective's page (post/redirect/get),
which says what happened once.

Who checked in and the confidence they gave are kept in the measurement's provenance
(``source: dashboard``, ``author``, ``confidence``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException
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
from okrsync.domain.evaluate import Evaluation
from okrsync.domain.planner import PlannedKeyResult
from okrsync.domain.progress import progress
from okrsync.domain.status import elapsed_fraction, status_for

log = structlog.get_logger()

PATH = "/key-results/{key_result_id}/check-in"
CONFIDENCE = range(1, 11)


@dataclass(frozen=True)
class CheckInForm:
    value: Decimal
    note: str | None
    confidence: int | None


def parse_form(form: Mapping[str, Any]) -> CheckInForm | str:
    """The form's check-in, or what is wrong with it (a sentence for the person)."""
    raw_confidence = str(form.get("confidence") or "").strip()
    confidence = None
    if raw_confidence:
        if not raw_confidence.isdigit() or int(raw_confidence) not in CONFIDENCE:
            return "Confidence must be a whole number from 1 to 10."
        confidence = int(raw_confidence)
    note = str(form.get("note") or "").strip() or None
    try:
        value = str(form.get("value") or "").strip()
        body = m.CheckIn.model_validate({"value": value, "note": note})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        what = "The note" if first["loc"][:1] == ("note",) else "The value"
        return f"{what} was not accepted: {first['msg']}."
    return CheckInForm(body.value, body.note, confidence)


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
            request.session["flash"] = {"text": f"Not recorded: {exc.error}.", "failed": True}
            return RedirectResponse(back, status_code=303)
        request.session["flash"] = {"text": f"Checked in {text} on “{kr.title}”.", "failed": False}
        return RedirectResponse(back, status_code=303)

    return [Route(PATH, post, methods=["POST"], name="dashboard_check_in")]


async def _record(ctx: ApiContext, key_result_id: str, form: CheckInForm, author: str) -> str:
    """Records ``form`` as the JSON API's ``POST .../check-ins`` does; the value as recorded."""
    kr = ctx.config.key_result(key_result_id)
    objective = ctx.config.objective(kr.objective_id)
    cycle = ctx.config.cycles[objective.cycle]
    now = ctx.clock()
    try:
        done = progress(kr.target_spec, form.value)
    except (ArithmeticError, DecimalException, ValueError) as exc:
        raise BadInput(422, "the value cannot be evaluated", str(exc)) from None
    note = None if form.note is None else ctx.redactor.redact(form.note)
    attempt = check_ins.Attempt(key_result_id, form.value, note, None)
    status = status_for(kr.kind, done, elapsed_fraction(cycle.start, cycle.end, now))
    source: dict[str, Any] = {"origin": "manual", "source": "dashboard", "author": author}
    source["value"] = str(form.value)
    if form.confidence is not None:
        source["confidence"] = form.confidence
    evaluation = Evaluation(form.value, done, status, (source,))
    item = PlannedKeyResult(kr, objective, cycle)
    _, queued = await in_thread(check_ins.record_check_in, ctx, attempt, item, evaluation, now)
    if ctx.daemon is not None and queued:
        ctx.daemon.nudge()
    log.info("dashboard_check_in", key_result=key_result_id, deliveries=queued)
    return str(form.value)


def _base(request: Request) -> str:
    root: Any = request.scope.get("root_path", "")
    return str(root).rstrip("/")
