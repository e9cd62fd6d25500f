"""`links` and `meta` of a cursor-paged list, in the contract's shape (reference: notifications-api.md).

The Notifications API's lists carry `links: {first, last, prev, next}` and `meta: {path, per_page,
next_cursor, prev_cursor}`, snake_case beside camelCase data as the original platform has it; chargewire's own
lists (the delivery log) use the same shape so that one client helper pages through both.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request


def cursor_page_links(
    request: Request, per_page: int, next_cursor: str | None, prev_cursor: str | None
) -> dict[str, dict[str, Any]]:
    """The `links` and `meta` members of a page whose neighbours are reached by these cursors."""

    def link(cursor: str | None) -> str | None:
        return str(request.url.include_query_params(cursor=cursor)) if cursor else None

    return {
        "links": {"first": None, "last": None, "prev": link(prev_cursor), "next": link(next_cursor)},
        "meta": {
            "path": str(request.url.replace(query="")).rstrip("?"),
            "per_page": per_page,
            "next_cursor": next_cursor,
            "prev_cursor": prev_cursor,
        },
    }
