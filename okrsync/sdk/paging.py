"""Paginators: how a listing's next page is found, with the loop guard and the page cap.

A sum or a count over a listing that was cut short is a wrong number that looks right, so every
listing okrsync reads stops with an error, never a short answer, when the vendor

* hands back a token (cursor, next URL, offset, page number) it already handed back: the API is
  not advancing, and following it would loop for ever;
* would need more than ``max_pages`` pages: the metric asks for more than the connection allows.

A paginator is given each page's document and says where the next page is, or that there is
none. The connector keeps the request: it sends the first one with ``paginator.token`` (``None``
for the first page), then the token the paginator returns, until :attr:`Paginator.finished`::

    pages = CursorPaginator(lambda body: body["paging"]["next"]["after"], what="deals")
    while not pages.finished:
        body = await client.get_json("/deals", params=pages.params({"limit": 100}, "after"))
        total += sum_of(body)
        pages.advance(body)

or, when each page is only collected, :func:`read_pages` drives the loop.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx

from okrsync.errors import VendorResponseError

TokenT = TypeVar("TokenT")

DEFAULT_MAX_PAGES = 100
_SHOWN = 80


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class Paginator(ABC, Generic[TokenT]):
    """Follows one listing's pages; subclasses say how a page names the next one.

    ``what`` names the listing in errors ("deals", "issues of JQL …"); ``subject`` is passed to
    the errors as the thing being read, so a failed metric says which one it was.
    """

    kind = "token"  # how errors name the token: "cursor", "next URL", "offset", "page"

    def __init__(
        self,
        *,
        what: str = "pages",
        max_pages: int = DEFAULT_MAX_PAGES,
        subject: str | None = None,
        start: TokenT | None = None,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.what = what
        self.max_pages = max_pages
        self.subject = subject
        self.token: TokenT | None = start
        self.pages_read = 0
        self.finished = False
        self._seen: set[str] = set()
        if start is not None:
            self._seen.add(self.token_key(start))

    @abstractmethod
    def next_token(self, document: Any, response: httpx.Response | None) -> TokenT | None:
        """The token of the page after ``document``, or ``None`` when it was the last."""

    def token_key(self, token: TokenT) -> str:
        """What two tokens must share to be the same page (their text, by default)."""
        return str(token)

    def advance(self, document: Any, response: httpx.Response | None = None) -> TokenT | None:
        """Take in one page; return the next page's token (``None``: the listing is complete).

        Raises :class:`VendorResponseError` when the token repeats or the cap would be passed.
        """
        if self.finished:
            raise RuntimeError("the listing is complete: there is no page to advance from")
        self.pages_read += 1
        following = self.next_token(document, response)
        if following is None:
            self.finished = True
            return None
        key = self.token_key(following)
        if key in self._seen:
            raise VendorResponseError(
                f"pagination loop: page {self.pages_read} of {self.what} gave the {self.kind} "
                f"{_shorten(key)!r} again; the API is not advancing",
                subject=self.subject,
            )
        if self.pages_read >= self.max_pages:
            raise VendorResponseError(
                f"more than max_pages ({self.max_pages}) pages of {self.what}; raise max_pages "
                "or narrow the query (a number over a cut-off listing would be wrong)",
                subject=self.subject,
            )
        self._seen.add(key)
        self.token = following
        return following

    def params(self, base: Mapping[str, Any], name: str) -> dict[str, Any]:
        """``base`` with the current token as ``name`` (left out on the first page)."""
        found = dict(base)
        if self.token is not None:
            found[name] = self.token
        return found


def _text(value: object, what: str, subject: str | None) -> str | None:
    """A token read from a page: ``None``/empty ends the listing, a non-string is an error."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise VendorResponseError(
            f"{what} should be a cursor, got {_shorten(repr(value))}", subject=subject
        )
    return str(value)


class CursorPaginator(Paginator[str]):
    """Each page carries an opaque cursor for the next (``after``, ``next_cursor``, ``endCursor``).

    ``cursor_of`` reads it from the page; it returns ``None`` (or raises ``KeyError``/
    ``TypeError``, which count as absent) on the last page. ``has_more``, when given, is asked
    first, for APIs that say so separately (GraphQL's ``pageInfo.hasNextPage``): a page that
    says there is more but gives no cursor is an error, not the end. ``start`` is the cursor of
    the first page for APIs that want one sent (HubSpot's ``after: "0"``); a page handing it
    back is a loop.
    """

    kind = "cursor"

    def __init__(
        self,
        cursor_of: Callable[[Any], object],
        *,
        start: str | None = None,
        has_more: Callable[[Any], bool] | None = None,
        what: str = "pages",
        max_pages: int = DEFAULT_MAX_PAGES,
        subject: str | None = None,
    ) -> None:
        super().__init__(what=what, max_pages=max_pages, subject=subject, start=start)
        self._cursor_of = cursor_of
        self._has_more = has_more

    def next_token(self, document: Any, response: httpx.Response | None) -> str | None:
        if self._has_more is not None and not self._has_more(document):
            return None
        try:
            raw = self._cursor_of(document)
        except (KeyError, TypeError, IndexError):
            raw = None
        cursor = _text(raw, f"the {self.kind} of {self.what}", self.subject)
        if cursor is None and self._has_more is not None:
            raise VendorResponseError(
                f"the vendor said there is a next page of {self.what} but gave no {self.kind}",
                subject=self.subject,
            )
        return cursor


class NextUrlPaginator(Paginator[str]):
    """Each page links the next by URL (``nextRecordsUrl``, ``links.next``, a ``Link`` header).

    ``url_of`` reads the link from the page (or the response, for headers); a link back to the
    page just read is a loop like any other repeat. ``allowed`` checks a link before it is
    followed (a vendor's links must stay on its own API: credentials go with them).
    """

    kind = "next URL"

    def __init__(
        self,
        url_of: Callable[[Any, httpx.Response | None], object],
        *,
        allowed: Callable[[str], bool] | None = None,
        what: str = "pages",
        max_pages: int = DEFAULT_MAX_PAGES,
        subject: str | None = None,
        start: str | None = None,
    ) -> None:
        super().__init__(what=what, max_pages=max_pages, subject=subject, start=start)
        self._url_of = url_of
        self._allowed = allowed

    def next_token(self, document: Any, response: httpx.Response | None) -> str | None:
        if response is not None:
            self._seen.add(str(response.url))
        try:
            raw = self._url_of(document, response)
        except (KeyError, TypeError, IndexError):
            raw = None
        url = _text(raw, f"the {self.kind} of {self.what}", self.subject)
        if url is not None and self._allowed is not None and not self._allowed(url):
            raise VendorResponseError(
                f"the {self.kind} of {self.what} leaves the API: {_shorten(url)}",
                subject=self.subject,
            )
        return url

    def token_key(self, token: str) -> str:
        return str(httpx.URL(token))


class OffsetPaginator(Paginator[int]):
    """Pages by item offset (``startAt``, ``offset``): the next offset is this one plus the items
    the page held; the listing ends on a short or empty page, or at ``total`` when the page says
    it. ``items_of`` returns the page's items; ``total_of`` the listing's size, when known."""

    kind = "offset"

    def __init__(
        self,
        items_of: Callable[[Any], list[Any]],
        *,
        page_size: int,
        total_of: Callable[[Any], int | None] | None = None,
        what: str = "pages",
        max_pages: int = DEFAULT_MAX_PAGES,
        subject: str | None = None,
    ) -> None:
        super().__init__(what=what, max_pages=max_pages, subject=subject, start=0)
        self.page_size = page_size
        self._items_of = items_of
        self._total_of = total_of

    def next_token(self, document: Any, response: httpx.Response | None) -> int | None:
        offset = self.token or 0
        count = len(self._items_of(document))
        total = self._total_of(document) if self._total_of is not None else None
        following = offset + count
        if count == 0:
            if total is not None and following < total:
                raise VendorResponseError(
                    f"the vendor promised {total} {self.what} but the page at offset {offset} "
                    "is empty",
                    subject=self.subject,
                )
            return None
        if total is not None:
            return following if following < total else None
        return following if count >= self.page_size else None


class PageNumberPaginator(Paginator[int]):
    """Pages numbered from ``first`` (GitHub's ``page``): a short page or ``has_more`` false ends
    the listing. ``items_of`` returns the page's items."""

    kind = "page"

    def __init__(
        self,
        items_of: Callable[[Any], list[Any]],
        *,
        page_size: int,
        first: int = 1,
        has_more: Callable[[Any], bool] | None = None,
        what: str = "pages",
        max_pages: int = DEFAULT_MAX_PAGES,
        subject: str | None = None,
    ) -> None:
        super().__init__(what=what, max_pages=max_pages, subject=subject, start=first)
        self.page_size = page_size
        self._items_of = items_of
        self._has_more = has_more

    def next_token(self, document: Any, response: httpx.Response | None) -> int | None:
        count = len(self._items_of(document))
        more = self._has_more(document) if self._has_more is not None else None
        if count == 0 or more is False or (more is None and count < self.page_size):
            return None
        return (self.token or 0) + 1


class SamePageGuard:
    """Catches a vendor that ignores the paging parameter and serves one page again and again.

    Token-based guards cannot see this when the token advances but the page does not (an API
    that ignores ``page=``); comparing each page's content can. ``check`` raises on a page
    identical to an earlier one of the same listing.
    """

    def __init__(self, *, what: str = "pages", subject: str | None = None) -> None:
        self.what = what
        self.subject = subject
        self._seen: set[str] = set()

    def check(self, items: object, page: int) -> None:
        if items in (None, [], {}):
            return
        encoded = json.dumps(items, sort_keys=True, default=str).encode()
        fingerprint = hashlib.sha256(encoded).hexdigest()
        if fingerprint in self._seen:
            raise VendorResponseError(
                f"pagination loop: page {page} of {self.what} has the same items as an earlier "
                "page; the API ignores the paging parameter",
                subject=self.subject,
            )
        self._seen.add(fingerprint)


async def read_pages(
    paginator: Paginator[TokenT], fetch: Callable[[TokenT | None], Awaitable[Any]]
) -> list[Any]:
    """Every page of a listing, in order: ``fetch(token)`` reads one (``None`` for the first).

    ``fetch`` may return the parsed page or ``(page, response)`` when the paginator reads
    headers; the pages returned are the parsed documents.
    """
    pages: list[Any] = []
    while not paginator.finished:
        fetched = await fetch(paginator.token)
        if isinstance(fetched, tuple) and len(fetched) == 2:
            document, response = fetched
        else:
            document, response = fetched, None
        pages.append(document)
        paginator.advance(document, response)
    return pages
