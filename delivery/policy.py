"""Outbound address policy: a tenant must not use webhooks to reach internal services (SSRF).

``check_url`` parses the URL, resolves its host and checks every address it resolves to:

* never: link-local (169.254.0.0/16, fe80::/10, which hold the cloud metadata services), known
  metadata addresses and names, unspecified, multicast, reserved and broadcast addresses;
* never: IPv6 addresses that tunnel or translate to IPv4 (6to4 2002::/16, Teredo 2001::/32, NAT64
  64:ff9b::/96 and 64:ff9b:1::/48, IPv4-compatible ::/96) or are deprecated (site-local fec0::/10): they can
  carry any IPv4 address, an internal one included, past the checks below; IPv4-mapped ones
  (::ffff:a.b.c.d) are checked as the IPv4 address they map to;
* only with ``settings.OUTBOUND_ALLOW_LOOPBACK`` (the embedded demo and the tests): loopback,
  private (RFC 1918, unique-local fc00::/7) and carrier-grade NAT (100.64.0.0/10) addresses.

The caller connects to the checked address itself (``Target.ip``), not to the name again, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot slip past.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

ALWAYS_DENIED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "192.0.0.0/24",        # IETF protocol assignments (incl. 192.0.0.192, Oracle Cloud metadata)
    "::/128", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",  # AWS IPv6 metadata
)]
# IPv6 ranges that embed or translate to an IPv4 address, or are deprecated: refused whatever they carry.
TUNNELS = [ipaddress.ip_network(n) for n in (
    "2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48", "::/96", "fec0::/10",
)]
PRIVATE = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "198.18.0.0/15",
    "::1/128", "fc00::/7",
)]
DENIED_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                "instance-data.ec2.internal"}
SCHEMES = {"http": 80, "https": 443}


class Refused(ValueError):
    """The URL is malformed or points somewhere outbound calls may not go; never worth a retry."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str        # as written in the URL (used for Host and TLS SNI)
    port: int
    ip: str          # the checked address to connect to
    path: str        # path + query
    others: tuple[str, ...] = ()  # further checked addresses, tried if ``ip`` refuses the connection

    def with_ip(self, ip: str) -> "Target":
        return Target(self.scheme, self.host, self.port, ip, self.path)

    @property
    def pinned_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an absolute http(s) URL, or Refused naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise Refused("the URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused(f"only http and https URLs are allowed, not '{parts.scheme or url}'")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("credentials in the URL are not allowed; send them in a header")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname.rstrip(".").lower(), port or SCHEMES[scheme], path


def check_address(ip: str) -> None:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in ALWAYS_DENIED if net.version == address.version):
        raise Refused(f"{address} is a link-local, metadata or reserved address; outbound calls may never go there")
    if address.version == 6 and not address.is_loopback and any(address in net for net in TUNNELS):
        raise Refused(f"{address} tunnels or translates to an IPv4 address (6to4, Teredo, NAT64) or is deprecated; "
                      "outbound calls may never go there")
    if any(address in net for net in PRIVATE if net.version == address.version) or address.is_private \
            or address.is_loopback:
        if not settings.OUTBOUND_ALLOW_LOOPBACK:
            raise Refused(f"{address} is a private or loopback address (set OUTBOUND_ALLOW_LOOPBACK=true to allow)")
        return
    if address.is_reserved or address.is_multicast or address.is_unspecified or address.is_link_local:
        raise Refused(f"{address} is not a public address")


def check_static(url: str) -> None:
    """What can be checked without DNS (when a rule is saved): syntax, denied names, denied IP literals."""
    _, host, _, _ = parse(url)
    if host in DENIED_HOSTS:
        raise Refused(f"'{host}' is a cloud metadata host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    check_address(host)


def check_url(url: str) -> Target:
    """Resolve and check; every address the name resolves to must pass (a mixed answer is refused)."""
    scheme, host, port, path = parse(url)
    if host in DENIED_HOSTS:
        raise Refused(f"'{host}' is a cloud metadata host")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LookupError(f"cannot resolve '{host}': {exc}") from None  # may be temporary: retried
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise LookupError(f"'{host}' resolves to no address")
    for ip in addresses:
        check_address(ip)
    ips = [ip.split("%", 1)[0] for ip in addresses]
    return Target(scheme=scheme, host=host, port=port, ip=ips[0], path=path, others=tuple(ips[1:]))
