"""Server-side request forgery guard for webhook URLs.

A webhook URL is chosen by a tenant, so without a guard the engine could be made to call its own
infrastructure (cloud metadata at 169.254.169.254, databases on 10/8, admin ports on loopback).
`check_static` vets what the URL itself says (scheme, credentials, a literal IP or `localhost`) and
runs when an endpoint is saved; `check_url` adds DNS: every address the host resolves to must be
public, and it returns the vetted address so the sender connects to exactly that one (Host header
and TLS SNI keep the original name), which closes the DNS-rebinding window between check and connect.

Residual risks, stated plainly: `getaddrinfo` has no timeout of its own (the system resolver's
applies); and with `allow_private` every check on the destination's address is off, as intended for
self-hosted installations that deliver to their own network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from typing import Final

import httpx

from fiscus.domain.errors import InvalidFieldError

MAX_URL_LENGTH: Final = 2000
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})

_HOSTNAME: Final = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
_LEGACY_IPV4: Final = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) → every address the host resolves to, as strings."""


class BlockedDestination(InvalidFieldError):
    """The URL points at an address the engine must not call (loopback, private, link-local, …)."""

    def __init__(self, message: str) -> None:
        super().__init__("url", message)


class UnresolvableHost(InvalidFieldError):
    """The host has no address; at send time this is a failed attempt like any network error."""

    def __init__(self, message: str) -> None:
        super().__init__("url", message)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return f"{reason} (embedded in {address})" if reason else None
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "carrier-grade NAT"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    for hit, name in checks:
        if hit:
            return f"{address} is a {name} address"
    return None


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, including legacy IPv4 forms (`2130706433`, `0x7f.1`) that
    the system resolver would accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_static(url: str, *, allow_private: bool) -> httpx.URL:
    """What can be decided without DNS: the parsed URL, or InvalidFieldError/BlockedDestination."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidFieldError("url", "must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidFieldError("url", f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidFieldError("url", "must not contain whitespace or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidFieldError("url", f"is not a valid URL ({exc})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise InvalidFieldError("url", "must be an http:// or https:// URL")
    if parsed.userinfo:
        raise InvalidFieldError("url", "must not contain credentials; authenticate with the signature")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise InvalidFieldError("url", "has an invalid port")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise InvalidFieldError("url", "must name a host")
    address = _literal(host)
    if address is None and not _HOSTNAME.match(host):
        raise InvalidFieldError("url", f"'{host}' is not a valid host name")
    if allow_private:
        return parsed
    if host == "localhost" or host.endswith(".localhost"):
        raise BlockedDestination(f"'{host}' is a loopback name; private destinations are not allowed")
    if address is not None:
        reason = blocked_reason(address)
        if reason:
            raise BlockedDestination(f"{reason}; private destinations are not allowed")
    return parsed


def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> str:
    """Vet `url` completely and return the address to connect to (the first one resolved).

    Every resolved address is checked, not only the first: a name with one public and one private
    address is refused, since a client could pick either.
    """
    parsed = check_static(url, allow_private=allow_private)
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    literal = _literal(host)
    if literal is not None:
        return str(literal)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnresolvableHost(f"'{host}' does not resolve ({exc})") from None
    if not addresses:
        raise UnresolvableHost(f"'{host}' does not resolve")
    if not allow_private:
        for address in addresses:
            reason = blocked_reason(address)
            if reason:
                raise BlockedDestination(
                    f"'{host}' resolves to {reason}; private destinations are not allowed"
                )
    return str(addresses[0])
