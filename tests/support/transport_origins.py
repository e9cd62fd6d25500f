"""Which test made a socket transport that is freed unclosed, and where.

Under `filterwarnings = error` such a transport fails whatever test runs when the garbage collector frees it,
often long after the test that made it, and asyncio's warning names neither (`unclosed transport
<_SelectorSocketTransport fd=30 read=idle ...>`). Each asyncio socket transport made during the run remembers the
test and the frames that made it, and one freed unclosed first warns with them; asyncio's own warning follows
(under `error`, the two fail the test running then as one group).
Remembering costs microseconds per connection; a `gc.collect()` after each test, to fail the test that made it
instead, took 0.2-0.9 s a test here (36 tests, loaded machine): many minutes over the run.
"""

from __future__ import annotations

import traceback
import warnings
from asyncio import selector_events
from typing import Any

_FRAMES = 12
_running = ["(no test)"]


def running(nodeid: str) -> None:
    """Note the test now running (`pytest_runtest_protocol`)."""
    _running[0] = nodeid


def install() -> None:
    """Make every asyncio socket transport remember its origin, and warn with it when freed unclosed."""
    # Private to asyncio (and to typeshed): the socket transport of the default loop, which the tests run on.
    classes = vars(selector_events)
    transport = classes["_SelectorSocketTransport"]
    made = transport.__init__
    freed = classes["_SelectorTransport"].__del__

    def remembering(self: Any, *args: Any, **kwargs: Any) -> None:
        self._test_origin = (_running[0], traceback.extract_stack(limit=_FRAMES)[:-1])
        made(self, *args, **kwargs)

    def warning_with_origin(self: Any, *args: Any) -> None:
        origin = getattr(self, "_test_origin", None)
        try:
            if origin is not None and getattr(self, "_sock", None) is not None:
                frames = "".join(traceback.format_list(origin[1]))
                warnings.warn(
                    f"unclosed {self!r}, made during {origin[0]} at:\n{frames}", ResourceWarning, stacklevel=1
                )
        finally:
            freed(self, *args)  # asyncio's own warning, and the socket closed

    transport.__init__ = remembering
    transport.__del__ = warning_with_origin
