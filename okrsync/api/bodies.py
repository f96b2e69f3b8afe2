"""Request bodies: read as they arrive and cut at a limit; JSON parsed as RFC 8259 has it.

A body's size is never taken on trust. ``Content-Length`` may be missing (``Transfer-Encoding:
chunked``) or a body may simply be large, and reading it whole before measuring it let one 200 MB
webhook cost the daemon half a gigabyte. So a body is read from the stream and nothing past its
limit is kept: it is refused (413) before any signature is computed or any JSON parsed, what was
read of it is dropped, and past ``DRAIN`` more bytes the 413 closes the connection so the rest is
never read at all. A refused body costs at most its limit plus the server's socket buffers,
whatever its size.

Python's :func:`json.loads` takes more than JSON, and what it took reached a 500 or the store:
``NaN`` and ``Infinity`` are not JSON; a float turns ``1e999999`` into infinity and ``0.1``
into a binary approximation, so every number is parsed to an exact :class:`~decimal.Decimal`;
a name given twice in one object would silently keep the last; a byte order mark or invalid
UTF-8 is not JSON text; and an escaped lone surrogate (``"\\ud800"``) is valid syntax but no
character, so it could neither be stored nor answered in UTF-8. Each is a 400 here.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from contextlib import aclosing
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from okrsync.api.context import error_response


class BadBody(Exception):
    """A body refused before anything looked at its meaning; :meth:`response` is the answer."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.error, self.detail, self.headers)


DRAIN = 4 * 1024 * 1024
"""Bytes past its limit a refused body is still read for, and dropped. A body that ends within
them is answered 413 on a connection that stays open, so every client reads the answer (most
read nothing before they have sent the whole body). A longer one is cut: the 413 closes the
connection, and only a client that watches for an early answer while it sends (as RFC 9112
asks of clients) reads it; the others see the connection reset."""


def too_large(limit: int, *, cut: bool) -> BadBody:
    # a cut body's unread rest is still on the connection: it cannot carry another request
    headers = {"Connection": "close"} if cut else None
    return BadBody(413, "request body too large", f"at most {limit} bytes", headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of ``request``, at most ``limit`` bytes, read chunk by chunk as it arrives.

    Raises :class:`BadBody`: 413 when the body passes ``limit`` (nothing past it is kept; read
    to its end if that comes within ``DRAIN``, else cut at once), 400 when the client hangs up
    before the end.
    """
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit + DRAIN:
        raise too_large(limit, cut=True)
    kept: list[bytes] = []
    seen = 0
    try:
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                seen += len(chunk)
                if seen > limit + DRAIN:
                    raise too_large(limit, cut=True)
                if seen <= limit:
                    kept.append(chunk)
                else:
                    kept.clear()  # refused: nothing will look at it
    except ClientDisconnect:
        raise BadBody(400, "request body incomplete", "the client closed the connection") from None
    if seen > limit:
        raise too_large(limit, cut=False)
    return b"".join(kept)


_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotJson(ValueError):
    """Text ``json.loads`` would take that is not JSON."""


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value: numbers must be finite")


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent past ±999999999999999999: not even a Decimal
        raise _NotJson(f"the number {text[:40]} is beyond any range") from None


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise _NotJson(f"the name {name[:40]!r} appears twice in one object")
        found[name] = value
    return found


def _strings(data: Any) -> Iterator[str]:
    """Every string in a parsed document, names included (iteratively: depth costs no stack)."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def parse_json(raw: bytes) -> Any:
    """``raw`` as a JSON document (numbers as Decimals); :class:`BadBody` 400 when it is not one."""
    if raw.startswith(codecs.BOM_UTF8):
        raise BadBody(400, "malformed JSON", "a byte order mark: send UTF-8 without one")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(400, "malformed JSON", f"not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(
            text,
            parse_float=_number,
            parse_int=_number,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_names,
        )
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise BadBody(400, "malformed JSON", detail) from None
    except _NotJson as exc:
        raise BadBody(400, "malformed JSON", str(exc)) from None
    except RecursionError:
        raise BadBody(400, "malformed JSON", "nested too deeply") from None
    # decoded UTF-8 holds no surrogates and json joins escaped pairs: any left is alone
    if any(_SURROGATE.search(s) for s in _strings(data)):
        raise BadBody(400, "malformed JSON", "a \\u escape names half of a surrogate pair")
    return data
