"""Hostile URLs: every case of the shared SSRF corpus, driven through the browser.

Nothing here touches the network. Names resolve through each case's ``stub_dns``; requests go
to a transport that plays the case's ``redirect_chain`` and ``stub_response``. The transport
serves only the corpus's public stand-in addresses; any request for another address is an
escape: it is recorded and forwarded to a loopback canary server, which must hear nothing.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmos.errors import Fault
from llmos.peripherals._netcheck import host_address, refusal
from llmos.peripherals.base import Document
from llmos.peripherals.browser import Browser, FetchArgs
from tests.peripherals.test_browser import _Canary  # one canary server for both SSRF suites

# The addresses the corpus uses for "some public host" (PROVENANCE.md) and its public literals.
STAND_INS = frozenset({"93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"})
PAGE = b"<html><body><h1>Example Domain</h1><p>For use in examples.</p></body></html>"
MAX_BYTES = 1_000_000  # the browser's default cap


def _corpus() -> list[dict[str, Any]]:
    from tests.conftest import data_root

    root = data_root()
    if root is None:
        return []
    cases: list[dict[str, Any]] = json.loads(
        (root / "security" / "ssrf_urls.json").read_text(encoding="utf-8")
    )["cases"]
    return cases


CASES = _corpus()


@pytest.fixture(scope="module")
def canary() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class _Clock:
    """A fake monotonic clock: slow bodies advance it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stub_resolver(case: dict[str, Any]) -> tuple[Any, list[str]]:
    stub: dict[str, Any] = case.get("stub_dns", {})
    lookups: list[str] = []
    rounds: Counter[str] = Counter()

    def resolve(host: str, _port: int) -> list[str]:
        lookups.append(host)
        answer = stub.get(host, stub.get(host.rstrip(".")))
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the stub DNS")
        if isinstance(answer, dict):  # successive lookups get successive answers
            seq = answer["sequence"]
            rounds[host] += 1
            return list(seq[min(rounds[host], len(seq)) - 1])
        return list(answer)

    return resolve, lookups


def _body(spec: dict[str, Any], clock: _Clock) -> Iterator[bytes]:
    kind = spec["body"]
    if kind == "endless":
        while True:
            yield b"x" * 65536
    elif kind.startswith("gzip of"):
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        for _ in range(10 * 1024):  # 10 GiB of zeros, made lazily a MiB at a time
            yield packer.compress(bytes(1 << 20))
        yield packer.flush()
    elif kind.startswith("1 byte every"):
        for _ in range(10_000):
            clock.now += 9.0
            yield b"x"
    elif kind.startswith("<div>*"):
        yield b"<div>" * int(kind.split("*")[1])
    elif kind == "random bytes":
        yield os.urandom(4096)
    else:
        yield kind.encode()


def _headers(spec: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in spec.get("headers", {}).items():
        if value.endswith("x 'A'"):
            value = "A" * int(value.split()[0])
        headers[key] = value
    return headers


@dataclass
class _CaseTransport(httpx.BaseTransport):
    """Plays one case; records every request; forwards escapes to the canary."""

    case: dict[str, Any]
    canary: int
    clock: _Clock
    force_text: bool = False
    requests: list[tuple[str, str | None, str]] = field(default_factory=list)
    escapes: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        ip = request.url.host
        self.requests.append((ip, request.extensions.get("sni_hostname"), request.headers["host"]))
        if ip not in STAND_INS:
            self.escapes.append(str(request.url))
            with httpx.Client(trust_env=False) as witness:  # let the canary see the escape
                witness.get(f"http://127.0.0.1:{self.canary}/escape?to={ip}")
            return httpx.Response(200, headers={"Content-Type": "text/plain"}, text="SECRET")
        chain = self.case.get("redirect_chain", [])
        hop = len(self.requests) - 1
        if hop < len(chain):
            location = chain[hop]["location"]
            return httpx.Response(chain[hop]["status"], headers={"Location": location})
        spec = self.case.get("stub_response")
        if spec is None:
            return httpx.Response(200, headers={"Content-Type": "text/html"}, content=iter([PAGE]))
        headers = _headers(spec)
        if self.force_text:
            headers["Content-Type"] = headers.get("Content-Type", "text/plain")
        return httpx.Response(spec["status"], headers=headers, content=_body(spec, self.clock))


@dataclass
class _Run:
    outcome: Document | Fault
    transport: _CaseTransport
    lookups: list[str]


def _run(case: dict[str, Any], canary: int, *, force_text: bool = False, **kw: Any) -> _Run:
    clock = _Clock()
    transport = _CaseTransport(case, canary, clock, force_text)
    resolver, lookups = _stub_resolver(case)
    dev = Browser(resolver=resolver, transport=transport, clock=clock, **kw)
    try:
        outcome: Document | Fault = dev.fetch(FetchArgs(url=case["url"]))
    except Fault as fault:
        outcome = fault
    return _Run(outcome, transport, lookups)


def _judge(case: dict[str, Any], run: _Run) -> str:
    """``refused`` or ``allowed``; raises AssertionError when the case escaped."""
    expected, out, sent = case["expected"], run.outcome, run.transport.requests
    assert not run.transport.escapes, f"{case['id']}: reached {run.transport.escapes}"
    if expected in ("block", "block_or_policy"):
        assert isinstance(out, Fault), f"{case['id']}: fetched {case['url']!r}"
        assert out.message.startswith("refused: "), f"{case['id']}: {out.message}"
        if "redirect_chain" not in case:
            assert sent == [], f"{case['id']}: sent {sent} before refusing"
        return "refused"
    if expected in ("allow", "allow_without_env_proxy"):
        assert isinstance(out, Document), f"{case['id']}: {out}"
        assert "Example Domain" in out.text
        url = httpx.URL(case["url"])
        assert out.source == str(url.copy_with(fragment=None))
        _, sni, host_header = sent[0]  # connected by IP, but named the host to the server
        assert host_header == url.netloc.decode()
        literal = ":" in url.host or url.host.replace(".", "").isdigit()
        assert sni == (url.host if url.scheme == "https" and not literal else None)
        return "allowed"
    if expected == "pin_or_block":
        assert len(run.lookups) <= 1, f"{case['id']}: resolved again: {run.lookups}"
        return "allowed" if isinstance(out, Document) else "refused"
    assert expected == "contain", expected
    assert len(sent) <= 6, f"{case['id']}: {len(sent)} requests"  # first + 5 redirects
    if isinstance(out, Fault):
        return "refused"
    assert len(out.text) <= MAX_BYTES + 100, f"{case['id']}: {len(out.text)} chars"
    return "allowed"


@pytest.fixture(autouse=True)
def _hostile_proxy_env(monkeypatch: pytest.MonkeyPatch, canary: int) -> None:
    """env-01: every proxy variable points at the canary for the whole suite."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{canary}")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_ssrf_case(case: dict[str, Any], canary: int) -> None:
    _judge(case, _run(case, canary))
    if "stub_response" in case:  # again with a text type, so the caps themselves are reached
        _judge(case, _run(case, canary, force_text=True))
    assert _Canary.hits == []


def test_resource_caps_hold_once_the_content_type_is_text(canary: int) -> None:
    by_id = {c["id"]: c for c in CASES}
    if not by_id:
        pytest.skip("benchmark data not found: set LLMOS_DATA to the shared data folder")
    for case_id in ("res-01", "res-02"):
        out = _run(by_id[case_id], canary, force_text=True).outcome
        assert isinstance(out, Document)
        assert out.text.endswith(f"[cut: the page is longer than {MAX_BYTES} bytes]")
    slow = _run(by_id["res-03"], canary, force_text=True).outcome
    assert isinstance(slow, Fault) and "took longer than 15 s" in slow.message
    loop = _run(by_id["rd-05"], canary)
    assert isinstance(loop.outcome, Fault) and "more than 5 times" in loop.outcome.message
    assert len(loop.transport.requests) == 6


def test_unusual_ports_open_only_by_policy(canary: int) -> None:
    for case in (c for c in CASES if c["expected"] == "block_or_policy"):
        port = httpx.URL(case["url"]).port
        assert isinstance(_run(case, canary, ports=[80, 443, port]).outcome, Document)


def test_rebinding_connects_to_the_address_that_was_checked(canary: int) -> None:
    case = next((c for c in CASES if c["expected"] == "pin_or_block"), None)
    if case is None:
        pytest.skip("benchmark data not found: set LLMOS_DATA to the shared data folder")
    run = _run(case, canary)
    assert isinstance(run.outcome, Document)
    assert [ip for ip, _, _ in run.transport.requests] == ["93.184.215.14"]
    assert run.transport.requests[0][2] == "rebind.attacker.example"


def test_every_case_is_refused_or_allowed_as_expected_and_none_escapes(
    data_dir: Path, canary: int, capsys: pytest.CaptureFixture[str]
) -> None:
    tally: Counter[str] = Counter()
    escaped: list[str] = []
    for case in CASES:
        tally["tried"] += 1
        try:
            tally[_judge(case, _run(case, canary))] += 1
        except AssertionError as exc:
            escaped.append(str(exc))
    with capsys.disabled():
        print(
            f"\nSSRF corpus: {tally['tried']} cases tried, {tally['refused']} refused, "
            f"{tally['allowed']} allowed as expected, {len(escaped)} escaped, "
            f"canary hits {len(_Canary.hits)}"
        )
    assert tally["tried"] == len(CASES) > 100
    assert escaped == []
    assert _Canary.hits == []


@pytest.mark.parametrize(
    ("host", "means"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # httpx rejects this URL; the gate reads it anyway
        ("0xa9.254.0251.0xfe", "169.254.169.254"),
        ("017700000001", "127.0.0.1"),
    ],
)
def test_numeric_hosts_mean_the_address_inet_aton_gives(host: str, means: str) -> None:
    address = host_address(host)
    assert str(address) == means
    assert address is not None and refusal(address) is not None


@pytest.mark.parametrize(
    "address",
    ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
     "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254",
     "224.0.0.251", "ff02::1", "0.0.0.0", "::", "fe80::1", "fec0::1"],
)
def test_embedded_and_special_addresses_are_never_public(address: str) -> None:
    import ipaddress

    assert refusal(ipaddress.ip_address(address)) is not None


def test_public_addresses_pass() -> None:
    import ipaddress

    for address in [*sorted(STAND_INS), "1.1.1.1", "2a00:1450:4001:80b::200e"]:
        assert refusal(ipaddress.ip_address(address)) is None, address
