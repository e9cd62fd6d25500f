"""Which known event an unknown name probably meant: a typo's neighbour, or the event a word points to.

A name close to a known one letter by letter (`SessionUpdateNotifcation`, `evse.change`) is a typo and gets
that neighbour. Otherwise the name is read as words (`ChargePointBooted`: charge, point, boot) and matched
against each event's name and description, which names the OCPP messages it derives from; rare words count
most, so `boot` points to `BootNotification` where the common `charge point` would point anywhere.
"""

from __future__ import annotations

import difflib
import math
import re
from functools import cache

from chargewire.catalog.event_type import load_event_types

_TYPO_RATIO = 0.8
_LOOSE_RATIO = 0.5
_NEAR_BEST = 0.6
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_SUFFIXES = ("ing", "ed", "es", "s")
_MIN_STEM = 3


def _stems(text: str) -> frozenset[str]:
    """Lower-case word stems of camelCase, dotted or plain text: `ChargePointBooted` -> charge, point, boot."""
    stems = set()
    for word in _WORD.findall(text):
        stem = word.lower()
        for suffix in _SUFFIXES:
            if stem.endswith(suffix) and len(stem) - len(suffix) >= _MIN_STEM:
                stem = stem.removesuffix(suffix)
                break
        if len(stem) >= _MIN_STEM:
            stems.add(stem)
    return frozenset(stems)


@cache
def _word_index() -> tuple[dict[str, frozenset[str]], dict[str, float]]:
    """Each event's stems (name and description), and each stem's weight (rarer is heavier)."""
    documents = {name: _stems(name) | _stems(event.description) for name, event in load_event_types().items()}
    counts: dict[str, int] = {}
    for stems in documents.values():
        for stem in stems:
            counts[stem] = counts.get(stem, 0) + 1
    weights = {stem: math.log(len(documents) / count) for stem, count in counts.items()}
    return documents, weights


def _lexical(name: str, limit: int, cutoff: float) -> list[str]:
    by_lower = {known.lower(): known for known in load_event_types()}
    return [by_lower[match] for match in difflib.get_close_matches(name.lower(), list(by_lower), limit, cutoff)]


def _by_words(name: str, limit: int) -> list[str]:
    documents, weights = _word_index()
    wanted = _stems(name)
    scores = {event: sum(weights[stem] for stem in wanted & stems) for event, stems in documents.items()}
    best = max(scores.values(), default=0.0)
    if best <= 0:
        return []
    ranked = sorted((event for event, score in scores.items() if score >= best * _NEAR_BEST), key=lambda e: -scores[e])
    return ranked[:limit]


def closest_event_names(name: str, limit: int = 3) -> list[str]:
    """Known event names that `name` most likely meant, best first (empty when nothing is close)."""
    return _lexical(name, limit, _TYPO_RATIO) or _by_words(name, limit) or _lexical(name, limit, _LOOSE_RATIO)
