"""Rows the database refuses: told apart from a database that cannot be reached, and written around.

A batch written in one transaction fails whole when one of its rows is refused: a value its column cannot hold
(too long, a NUL in PostgreSQL text, a lone surrogate no driver encodes) or a constraint it breaks (its
delivery deleted meanwhile). `write_apart` then writes the batch in halves, down to the refused rows alone, so
the rest is written, and gives each refused row its fallback forms in turn; a row no form gets in is given up,
with its error logged. A write that cannot be split (a Kafka stream's batch, which moves the stream once) is
written again with every item in its fallback form (`write_whole`). An error that is not a refusal (the
database unavailable, locked, out of disk, a connection reset) is re-raised unchanged at once: it concerns
every row alike, and is the caller's to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
from sqlalchemy.exc import DataError, IntegrityError, StatementError

logger = logging.getLogger(__name__)

Item = TypeVar("Item")


def refused(error: BaseException) -> bool:
    """Whether `error` says the database (or its driver) refused the values written, not that it was unreachable."""
    if isinstance(error, DataError | IntegrityError):
        return True
    if isinstance(error, StatementError):
        # COPY errors come wrapped with asyncpg's own as `orig`; a bind that failed to convert, with Python's.
        return error.orig is not None and refused(error.orig)
    if isinstance(error, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
        return True
    # A value the driver or the JSON encoder cannot encode (UnicodeEncodeError is a ValueError; orjson raises
    # TypeError for a lone surrogate).
    return isinstance(error, ValueError | TypeError)


async def write_apart(
    items: Sequence[Item],
    write: Callable[[Sequence[Item]], Awaitable[None]],
    fallbacks: Sequence[Callable[[Item], Item]],
    name: Callable[[Item], str],
) -> None:
    """Write `items` with `write` in one call; when the database refuses them, write around the refused ones.

    `fallbacks` are the forms a refused item is tried in, in order (fewer of its own values each time);
    `name` says which item a refusal was of, for the log.
    """
    try:
        await write(items)
        return
    except Exception as error:
        if not refused(error):
            raise
        last = error
    if len(items) > 1:
        middle = len(items) // 2
        await write_apart(items[:middle], write, fallbacks, name)
        await write_apart(items[middle:], write, fallbacks, name)
        return
    for fallback in fallbacks:
        try:
            await write([fallback(items[0])])
        except Exception as error:
            if not refused(error):
                raise
            last = error
        else:
            logger.warning("the database refused %s; written without its details: %s", name(items[0]), last)
            return
    logger.error("the database refused %s in every form; given up", name(items[0]), exc_info=last)


async def write_whole(
    items: Sequence[Item],
    write: Callable[[Sequence[Item]], Awaitable[None]],
    fallback: Callable[[Item], Item],
    what: str,
) -> None:
    """Write `items` with `write`, a write that cannot be split; when refused, once more with every item in its
    `fallback` form, rather than failing the same way on every try."""
    try:
        await write(items)
    except Exception as error:
        if not refused(error):
            raise
        logger.warning("the database refused %s; writing it without its details: %s", what, error)
        await write([fallback(item) for item in items])
