"""How the dashboard writes the work behind a key result (issue 15): state labels and links.

An item's url comes from the tracker; it is linked only when it is a web address (``http`` or
``https``), so a ``javascript:`` or ``data:`` url in a vendor's answer is shown as text, never
followed.
"""

from __future__ import annotations

from okrsync.sdk.work_summary import web_url

__all__ = ["STATE_LABEL", "state_label", "web_url"]

STATE_LABEL = {"todo": "to do", "in_progress": "in progress", "done": "done"}


def state_label(state: str) -> str:
    return STATE_LABEL.get(state, state.replace("_", " "))
