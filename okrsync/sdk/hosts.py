"""Vendors with regional hosts: a config field that takes a region name or a full URL."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def region_or_url(value: str, hosts: Mapping[str, str], field: str = "region") -> str:
    """``value`` if it names a region in ``hosts`` or is an http(s) URL (trailing / dropped)."""
    if value in hosts:
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        names = ", ".join(repr(name) for name in hosts)
        raise ValueError(f"{field} must be one of {names} or an http(s) URL, got {value!r}")
    return value.rstrip("/")
