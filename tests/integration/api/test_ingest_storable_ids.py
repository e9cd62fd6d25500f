"""Entity ids one database could not hold get the same 422 on both, and never fail another client's publish."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest

from chargewire.catalog import load_event_types
from tests.conftest import TokenFactory, bearer

EXAMPLES = {name: event_type.example for name, event_type in load_event_types().items()}
BOOT = EXAMPLES["BootNotification"]


def _session_with_id(session_id: str) -> dict[str, Any]:
    """A session update whose entity id (`session.id`, free text in its schema) is `session_id`."""
    payload = copy.deepcopy(EXAMPLES["SessionUpdateNotification"])
    payload["session"]["id"] = session_id
    return payload


@pytest.fixture
async def publisher(token_factory: TokenFactory) -> dict[str, str]:
    return bearer(await token_factory("events:publish"))


@pytest.mark.parametrize(
    ("session_id", "message"),
    [("x" * 201, "at most 200 characters"), ("a\u0000b", "NUL")],
    ids=["over_200_characters", "holding_nul"],
)
async def test_an_entity_id_no_database_can_hold_is_a_422_naming_the_field(
    session_id: str, message: str, api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    response = await api.post("/api/v1/events", json=[BOOT, _session_with_id(session_id)], headers=publisher)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == ["1.session.id"]
    assert message in errors["1.session.id"][0]


async def test_an_entity_id_of_exactly_200_characters_is_accepted(
    api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    response = await api.post("/api/v1/events", json=_session_with_id("x" * 200), headers=publisher)
    assert response.status_code == 202


async def test_valid_publishes_sharing_a_group_commit_with_a_bad_one_are_all_accepted(
    api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    bad = [_session_with_id("x" * 300), _session_with_id("nul\u0000")]
    bodies = [bad[index % 2] if index % 10 == 0 else BOOT for index in range(60)]
    responses = await asyncio.gather(*(api.post("/api/v1/events", json=body, headers=publisher) for body in bodies))
    statuses = [response.status_code for response in responses]
    assert [status for index, status in enumerate(statuses) if index % 10] == [202] * 54
    assert [status for index, status in enumerate(statuses) if not index % 10] == [422] * 6
