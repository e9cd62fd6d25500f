"""Subscription filters: the payload filter language, checked and compiled into predicates, and their cache.

Pure logic, below both `services` (which checks a filter when a subscription is written and applies it at
publish) and the Kafka streams (which apply it to what a stream reads): neither reaches up to the other for it.
"""

from chargewire.filters.cache import FilterCache
from chargewire.filters.language import FilterLimits, Predicate, check_filter, compile_filter, matches

__all__ = ["FilterCache", "FilterLimits", "Predicate", "check_filter", "compile_filter", "matches"]
