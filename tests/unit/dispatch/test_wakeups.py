"""The coalescing of wake-up NOTIFYs, with a send that the test holds open and releases."""

from __future__ import annotations

import asyncio

from chargewire.dispatch.wakeups import WakeSignal
from chargewire.store.dialects.postgresql_wakeups import Coalescer
from chargewire.waiting import reconnect_delay_s


class HeldSend:
    """A send that records each run and does not finish until the test releases it."""

    def __init__(self) -> None:
        self.started = 0
        self.started_event = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.started += 1
        self.started_event.set()
        await self.release.wait()
        self.release.clear()


async def test_many_requests_before_a_send_starts_cost_one_send() -> None:
    send = HeldSend()
    coalescer = Coalescer(send)
    for _ in range(100):
        coalescer.request()
    send.release.set()
    await coalescer.flush()
    assert send.started == 1


async def test_requests_made_while_a_send_runs_cost_exactly_one_more_send_after_it() -> None:
    send = HeldSend()
    coalescer = Coalescer(send)
    coalescer.request()
    await send.started_event.wait()
    send.started_event.clear()
    for _ in range(100):
        coalescer.request()
    assert send.started == 1, "a second send started while the first was in flight"
    send.release.set()
    await asyncio.wait_for(send.started_event.wait(), 5)
    send.release.set()
    await coalescer.flush()
    assert send.started == 2


async def test_a_request_after_the_sends_finished_starts_a_new_send() -> None:
    send = HeldSend()
    coalescer = Coalescer(send)
    coalescer.request()
    send.release.set()
    await coalescer.flush()
    coalescer.request()
    send.release.set()
    await coalescer.flush()
    assert send.started == 2


async def test_closing_cancels_a_send_that_does_not_finish_in_time() -> None:
    send = HeldSend()
    coalescer = Coalescer(send)
    coalescer.request()
    await coalescer.aclose(timeout_s=0.01)
    assert send.started == 1


def test_wake_signal_calls_every_connected_waiter_with_the_deliveries_it_names() -> None:
    calls: list[tuple[str, object]] = []
    signal = WakeSignal()
    signal.connect(lambda announced: calls.append(("dispatcher", announced)))
    signal.connect_notifier(lambda announced: calls.append(("notifier", announced)))
    signal.fire()
    signal.fire([("dlv_1", "sub_a")])
    assert calls == [
        ("dispatcher", ()),
        ("notifier", ()),
        ("dispatcher", [("dlv_1", "sub_a")]),
        ("notifier", [("dlv_1", "sub_a")]),
    ]


def test_a_wake_whose_commit_woke_other_processes_itself_calls_only_this_process_waiters() -> None:
    calls: list[tuple[str, object]] = []
    signal = WakeSignal()
    signal.connect(lambda announced: calls.append(("dispatcher", announced)))
    signal.connect_notifier(lambda announced: calls.append(("notifier", announced)))
    signal.fire([("dlv_1", "sub_a")], woken=True)
    assert calls == [("dispatcher", [("dlv_1", "sub_a")])]


def test_reconnect_delay_doubles_up_to_its_cap() -> None:
    delays = [reconnect_delay_s(failures, first_s=0.5, max_s=5.0) for failures in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert reconnect_delay_s(10_000, first_s=0.5, max_s=5.0) == 5.0
