"""The SSRF guard: webhook targets and Kafka brokers must be public addresses, unless an operator allows them.

Blocked (IANA special-purpose registries, plus cloud metadata services):

- IPv4: this-network 0/8, private 10/8 172.16/12 192.168/16, CGNAT 100.64/10, loopback 127/8, link-local
  169.254/16, IETF 192.0.0/24, documentation 192.0.2/24 198.51.100/24 203.0.113/24, 6to4 relay 192.88.99/24,
  benchmarking 198.18/15, multicast 224/4, reserved 240/4 (with broadcast).
- IPv6: everything outside global unicast 2000::/3 (unspecified, loopback, IPv4-compatible ::/96, discard
  100::/64, ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, ...), and inside it
  the benchmarking, ORCHID and documentation ranges (2001:2::/48, 2001:10::/28, 2001:db8::/32, 3fff::/20).
- IPv6 forms that carry an IPv4 address (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo
  2001::/32) are judged by the IPv4 address inside, since that is where the packets end up.
- Metadata services: 169.254.169.254, 169.254.170.2, 100.100.100.200, 192.0.0.192, 168.63.129.16 (Azure,
  a public address), fd00:ec2::254, fd20:ce::254. An allow-list network admits one of these only when it
  names that single address: allowing 100.64.0.0/10 for a pod network does not expose Alibaba's metadata.

The check runs twice: when a subscription is created (`check_callback_url` and, for each broker,
`check_host`: advisory, so a typo is caught early) and at delivery (`resolve_allowed`). For webhooks it is
plugged into the HTTP client as its resolver, so the addresses actually connected to are checked and a name
re-pointed after the first check (DNS rebinding) is still refused. For Kafka, librdkafka only dials the
loopback listeners of `chargewire.kafka.connector`, which calls `resolve_allowed` on every broker connection
and connects to exactly an address it returned; the Kafka channel also checks the bootstrap and advertised
brokers before producing, for an early answer (see `chargewire.kafka.broker_checks`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from chargewire.errors import PermanentDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

BLOCKED_V4_NETWORKS: dict[IPNetwork, str] = {
    _V4("0.0.0.0/8"): "this network",
    _V4("10.0.0.0/8"): "private",
    _V4("100.64.0.0/10"): "carrier-grade NAT",
    _V4("127.0.0.0/8"): "loopback",
    _V4("169.254.0.0/16"): "link-local",
    _V4("172.16.0.0/12"): "private",
    _V4("192.0.0.0/24"): "IETF protocol assignments",
    _V4("192.0.2.0/24"): "documentation",
    _V4("192.88.99.0/24"): "6to4 relay anycast",
    _V4("192.168.0.0/16"): "private",
    _V4("198.18.0.0/15"): "benchmarking",
    _V4("198.51.100.0/24"): "documentation",
    _V4("203.0.113.0/24"): "documentation",
    _V4("224.0.0.0/4"): "multicast",
    _V4("240.0.0.0/4"): "reserved",
}
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
BLOCKED_V6_NETWORKS: dict[IPNetwork, str] = {
    _V6("2001:2::/48"): "benchmarking",
    _V6("2001:10::/28"): "ORCHID",
    _V6("2001:db8::/32"): "documentation",
    _V6("3fff::/20"): "documentation",
}
_NAT64 = _V6("64:ff9b::/96")
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "168.63.129.16",  # Azure WireServer: public, so only this entry blocks it
        "fd00:ec2::254",  # AWS over IPv6
        "fd20:ce::254",  # GCP over IPv6
    )
)


class BlockedAddress(PermanentDeliveryError):
    """The target (webhook host or Kafka broker) is, or resolves to, an address that deliveries may not reach."""

    error_class = "blocked_address"

    def __init__(self, message: str | None = None, *, address: str | None = None, reason: str | None = None) -> None:
        if message is None and address is not None:
            message = f"The target resolves to a blocked address ({address}: {reason or 'not public'})."
        super().__init__(message)
        self.address = address
        self.reason = reason


class ResolvedAddress(NamedTuple):
    """One address a name resolved to, ready to connect to."""

    family: socket.AddressFamily
    address: IPAddress
    port: int


def blocked_reason(ip: IPAddress | str, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why deliveries may not reach `ip` (e.g. "loopback"), or None when they may."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    reason = _reason(address)
    if reason is None:
        return None
    embedded = _embedded_v4(address)
    for network in allow:
        if _admits(network, address) or (embedded is not None and _admits(network, embedded)):
            return None
    return reason


def is_blocked_address(ip: IPAddress | str, allow: Iterable[IPNetwork] = ()) -> bool:
    """True when deliveries may not reach `ip`: it is not public and no `allow` network admits it."""
    return blocked_reason(ip, allow) is not None


def check_address(ip: IPAddress | str, allow: Iterable[IPNetwork] = ()) -> None:
    """Raise `BlockedAddress` when `ip` is blocked."""
    reason = blocked_reason(ip, allow)
    if reason is not None:
        raise BlockedAddress(address=str(ip), reason=reason)


async def resolve_allowed(
    host: str, port: int, allow: Iterable[IPNetwork] = (), family: int = socket.AF_UNSPEC
) -> list[ResolvedAddress]:
    """Resolve `host` and return its addresses, refusing them all if ANY is blocked.

    Refusing the whole answer (rather than dropping the bad entries) keeps a name that mixes public and
    private addresses from reaching the private one through a client's fallback to the next address.
    Resolution failures propagate as `OSError` (`socket.gaierror`).
    """
    allowed = tuple(allow)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    resolved: list[ResolvedAddress] = []
    for info_family, _type, _proto, _canonname, sockaddr in infos:
        # sockaddr[0] of a scoped IPv6 address carries "%zone", which ip_address() accepts.
        address = ipaddress.ip_address(sockaddr[0])
        try:
            check_address(address, allowed)
        except BlockedAddress as blocked:
            if ip_literal(host) is not None:
                raise  # an address the caller gave itself: naming it and its range reveals nothing
            # What a name resolves to is not for the subscriber to learn (an internal name map, a port-scan
            # oracle): the address and its kind of range stay on the error, for logs, and out of its message.
            raise BlockedAddress(
                f"{host} resolves to a blocked address (one that is not public).",
                address=blocked.address,
                reason=blocked.reason,
            ) from blocked
        entry = ResolvedAddress(socket.AddressFamily(info_family), address, int(sockaddr[1]))
        if entry not in resolved:
            resolved.append(entry)
    return resolved


async def check_callback_url(url: str, allow: Iterable[IPNetwork] = (), resolve_timeout_s: float = 5.0) -> None:
    """Refuse a callback URL at subscribe time when its host is, or resolves to, a blocked address.

    As `check_host`; also raises `ValueError` for a URL without a host. Validating the URL's syntax is the
    caller's job.
    """
    host = urlsplit(url).hostname
    if not host:
        raise ValueError("the URL has no host")
    await check_host(host, allow, resolve_timeout_s)


async def check_host(host: str, allow: Iterable[IPNetwork] = (), resolve_timeout_s: float = 5.0) -> None:
    """Refuse a host at subscribe time when it is, or resolves to, a blocked address.

    Raises `BlockedAddress` for an IP literal (brackets allowed) in a blocked range or a name with ANY address
    in one. A name that does not resolve (or not within `resolve_timeout_s`) is accepted: its DNS record may
    not exist yet, and every delivery attempt checks the addresses again. Raises `ValueError` (`UnicodeError`)
    for a name IDNA cannot encode (an empty or over-long label).
    """
    allowed = tuple(allow)
    literal = ip_literal(host)
    if literal is not None:
        check_address(literal, allowed)
        return
    try:
        async with asyncio.timeout(resolve_timeout_s):
            await resolve_allowed(host, 0, allowed)
    except (OSError, TimeoutError):
        return


def ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets allowed), otherwise None."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _reason(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata service"
    embedded = _embedded_v4(address)
    if embedded is not None:
        reason = _reason(embedded)
        return None if reason is None else f"{reason} (embedded in IPv6)"
    if isinstance(address, ipaddress.IPv4Address):
        return _lookup(address, BLOCKED_V4_NETWORKS)
    if address not in _GLOBAL_UNICAST_V6:
        return _v6_outside_global_reason(address)
    return _lookup(address, BLOCKED_V6_NETWORKS)


def _v6_outside_global_reason(address: ipaddress.IPv6Address) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link-local"
    if address.is_site_local:
        return "site-local"
    if address in _V6("fc00::/7"):
        return "unique local"
    if address in _V6("::/96"):
        return "IPv4-compatible (deprecated)"
    return "reserved"


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form routes to, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        # Packets go to the client's (de-obfuscated) address; the server only helped it qualify.
        return address.teredo[1]
    return None


def _lookup(address: IPAddress, table: dict[IPNetwork, str]) -> str | None:
    for network, reason in table.items():
        if address in network:
            return reason
    return None


def _admits(network: IPNetwork, address: IPAddress) -> bool:
    if address.version != network.version or address not in network:
        return False
    # Metadata endpoints hand out cloud credentials: only an allow entry naming exactly them admits them.
    return address not in METADATA_ADDRESSES or network.num_addresses == 1
