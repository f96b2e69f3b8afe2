"""``okrsync work KR`` / ``okrsync work --objective O``: the work items linked to a key result or
objective (issue 15), as a table or, with ``--json``, as the API's read model
(:class:`okrsync.read_models.work.KeyResultWork` / ``ObjectiveWork``), every item at once.

Registered on :data:`okrsync.cli.app` when that module is imported (it imports this one last).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from okrsync.cli import EXIT_FAILED, JsonOption, app, error, out, store_session, write_answer

PAGE = 1000  # items read a statement at a time


@app.command()
def work(
    key_result: Annotated[
        str | None, typer.Argument(help="Key result id (or give --objective).")
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="An objective's work instead: its own and its key results'."),
    ] = None,
    unlinked: Annotated[
        bool, typer.Option("--unlinked", help="Also the items that left their query.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """The issues, PRs and epics behind a key result: state, link and when each was done."""
    from datetime import UTC, datetime

    from okrsync.domain.work_window import week_start
    from okrsync.read_models import work as rm
    from okrsync.read_models.work_from_store import work_item, work_summary
    from okrsync.store import views, work_views
    from okrsync.store.tables import ObjectiveRow

    if (key_result is None) == (objective is None):
        error("give a key result id, or --objective and an objective id (one of them)")
        raise typer.Exit(EXIT_FAILED)
    owner = work_views.Owner(key_result_id=key_result, objective_id=objective)
    monday = week_start(datetime.now(UTC))
    with store_session() as session:
        if key_result is not None:
            found = session is not None and views.key_result(session, key_result) is not None
            what = f"key result {key_result!r}"
        else:
            found = session is not None and session.get(ObjectiveRow, objective) is not None
            what = f"objective {objective!r}"
        if session is None or not found:
            error(f"no {what} in the store (has `okrsync sync` run?)")
            raise typer.Exit(EXIT_FAILED)
        items: list[rm.WorkItem] = []
        after = None
        while True:
            page = work_views.work_page(
                session, owner, limit=PAGE, after_key=after, include_unlinked=unlinked
            )
            items.extend(work_item(r) for r in page.items)
            after = page.next_after
            if after is None:
                break
        summary = work_summary(work_views.work_counts(session, owner, monday), monday)
    if json_out:
        if key_result is not None:
            write_answer(rm.KeyResultWork(key_result=key_result, items=items, summary=summary))
        else:
            assert objective is not None
            write_answer(rm.ObjectiveWork(objective=objective, items=items, summary=summary))
        return
    title = f"work of {esc(key_result or objective or '')}"
    table = Table(title=title, title_justify="left")
    for column in ("connection", "key", "state", "title", "assignee", "done", "link"):
        table.add_column(column)
    for i in items:
        state = i.state.replace("_", " ") + (" (unlinked)" if i.unlinked_at else "")
        table.add_row(
            esc(i.connection),
            esc(i.key),
            state,
            esc(i.title),
            esc(i.assignee or ""),
            i.done_at.strftime("%Y-%m-%d") if i.done_at else "",
            esc(i.url or ""),
        )
    out.print(table)
    out.print(
        f"work: {summary.done} done · {summary.in_progress} in progress · {summary.todo} to do"
        f" · {summary.done_this_week} done this week",
        highlight=False,
    )
