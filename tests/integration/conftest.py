"""Integration-test set-up: schemathesis learns what the API's page cursors look like.

Each list's ``cursor`` parameter has the format ``okrsync-cursor-<list>``. A cursor is opaque,
and one this list never gave is a 400; so that schemathesis's positive phase sends schema-valid
cursors the API must accept, it generates real encodings of arbitrary sort keys of that list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis
from hypothesis import strategies as st

from okrsync.api.cursors import encode_cursor

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_int = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_when = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
SHAPES: dict[str, tuple[st.SearchStrategy[Any], ...]] = {
    "cycles": (_text, _text),
    "objectives": (_int, _text),
    "key-results": (_int, _text, _int, _text),
    "measurements": (_when, _int),
    "runs": (_when, _text),
    "deliveries": (_int,),
    "connections": (_text,),
    "work": (_text, _text, _int),
}


def _cursors(kind: str, shape: tuple[st.SearchStrategy[Any], ...]) -> st.SearchStrategy[str]:
    def encode(key: tuple[Any, ...]) -> str:
        return encode_cursor(kind, key)

    return st.tuples(*shape).map(encode)


for _kind, _shape in SHAPES.items():
    schemathesis.openapi.format(f"okrsync-cursor-{_kind}", _cursors(_kind, _shape))
