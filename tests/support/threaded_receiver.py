"""The recording receiver on a thread of its own, for tests that drive subprocesses synchronously."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.support.receiver import Receiver


@contextlib.contextmanager
def receiver_in_thread() -> Iterator[Receiver]:
    """Start a Receiver on its own event loop in a daemon thread; stop it when the block ends."""
    loop = asyncio.new_event_loop()
    receiver = Receiver()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
