"""Which IP a viewer connects from, pure: the socket's peer, unless the peer is a trusted proxy
(`trusted_proxies`), in which case the `X-Forwarded-For` header names it. The header is read
from the right (the entry the nearest proxy added) and trusted proxies are skipped, so a client
cannot pick its IP by sending a header of its own through a proxy that appends to it."""

from __future__ import annotations

import ipaddress
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HOPS: Final = 16


def parse_proxies(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 127.0.0.1, ::1` -> networks; ValueError names a bad entry."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {item!r} is not an IP address or network") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[Network, ...]
) -> bool:
    return any(address in network for network in proxies)


def client_ip(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The viewer's IP as a string (the peer's text if it is not an IP at all)."""
    address = _ip(peer)
    if address is None:
        return peer[:64]
    if forwarded_for and proxies and _trusted(address, proxies):
        hops = [h for h in forwarded_for.split(",") if h.strip()][-MAX_HOPS:]
        for hop in reversed(hops):
            hop_ip = _ip(hop)
            if hop_ip is None:
                break  # garbage: stop at the last address we could trust
            address = hop_ip
            if not _trusted(hop_ip, proxies):
                break
    return str(address)
