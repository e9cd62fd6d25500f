"""Stateful fuzzing: chains of calls where one answer's ids feed the next, along the OpenAPI document's links.

schemathesis builds a state machine from the links the served document declares (`chargewire/api/openapi_links.py`):
create a subscription, then read, replace, rotate its secret twice, test-send, delete it and update the deleted
one; publish, then list, read and retry the deliveries. Single fuzzed calls rarely reach those states, because
a random id is almost never a real one. Every step is sent with a token of one scope, on both stores, and must
pass the same checks as the stateless fuzzer: no 5xx, a 422 that names its fields, conformance where the
notifications API promises it.

`CHARGEWIRE_FUZZ_SCENARIOS` (default 8) and `CHARGEWIRE_FUZZ_STEPS` (default 10, the most steps per scenario)
set the run per scope and store; `make fuzz` makes a long run and prints the steps and statuses it reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.core.transport import Response
from schemathesis.openapi import from_dict

from chargewire.config import Settings
from tests.support.fuzzing import SCOPES, FuzzTarget, check_answer, env_count, fuzz_target, seed

SCENARIOS = env_count("CHARGEWIRE_FUZZ_SCENARIOS", 8)
STEPS_PER_SCENARIO = env_count("CHARGEWIRE_FUZZ_STEPS", 10)


@pytest.fixture
def target(settings: Settings) -> Iterator[FuzzTarget]:
    with fuzz_target(settings) as opened:
        yield opened


# A replayed scenario can draw differently once the server's state has moved on (hypothesis then raises
# FlakyStrategyDefinition); like schemathesis's own runner, fuzzing goes on in a fresh session, a few times at most.
SESSIONS = 4


def _run_chains(target: FuzzTarget, token: str, scenarios: int) -> tuple[Counter[tuple[str, int]], list[str]]:
    """Run the state machine against the target with this token: (operation, status) of every step, and failures."""
    reached: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    machine = from_dict(target.app.openapi()).as_state_machine()

    class Chains(machine):  # type: ignore[valid-type, misc]
        def call(self, case: Case, **kwargs: Any) -> Response:
            return Response.from_httpx(target.send(case, token), verify=True)

        def validate_response(
            self, response: Response, case: Case, additional_checks: list[CheckFunction] | None = None, **kwargs: Any
        ) -> None:
            reached[(f"{case.method} {case.operation.path}", response.status_code)] += 1
            try:
                check_answer(case, response)
            except Exception as failure:
                # Kept here too: a session that ends in FlakyStrategyDefinition would otherwise hide it.
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {failure}")
                raise

    chains = settings(
        max_examples=scenarios,
        stateful_step_count=STEPS_PER_SCENARIO,
        phases=[Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    for _ in range(SESSIONS):
        try:
            Chains.run(settings=chains)
            break
        except FlakyStrategyDefinition:
            continue
    return reached, failures


def _report(scope: str, reached: Counter[tuple[str, int]]) -> None:
    print(f"\n{scope}: {sum(reached.values())} steps")  # read by `make fuzz` (pytest -s) for docs/reliability.md
    for (operation, status), count in sorted(reached.items()):
        print(f"  {count:6d}  {status}  {operation}")


@pytest.mark.parametrize("scope", SCOPES)
def test_chained_requests_never_get_a_5xx_and_every_422_names_its_fields(target: FuzzTarget, scope: str) -> None:
    token, _ = seed(target, scope)
    reached, failures = _run_chains(target, token, SCENARIOS)
    _report(scope, reached)
    assert not failures, failures
    if scope != "admin":
        return  # a narrower token is refused (403) most operations, so its chains stop early
    # The chains must have carried ids from answer to answer: an operation on a record answered 2xx.
    assert any("{" in operation and status < 300 for (operation, status) in reached), reached
