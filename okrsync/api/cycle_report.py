"""A cycle's report as Markdown or as a standalone HTML page with a burn-up chart per key result.

Both render a :class:`~okrsync.read_models.cycle_report.CycleReport` (the JSON form is the model
itself); the HTML escapes every text it prints and draws the charts with
:func:`okrsync.api.charts.burnup_svg`, the dashboard's own.
"""

from __future__ import annotations

import html
from datetime import datetime
from decimal import Decimal

from okrsync.api.charts import BurnupChart, Sample, burnup_svg
from okrsync.api.formatting import DASH as RANGE
from okrsync.read_models.cycle_report import CycleReport, KeyResultReport

NONE = "\u2014"  # em dash: no value


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _score(text: str | None) -> str:
    return NONE if text is None else f"{Decimal(text):.2f}"


def _percent(text: str | None) -> str:
    return NONE if text is None else f"{Decimal(text) * 100:.0f}%"


def _trend(kr: KeyResultReport) -> str:
    return " → ".join(str(p.confidence) for p in kr.confidence_trend) or NONE


def _md(text: str) -> str:
    """Text for a Markdown table cell: pipes and line breaks would end the cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _heading(report: CycleReport) -> str:
    scores = "final scores" if report.final else "current scores"
    return f"Cycle {report.id} ({report.start} {RANGE} {report.end}): {report.state}, {scores}"


def report_markdown(report: CycleReport) -> str:
    lines = [f"# {_md(_heading(report))}", ""]
    if report.closed_at is not None:
        lines += [f"Closed at {report.closed_at.isoformat()}.", ""]
    if not report.objectives:
        lines.append("No objectives in this cycle.")
    for objective in report.objectives:
        lines += [
            f"## {_md(objective.title)} (`{objective.id}`)",
            "",
            f"Score **{_score(objective.score)}**, progress {_percent(objective.progress)}, "
            f"{objective.status}.",
            "",
            "| key result | value | target | progress | status | score | confidence |",
            "| --- | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        for kr in objective.key_results:
            lines.append(
                f"| {_md(kr.title)} (`{kr.id}`) | {kr.value or NONE} | {kr.target or NONE} "
                f"| {_percent(kr.progress)} | {kr.status} | {_score(kr.score)} | {_trend(kr)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _chart(kr: KeyResultReport, report: CycleReport, now: datetime) -> str:
    samples: list[Sample] = [(p.at, Decimal(p.value)) for p in kr.measurements if p.value]
    return burnup_svg(
        BurnupChart(
            title=kr.title,
            kind=kr.kind,
            unit=kr.unit,
            cycle_start=report.start,
            cycle_end=report.end,
            start=_dec(kr.start),
            target=_dec(kr.target),
            low=_dec(kr.low),
            high=_dec(kr.high),
            samples=samples,
            now=report.closed_at or now,
        )
    )


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem}
th{text-align:left}.num{text-align:right}.chart{max-width:560px}
svg .pace,svg .threshold{stroke:#999;stroke-dasharray:4 3;fill:none}
svg .actual{stroke:#2563eb;fill:none;stroke-width:2}svg .today{stroke:#e11d48}
svg .grid{stroke:#eee}svg text{font-size:11px;fill:#555}
"""


def _page_head(title: str) -> list[str]:
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]


def report_html(report: CycleReport, now: datetime, *, back: str | None = None) -> str:
    """The report as one page; ``back``: a link to the list of cycles (on the dashboard)."""
    e = html.escape
    parts = _page_head(_heading(report))
    if back is not None:
        parts.append(f'<p><a href="{e(back)}">All cycles</a></p>')
    parts.append(f"<h1>{e(_heading(report))}</h1>")
    if report.closed_at is not None:
        parts.append(f"<p>Closed at {e(report.closed_at.isoformat())}.</p>")
    if not report.objectives:
        parts.append("<p>No objectives in this cycle.</p>")
    for objective in report.objectives:
        parts += [
            f'<section class="objective" id="{e(objective.id)}">',
            f"<h2>{e(objective.title)}</h2>",
            f"<p>Score <strong>{_score(objective.score)}</strong>, progress "
            f"{_percent(objective.progress)}, {e(objective.status)}.</p>",
            "<table><thead><tr><th>key result</th><th class=num>value</th>"
            "<th class=num>target</th><th class=num>progress</th><th>status</th>"
            "<th class=num>score</th><th>confidence</th></tr></thead><tbody>",
        ]
        for kr in objective.key_results:
            parts.append(
                f'<tr id="kr-{e(kr.id)}"><td>{e(kr.title)}</td>'
                f"<td class=num>{e(kr.value or NONE)}</td><td class=num>{e(kr.target or NONE)}</td>"
                f"<td class=num>{_percent(kr.progress)}</td><td>{e(kr.status)}</td>"
                f"<td class=num>{_score(kr.score)}</td><td>{e(_trend(kr))}</td></tr>"
            )
        parts.append("</tbody></table>")
        for kr in objective.key_results:
            parts.append(f'<figure class="chart">{_chart(kr, report, now)}</figure>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def cycles_html(reports: list[CycleReport], base: str) -> str:
    """The dashboard's list of cycles, newest first: state and each objective's score, read-only;
    each links to its report."""
    e = html.escape
    parts = [
        *_page_head("Cycles · okrsync"),
        f'<p><a href="{e(base)}/">Dashboard</a></p><h1>Cycles</h1>',
        "<table><thead><tr><th>cycle</th><th>dates</th><th>state</th><th>scores</th>"
        "<th>objectives</th></tr></thead><tbody>",
    ]
    for report in reports:
        scores = ", ".join(f"{o.title} {_score(o.score)}" for o in report.objectives) or NONE
        parts.append(
            f'<tr id="cycle-{e(report.id)}"><td><a href="{e(base)}/cycles/{e(report.id)}">'
            f"{e(report.id)}</a></td><td>{report.start} {RANGE} {report.end}</td>"
            f"<td>{e(report.state)}</td><td>{'final' if report.final else 'current'}</td>"
            f"<td>{e(scores)}</td></tr>"
        )
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts) + "\n"
