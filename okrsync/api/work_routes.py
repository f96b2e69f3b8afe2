"""``GET /api/v1/key-results/{id}/work`` and ``GET /api/v1/objectives/{id}/work`` (issue 15).

The work items a key result's (or objective's) ``work`` entries link, a keyset page at a time
in the tracker's key order (:mod:`okrsync.store.work_views`), with the summary of all of them:
counts by state and done this week. Items that left their query are listed only with
``unlinked=true``. Four statements a page, whatever the number of items: the owner's row (a 404
when there is none), the count, the page and the summary.

The routes are added to :data:`okrsync.api.v1.router` when that module is imported (it imports
this one last), so the OpenAPI document and the app list them as any other read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import Field, WithJsonSchema
from sqlmodel import Session
from starlette.responses import Response

from okrsync.api.answers import answer
from okrsync.api.context import ApiContext
from okrsync.api.cursors import next_cursor
from okrsync.api.errors import BadInput
from okrsync.api.models import NEXT, TOTAL
from okrsync.api.offload import in_thread
from okrsync.api.v1 import (
    CURSOR_QUERY,
    DEFAULT_LIMIT,
    Context,
    KeyResultId,
    Limit,
    ObjectiveId,
    _after,
    _cursor_schema,
    errors,
    router,
)
from okrsync.domain.work_window import week_start
from okrsync.read_models import work as rm
from okrsync.read_models.work_from_store import work_item, work_summary
from okrsync.store import views, work_views
from okrsync.store.db import session_scope
from okrsync.store.tables import ObjectiveRow


class KeyResultWorkList(rm.KeyResultWork):
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


class ObjectiveWorkList(rm.ObjectiveWork):
    total: int = Field(description=TOTAL)
    next_cursor: str | None = Field(description=NEXT)


WorkCursor = Annotated[str | None, CURSOR_QUERY, _cursor_schema("work")]
Unlinked = Annotated[
    bool,
    Query(description="Also list the items that left their query (with `unlinked_at`)."),
    WithJsonSchema({"type": "boolean"}),
]
StateFilter = Annotated[
    rm.State | None,
    Query(description="Only the items in this state."),
    WithJsonSchema({"type": "string", "enum": list(work_views.STATES)}),
]


def _page(
    session: Session,
    owner: work_views.Owner,
    now: datetime,
    limit: int,
    after: Any,
    unlinked: bool,
    state: str | None,
) -> tuple[list[rm.WorkItem], int, str | None, rm.WorkSummary]:
    page = work_views.work_page(
        session, owner, limit=limit, after_key=after, include_unlinked=unlinked, state=state
    )
    monday = week_start(now)
    summary = work_summary(work_views.work_counts(session, owner, monday), monday)
    items = [work_item(r) for r in page.items]
    return items, page.total, next_cursor("work", page.next_after), summary


def _owner_page(
    ctx: ApiContext,
    owner: work_views.Owner,
    found: Callable[[Session], bool],
    missing: str,
    limit: int,
    after: Any,
    unlinked: bool,
    state: str | None,
) -> tuple[list[rm.WorkItem], int, str | None, rm.WorkSummary]:
    """One page of an owner's work, or a 404 saying ``missing`` when ``found`` says it is not."""
    wanted = owner.key_result_id or owner.objective_id
    with session_scope(ctx.engine) as session:
        if not found(session):
            raise BadInput(404, missing, wanted)
        return _page(session, owner, ctx.clock(), limit, after, unlinked, state)


def _key_result_work(
    ctx: ApiContext, wanted: str, limit: int, after: Any, unlinked: bool, state: str | None
) -> Response:
    items, total, following, summary = _owner_page(
        ctx,
        work_views.Owner(key_result_id=wanted),
        lambda session: views.key_result(session, wanted) is not None,
        "key result not found",
        limit,
        after,
        unlinked,
        state,
    )
    listed = KeyResultWorkList(
        key_result=wanted, items=items, summary=summary, total=total, next_cursor=following
    )
    return answer(ctx, listed)


@router.get(
    "/key-results/{key_result_id}/work",
    operation_id="listKeyResultWork",
    summary="The work items (issues, PRs, epics) a key result's `work` entries link, by key",
    response_description="The work items a key result's `work` entries link, with their counts "
    "by state",
    response_model=KeyResultWorkList,
    responses=errors(400, 404),
)
async def list_key_result_work(
    ctx: Context,
    key_result_id: KeyResultId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: WorkCursor = None,
    unlinked: Unlinked = False,
    state: StateFilter = None,
) -> Response:
    after = _after(cursor, "work", work_views.CURSOR_SHAPE)
    return await in_thread(_key_result_work, ctx, key_result_id, limit, after, unlinked, state)


def _objective_work(
    ctx: ApiContext, wanted: str, limit: int, after: Any, unlinked: bool, state: str | None
) -> Response:
    items, total, following, summary = _owner_page(
        ctx,
        work_views.Owner(objective_id=wanted),
        lambda session: session.get(ObjectiveRow, wanted) is not None,
        "objective not found",
        limit,
        after,
        unlinked,
        state,
    )
    listed = ObjectiveWorkList(
        objective=wanted, items=items, summary=summary, total=total, next_cursor=following
    )
    return answer(ctx, listed)


@router.get(
    "/objectives/{objective_id}/work",
    operation_id="listObjectiveWork",
    summary="The work items an objective's own `work` entries and its key results' link, by key",
    response_description="The work items of an objective and of its key results, with their "
    "counts by state",
    response_model=ObjectiveWorkList,
    responses=errors(400, 404),
)
async def list_objective_work(
    ctx: Context,
    objective_id: ObjectiveId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: WorkCursor = None,
    unlinked: Unlinked = False,
    state: StateFilter = None,
) -> Response:
    after = _after(cursor, "work", work_views.CURSOR_SHAPE)
    return await in_thread(_objective_work, ctx, objective_id, limit, after, unlinked, state)
