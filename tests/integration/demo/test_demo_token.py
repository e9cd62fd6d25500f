"""`make demo` keeps one active admin token named "demo", whatever the number of runs."""

from __future__ import annotations

from chargewire.demo import demo_token
from chargewire.runtime import Runtime


async def test_each_demo_run_revokes_the_earlier_runs_demo_tokens(runtime: Runtime) -> None:
    other = await runtime.tokens.create("csms", ["events:publish"])
    first = await demo_token(runtime)
    second = await demo_token(runtime)
    active = {token.id: token.name for token in await runtime.tokens.list()}
    assert active == {other.token.id: "csms", second.token.id: "demo"}
    assert first.token.id not in active
