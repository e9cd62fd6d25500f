"""The layers every request to the served app passes through, and the last-resort answer of the outermost."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from chargewire.runtime import Runtime
from chargewire.web import create_app


def _layers(app: FastAPI) -> list[str]:
    names = []
    layer = app.build_middleware_stack()
    while layer is not app.router:
        names.append(type(layer).__name__)
        layer = layer.app  # type: ignore[attr-defined]
    return names


async def test_requests_pass_starlettes_error_layers_chargewires_one_layer_and_fastapis_exit_stack_only(
    runtime: Runtime,
) -> None:
    assert _layers(create_app(runtime)) == [
        "ServerErrorMiddleware",
        "RequestLayer",
        "ExceptionMiddleware",
        "AsyncExitStackMiddleware",
    ]


async def test_an_unexpected_error_is_answered_with_an_opaque_json_500(runtime: Runtime) -> None:
    app = create_app(runtime)

    async def fails() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/fails", fails)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as client:
        response = await client.get("/fails")
    assert response.status_code == 500
    assert response.json() == {"message": "Server Error"}
