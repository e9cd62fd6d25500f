"""Links the API writes into its answers (pagination), built from configuration, never from the `Host` header.

A client chooses the `Host` header, so a link built from it could point a cache, a log viewer or another
client at any site. Links start with `public_base_url` when it is set, and are relative to the host otherwise.
"""

from __future__ import annotations

from fastapi import Request

from chargewire.api.auth import runtime_of


def page_link(request: Request, **params: str | int) -> str:
    """The request's own path and query with `params` set: absolute under the public base URL, else relative."""
    url = request.url.include_query_params(**params) if params else request.url.replace(query="")
    query = f"?{url.query}" if url.query else ""
    return f"{runtime_of(request).settings.public_base_url.rstrip('/')}{url.path}{query}"
