"""Sign-in throttling: guessing slows down, and an attacker cannot lock the operator's own browser out."""

from __future__ import annotations

from chargewire.services.sign_in_throttle import ACCOUNT_BUDGET, CLIENT_BUDGET, MAX_DELAY_S, WINDOW_S, SignInThrottle
from tests.support.manual_clock import ManualClock

ACCOUNT = "ops@example.com"


def test_waits_double_after_three_failures_from_one_client_on_one_account() -> None:
    clock = ManualClock()
    throttle = SignInThrottle(clock)
    waits = []
    for _ in range(7):
        waits.append(throttle.wait_s(ACCOUNT, "10.0.0.1", known_client=False))
        throttle.failed(ACCOUNT, "10.0.0.1")
    assert waits == [0, 0, 0, 1, 2, 4, 8]
    assert throttle.wait_s(ACCOUNT, "10.0.0.2", known_client=False) == 0


def test_the_wait_of_one_client_never_grows_past_the_maximum_and_a_success_clears_it() -> None:
    clock = ManualClock()
    throttle = SignInThrottle(clock)
    for _ in range(40):
        throttle.failed(ACCOUNT, "10.0.0.1")
        clock.now += 1
    assert throttle.wait_s(ACCOUNT, "10.0.0.1", known_client=True) == MAX_DELAY_S - 1
    throttle.succeeded(ACCOUNT, "10.0.0.1")
    assert throttle.wait_s(ACCOUNT, "10.0.0.1", known_client=True) == 0


def test_a_client_spraying_many_accounts_is_held_by_its_own_budget() -> None:
    throttle = SignInThrottle(ManualClock())
    for index in range(CLIENT_BUDGET):
        throttle.failed(f"user{index}@example.com", "10.0.0.1")
    assert throttle.wait_s("fresh@example.com", "10.0.0.1", known_client=False) > 0
    assert throttle.wait_s("fresh@example.com", "10.0.0.9", known_client=False) == 0


def test_a_spread_out_guess_holds_new_clients_but_never_the_operators_known_browser() -> None:
    clock = ManualClock()
    throttle = SignInThrottle(clock)
    for index in range(ACCOUNT_BUDGET):
        throttle.failed(ACCOUNT, f"198.51.100.{index}")
    assert throttle.wait_s(ACCOUNT, "203.0.113.5", known_client=False) > 0
    assert throttle.wait_s(ACCOUNT, "203.0.113.5", known_client=True) == 0
    clock.now += WINDOW_S
    assert throttle.wait_s(ACCOUNT, "203.0.113.5", known_client=False) == 0
