"""Fuzzing the HTTP API from its own OpenAPI schema (schemathesis strategies driven by hypothesis).

Valid and invalid requests for every documented operation, sent with a token of each scope to the app in
process: no request may get a 5xx, every 422 must be `{message, errors: {field: [messages]}}` with named fields,
and every response of the notifications API must match the status codes and schemas its OpenAPI entries declare.
`CHARGEWIRE_FUZZ_EXAMPLES` sets the number of requests per backend with the admin token (default 300, a few
seconds, and 150 to the rest of the API; a fifth of 300 with each other scope); a long run sets it to thousands
(`make fuzz`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.openapi import from_dict

from chargewire.config import Settings
from tests.support.fuzzing import SCOPES, FuzzTarget, check_answer, env_count, fuzz_target, is_notifications_api, seed

MAX_EXAMPLES = env_count("CHARGEWIRE_FUZZ_EXAMPLES", 300)
# The short run's admin examples to the rest of the API, which has fewer operations: 150 reached every operation and
# (operation, status) pair that 300 did, in each of three runs of both. A long run sends it MAX_EXAMPLES too.
REST_EXAMPLES = env_count("CHARGEWIRE_FUZZ_EXAMPLES", 150)
PATH_IDS = ("notification", "subscription_id")


@pytest.fixture
def target(settings: Settings) -> Iterator[FuzzTarget]:
    with fuzz_target(settings) as opened:
        yield opened


def _cases(schema_dict: dict[str, Any], seeded_ids: list[str], notifications_api: bool) -> st.SearchStrategy[Case]:
    schema = from_dict(schema_dict)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if is_notifications_api(operation.path) is not notifications_api:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
            names = [name for name in PATH_IDS if "{" + name + "}" in operation.path]
            for name in names:
                for seeded in seeded_ids:
                    strategies.append(operation.as_strategy(generation_mode=mode, path_parameters={name: seeded}))
    return st.one_of(strategies)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("part", ["notifications API", "rest of the API"])
def test_fuzzed_requests_never_get_a_5xx_and_every_422_names_its_fields(
    target: FuzzTarget, part: str, scope: str
) -> None:
    notifications_api = part == "notifications API"
    token, seeded_ids = seed(target, scope)
    admin_examples = MAX_EXAMPLES if notifications_api else REST_EXAMPLES
    examples = admin_examples if scope == "admin" else max(1, MAX_EXAMPLES // 5)
    statuses: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=_cases(target.app.openapi(), seeded_ids, notifications_api))
    def send(case: Case) -> None:
        response: httpx.Response = target.send(case, token)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        check_answer(case, response)

    send()
    print(f"\n{part}, {scope}: {sum(statuses.values())} requests, by status {dict(sorted(statuses.items()))}")
    if scope != "admin":
        return  # most of what a narrower token sends is refused (403) before validation
    # The run must have reached past authentication and validation, or it tested little.
    assert statuses.get(422, 0) > 0, statuses
    assert any(200 <= status < 300 for status in statuses), statuses
    if notifications_api:
        assert statuses.get(201, 0) > 0, statuses
