"""Wake-ups: tell delivery workers that deliveries may be due, in this process and in all others.

Whatever makes deliveries due (a publish, a test send, a resend, a retry) fires the process's `WakeSignal`. A
dispatcher in the same process wakes at once. Other processes hear of it through the database's dialect
(`StoreDialect.wake_notifier` and `wake_listener`): on PostgreSQL a NOTIFY that every worker LISTENs to
(`store.dialects.postgresql_wakeups`), on SQLite a watch on the file's commits (`store.dialects.sqlite_wakeups`)
that a datagram from the committing process sets looking at once (`store.dialects.sqlite_wake_signal`). A publish
that PostgreSQL writes in one statement sends that NOTIFY in the statement itself, delivered at its commit
(`store.dialects.postgresql_publish`): it fires with `woken`, and only this process's waiters are called.

A publish or a test send names the webhook deliveries it made due (`fire(announced)`): PostgreSQL's NOTIFY carries
them, and a worker with no backlog leases exactly those in one statement instead of looking for what is due. A
wake-up that names none (a retry, a resend, SQLite's signal) means "look", as it always did.

An idle worker's poll stays the fallback: it sleeps until its first known due time, at most `worker_idle_poll_s`
(2 s by default), so a notification lost to a dropped connection, a failed send or a worker that was not
listening yet delays a delivery by at most that long and never loses it.
"""

from __future__ import annotations

from collections.abc import Callable

from chargewire.store.dialects.base import Announced

Waiter = Callable[[Announced], None]


class WakeSignal:
    """Calls every connected waiter when deliveries may have become due (a local dispatcher, the notifier)."""

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []
        self._notifiers: list[Waiter] = []

    def connect(self, waiter: Waiter) -> None:
        """Call `waiter` on every `fire()`."""
        self._waiters.append(waiter)

    def connect_notifier(self, notifier: Waiter) -> None:
        """Call `notifier`, which wakes other processes, on every `fire()` whose commit did not wake them itself."""
        self._notifiers.append(notifier)

    def fire(self, announced: Announced = (), woken: bool = False) -> None:
        """Tell every waiter that deliveries may be due, naming them when the caller knows them all (else "look");
        call it after the commit that made them due. `woken`: that commit woke other processes itself (PostgreSQL's
        one-statement publish sends the NOTIFY), so only this process's waiters are told."""
        for waiter in self._waiters:
            waiter(announced)
        if not woken:
            for notifier in self._notifiers:
                notifier(announced)
