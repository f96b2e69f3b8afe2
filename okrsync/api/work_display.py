"""How the dashboard writes the work behind a key result (issue 15): state labels and links.

An item's url comes from the tracker; it is linked only when it is a web address (``http`` or
``https``), so a ``javascript:`` or ``data:`` url in a vendor's answer is shown as text, never
followed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

STATE_LABEL = {"todo": "to do", "in_progress": "in progress", "done": "done"}


def web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) address with a host, else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def state_label(state: str) -> str:
    return STATE_LABEL.get(state, state.replace("_", " "))
