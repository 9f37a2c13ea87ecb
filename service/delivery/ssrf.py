"""SSRF guard for subscriber endpoints: where taskhook may send its webhooks.

A subscriber chooses the URL, so without a guard taskhook would POST to its own loopback, the
private network or the cloud metadata service on anyone's behalf. Two layers, both needed:

* :func:`check_url` judges the URL text (scheme, credentials, port, IP literals in every spelling
  a socket accepts, ``localhost``-style names). It needs no DNS, so it runs at registration and
  before every send; IP literals never reach a resolver in aiohttp, so this is their only check.
  At registration :func:`check_url_resolving` also refuses a name that resolves somewhere
  unsafe (one that does not resolve yet is accepted).
* :class:`GuardedResolver` sits inside the delivery connector and hands aiohttp only addresses the
  policy allows. aiohttp connects to what the resolver returned, so the address checked is the
  address used: a name that re-resolves to 10.0.0.1 after registration (DNS rebinding) is caught.

Classifying addresses is pure (:meth:`TargetPolicy.address_allowed`); resolving is the adapter.
``ipaddress.is_global`` varies across Python patch releases and calls multicast and ``fec0::/10``
global, so the unsafe ranges are listed here too.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from service.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Resolve a host name: ``(host, port) -> ["93.184.216.34", "2606:…"]``; raises ``OSError``.
Resolve = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
#: how long registration waits for DNS before accepting the name unjudged
RESOLVE_TIMEOUT_S = 2.0
_NOT_PUBLIC = "private, loopback, link-local or otherwise non-public address"
_SCHEMES = frozenset({"http", "https"})
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
#: Names that mean "this machine" without asking DNS (RFC 6761, Debian's /etc/hosts).
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?")

#: Unsafe whatever ``is_global`` says: "this network" (0.0.0.0 reaches the local host on Linux),
#: RFC 1918, CGNAT, loopback, link-local (169.254.169.254 metadata), IETF assignments, docs,
#: 6to4 relay anycast, benchmarking, multicast, reserved, broadcast; IPv6 unspecified, loopback,
#: IPv4-compatible, SIIT, local-use NAT64 (RFC 8215: a translator on the inside), discard, IETF
#: assignments (Teredo among them), docs, SRv6, unique local (fd00:ec2::254 metadata),
#: link-local, site-local, multicast.
_UNSAFE_TEXT = (
    "0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12 192.0.0.0/24 "
    "192.0.2.0/24 192.88.99.0/24 192.168.0.0/16 198.18.0.0/15 198.51.100.0/24 203.0.113.0/24 "
    "224.0.0.0/4 240.0.0.0/4 ::/128 ::1/128 ::/96 ::ffff:0:0:0/96 64:ff9b:1::/48 100::/64 "
    "2001::/23 2001:db8::/32 3fff::/20 5f00::/16 fc00::/7 fe80::/10 fec0::/10 ff00::/8"
)
_UNSAFE = tuple(map(ipaddress.ip_network, _UNSAFE_TEXT.split()))
#: Prefixes that carry an IPv4 destination inside: the prefix alone is fine, the IPv4 decides.
_TRANSLATORS = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("2002::/16"))
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class UnsafeTarget(ValidationFailed):
    """The endpoint URL points somewhere taskhook must not send to (422, field ``url``)."""

    code = "unsafe_target"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


def _is_public(address: IPAddress) -> bool:
    """The address alone (nothing unwrapped) is a public unicast destination."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _TRANSLATORS):
        return True
    if any(address in net for net in _UNSAFE):  # a v4 address is never in a v6 network
        return False
    special = (address.is_multicast, address.is_reserved, address.is_unspecified)
    local = (address.is_loopback, address.is_link_local, address.is_private)
    return address.is_global and not any(special + local)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 destinations a NAT64, 6to4 or Teredo address leads to (IPv4-mapped is separate)."""
    if any(address in net for net in _NAT64):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


@dataclass(frozen=True)
class TargetPolicy:
    """Which addresses webhooks may go to: public ones, plus ``allowed_networks`` from config.

    ``TargetPolicy()`` is production (nothing extra); dev config allows loopback so a local
    receiver works. An allowed network is taken at its word, metadata addresses included.
    """

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, networks: Iterable[str]) -> TargetPolicy:
        """From ``delivery.allowed_networks`` (CIDR strings the config schema has validated)."""
        return cls(tuple(ipaddress.ip_network(net, strict=False) for net in networks))

    def _inside_allowed(self, address: IPAddress) -> bool:
        return any(address in net for net in self.allowed_networks)

    def _permits(self, address: IPAddress) -> bool:
        return self._inside_allowed(address) or _is_public(address)

    def address_allowed(self, address: IPAddress) -> bool:
        """May taskhook connect to ``address``? Wrapped IPv4 is judged as well as the wrapper.

        IPv4-mapped ``::ffff:a.b.c.d`` *is* the IPv4 host on a dual-stack socket, so only the
        IPv4 counts; NAT64, 6to4 and Teredo reach a gateway that forwards to the embedded IPv4,
        so both must pass.
        """
        if isinstance(address, ipaddress.IPv4Address):
            return self._permits(address)
        mapped = address.ipv4_mapped
        if mapped is not None:
            return self._inside_allowed(address) or self._permits(mapped)
        return self._permits(address) and all(map(self._permits, _embedded_ipv4(address)))

    def text_allowed(self, text: str) -> bool:
        """:meth:`address_allowed` for a resolver's answer; anything unparseable is refused."""
        try:
            return self.address_allowed(ipaddress.ip_address(text))
        except ValueError:
            return False


def _ipv4_number(part: str) -> int | None:
    """One dotted part as ``inet_aton`` reads it: ``0x`` hex, leading-zero octal, or decimal."""
    if part[:2].lower() == "0x":
        valid = all(c in "0123456789abcdefABCDEF" for c in part[2:])
        return int(part[2:] or "0", 16) if valid else None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part) if part.isascii() and part.isdigit() else None


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` as browsers and ``inet_aton`` do (``127.1``, ``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``; the WHATWG URL IPv4 parser). ``None`` when the host is a name; ``ValueError``
    when its last label is numeric but the whole is no valid address (``1.2.3.4.5``, ``09.1``):
    a socket might still make something of it.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None  # does not end in a number: a name
    numbers = [_ipv4_number(part) if part else None for part in parts]
    if len(numbers) > 4 or None in numbers:
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    *leading, final = [n for n in numbers if n is not None]
    if any(n > 255 for n in leading) or final >= 256 ** (4 - len(leading)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = final + sum(n << (8 * (3 - i)) for i, n in enumerate(leading))
    return ipaddress.IPv4Address(value)


def _literal_address(host: str) -> IPAddress | None:
    if ":" in host:  # yarl keeps IPv6 without brackets and a zone as %25
        return ipaddress.IPv6Address(host.replace("%25", "%"))
    return parse_ipv4_loose(host)


def _parse_target(url: str, policy: TargetPolicy) -> tuple[str, int, IPAddress | None]:
    """``(host as aiohttp will use it, port, the address if the host is an IP literal)``."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"The URL must be at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        # yarl silently drops tabs and newlines; refuse rather than guess what was meant
        raise UnsafeTarget("The URL must not contain whitespace or control characters.")
    try:
        parsed = URL(url)
    except ValueError:
        raise UnsafeTarget("The URL is not valid (check its host and port).") from None
    if parsed.scheme not in _SCHEMES:
        raise UnsafeTarget("The URL must use http or https.")
    host = parsed.raw_host
    if not host:
        raise UnsafeTarget("The URL must include a host.")
    if "@" in (parsed.raw_authority or ""):
        raise UnsafeTarget("The URL must not contain a user name or password.")
    port = parsed.port
    if port is None or not 1 <= port <= 65535:
        raise UnsafeTarget("The URL's port must be between 1 and 65535.")
    try:
        address = _literal_address(host)
    except ValueError:
        raise UnsafeTarget(f"The URL's host {host!r} is not a valid address.") from None
    if address is not None:
        if not policy.address_allowed(address):
            raise UnsafeTarget(f"The URL's host {host} is a {_NOT_PUBLIC}.")
        return host, port, address
    if not _HOSTNAME.fullmatch(host) or len(host.rstrip(".")) > 253:
        raise UnsafeTarget(f"The URL's host {host!r} is not a valid host name.")
    name = host.rstrip(".")
    local = name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES)
    if local and not policy.address_allowed(_LOOPBACK):
        raise UnsafeTarget(f"The URL's host {name} names a local or internal machine.")
    return host, port, None


def check_url(url: str, policy: TargetPolicy) -> None:
    """Refuse a URL that is unsafe on its face; no DNS (see :func:`check_url_resolving`).

    http/https only, a host, no ``user:pass@``, port 1-65535, at most 2048 characters; an IP
    literal in any spelling a socket accepts must be allowed by ``policy``; ``localhost``,
    ``*.localhost``, ``*.local`` and ``*.internal`` only when the policy allows 127.0.0.1.
    Raises :class:`UnsafeTarget`.
    """
    _parse_target(url, policy)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_url_resolving(
    url: str,
    policy: TargetPolicy,
    *,
    resolver: Resolve | None = None,
    timeout_s: float = RESOLVE_TIMEOUT_S,
) -> None:
    """:func:`check_url`, then resolve the host and refuse if *any* address is unsafe.

    For registration, where a clear early answer helps the subscriber. It is not what keeps
    deliveries safe (DNS can change afterwards): :class:`GuardedResolver` is, on every send.
    So a name that does not resolve yet (no such name, no address, no answer within
    ``timeout_s``) is accepted, as Svix accepts it: a subscriber may register before its DNS
    is live, and a slow resolver must not hold the request. The message never names the
    resolved address, so the endpoint API cannot be used to read internal DNS.
    """
    host, port, address = _parse_target(url, policy)
    if address is not None:
        return
    try:
        async with asyncio.timeout(timeout_s):
            addresses = await (resolver or _getaddrinfo)(host, port)
    except (OSError, UnicodeError, ValueError, TimeoutError):
        return  # nothing to judge yet: the guard judges what it resolves at each send
    if not all(map(policy.text_allowed, addresses)):
        raise UnsafeTarget(f"The URL's host {host} resolves to a {_NOT_PUBLIC}.")


class GuardedResolver(AbstractResolver):
    """For ``aiohttp.TCPConnector(resolver=...)``: answers with allowed addresses only.

    aiohttp connects to exactly the addresses its resolver returns, so filtering here leaves no
    DNS-rebinding window between check and connect. With none left it raises ``OSError`` (with an
    errno, so the message shows) and aiohttp raises ``ClientConnectorDNSError``. IP literals never
    reach a resolver in aiohttp, so the sender must also call :func:`check_url` on every URL.
    The inner resolver (``aiohttp.ThreadedResolver`` by default) is owned and closed by this one.
    """

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner  # the default is made on first use: it needs a running loop

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if self._policy.text_allowed(result["host"])]
        if not allowed:
            raise OSError(errno.EACCES, f"{host} has no address webhook delivery may connect to")
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_connector(
    policy: TargetPolicy, *, limit: int, limit_per_host: int
) -> aiohttp.TCPConnector:
    """A ``TCPConnector`` that resolves through :class:`GuardedResolver` on every connection.

    The DNS cache is off (``use_dns_cache=False``; a ``ttl_dns_cache`` of ``None`` would cache
    forever), so every new connection is resolved and checked afresh. Pooled keep-alive
    connections were checked when they were opened. Must be called with a running loop.
    """
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(policy),
        use_dns_cache=False,
        limit=limit,
        limit_per_host=limit_per_host,
    )


def guarded_session(policy: TargetPolicy, *, limit: int, timeout_s: float) -> aiohttp.ClientSession:
    """An aiohttp session for requests to addresses users gave us (endpoints, result images):
    every connection through :func:`guarded_connector`, no proxy from the environment, no
    decompression (bytes are passed on or hashed as they came), and no cookies — targets of
    different accounts may share a host, and a cookie one sets must not reach the others.
    aiohttp's per-host limit is off: the callers keep their own per-target limits."""
    return aiohttp.ClientSession(
        connector=guarded_connector(policy, limit=limit, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        trust_env=False,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
