"""Session services (PostgreSQL, Kafka) started in threads as soon as collection shows the run needs them.

A Kafka broker takes 5-10 s to start and a PostgreSQL cluster with its migrated template 2-5 s: started when the
first test asks, the run waits for both in turn; started beside the first tests (the CLI's, which need neither),
they are ready by then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
Opener = Callable[[contextlib.ExitStack], T]


class EarlyStarts:
    """Services started ahead by name; `taken` hands one out (or starts it then), `close` ends the unclaimed."""

    def __init__(self) -> None:
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="early-start")
        self._started: dict[str, Future[tuple[contextlib.ExitStack, Any]]] = {}

    def start(self, name: str, opener: Opener[Any]) -> None:
        """Start `opener` in a thread (it enters what must be closed at the end into the stack it is given)."""
        self._started[name] = self._threads.submit(_opened, opener)

    @contextlib.contextmanager
    def taken(self, name: str, opener: Opener[T]) -> Iterator[T]:
        """The service started ahead under `name` (raising what starting it raised), or started now; closed after."""
        future = self._started.pop(name, None)
        stack, service = future.result() if future is not None else _opened(opener)
        with stack:
            yield service

    def close(self) -> None:
        """Close what was started ahead and never taken."""
        for future in self._started.values():
            with contextlib.suppress(Exception):
                future.result()[0].close()
        self._started.clear()
        self._threads.shutdown(wait=True)


def _opened(opener: Opener[T]) -> tuple[contextlib.ExitStack, T]:
    stack = contextlib.ExitStack()
    try:
        return stack, opener(stack)
    except BaseException:
        stack.close()
        raise
