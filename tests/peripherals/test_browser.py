"""The browser against real HTTP on loopback: what it reads, what it refuses, and its caps."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from llmos.errors import Fault, UsageError
from llmos.kernel.syscall import SyscallTable
from llmos.peripherals.base import Document
from llmos.peripherals.browser import Browser, FetchArgs, SearchPageArgs, best_passages

HTML = b"""<!doctype html><html><head><title>Tides</title><style>p{}</style></head><body>
<h1>Tides of the North Sea</h1>
<p>The North Sea has two high tides a day, driven by the Moon.</p>
<p>Herring were once the most important catch of the fishing fleets.</p>
<p>Storm surges raise the water far above the predicted tide.</p>
<script>var hidden = "never shown";</script>
</body></html>"""

BOMB = gzip.compress(b"A" * 20_000_000)  # 20 MB of text in about 20 kB on the wire


class _Pages(http.server.BaseHTTPRequestHandler):
    """Routes of the loopback test server; ``hits`` counts requests per path."""

    hits: ClassVar[Counter[str]] = Counter()
    hosts: ClassVar[list[str]] = []
    canary_port: ClassVar[int] = 0

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, ctype: str | None, body: bytes, **headers: str) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        self.hosts.append(self.headers.get("Host", ""))
        path = self.path
        if path == "/page.html":
            self._send(200, "text/html; charset=utf-8", HTML)
        elif path == "/plain.txt":
            self._send(200, "text/plain", "plain words, café\n".encode())
        elif path == "/data.json":
            self._send(200, "application/json", b'{"answer": 42}')
        elif path == "/image.png":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        elif path == "/bomb":
            self._send(200, "text/plain", BOMB, Content_Encoding="gzip")
        elif path == "/slow":
            self._drip()
        elif path == "/to-private":
            self._send(302, None, b"", Location="http://10.0.0.1/admin")
        elif path == "/to-canary":
            self._send(302, None, b"", Location=f"http://127.0.0.1:{self.canary_port}/")
        elif path == "/loop":
            self._send(302, None, b"", Location="/loop")
        elif path.startswith("/hops/"):
            left = int(path.rsplit("/", 1)[1])
            target = f"/hops/{left - 1}" if left else "/plain.txt"
            self._send(302, None, b"", Location=target)
        elif path == "/flaky":
            if self.hits[path] == 1:
                self._send(503, "text/plain", b"busy")
            else:
                self._send(200, "text/plain", b"second time lucky")
        elif path == "/down":
            self._send(503, "text/plain", b"down")
        elif path == "/echo-host":
            self._send(200, "text/plain", self.headers.get("Host", "").encode())
        else:
            self._send(404, "text/plain", b"no such page")

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            for _ in range(60):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the browser hung up, as it should
            pass


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    do_CONNECT = do_GET


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def canary() -> Iterator[int]:
    server = _serve(_Canary)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    assert _Canary.hits == [], f"the canary server was reached: {_Canary.hits}"


@pytest.fixture(scope="module")
def port(canary: int) -> Iterator[int]:
    _Pages.canary_port = canary
    server = _serve(_Pages)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(port: int) -> Iterator[Browser]:
    _Pages.hits.clear()
    dev = Browser(allow_hosts=[f"127.0.0.1:{port}"])
    yield dev
    dev.close()


def _fetch(dev: Browser, url: str) -> Document:
    result = dev.fetch(FetchArgs(url=url))
    assert isinstance(result, Document)
    return result


def test_html_becomes_readable_text_with_its_url_as_source(browser: Browser, port: int) -> None:
    doc = _fetch(browser, f"http://127.0.0.1:{port}/page.html#tides")
    assert "Tides of the North Sea" in doc.text
    assert "Storm surges raise the water" in doc.text
    assert "<p>" not in doc.text and "never shown" not in doc.text
    assert doc.source == f"http://127.0.0.1:{port}/page.html"


def test_plain_text_and_json_are_read_as_they_are(browser: Browser, port: int) -> None:
    assert _fetch(browser, f"http://127.0.0.1:{port}/plain.txt").text == "plain words, café"
    assert _fetch(browser, f"http://127.0.0.1:{port}/data.json").text == '{"answer": 42}'


def test_binary_content_is_refused(browser: Browser, port: int) -> None:
    with pytest.raises(Fault, match=r"refused: .* is 'image/png', not text"):
        _fetch(browser, f"http://127.0.0.1:{port}/image.png")


def test_gzip_bomb_is_cut_at_the_decompressed_cap(port: int) -> None:
    dev = Browser(allow_hosts=[f"127.0.0.1:{port}"], max_bytes=100_000)
    doc = _fetch(dev, f"http://127.0.0.1:{port}/bomb")
    body, _, note = doc.text.partition("\n")
    assert body == "A" * 100_000
    assert note == "[cut: the page is longer than 100000 bytes]"


def test_slow_page_stops_at_the_total_time_cap(port: int) -> None:
    dev = Browser(allow_hosts=[f"127.0.0.1:{port}"], total_timeout_s=0.5)
    with pytest.raises(Fault, match=r"took longer than 0.5 s"):
        _fetch(dev, f"http://127.0.0.1:{port}/slow")


def test_redirect_to_a_private_address_is_refused(browser: Browser, port: int) -> None:
    with pytest.raises(Fault, match=r"refused: 10\.0\.0\.1 is a private address"):
        _fetch(browser, f"http://127.0.0.1:{port}/to-private")


def test_redirect_to_a_loopback_port_not_allowed_is_refused(browser: Browser, port: int) -> None:
    with pytest.raises(Fault, match=r"refused: port \d+ is closed"):
        _fetch(browser, f"http://127.0.0.1:{port}/to-canary")


def test_redirect_loop_is_refused_after_five_redirects(browser: Browser, port: int) -> None:
    with pytest.raises(Fault, match=r"redirects more than 5 times"):
        _fetch(browser, f"http://127.0.0.1:{port}/loop")
    assert _Pages.hits["/loop"] == 6  # the first request and five followed redirects


def test_five_redirects_are_followed_six_are_not(browser: Browser, port: int) -> None:
    doc = _fetch(browser, f"http://127.0.0.1:{port}/hops/4")  # 5 redirects in all
    assert doc.text == "plain words, café"
    assert doc.source == f"http://127.0.0.1:{port}/plain.txt"
    with pytest.raises(Fault, match=r"redirects more than 5 times"):
        _fetch(browser, f"http://127.0.0.1:{port}/hops/5")


def test_transient_server_errors_are_retried_then_reported(browser: Browser, port: int) -> None:
    assert _fetch(browser, f"http://127.0.0.1:{port}/flaky").text == "second time lucky"
    with pytest.raises(Fault, match=r"HTTP 503; try again later"):
        _fetch(browser, f"http://127.0.0.1:{port}/down")
    assert _Pages.hits["/down"] == 3


def test_default_browser_refuses_the_loopback_server(port: int) -> None:
    with pytest.raises(Fault, match=r"refused: port \d+ is closed"):
        _fetch(Browser(), f"http://127.0.0.1:{port}/plain.txt")
    with pytest.raises(Fault, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        _fetch(Browser(ports=[port]), f"http://127.0.0.1:{port}/plain.txt")
    assert _Pages.hits["/plain.txt"] == 0


def test_connects_to_the_checked_address_and_sends_the_name(port: int) -> None:
    lookups: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        lookups.append(host)  # a second lookup would get an address nobody checked
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.9.9.9"]

    dev = Browser(allow_hosts=[f"pages.test:{port}"], resolver=rebinding)
    doc = _fetch(dev, f"http://pages.test:{port}/echo-host")
    assert doc.text == f"pages.test:{port}"
    assert lookups == ["pages.test"]


def test_proxy_settings_in_the_environment_are_ignored(
    browser: Browser, port: int, canary: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{canary}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    dev = Browser(allow_hosts=[f"127.0.0.1:{port}"])
    assert _fetch(dev, f"http://127.0.0.1:{port}/plain.txt").text == "plain words, café"
    assert _Canary.hits == []


def test_search_page_returns_the_matching_passage(browser: Browser, port: int) -> None:
    result = browser.search_page(
        SearchPageArgs(url=f"http://127.0.0.1:{port}/page.html", query="herring fishing")
    )
    assert isinstance(result, Document)
    assert "Herring were once" in result.text
    assert "Storm surges" not in result.text
    with pytest.raises(Fault, match=r"no passage .* shares a word"):
        browser.search_page(
            SearchPageArgs(url=f"http://127.0.0.1:{port}/page.html", query="volcano")
        )


def test_best_passages_prefers_rare_words_and_keeps_page_order() -> None:
    text = "the cat sat\n\nthe dog ran\n\nthe cat and the dog met a zebra\n\nnothing here"
    assert best_passages(text, "zebra", k=1) == "[passage 3 of 4]\nthe cat and the dog met a zebra"
    both = best_passages(text, "cats dog", k=2)
    assert both.index("passage 1") < both.index("passage 3")


def test_through_the_syscall_table_pages_are_untrusted_and_refusals_are_faults(
    browser: Browser, port: int
) -> None:
    table = SyscallTable([browser])
    spec = table.specs["browser.fetch"]
    assert spec.sensitive and spec.returns_document
    assert table.specs["browser.search_page"].sensitive
    schema = spec.args.model_json_schema()
    assert schema["properties"]["url"]["x-llmos-grounded"] == "url"
    ok = table.dispatch("browser.fetch", {"url": f"http://127.0.0.1:{port}/plain.txt"})
    assert (ok.status, ok.trusted, ok.source) == (
        "ok", False, f"http://127.0.0.1:{port}/plain.txt"
    )
    bad = table.dispatch("browser.fetch", {"url": "http://169.254.169.254/latest/meta-data/"})
    assert bad.status == "fault"
    assert bad.text.startswith("refused: 169.254.169.254 is a link-local address")


def test_bad_configuration_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="host:port"):
        Browser(allow_hosts=["127.0.0.1"])
    with pytest.raises(UsageError, match="total_timeout_s"):
        Browser(total_timeout_s=600)


def test_in_memory_mock_responses_work_and_urls_with_credentials_are_refused() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=b"hello")

    dev = Browser(resolver=lambda host, port: ["93.184.215.14"],
                  transport=httpx.MockTransport(handler))
    doc = _fetch(dev, "https://example.com/a?b=1")
    assert (doc.text, doc.source) == ("hello", "https://example.com/a?b=1")
    assert str(seen[0].url) == "https://93.184.215.14/a?b=1"
    assert seen[0].headers["host"] == "example.com"
    assert seen[0].extensions["sni_hostname"] == "example.com"
    with pytest.raises(Fault, match=r"refused: the URL carries credentials"):
        _fetch(dev, "https://user:secret@example.com/")
    assert len(seen) == 1
