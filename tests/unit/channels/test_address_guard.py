"""The SSRF guard on addresses and IP-literal URLs (no DNS here: names are tested with a real channel)."""

from __future__ import annotations

import ipaddress

import pytest

from chargewire.channels.address_guard import (
    BlockedAddress,
    IPNetwork,
    blocked_reason,
    check_address,
    check_callback_url,
    check_host,
    is_blocked_address,
)
from chargewire.errors import PermanentDeliveryError

BLOCKED_V4 = {
    "0.0.0.0": "this network",
    "0.1.2.3": "this network",
    "10.0.0.1": "private",
    "10.255.255.255": "private",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "169.254.0.1": "link-local",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.0.0.8": "IETF protocol assignments",
    "192.0.2.1": "documentation",
    "192.88.99.1": "6to4 relay anycast",
    "192.168.1.1": "private",
    "198.18.0.1": "benchmarking",
    "198.19.255.255": "benchmarking",
    "198.51.100.7": "documentation",
    "203.0.113.9": "documentation",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
}
BLOCKED_V6 = {
    "::": "unspecified",
    "::1": "loopback",
    "::8.8.8.8": "IPv4-compatible (deprecated)",
    "100::1": "reserved",
    "5f00::1": "reserved",
    "fc00::1": "unique local",
    "fd12:3456::1": "unique local",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "febf::1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "ff05::1:3": "multicast",
    "2001:2::1": "benchmarking",
    "2001:10::1": "ORCHID",
    "2001:db8::1": "documentation",
    "3fff::1": "documentation",
}
# IPv6 forms that route to an IPv4 address are judged by that address.
BLOCKED_EMBEDDED_V4 = {
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:100.64.0.1": "carrier-grade NAT",
    "64:ff9b::7f00:1": "loopback",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "2002:7f00:1::1": "loopback",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1": "private",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe": "private",  # Teredo, client 10.0.0.1
}
METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "192.0.0.192",
    "168.63.129.16",
    "fd00:ec2::254",
    "fd20:ce::254",
    "::ffff:169.254.169.254",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "198.20.0.1",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8
]


def networks(*texts: str) -> list[IPNetwork]:
    """Parse an allow-list as the settings do."""
    return [ipaddress.ip_network(text) for text in texts]


@pytest.mark.parametrize(("address", "reason"), sorted(BLOCKED_V4.items()))
def test_guard_blocks_every_special_purpose_ipv4_range(address: str, reason: str) -> None:
    assert is_blocked_address(address)
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(("address", "reason"), sorted(BLOCKED_V6.items()))
def test_guard_blocks_every_non_public_ipv6_range(address: str, reason: str) -> None:
    assert is_blocked_address(address)
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(("address", "reason"), sorted(BLOCKED_EMBEDDED_V4.items()))
def test_guard_judges_ipv6_transition_forms_by_the_ipv4_address_inside(address: str, reason: str) -> None:
    assert blocked_reason(address) == f"{reason} (embedded in IPv6)"


@pytest.mark.parametrize("address", METADATA)
def test_guard_blocks_cloud_metadata_addresses(address: str) -> None:
    assert (blocked_reason(address) or "").startswith("cloud metadata service")


@pytest.mark.parametrize("address", PUBLIC)
def test_guard_lets_public_addresses_through(address: str) -> None:
    assert not is_blocked_address(address)
    assert blocked_reason(address) is None


def test_guard_accepts_address_objects_as_well_as_text() -> None:
    assert is_blocked_address(ipaddress.ip_address("127.0.0.1"))
    assert not is_blocked_address(ipaddress.ip_address("8.8.8.8"))


@pytest.mark.parametrize(
    ("allow", "address"),
    [
        (["127.0.0.0/8"], "127.0.0.1"),
        (["127.0.0.0/8"], "::ffff:127.0.0.1"),
        (["::1/128"], "::1"),
        (["10.0.0.0/8"], "10.20.30.40"),
        (["fd00::/8"], "fd12:3456::1"),
        (["100.64.0.0/10"], "100.64.0.1"),
        (["169.254.169.254/32"], "169.254.169.254"),
        (["0.0.0.0/0"], "192.168.1.1"),
    ],
)
def test_allow_list_admits_chosen_networks(allow: list[str], address: str) -> None:
    assert not is_blocked_address(address, networks(*allow))


@pytest.mark.parametrize(
    ("allow", "address"),
    [
        (["10.0.0.0/8"], "192.168.1.1"),
        (["127.0.0.0/8"], "::1"),
        (["::1/128"], "127.0.0.1"),
        (["192.168.1.0/24"], "192.168.2.1"),
    ],
)
def test_allow_list_admits_nothing_outside_its_networks(allow: list[str], address: str) -> None:
    assert is_blocked_address(address, networks(*allow))


@pytest.mark.parametrize(
    ("allow", "address"),
    [
        (["169.254.0.0/16"], "169.254.169.254"),
        (["100.64.0.0/10"], "100.100.100.200"),
        (["fd00::/8"], "fd00:ec2::254"),
        (["0.0.0.0/0"], "169.254.169.254"),
        (["0.0.0.0/0"], "::ffff:169.254.169.254"),
    ],
)
def test_allow_list_admits_a_metadata_address_only_when_it_names_exactly_that_address(
    allow: list[str], address: str
) -> None:
    assert is_blocked_address(address, networks(*allow))


def test_check_address_raises_a_permanent_blocked_address_error_naming_the_reason() -> None:
    with pytest.raises(BlockedAddress) as raised:
        check_address("10.0.0.1")

    assert isinstance(raised.value, PermanentDeliveryError)
    assert raised.value.error_class == "blocked_address"
    assert raised.value.address == "10.0.0.1"
    assert "private" in raised.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://10.1.2.3/hook",
        "http://[::1]:9000/hook",
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "https://[fd00:ec2::254]/",
    ],
)
async def test_callback_url_with_a_blocked_ip_literal_is_refused_at_subscribe_time(url: str) -> None:
    with pytest.raises(BlockedAddress):
        await check_callback_url(url)


@pytest.mark.parametrize("url", ["https://8.8.8.8/hook", "http://[2606:4700:4700::1111]:8443/hook"])
async def test_callback_url_with_a_public_ip_literal_is_accepted(url: str) -> None:
    await check_callback_url(url)


async def test_callback_url_with_an_allowed_ip_literal_is_accepted() -> None:
    await check_callback_url("http://127.0.0.1:8080/hook", networks("127.0.0.0/8"))


async def test_callback_url_without_a_host_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no host"):
        await check_callback_url("http:///hook")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("10.0.0.1", "The target resolves to a blocked address (10.0.0.1: private)."),
        ("169.254.169.254", "The target resolves to a blocked address (169.254.169.254: cloud metadata service)."),
        ("[::1]", "The target resolves to a blocked address (::1: loopback)."),
        ("fd00:ec2::254", "The target resolves to a blocked address (fd00:ec2::254: cloud metadata service)."),
    ],
)
async def test_host_that_is_a_blocked_ip_literal_is_refused_naming_address_and_reason(host: str, message: str) -> None:
    with pytest.raises(BlockedAddress) as raised:
        await check_host(host)

    assert raised.value.message == message


@pytest.mark.parametrize("host", ["8.8.8.8", "[2606:4700:4700::1111]", "2001:4860:4860::8888"])
async def test_host_that_is_a_public_ip_literal_is_accepted(host: str) -> None:
    await check_host(host)


async def test_host_that_is_an_allowed_ip_literal_is_accepted() -> None:
    await check_host("[::1]", networks("::1/128"))


async def test_a_name_that_resolves_to_a_blocked_address_is_refused_without_saying_what_it_resolves_to() -> None:
    with pytest.raises(BlockedAddress) as raised:
        await check_host("localhost")
    assert raised.value.message == "localhost resolves to a blocked address (one that is not public)."
    assert raised.value.address in ("127.0.0.1", "::1")
