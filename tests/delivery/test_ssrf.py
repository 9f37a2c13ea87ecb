"""The SSRF guard: a table of vectors refused in production, what stays allowed, resolution with
an injected resolver (no real DNS), and the guarded aiohttp connector against a loopback server.

No traffic leaves 127.0.0.1: names other than ``localhost`` are only ever given to fakes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.delivery.ssrf import (
    GuardedResolver,
    TargetPolicy,
    UnsafeTarget,
    check_url,
    check_url_resolving,
    guarded_connector,
    parse_ipv4_loose,
)
from service.errors import ValidationFailed
from service.settings import PROJECT_ROOT, load_settings
from tests.conftest import settings_env
from tests.servers import serve_app

PRODUCTION = TargetPolicy()
DEV = TargetPolicy.from_settings(["127.0.0.0/8", "::1/128"])

REFUSED_IN_PRODUCTION = [
    # loopback, in every spelling a socket accepts
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://127.0.0.1./",
    "http://１２７.０.０.１/",  # noqa: RUF001 - fullwidth digits, folded by IDNA
    "http://127。0。0。1/",  # ideographic full stops
    "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://foo.localhost/",
    "http://[::1]/",
    # private, link-local, metadata, CGNAT, unspecified, multicast, broadcast, documentation
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://printer.local/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://[2001:db8::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fec0::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[ff02::1]/",
    # IPv4 wrapped in IPv6: mapped, compatible, NAT64, 6to4, Teredo
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b::169.254.169.254]/",
    "http://[64:ff9b:1::5db8:d822]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    # not http(s), credentials, bad port or host, junk
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://x",
    "javascript:alert(1)",
    "http://user:pw@example.com/",
    "http://:@example.com/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http:///path",
    "http://",
    "",
    "example.com/hook",
    "http://1.2.3.4.5/",
    "http://09.1/",
    "http://a%20b/",
    "http://example.com\\@127.0.0.1/",
    "http://127.0.0.1\t/",
    "http://example.com/" + "a" * 2048,
]


@pytest.mark.parametrize("url", REFUSED_IN_PRODUCTION)
def test_vector_refused_in_production(url: str) -> None:
    with pytest.raises(UnsafeTarget) as caught:
        check_url(url, PRODUCTION)
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert (error.code, error.field, error.status_code) == ("unsafe_target", "url", 422)
    assert error.message.endswith(".")


ALLOWED_IN_PRODUCTION = [
    "https://example.com/hook",
    "https://example.com:8443/hooks?x=1#frag",
    "http://93.184.216.34/",
    "http://[2606:2800:220:1:248:1893:25c8:1946]/",
    "http://[::ffff:93.184.216.34]/",
    "http://[64:ff9b::93.184.216.34]/",
    "http://[2002:5db8:d822::1]/",
    "https://bücher.example/",
    "http://example.com./",
]


@pytest.mark.parametrize("url", ALLOWED_IN_PRODUCTION)
def test_public_target_allowed_in_production(url: str) -> None:
    check_url(url, PRODUCTION)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost:9000/",
        "http://127.1:9000/",
        "http://[::1]:9000/",
        "http://[::ffff:127.0.0.1]:9000/",
        "http://receiver.localhost/",
    ],
)
def test_dev_policy_allows_loopback(url: str) -> None:
    check_url(url, DEV)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::169.254.169.254]/",
        "ftp://127.0.0.1/",
    ],
)
def test_dev_policy_still_refuses_the_rest(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url, DEV)


def test_policies_come_from_config(tmp_path: Path) -> None:
    dev = load_settings(settings_env(tmp_path))
    assert TargetPolicy.from_settings(dev.delivery.allowed_networks) == DEV
    production_env = settings_env(
        tmp_path, TASKHOOK_CONFIG=str(PROJECT_ROOT / "config" / "default.toml")
    )
    production = load_settings(production_env)
    assert TargetPolicy.from_settings(production.delivery.allowed_networks) == PRODUCTION


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address: what DNS64 hands out
        ("169.254.169.254", False),
        ("192.88.99.1", False),
        ("240.0.0.1", False),
        ("::ffff:0:7f00:1", False),  # SIIT
        ("2001::5db8:d822", False),  # Teredo is refused even when its parts look public
        ("3fff::1", False),
        ("5f00::1", False),
        ("fe80::1%eth0", False),
    ],
)
def test_address_classification(address: str, allowed: bool) -> None:
    assert PRODUCTION.address_allowed(ipaddress.ip_address(address)) is allowed


def test_metadata_only_when_a_network_names_it() -> None:
    metadata = ipaddress.ip_address("169.254.169.254")
    assert not DEV.address_allowed(metadata)
    assert TargetPolicy.from_settings(["169.254.169.254/32"]).address_allowed(metadata)
    assert not TargetPolicy.from_settings(["169.254.169.254/32"]).text_allowed("not an ip")


@pytest.mark.parametrize(
    "host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "10.1.2", "0", "1.1"]
)
def test_loose_ipv4_parsing_agrees_with_inet_aton(host: str) -> None:
    parsed = parse_ipv4_loose(host)
    assert parsed is not None
    assert parsed.packed == socket.inet_aton(host)


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1.example", "1.2.3.x", "0xg.com"])
def test_names_are_not_ipv4(host: str) -> None:
    assert parse_ipv4_loose(host) is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "1.16777216", "08.0.0.1", "1..2"])
def test_numeric_but_invalid_hosts_raise(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid IPv4"):
        parse_ipv4_loose(host)


class FakeResolve:
    """A stand-in for getaddrinfo: fixed answers, or an error; records what it was asked."""

    def __init__(self, answer: list[str] | OSError) -> None:
        self.answer = answer
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if isinstance(self.answer, OSError):
            raise self.answer
        return self.answer


async def test_resolving_to_a_public_address_passes() -> None:
    resolve = FakeResolve(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    await check_url_resolving("https://hooks.example/x", PRODUCTION, resolver=resolve)
    assert resolve.asked == [("hooks.example", 443)]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (["10.0.0.5"], "resolves to a private"),
        (["93.184.216.34", "127.0.0.1"], "resolves to a private"),
        (["93.184.216.34", "::ffff:169.254.169.254"], "resolves to a private"),
        (["garbage"], "resolves to a private"),
        (["10.0.0.5", "garbage"], "resolves to a private"),
    ],
)
async def test_resolving_to_anything_unsafe_fails(
    answer: list[str] | OSError, message: str
) -> None:
    resolve = FakeResolve(answer)
    with pytest.raises(UnsafeTarget, match=message) as caught:
        await check_url_resolving("http://rebind.example:8080/", PRODUCTION, resolver=resolve)
    assert resolve.asked == [("rebind.example", 8080)]
    assert "10.0.0.5" not in caught.value.message  # internal DNS answers are never echoed


@pytest.mark.parametrize(
    "answer",
    [
        [],
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ],
)
async def test_a_name_that_does_not_resolve_yet_is_accepted(answer: list[str] | OSError) -> None:
    # The guard checks what the name resolves to at every send (as Svix does); registration
    # need not wait for the subscriber's DNS to go live.
    resolve = FakeResolve(answer)
    await check_url_resolving("https://not-live-yet.example/hook", PRODUCTION, resolver=resolve)
    assert resolve.asked == [("not-live-yet.example", 443)]


async def test_a_resolver_that_does_not_answer_in_time_is_not_waited_for() -> None:
    answered = asyncio.Event()

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        answered.set()
        return ["10.0.0.5"]

    started = asyncio.get_running_loop().time()
    await check_url_resolving("https://slow.example/", PRODUCTION, resolver=slow, timeout_s=0.05)

    assert asyncio.get_running_loop().time() - started < 2
    assert not answered.is_set()


async def test_an_answer_within_the_timeout_is_still_judged() -> None:
    async def quick(host: str, port: int) -> list[str]:
        await asyncio.sleep(0.01)
        return ["169.254.169.254"]

    with pytest.raises(UnsafeTarget, match="resolves to a private"):
        await check_url_resolving("https://meta.example/", PRODUCTION, resolver=quick, timeout_s=1)


async def test_resolving_skips_literals_and_urls_already_refused() -> None:
    resolve = FakeResolve(["10.0.0.5"])
    await check_url_resolving("http://93.184.216.34/", PRODUCTION, resolver=resolve)
    with pytest.raises(UnsafeTarget, match="http or https"):
        await check_url_resolving("ftp://hooks.example/", PRODUCTION, resolver=resolve)
    assert resolve.asked == []


async def test_resolving_with_the_dev_policy_allows_loopback_answers() -> None:
    resolve = FakeResolve(["127.0.0.1", "::1"])
    await check_url_resolving("http://receiver.test:9000/", DEV, resolver=resolve)


class FixedResolver(AbstractResolver):
    """An inner resolver for the guard: fixed addresses, whatever the name."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.hosts
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_returns_only_allowed_addresses() -> None:
    inner = FixedResolver(["10.0.0.5", "93.184.216.34", "::1", "2606:2800:220:1::1", "fe80::1"])
    guard = GuardedResolver(PRODUCTION, inner)
    results = await guard.resolve("rebind.example", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert all(r["hostname"] == "rebind.example" and r["port"] == 443 for r in results)
    await guard.close()
    assert inner.closed


async def test_guarded_resolver_raises_when_nothing_is_left() -> None:
    guard = GuardedResolver(PRODUCTION, FixedResolver(["169.254.169.254", "::ffff:127.0.0.1"]))
    with pytest.raises(OSError, match="no address"):
        await guard.resolve("rebind.example", 80)
    with pytest.raises(OSError, match="no address"):
        await GuardedResolver(PRODUCTION, FixedResolver([])).resolve("empty.example", 80)


async def test_guarded_connector_refuses_a_name_for_loopback_before_connecting() -> None:
    """End to end over loopback: ``localhost`` resolves for real, the guard drops 127.0.0.1,
    and the server never sees a request; the dev policy lets the same request through."""
    seen: list[str] = []

    async def hook(request: Request) -> PlainTextResponse:
        seen.append(request.url.path)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{path:path}", hook, methods=["GET", "POST"])])
    async with serve_app(app) as base:
        port = int(base.rsplit(":", 1)[1])
        connector = guarded_connector(PRODUCTION, limit=10, limit_per_host=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            for host in ("localhost", "0x7f.1"):  # 0x7f.1: a literal aiohttp takes for a name
                with pytest.raises(aiohttp.ClientConnectorError, match="no address") as caught:
                    await session.post(f"http://{host}:{port}/{host}", data=b"{}")
                assert isinstance(caught.value.os_error, OSError)
        assert seen == []

        connector = guarded_connector(DEV, limit=10, limit_per_host=2)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(f"http://localhost:{port}/hook", data=b"{}") as response,
        ):
            assert response.status == 200
            assert await response.text() == "ok"
        assert seen == ["/hook"]
