"""What the OCPP tap's identity registry reads and writes (`store.ocpp_registry_store`), as records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ChargePointRecord:
    """One charge point the tap has seen, as `chargewire ocpp charge-points` and the back office list it."""

    identity: str
    charge_point_id: int
    version: str | None
    connected: bool
    changed_at: datetime
    last_message_at: datetime | None


@dataclass(frozen=True, slots=True)
class StartedSession:
    """A transaction's start as recorded: its session id, EVSE, id tag, start time (the charge point's) and meter."""

    id: int
    evse_id: int
    id_tag: str | None
    started_at: str
    meter_start: int
    stopped: bool


@dataclass(frozen=True, slots=True)
class SessionStart:
    """What a new transaction's row holds: whose, on which EVSE, under which transaction id, and its start."""

    charge_point_id: int
    evse_id: int
    transaction_key: str
    id_tag: str | None
    started_at: str
    meter_start: int


@dataclass(frozen=True, slots=True)
class StartRecorded:
    """What recording a start did: made a session (`session_id`), repeated an open one (the transaction id it
    `repeats`), or neither (its transaction id was recorded already)."""

    session_id: int | None = None
    repeats: str | None = None


@dataclass(slots=True)
class RegistryWrites:
    """The registry's writes of one batch, each key once: they go to the database in one transaction.

    `connects` maps an identity to its version and the time it connected; `disconnects` are charge point ids,
    closed at `disconnected_at`; `evses` are (charge point id, connector) pairs whose ids are wanted; `starts`
    are keyed by (charge point id, transaction id); `stops` are session ids; `numbers` maps a (charge point id,
    sequence name) to how many numbers to take from it.
    """

    connects: dict[str, tuple[str | None, datetime]] = field(default_factory=dict)
    disconnects: set[int] = field(default_factory=set)
    disconnected_at: datetime | None = None
    evses: set[tuple[int, int]] = field(default_factory=set)
    starts: dict[tuple[int, str], SessionStart] = field(default_factory=dict)
    stops: set[int] = field(default_factory=set)
    numbers: dict[tuple[int, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any((self.connects, self.disconnects, self.evses, self.starts, self.stops, self.numbers))


@dataclass(slots=True)
class RegistryIds:
    """What a batch of writes gave: charge point ids by identity, EVSE ids by (charge point id, connector),
    each start's outcome, the sessions this batch stopped (not those stopped before), and each sequence's last
    number taken."""

    charge_points: dict[str, int] = field(default_factory=dict)
    evses: dict[tuple[int, int], int] = field(default_factory=dict)
    starts: dict[tuple[int, str], StartRecorded] = field(default_factory=dict)
    stopped: set[int] = field(default_factory=set)
    numbers: dict[tuple[int, str], int] = field(default_factory=dict)
