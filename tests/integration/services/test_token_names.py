"""A token name one database could not hold is refused the same way on both, before the transaction."""

from __future__ import annotations

import pytest

from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime


@pytest.mark.parametrize("name", ["x" * 201, "ops\u0000bot"], ids=["over_200_characters", "holding_nul"])
async def test_a_token_name_no_database_can_hold_is_refused_naming_the_field(runtime: Runtime, name: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await runtime.tokens.create(name, ["events:publish"])
    assert list(refused.value.errors) == ["name"]


async def test_a_token_name_of_200_characters_is_accepted(runtime: Runtime) -> None:
    created = await runtime.tokens.create("x" * 200, ["events:publish"])
    assert created.token.name == "x" * 200
