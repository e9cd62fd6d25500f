"""Links the API writes into its answers (pagination), built from configuration, never from the `Host` header.

Cursor-paged lists (the Notifications API's and the delivery log) carry the contract's `links: {first, last, prev,
next}` and `meta: {path, per_page, next_cursor, prev_cursor}` (reference: notifications-api.md), snake_case beside
camelCase data as the original platform has it, so that one client helper pages through both.

A client chooses the `Host` header, so a link built from it could point a cache, a log viewer or another
client at any site. Links start with `public_base_url` when it is set, and are relative to the host otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from chargewire.api.auth import runtime_of


def page_link(request: Request, **params: str | int) -> str:
    """The request's own path and query with `params` set: absolute under the public base URL, else relative."""
    url = request.url.include_query_params(**params) if params else request.url.replace(query="")
    query = f"?{url.query}" if url.query else ""
    return f"{runtime_of(request).settings.public_base_url.rstrip('/')}{url.path}{query}"


def cursor_page_links(
    request: Request, per_page: int, next_cursor: str | None, prev_cursor: str | None
) -> dict[str, dict[str, Any]]:
    """The `links` and `meta` members of a page whose neighbours are reached by these cursors."""

    def link(cursor: str | None) -> str | None:
        return page_link(request, cursor=cursor) if cursor else None

    return {
        "links": {"first": None, "last": None, "prev": link(prev_cursor), "next": link(next_cursor)},
        "meta": {
            "path": page_link(request),
            "per_page": per_page,
            "next_cursor": next_cursor,
            "prev_cursor": prev_cursor,
        },
    }
