"""The work behind a key result in a Slack message (issue 15). Pure.

A key result with linked work gains a line ``:hammer_and_wrench: work: 12 done · 5 in progress ·
3 to do`` and, when items were done since the mirror's previous push, a line linking them
(``Done since the last update: <url|OKR-7> Ship it, …``), within Slack's section limit.
"""

from __future__ import annotations

from okrsync.sdk.work_summary import WorkSummary, web_url

WORK_EMOJI = ":hammer_and_wrench:"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def work_lines(work: WorkSummary) -> str:
    """The work line and, when there are any, the items done since the last push (mrkdwn)."""
    lines = [f"{WORK_EMOJI} {work.line()}"]
    if work.done_recently:
        named = []
        for item in work.done_recently:
            url = web_url(item.url)
            key = _escape(item.key)
            # a url holding | or > would end Slack's link early: such an item is named, not linked
            link = f"<{url}|{key}>" if url and "|" not in url and ">" not in url else key
            named.append(f"{link} {_escape(item.title)}")
        more = work.more_done()
        tail = f" and {more} more" if more else ""
        lines.append(f"Done since the last update: {', '.join(named)}{tail}")
    return "\n".join(lines)
