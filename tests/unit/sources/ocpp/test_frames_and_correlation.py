"""Reading OCPP-J frames and matching calls with their answers per connection and direction."""

from __future__ import annotations

import pytest

from chargewire.sources.ocpp.correlation import MAX_OPEN_CALLS, Correlator, Direction
from chargewire.sources.ocpp.frames import Call, CallError, CallResult, Malformed, Other, parse_frame

CP = Direction.FROM_CHARGE_POINT
CSMS = Direction.FROM_CSMS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[2,"a","Heartbeat",{}]', Call("a", "Heartbeat", {})),
        ('[3,"a",{"currentTime":"x"}]', CallResult("a", {"currentTime": "x"})),
        ('[4,"a","NotImplemented","",{}]', CallError("a", "NotImplemented")),
        ('[6,"a","NotifyPeriodicEventStream",{}]', Other(6)),
        ('[5,"a","InternalError","",{}]', Other(5)),
        ("nope", Malformed("not json")),
        ('{"a":1}', Malformed("not an ocpp-j frame")),
        ('[2,1,"Heartbeat",{}]', Malformed("not an ocpp-j frame")),
        ('[2,"a","Heartbeat"]', Malformed("call without action")),
        ('[2,"a","Heartbeat",[]]', Malformed("payload not an object")),
        ('["2","a","Heartbeat",{}]', Malformed("unknown message type")),
        ("[" * 5000 + "]" * 5000, Malformed("not json")),
    ],
)
def test_parse_frame_reads_calls_answers_and_names_what_is_not_a_frame(text: str, expected: object) -> None:
    assert parse_frame(text) == expected


def test_answer_completes_the_call_of_the_other_direction_with_the_same_id() -> None:
    correlator = Correlator()
    assert correlator.observe(CP, Call("1", "Authorize", {"idTag": "A"})) is None
    assert correlator.observe(CSMS, Call("1", "GetConfiguration", {})) is None

    from_csms = correlator.observe(CSMS, CallResult("1", {"idTagInfo": {"status": "Accepted"}}))
    from_charge_point = correlator.observe(CP, CallError("1", "NotSupported"))

    assert from_csms is not None
    assert (from_csms.direction, from_csms.call.action) == (CP, "Authorize")
    assert from_charge_point is not None
    assert (from_charge_point.call.action, from_charge_point.result, from_charge_point.error_code) == (
        "GetConfiguration",
        None,
        "NotSupported",
    )


def test_duplicate_or_unknown_answers_complete_nothing() -> None:
    correlator = Correlator()
    correlator.observe(CP, Call("1", "Heartbeat", {}))
    assert correlator.observe(CSMS, CallResult("1", {})) is not None
    assert correlator.observe(CSMS, CallResult("1", {})) is None
    assert correlator.observe(CSMS, CallResult("never-asked", {})) is None


def test_open_calls_are_bounded_and_the_oldest_forgotten_first() -> None:
    correlator = Correlator()
    for number in range(MAX_OPEN_CALLS + 1):
        correlator.observe(CP, Call(str(number), "Heartbeat", {}))

    assert correlator.observe(CSMS, CallResult("0", {})) is None
    assert correlator.observe(CSMS, CallResult(str(MAX_OPEN_CALLS), {})) is not None
