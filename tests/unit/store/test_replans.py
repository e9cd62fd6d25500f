"""A statement is planned anew on its connection each time its calls there, or the time since its first call, double."""

from __future__ import annotations

from chargewire.store.dialects.postgresql_replans import FIRST_REPLAN_S, PlanAge, Replanned

SQL = "SELECT 1"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def marks(replanned: Replanned, calls: int, clock: Clock | None = None, step_s: float = 0.0) -> list[str]:
    """The SQL sent on each of `calls` calls, `step_s` apart."""
    sent = []
    for _ in range(calls):
        sent.append(replanned.sql(SQL))
        if clock is not None:
            clock.now += step_s
    return sent


def test_a_statement_is_planned_anew_each_time_its_calls_double() -> None:
    sent = marks(Replanned(4, Clock()), 17)

    assert [index for index, sql in enumerate(sent) if sql != sent[index - 1]][1:] == [4, 8, 16]
    assert sent[16] == f"{SQL} /* planned anew at 16 */"


def test_a_rarely_called_statement_is_planned_anew_each_time_the_time_since_its_first_call_doubles() -> None:
    clock = Clock()
    replanned = Replanned(1000, clock)

    sent = marks(replanned, 9, clock, step_s=FIRST_REPLAN_S / 2)

    # Calls at 0, 0.5, 1, 1.5, ... times FIRST_REPLAN_S: anew at 1 (10 s), then at 2 (20 s), then at 4 (40 s).
    assert sent[:2] == [SQL, SQL]
    assert sent[2] == f"{SQL} /* planned anew at 2 */"
    assert sent[3] == sent[2]
    assert sent[4] == f"{SQL} /* planned anew at 4 */"
    assert sent[5:8] == [sent[4]] * 3
    assert sent[8] == f"{SQL} /* planned anew at 8 */"


def test_another_statement_starts_both_counts_again() -> None:
    clock = Clock()
    replanned = Replanned(4, clock)
    marks(replanned, 3, clock, step_s=FIRST_REPLAN_S)

    assert replanned.sql("SELECT 2") == "SELECT 2"
    clock.now += FIRST_REPLAN_S / 2
    assert replanned.sql("SELECT 2") == "SELECT 2"


def test_plans_are_due_each_time_the_time_since_the_first_call_doubles() -> None:
    clock = Clock()
    age = PlanAge(clock)
    due = []
    for _ in range(9):
        clock.now += FIRST_REPLAN_S / 2
        due.append(age.due())

    # At 0.5, 1, 1.5, ... 4.5 times FIRST_REPLAN_S: due at 1, then at 2 (twice 1), then at 4.
    assert due == [False, True, False, True, False, False, False, True, False]
