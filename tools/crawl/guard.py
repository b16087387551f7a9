"""The SSRF guard: resolve a host and refuse addresses a public crawl has no business reaching."""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack instance metadata
    "169.254.170.2",    # AWS ECS task metadata
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",    # Azure WireServer (a public address, so only this list catches it)
))


class Refused(Exception):
    """The host resolves to an address the crawl may not reach; str() says which and why."""


class Unresolvable(Exception):
    """DNS gave no address for the host."""


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why `ip` must not be crawled, or None. Metadata addresses are refused even with allow_private."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for kind, hit in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                      ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                      ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if hit:
            return f"a {kind} address"
    return None if ip.is_global else "not a public address"


def check_host(host: str, port: int, *, allow_private: bool = False,
               allow_hosts: tuple[str, ...] = ()) -> list[str]:
    """Resolve `host` and return its addresses; raise Refused if any of them is one the crawl must not reach
    (every address counts: a name that also resolves to 10.0.0.1 could be connected there), Unresolvable if
    DNS has none. `allow_hosts` names host or host:port that may be private (a test server, an intranet)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc}") from None
    allowed = allow_private or host.lower() in allow_hosts or f"{host.lower()}:{port}" in allow_hosts
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    for address in addresses:
        problem = address_problem(ipaddress.ip_address(address), allow_private=allowed)
        if problem:
            raise Refused(f"{host} resolves to {address}, {problem}"
                          + ("" if "metadata" in problem else "; pass allow_private (--allow-private) to crawl it"))
    return addresses
