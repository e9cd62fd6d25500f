"""How long the metadata requests behind the address guard's check of advertised brokers wait, one after the other."""

import pytest

from chargewire.kafka.producers import metadata_waits


def test_metadata_requests_wait_longer_each_time_and_the_connect_timeout_in_all() -> None:
    assert metadata_waits(5.0) == [0.25, 0.5, 1.0, 2.0, 1.25]


@pytest.mark.parametrize("total_s", [0.1, 0.25, 0.3, 3.0, 5.0, 30.0])
def test_metadata_requests_never_wait_longer_than_the_connect_timeout(total_s: float) -> None:
    waits = metadata_waits(total_s)

    assert sum(waits) == pytest.approx(total_s)
    assert all(wait > 0 for wait in waits)


def test_no_connect_timeout_means_no_metadata_request() -> None:
    assert metadata_waits(0.0) == []
